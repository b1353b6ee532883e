"""Pure functions: the exchange's JSON in, feedctl's models out. No I/O, no clock.

Everything that cannot be used raises :class:`Malformed`; the feed counts it under
``malformed`` and goes on. Unit-test this module with recorded payloads.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from decimal import Decimal, InvalidOperation
from typing import Any

from feedctl import Category, MarkPrice, PositionUpdate, Side

_SIDES = {"Buy": Side.LONG, "Sell": Side.SHORT}


class Malformed(ValueError):
    """Input the feed cannot use (not JSON, a missing or non-numeric field...)."""


@dataclass(frozen=True, slots=True)
class Answer:
    """The answer to a WebSocket request (``auth``, ``subscribe``) or a pong."""

    op: str
    success: bool
    ret_msg: str


@dataclass(frozen=True, slots=True)
class Envelope:
    """A REST answer: ``retCode``, ``retMsg``, ``result`` and the server time (ms)."""

    code: int
    message: str
    result: dict[str, Any]
    time_ms: int | None


# ------------------------------------------------------------------ frames
def decode(raw: str | bytes) -> dict[str, Any]:
    """One frame (or REST body) to a JSON object."""
    try:
        msg = json.loads(raw)
    except (ValueError, TypeError) as exc:
        text = raw.decode("utf-8", "replace") if isinstance(raw, bytes) else str(raw)
        raise Malformed(f"not JSON ({exc}); starts {text[:60]!r}") from None
    if not isinstance(msg, dict):
        raise Malformed(f"not a JSON object: {str(msg)[:60]}")
    return msg


def is_data(msg: dict[str, Any]) -> bool:
    """A push (it has a topic) rather than an answer or a pong."""
    return "topic" in msg


def answer(msg: dict[str, Any]) -> Answer:
    op, ret_msg = msg.get("op"), str(msg.get("ret_msg") or "")
    if op == "pong" or ret_msg == "pong":
        return Answer("pong", True, ret_msg)
    if not isinstance(op, str) or not op:
        raise Malformed(f"a frame with neither topic nor op: {str(msg)[:80]}")
    return Answer(op, msg.get("success") is True, ret_msg)


# ------------------------------------------------------------------ fields
def _dec(row: dict[str, Any], name: str, *, required: bool = False) -> Decimal | None:
    value = row.get(name)
    if value is None or value == "":
        if required:
            raise Malformed(f"{name} missing")
        return None
    try:
        number = Decimal(str(value))
    except InvalidOperation:
        raise Malformed(f"{name}={value!r} is not a number") from None
    if not number.is_finite():
        raise Malformed(f"{name}={value!r} is not finite")
    return number


def _price(row: dict[str, Any], name: str) -> Decimal | None:
    """A price the exchange writes as "0" or "" when it is not set."""
    number = _dec(row, name)
    return None if number is None or number <= 0 else number


def _int(row: dict[str, Any], name: str) -> int | None:
    value = row.get(name)
    if value is None or value == "":
        return None
    try:
        return int(value)
    except (TypeError, ValueError):
        raise Malformed(f"{name}={value!r} is not an integer") from None


# ------------------------------------------------------------------ positions
def position_update(row: Any, *, received_ns: int) -> PositionUpdate:
    """A position row — of a push (``entryPrice``) or of the REST list (``avgPrice``)."""
    if not isinstance(row, dict):
        raise Malformed(f"a position row is not an object: {str(row)[:60]}")
    symbol = row.get("symbol")
    if not isinstance(symbol, str) or not symbol:
        raise Malformed("a position row without a symbol")
    size = _dec(row, "size", required=True)
    assert size is not None
    side = _SIDES.get(str(row.get("side") or ""))
    if size < 0 or (size > 0 and side is None):
        raise Malformed(f"{symbol}: size {size} with side {row.get('side')!r}")
    entry = _dec(row, "entryPrice") if "entryPrice" in row else _dec(row, "avgPrice")
    return PositionUpdate(
        category=Category.LINEAR, symbol=symbol, position_idx=_int(row, "positionIdx") or 0,
        side=side if size > 0 else None, size=size, entry_price=entry or Decimal(0),
        mark_price=_price(row, "markPrice"), leverage=_price(row, "leverage"),
        liq_price=_price(row, "liqPrice"), take_profit=_price(row, "takeProfit"),
        stop_loss=_price(row, "stopLoss"), trailing_stop=_price(row, "trailingStop"),
        seq=_int(row, "seq"), exchange_ms=_int(row, "updatedTime"), received_ns=received_ns,
    )


def position_push(msg: dict[str, Any], *, received_ns: int
                  ) -> tuple[list[PositionUpdate], list[Malformed]]:
    """The updates of a ``position`` push, and the rows that could not be used."""
    data = msg.get("data")
    if not isinstance(data, list):
        return [], [Malformed("a position push without a data list")]
    updates, bad = [], []
    for row in data:
        try:
            updates.append(position_update(row, received_ns=received_ns))
        except Malformed as exc:
            bad.append(exc)
    return updates, bad


# ------------------------------------------------------------------ REST
def envelope(body: dict[str, Any]) -> Envelope:
    code = body.get("retCode")
    if not isinstance(code, int):
        raise Malformed(f"a REST answer without retCode: {str(body)[:80]}")
    result = body.get("result")
    time_ms = body.get("time")
    return Envelope(code, str(body.get("retMsg") or ""),
                    result if isinstance(result, dict) else {},
                    time_ms if isinstance(time_ms, int) else None)


def position_page(result: dict[str, Any], *, received_ns: int
                  ) -> tuple[list[PositionUpdate], str]:
    """One page of the position list and the cursor of the next ("" at the end).
    A bad row spoils the page: a snapshot with a hole would close positions wrongly."""
    rows = result.get("list")
    if not isinstance(rows, list):
        raise Malformed("a position list without a list")
    updates = [position_update(row, received_ns=received_ns) for row in rows]
    return updates, str(result.get("nextPageCursor") or "")


def mark_prices(result: dict[str, Any], symbols: set[str], *, exchange_ms: int | None,
                received_ns: int) -> tuple[list[MarkPrice], list[Malformed]]:
    """Mark prices of ``symbols`` from a tickers answer, and the rows that were bad."""
    rows = result.get("list")
    if not isinstance(rows, list):
        return [], [Malformed("a tickers answer without a list")]
    marks, bad = [], []
    for row in rows:
        if not isinstance(row, dict) or row.get("symbol") not in symbols:
            continue
        try:
            price = _price(row, "markPrice")
            if price is None:
                raise Malformed(f"{row['symbol']}: no markPrice")
        except Malformed as exc:
            bad.append(exc)
            continue
        marks.append(MarkPrice(category=Category.LINEAR, symbol=row["symbol"], mark_price=price,
                               exchange_ms=exchange_ms, received_ns=received_ns))
    return marks, bad
