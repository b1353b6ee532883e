"""Lifecycles that began and ended inside a user-stream gap. Pure functions.

A positionRisk snapshot shows only the state *after* a gap: a position opened and
closed while the socket was down is invisible to it, and a close-then-reopen looks like
a size change. Binance's account trades (``GET /fapi/v1/userTrades``, one symbol per
call) carry each fill's side, position side, quantity, price and time, so replaying the
fills newer than the book's state of a key, from that state, recovers the intermediate
states. The feed applies them before reconciling with the snapshot, which then sets the
exact final state; a replayed state is only applied when it is older than the
snapshot's word on its key (the row's ``updateTime``, or the snapshot's time for a key
it shows flat), so a wrong replay can never outrank the snapshot.

Which symbols to ask: the book's, the snapshot's, and those with any income (every fill
pays a commission) since the gap began (``GET /fapi/v1/income``).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

from pydantic import ValidationError

from feedctl import Category, Position, PositionKey, PositionUpdate, Side, wire_decimal

from .models import IncomeRow, UserTrade
from .parse import LAST_OF_MS, SEQ_PER_MS, Problem, position_key

_ZERO = Decimal(0)


@dataclass(frozen=True, slots=True)
class Trade:
    key: PositionKey
    #: signed quantity: + buys, - sells
    qty: Decimal
    price: Decimal
    time_ms: int
    trade_id: int
    #: the exchange says the fill reduced a position (``realizedPnl`` not zero, or a
    #: hedge side's closing side): it cannot have applied to a flat one
    reduced: bool = False


def parse_trades(rows: Any) -> tuple[list[Trade], list[Problem]]:
    if not isinstance(rows, list):
        return [], [Problem("malformed", f"userTrades answered {str(rows)[:120]}")]
    out: list[Trade] = []
    problems: list[Problem] = []
    for raw in rows:
        try:
            t = UserTrade.model_validate(raw)
        except ValidationError:
            problems.append(Problem("malformed", f"userTrades row {str(raw)[:80]}"))
            continue
        key = position_key(t.symbol, t.position_side)
        qty, price = wire_decimal(t.qty), wire_decimal(t.price)
        if key is None or qty is None or price is None or qty <= 0 or price <= 0 \
                or t.side not in ("BUY", "SELL"):
            problems.append(Problem("bad_field", f"userTrades row {t.symbol} {t.id}"))
            continue
        rp = wire_decimal(t.realized_pnl)
        reduced = (rp is not None and rp != 0) or (t.position_side, t.side) in (
            ("LONG", "SELL"), ("SHORT", "BUY"))
        out.append(Trade(key, qty if t.side == "BUY" else -qty, price, t.time_ms, t.id,
                         reduced))
    return out, problems


def income_symbols(rows: Any) -> set[str]:
    """Symbols with any income entry (a fill's commission, a realized PnL...)."""
    out: set[str] = set()
    for raw in rows if isinstance(rows, list) else []:
        try:
            row = IncomeRow.model_validate(raw)
        except ValidationError:
            continue
        if row.symbol:
            out.add(row.symbol)
    return out


def replay(
    trades: Iterable[Trade], start: Mapping[PositionKey, Position],
    after_ms: Mapping[PositionKey, int], before_ms: Mapping[PositionKey, int],
    received_ns: int, leverage: Mapping[str, Decimal],
) -> list[PositionUpdate]:
    """The states ``trades`` imply, per key, from the book's ``start`` state: only trades
    later than ``after_ms[key]`` (what the book already reflects) and states earlier than
    ``before_ms[key]`` (the snapshot's word). Ordered by time.

    A fill the exchange says reduced a position that the replay holds flat (or on the
    fill's own side) is one ``start`` already reflects: a snapshot served later than its
    time says closed a key by that fill. The key's replay starts again after it, from
    ``start``: replayed onto flat, a close fill would open a position the exchange
    never had."""
    by_key: dict[PositionKey, list[Trade]] = {}
    for t in sorted(trades, key=lambda t: (t.time_ms, t.trade_id)):
        if t.time_ms > after_ms.get(t.key, 0):
            by_key.setdefault(t.key, []).append(t)
    out: list[PositionUpdate] = []
    for key, run in by_key.items():
        pos = start.get(key)
        first = _ZERO if pos is None else (pos.size if pos.side is Side.LONG else -pos.size)
        first_entry = _ZERO if pos is None else pos.entry_price
        amount, entry = first, first_entry
        limit = before_ms.get(key)
        states: list[PositionUpdate] = []
        for i, t in enumerate(run):
            if t.reduced and (amount == 0 or (amount > 0) == (t.qty > 0)):
                states, amount, entry = [], first, first_entry  # ``start`` reflects it
                continue
            amount, entry = _fill(amount, entry, t.qty, t.price)
            last_of_ms = i + 1 == len(run) or run[i + 1].time_ms != t.time_ms
            if not last_of_ms or (limit is not None and t.time_ms >= limit):
                continue  # one state per millisecond; none the snapshot outranks
            states.append(_state(key, amount, entry, t.time_ms, received_ns,
                                 leverage.get(key.symbol)))
        out.extend(states)
    out.sort(key=lambda u: u.exchange_ms or 0)
    return out


def _fill(amount: Decimal, entry: Decimal, qty: Decimal, price: Decimal
          ) -> tuple[Decimal, Decimal]:
    new = amount + qty
    if amount == 0 or (amount > 0) == (qty > 0):  # open or add: average the entry
        return new, (entry * abs(amount) + price * abs(qty)) / abs(new)
    if new == 0:
        return new, _ZERO
    if (new > 0) != (amount > 0):  # through zero: the rest opens at this price
        return new, price
    return new, entry  # a reduction keeps the entry


def _state(key: PositionKey, amount: Decimal, entry: Decimal, ms: int, received_ns: int,
           leverage: Decimal | None) -> PositionUpdate:
    if key.position_idx == 1:
        side: Side | None = Side.LONG if amount > 0 else None
    elif key.position_idx == 2:
        side = Side.SHORT if amount < 0 else None
    else:
        side = None if amount == 0 else (Side.LONG if amount > 0 else Side.SHORT)
    size = abs(amount) if side is not None else _ZERO
    return PositionUpdate(category=Category.LINEAR, symbol=key.symbol,
                          position_idx=key.position_idx, side=side, size=size,
                          entry_price=entry if side is not None else _ZERO,
                          leverage=leverage if side is not None else None,
                          # the last state of its millisecond, below a snapshot row's
                          seq=ms * SEQ_PER_MS + LAST_OF_MS - 1,
                          exchange_ms=ms, received_ns=received_ns)


def lost_lifecycles(trades: Iterable[Trade], received_ns: int,
                    leverage: Mapping[str, Decimal]) -> tuple[list[PositionUpdate], Decimal]:
    """The complete lifecycles ``trades`` of one key make from flat: their states (one
    per millisecond) each ending in a flat state, at the trade that closed it or went
    through zero; an open remainder is left out. Also the signed amount after the last
    trade (to check the replay against the state the exchange pushed)."""
    out: list[PositionUpdate] = []
    done = 0
    amount = entry = _ZERO
    run = sorted(trades, key=lambda t: (t.time_ms, t.trade_id))
    for i, t in enumerate(run):
        before = amount
        amount, entry = _fill(amount, entry, t.qty, t.price)
        through = before != 0 and (amount == 0 or (amount > 0) != (before > 0))
        if through:
            out.append(_state(t.key, _ZERO, _ZERO, t.time_ms, received_ns, None))
            done = len(out)
            if amount == 0:
                continue
        last_of_ms = i + 1 == len(run) or run[i + 1].time_ms != t.time_ms
        if last_of_ms and amount != 0:
            out.append(_state(t.key, amount, entry, t.time_ms, received_ns,
                              leverage.get(t.key.symbol)))
    return out[:done], amount
