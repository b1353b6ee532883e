"""Lifecycles that began and ended inside a private-socket gap. Pure functions.

A REST position snapshot shows only the state *after* a gap: a position opened and
closed while the socket was down is invisible to it, and a close-then-reopen looks like
a size change. Bybit's fills (/v5/execution/list) carry the same ``seq`` as the
position states they produced, so replaying the fills after the book's last known
``seq`` from the book's pre-gap state recovers every intermediate state. The feed
applies those states (older ``seq`` than the snapshot) before reconciling with the
snapshot, which then sets the exact final state.

Fills carry no ``positionIdx``. In one-way mode it is 0; in hedge mode the side and
``closedSize`` say which side moved (:func:`hedge_key`): a fill that closes nothing
grows its own side (Buy the long, idx 1; Sell the short, idx 2), one that closes
reduces the other side. Which symbols are hedged the caller knows (rows and pushes
carry the index) or asks REST.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, replace
from decimal import Decimal
from itertools import groupby
from typing import Any, Protocol

from feedctl import Category, PositionKey, PositionUpdate, Side, wire_decimal

from .constants import CATEGORY_BY_NAME
from .parse import Problem

#: Fills that do not change a position's size.
NON_POSITION_EXEC_TYPES = frozenset({"Funding", "Settle"})
_SIDES = {"Buy": Side.LONG, "Sell": Side.SHORT}
_ZERO = Decimal(0)
#: The side each hedge-mode position index holds.
_HEDGE_SIDE = {1: Side.LONG, 2: Side.SHORT}


@dataclass(frozen=True, slots=True)
class Fill:
    """A position-moving fill; ``key`` has positionIdx 0 until :func:`hedge_key` places
    a hedge-mode fill on its side."""

    key: PositionKey
    side: Side
    qty: Decimal
    price: Decimal
    seq: int
    exec_ms: int
    #: ``closedSize``: how much of the fill closed a position (0: it only opened)
    closed: Decimal = Decimal(0)


def hedge_key(fill: Fill) -> Fill:
    """``fill`` on its hedge-mode position: one that closes nothing grows its own side
    (Buy: idx 1, Sell: idx 2), one that closes reduces the other (a hedge fill never
    flips a side)."""
    grows_long = fill.side is Side.LONG
    if fill.closed > 0:
        grows_long = not grows_long
    key = fill.key
    return replace(fill, key=PositionKey(key.category, key.symbol, 1 if grows_long else 2))


def parse_fill(row: Any, default_category: Category = Category.LINEAR) -> Fill | Problem | None:
    """One row of /v5/execution/list; None for fills that do not move a position."""
    if not isinstance(row, dict):
        return Problem("malformed", "execution row is not an object")
    if row.get("execType") in NON_POSITION_EXEC_TYPES:
        return None
    try:
        category = CATEGORY_BY_NAME[row.get("category") or default_category.value]
        side = _SIDES[row["side"]]
        qty, price = wire_decimal(row["execQty"]), wire_decimal(row["execPrice"])
        if qty is None or price is None:  # 'NaN', '1e999999', a list: replay would overflow
            raise ValueError(f"execQty={row['execQty']!r} execPrice={row['execPrice']!r}")
        seq, exec_ms = int(row["seq"]), int(row["execTime"])
        symbol = str(row["symbol"])
        raw_closed = row.get("closedSize")
        closed = wire_decimal(raw_closed) if raw_closed not in (None, "") else _ZERO
        if closed is None or closed < 0:
            raise ValueError(f"closedSize={raw_closed!r}")
        if qty <= 0 or price <= 0:
            return None
    except Exception as exc:
        return Problem("bad_field", f"execution row for {row.get('symbol')!r}: {exc!r}")
    return Fill(PositionKey(category, symbol, 0), side, qty, price, seq, exec_ms, closed)


def _avg_entry(cat: Category, size: Decimal, entry: Decimal, qty: Decimal,
               price: Decimal) -> Decimal:
    if cat is Category.INVERSE:  # contracts are in USD: the average is harmonic
        return (size + qty) / (size / entry + qty / price)
    return (entry * size + price * qty) / (size + qty)


class Start(Protocol):
    """A state a replay starts from (a book position, a ledger state)."""

    @property
    def side(self) -> Side | None: ...
    @property
    def size(self) -> Decimal: ...
    @property
    def entry_price(self) -> Decimal: ...
    @property
    def leverage(self) -> Decimal | None: ...


def replay(
    fills: list[Fill],
    start: Mapping[PositionKey, Start],
    last_seq: Mapping[PositionKey, int],
    final_seq: Mapping[PositionKey, int],
    leverage: Mapping[PositionKey, Decimal | None],
    received_ns: int,
) -> list[PositionUpdate]:
    """States implied by ``fills`` newer than ``last_seq``, from the ``start`` states,
    leaving out states the snapshot holds (``seq >= final_seq``). Ordered by seq."""
    out: list[PositionUpdate] = []
    fills = sorted(fills, key=lambda f: (f.key, f.seq, f.exec_ms))
    for key, group in groupby(fills, key=lambda f: f.key):
        pos = start.get(key)
        side: Side | None = pos.side if pos is not None else None
        size = pos.size if pos is not None else _ZERO
        entry = pos.entry_price if pos is not None else _ZERO
        lev = leverage.get(key) or (pos.leverage if pos is not None else None)
        newer = [f for f in group if f.seq > last_seq.get(key, -1)]
        for seq, same_seq in groupby(newer, key=lambda f: f.seq):
            batch = list(same_seq)  # one order may fill in several executions
            for f in batch:
                own = _HEDGE_SIDE.get(key.position_idx)
                if own is not None and f.side is not own and size == 0:
                    continue  # a hedge side cannot be reduced below flat
                if own is None and size == 0 and f.closed > 0:
                    # the exchange says this fill closed a position, and the replay holds
                    # the key flat: its start already reflects the close (a snapshot
                    # after it); only what it opened beyond it is new (a flip)
                    if f.qty > f.closed:
                        side, size, entry = f.side, f.qty - f.closed, f.price
                    continue
                if side is None or size == 0:
                    side, size, entry = f.side, f.qty, f.price
                elif f.side is side:
                    entry = _avg_entry(key.category, size, entry, f.qty, f.price)
                    size += f.qty
                else:
                    closed = min(size, f.qty)
                    size -= closed
                    if size == 0:
                        rest = f.qty - closed if own is None else _ZERO  # hedge: no flip
                        side, size, entry = (f.side, rest, f.price) if rest else (None, _ZERO,
                                                                                 _ZERO)
            if seq >= final_seq.get(key, seq + 1):
                continue
            out.append(PositionUpdate(
                category=key.category, symbol=key.symbol, position_idx=key.position_idx,
                side=side if size > 0 else None, size=size, entry_price=entry,
                leverage=lev if size > 0 else None, seq=seq, exchange_ms=batch[-1].exec_ms,
                received_ns=received_ns,
            ))
    out.sort(key=lambda u: (u.exchange_ms or 0, u.seq or 0))
    return out
