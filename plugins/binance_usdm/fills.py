"""The fills a position push reports, against the push (F51 in docs/reliability.md).

Binance's pushes carry no sequence: a push lost with the socket up (a stall that held
no ping, so no pong overdue proves it) leaves nothing in the next push that shows it,
and a close lost before a same-side reopen reads as a size change. The fills say it:
every ``ORDER_TRADE_UPDATE`` fill carries its quantity and side, and the ``ACCOUNT_UPDATE``
of an order (reason ``ORDER``) moves the position by what the fills since the last push
made. A push whose fills do not take the book's amount to the push's, or take it
through flat to a reopen, follows a lost state: the stream resyncs before applying it,
and the resync's replay of the fills delivers the lost states in order.

A fill counts for the first push whose ``T`` is at or after its own (Binance stamps
each service's ``T``: a push is never before its fill's); one at or before the key's
newest applied push belongs to that push (its ACCOUNT_UPDATE came first) and is not
counted. A push without a counted fill (fills arriving after it, a funding fee, a
liquidation's ``CALCULATED`` trade) is not judged.
"""

from __future__ import annotations

from decimal import Decimal

from feedctl import PositionKey

#: Fills kept per key waiting for their push (beyond it, the oldest go: not judged).
FILLS_KEPT = 64


class FillLedger:
    """Per key, the signed quantities (BUY +, SELL -) of fills not yet reported by a push."""

    def __init__(self) -> None:
        self._fills: dict[PositionKey, list[tuple[int, Decimal]]] = {}

    def fill(self, key: PositionKey, trade_ms: int, signed_qty: Decimal,
             last_push_ms: int) -> None:
        """A fill of ``key`` at ``trade_ms``; ``last_push_ms`` is the key's newest applied
        push's ``T``."""
        if trade_ms <= last_push_ms:
            return  # its push came first
        fills = self._fills.setdefault(key, [])
        fills.append((trade_ms, signed_qty))
        if len(fills) > FILLS_KEPT:
            del fills[0]

    def gap(self, key: PositionKey, push_ms: int, before: Decimal, after: Decimal
            ) -> str | None:
        """Why a push of ``key`` at ``push_ms`` moving the book's signed amount from
        ``before`` to ``after`` follows a lost state, or None. Its fills are used up."""
        fills = self._fills.get(key)
        if not fills:
            return None
        mine = sorted(f for f in fills if f[0] <= push_ms)
        if not mine:
            return None
        self._fills[key] = [f for f in fills if f[0] > push_ms]
        amount = before
        for n, (_t, qty) in enumerate(mine):
            amount += qty
            if amount == 0 and n < len(mine) - 1:
                return "its fills close the position and open it again"
        if amount != after:
            return f"its fills take the amount from {before} to {amount}, it shows {after}"
        return None

    def clear(self) -> None:
        """Forget every fill (a resync's snapshot and replay account for them)."""
        self._fills.clear()
