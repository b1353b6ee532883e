"""Sans-I/O parsing of Binance USDⓈ-M messages into framework models.

Nothing here raises on bad input: every function returns its result or a
:class:`Problem` whose ``counter`` the caller counts (``malformed``, ``bad_field``,
``unexpected_event``) and whose ``detail`` it logs.

Ordering: a user-data event carries ``E`` (event time) and ``T`` (transaction time,
from the matching engine); there is no per-position sequence number, and two events
of one position can share both (a close and a reopen in one millisecond). A position's
state is stamped with ``T`` as ``exchange_ms`` and given a ``seq`` that orders it by
(T, E, arrival) - :func:`push_seq` - so that the book and the router order two states
of one millisecond deterministically instead of taking the second for a copy of the
first. A snapshot row's seq (:func:`row_seq`) outranks every push of the row's
``updateTime`` when that millisecond was over before the snapshot was taken; buffered
events are applied in (T, E, arrival) order.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

import orjson
from pydantic import ValidationError

from feedctl import Category, MarkPrice, PositionKey, PositionUpdate, Side, wire_decimal

from .constants import POSITION_IDX
from .models import (
    AccountConfigUpdate,
    AccountPosition,
    AccountUpdate,
    MarkPriceUpdate,
    OrderTradeUpdate,
    PositionRiskRow,
)

_ZERO = Decimal(0)

#: seq = ms * SEQ_PER_MS + a tie-breaker inside the millisecond; fits in 64 bits
#: (JSON consumers and the redis bus serialise it as an int64) until the year 2262.
SEQ_PER_MS = 1_000_000
#: E - T beyond this sorts as this (the event time only breaks ties of one T)
_E_SPAN = 99
_ARRIVALS = 10_000
#: the tie-breaker of a state that is the last one of its millisecond (a snapshot row of
#: a millisecond over before the snapshot, a replayed fill's state)
LAST_OF_MS = SEQ_PER_MS - 1


def push_seq(t_ms: int, e_ms: int | None, arrival: int) -> int:
    """The seq of a pushed state: by transaction time ``T``, then event time ``E``, then
    the arrival count of the feed (``E - T`` is capped at 99 ms, the count wraps at
    10,000: a tie of one (T, E) across that many arrivals is not ordered)."""
    lag = 0 if e_ms is None else min(max(e_ms - t_ms, 0), _E_SPAN)
    return t_ms * SEQ_PER_MS + lag * _ARRIVALS + 1 + arrival % (_ARRIVALS - 1)


def row_seq(update_ms: int, as_of_ms: int | None) -> int:
    """The seq of a snapshot row updated at ``update_ms``: after every push of that
    millisecond if the snapshot was sent after it ended (the row shows its last state),
    else before them (a push of the same millisecond may be newer than the row)."""
    if as_of_ms is not None and update_ms < as_of_ms:
        return update_ms * SEQ_PER_MS + LAST_OF_MS
    return update_ms * SEQ_PER_MS


@dataclass(frozen=True, slots=True)
class Problem:
    """Why an input was not usable: ``counter`` names the feed counter to bump."""

    counter: str
    detail: str


@dataclass(frozen=True, slots=True)
class Fill:
    """A fill seen on ORDER_TRADE_UPDATE: the position ``key`` changed at ``trade_ms``."""

    key: PositionKey
    trade_ms: int
    #: the fill reduced a position (``rp`` not zero, or a hedge side's closing side)
    reduced: bool = False
    #: the quantity filled, signed as the amount it moves (BUY +, SELL -; 0: no side)
    signed_qty: Decimal = Decimal(0)
    #: the trade's id (userTrades' ``id``; 0: not told)
    trade_id: int = 0


@dataclass(frozen=True, slots=True)
class Leverage:
    symbol: str
    leverage: Decimal


@dataclass(frozen=True, slots=True)
class Expired:
    """``listenKeyExpired``: no more user data on this key."""

    event_ms: int


def decode(raw: bytes | bytearray | memoryview | str) -> dict[str, Any] | Problem:
    """One WebSocket frame to a dict, or a ``malformed`` problem."""
    try:
        msg = orjson.loads(raw)
    except orjson.JSONDecodeError as exc:
        return Problem("malformed", f"not JSON: {exc}; frame starts {_head(raw)!r}")
    if not isinstance(msg, dict):
        return Problem("malformed", f"not a JSON object; frame starts {_head(raw)!r}")
    return msg


def _head(raw: bytes | bytearray | memoryview | str) -> str:
    if isinstance(raw, str):
        return raw[:80]
    return bytes(raw[:80]).decode("utf-8", "replace")


def _short(exc: ValidationError) -> str:
    err = exc.errors()[0]
    where = ".".join(str(p) for p in err.get("loc", ()))
    return f"{where}: {err.get('msg')}"


def position_key(symbol: str, position_side: str) -> PositionKey | None:
    idx = POSITION_IDX.get(position_side)
    return None if idx is None else PositionKey(Category.LINEAR, symbol, idx)


def _state(symbol: str, position_side: str, amount_raw: str, entry_raw: str, *,
           exchange_ms: int, received_ns: int, leverage: Decimal | None,
           liq_price: Decimal | None = None, mark_price: Decimal | None = None,
           seq: int | None = None) -> PositionUpdate | Problem:
    key = position_key(symbol, position_side)
    if key is None:
        return Problem("bad_field", f"{symbol}: unknown positionSide {position_side!r}")
    amount, entry = wire_decimal(amount_raw), wire_decimal(entry_raw)
    if amount is None or entry is None or entry < 0:
        return Problem("bad_field", f"{symbol}: amount {amount_raw!r} entry {entry_raw!r}")
    if amount == 0:
        side: Side | None = None
    elif key.position_idx == 1:
        side = Side.LONG
    elif key.position_idx == 2:
        side = Side.SHORT
    else:
        side = Side.LONG if amount > 0 else Side.SHORT
    is_open = side is not None
    return PositionUpdate(
        category=key.category, symbol=symbol, position_idx=key.position_idx, side=side,
        size=abs(amount), entry_price=entry if is_open else _ZERO,
        mark_price=mark_price if mark_price and mark_price > 0 else None,
        leverage=leverage if is_open else None,
        liq_price=liq_price if is_open and liq_price and liq_price > 0 else None,
        seq=seq, exchange_ms=exchange_ms, received_ns=received_ns,
    )


def account_update(
    msg: Mapping[str, Any], received_ns: int, leverage: Mapping[str, Decimal],
    liq: Mapping[PositionKey, Decimal] | None = None, arrival: int = 0,
) -> tuple[list[PositionUpdate], list[Problem], str]:
    """The position states of an ``ACCOUNT_UPDATE`` (only the changed symbols are in
    it), the problems met, and the reason type (``ORDER``, ``FUNDING_FEE``...).

    ``leverage`` (per symbol) and ``liq`` (per key) are what the feed knows from REST
    and ACCOUNT_CONFIG_UPDATE: the push carries neither, and a state without them would
    read as a change. ``arrival`` (the feed's count of user-data events) breaks ties of
    one (T, E) in the states' seq."""
    try:
        event = AccountUpdate.model_validate(msg)
    except ValidationError as exc:
        return [], [Problem("malformed", f"ACCOUNT_UPDATE: {_short(exc)}")], ""
    updates: list[PositionUpdate] = []
    problems: list[Problem] = []
    liq = liq or {}
    seq = push_seq(event.transaction_ms, event.event_ms, arrival)
    for entry in event.data.positions:
        key = position_key(entry.symbol, entry.position_side)
        parsed = _from_entry(entry, event, received_ns, leverage.get(entry.symbol),
                             liq.get(key) if key is not None else None, seq)
        if isinstance(parsed, Problem):
            problems.append(parsed)
        else:
            updates.append(parsed)
    return updates, problems, event.data.reason


def _from_entry(entry: AccountPosition, event: AccountUpdate, received_ns: int,
                leverage: Decimal | None, liq: Decimal | None, seq: int,
                ) -> PositionUpdate | Problem:
    return _state(entry.symbol, entry.position_side, entry.amount, entry.entry_price,
                  exchange_ms=event.transaction_ms, received_ns=received_ns,
                  leverage=leverage, liq_price=liq, seq=seq)


def order_fill(msg: Mapping[str, Any]) -> Fill | Problem | None:
    """The fill an ``ORDER_TRADE_UPDATE`` reports (``x == "TRADE"`` with a quantity), or
    None for order events that move no position (NEW, CANCELED, EXPIRED...)."""
    try:
        event = OrderTradeUpdate.model_validate(msg)
    except ValidationError as exc:
        return Problem("malformed", f"ORDER_TRADE_UPDATE: {_short(exc)}")
    order = event.order
    if order.execution_type != "TRADE":
        return None
    qty = wire_decimal(order.last_qty)
    if qty is None:
        return Problem("bad_field", f"ORDER_TRADE_UPDATE {order.symbol}: l={order.last_qty!r}")
    if qty <= 0:
        return None
    key = position_key(order.symbol, order.position_side)
    if key is None:
        return Problem("bad_field", f"ORDER_TRADE_UPDATE {order.symbol}: ps="
                                    f"{order.position_side!r}")
    rp = wire_decimal(order.realized_profit)
    # hedge mode: SELL on LONG and BUY on SHORT reduce; one-way: a realised profit says so
    reduced = (rp is not None and rp != 0) or (order.position_side, order.side) in (
        ("LONG", "SELL"), ("SHORT", "BUY"))
    sign = {"BUY": 1, "SELL": -1}.get(order.side, 0)
    return Fill(key, event.transaction_ms, reduced=reduced, signed_qty=qty * sign,
                trade_id=order.trade_id)


def config_leverage(msg: Mapping[str, Any]) -> Leverage | Problem | None:
    """A symbol's new leverage from ``ACCOUNT_CONFIG_UPDATE`` (None: another setting)."""
    try:
        event = AccountConfigUpdate.model_validate(msg)
    except ValidationError as exc:
        return Problem("malformed", f"ACCOUNT_CONFIG_UPDATE: {_short(exc)}")
    if event.leverage is None:
        return None
    if event.leverage.leverage <= 0:
        return Problem("bad_field", f"ACCOUNT_CONFIG_UPDATE leverage {event.leverage!r}")
    return Leverage(event.leverage.symbol, Decimal(event.leverage.leverage))


def expired(msg: Mapping[str, Any]) -> Expired:
    """``listenKeyExpired`` (its ``E`` may be a string: the docs show both)."""
    raw = msg.get("E")
    try:
        ms = int(raw) if isinstance(raw, int | str) and not isinstance(raw, bool) else 0
    except ValueError:
        ms = 0
    return Expired(ms)


def mark_prices(msg: Mapping[str, Any] | list[Any]) -> tuple[list[tuple[MarkPrice, int]],
                                                             list[Problem]]:
    """Mark prices of a market-stream payload — one ``markPriceUpdate`` or the array of
    ``!markPrice@arr`` — each with its event time ``E``."""
    items = msg if isinstance(msg, list) else [msg]
    out: list[tuple[MarkPrice, int]] = []
    problems: list[Problem] = []
    for item in items:
        if not isinstance(item, dict):
            problems.append(Problem("malformed", "mark price entry is not an object"))
            continue
        try:
            upd = MarkPriceUpdate.model_validate(item)
        except ValidationError as exc:
            problems.append(Problem("malformed", f"markPriceUpdate: {_short(exc)}"))
            continue
        price = wire_decimal(upd.mark_price)
        if price is None or price <= 0:
            problems.append(Problem("bad_field", f"{upd.symbol}: mark price "
                                                 f"{upd.mark_price!r}"))
            continue
        out.append((MarkPrice(category=Category.LINEAR, symbol=upd.symbol, mark_price=price,
                              exchange_ms=upd.event_ms), upd.event_ms))
    return out, problems


def position_rows(
    rows: Any, received_ns: int, *, hedge: bool | None, leverage: Mapping[str, Decimal],
    as_of_ms: int | None = None,
) -> tuple[list[PositionUpdate], list[Problem]]:
    """The open positions of a ``positionRisk`` answer (a list of rows). In hedge mode
    only LONG/SHORT rows count, in one-way mode only BOTH rows (Binance lists the other
    sides flat). A row's leverage, when it has none (v3), is what the feed knows; its
    seq is :func:`row_seq` of its ``updateTime`` against the snapshot's ``as_of_ms``."""
    if not isinstance(rows, list):
        return [], [Problem("malformed", f"positionRisk answered {str(rows)[:120]}")]
    out: list[PositionUpdate] = []
    problems: list[Problem] = []
    for raw in rows:
        try:
            row = PositionRiskRow.model_validate(raw)
        except ValidationError as exc:
            problems.append(Problem("malformed", f"positionRisk row: {_short(exc)}"))
            continue
        if hedge is not None and (row.position_side == "BOTH") == hedge:
            continue
        lev = wire_decimal(row.leverage) if row.leverage is not None else None
        parsed = _state(
            row.symbol, row.position_side, row.amount, row.entry_price,
            exchange_ms=row.update_ms, received_ns=received_ns,
            leverage=lev if lev else leverage.get(row.symbol),
            liq_price=wire_decimal(row.liquidation_price),
            mark_price=wire_decimal(row.mark_price),
            seq=row_seq(row.update_ms, as_of_ms),
        )
        if isinstance(parsed, Problem):
            problems.append(parsed)
        elif parsed.is_open:
            out.append(parsed)
    return out, problems


def user_order(event: Mapping[str, Any]) -> tuple[int, int, int]:
    """The (T, E, arrival) ordering key of a user-data event (missing values sort
    first; ``_arrival`` is the feed's count, stored with a buffered event)."""
    t, e, n = event.get("T"), event.get("E"), event.get("_arrival")
    return (t if type(t) is int else 0, e if type(e) is int else 0,
            n if type(n) is int else 0)
