"""Sans-I/O parsing of Bybit V5 messages into framework models.

Nothing here raises on bad input: every function returns either its result or a
:class:`Problem` whose ``counter`` the caller counts (``malformed``, ``bad_field``,
``unexpected_topic``, ``unknown_symbol``) and whose ``detail`` it logs.
"""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal
from typing import Any, Final, NamedTuple

import msgspec
import orjson

from feedctl import Category, PositionUpdate, Side, wire_decimal

from .constants import CATEGORY_BY_NAME, TICKERS_PREFIX

_SIDES = {"Buy": Side.LONG, "Sell": Side.SHORT}
_ZERO = Decimal(0)
_tuple_new = tuple.__new__
_PREFIX_LEN = len(TICKERS_PREFIX)


@dataclass(frozen=True, slots=True)
class Problem:
    """Why an input was not usable: ``counter`` names the feed counter to bump."""

    counter: str
    detail: str


@dataclass(frozen=True, slots=True)
class Answer:
    """A request's answer (``auth``, ``subscribe``, ``unsubscribe``) or a pong."""

    op: str
    success: bool
    req_id: str | None
    ret_msg: str


def decode(raw: bytes | str) -> dict[str, Any] | Problem:
    """One WebSocket frame to a dict, or a ``malformed`` problem."""
    try:
        msg = orjson.loads(raw)
    except (orjson.JSONDecodeError, TypeError) as exc:
        return Problem("malformed", f"not JSON: {exc}; frame starts {_head(raw)!r}")
    if not isinstance(msg, dict):
        return Problem("malformed", f"not a JSON object; frame starts {_head(raw)!r}")
    return msg


def _head(raw: bytes | str) -> str:
    text = raw.decode("utf-8", "replace") if isinstance(raw, bytes | bytearray) else str(raw)
    return text[:80]


def classify_answer(msg: dict[str, Any]) -> Answer | Problem:
    """Classify a frame without ``topic``: a pong (either shape) or a request's answer."""
    op = msg.get("op")
    if op is None and isinstance(msg.get("request"), dict):
        op = msg["request"].get("op")  # error answers may carry the request instead
    ret_msg = msg.get("ret_msg", msg.get("retMsg", ""))
    req_id = msg.get("req_id", msg.get("reqId"))
    req = None if req_id is None else str(req_id)
    # public pong: {"success":true,"ret_msg":"pong","op":"ping"}; private: {"op":"pong"};
    # spot: {"pong": 1653296711335}
    if op == "pong" or ret_msg == "pong" or "pong" in msg:
        return Answer("pong", True, req, str(ret_msg or ""))
    if not isinstance(op, str) or not op:
        return Problem("malformed", f"frame with neither topic nor op: {str(msg)[:120]}")
    success = msg.get("success") is True or msg.get("retCode") == 0
    return Answer(op, success, req, str(ret_msg or ""))


# ------------------------------------------------------------------- positions
def _dec(row: dict[str, Any], name: str) -> Decimal | None:
    """A decimal field; '' and missing are None; garbage raises ValueError."""
    value = row.get(name)
    if value is None or value == "":
        return None
    d = wire_decimal(value)
    if d is None:
        raise ValueError(f"{name}={value!r} is not a finite number of sane magnitude")
    return d


def _opt_price(row: dict[str, Any], name: str) -> Decimal | None:
    """A price where Bybit writes "0" (or "") for 'not set'."""
    d = _dec(row, name)
    return None if d is None or d == 0 else d


def _int(value: Any, name: str) -> int | None:
    if value is None or value == "":
        return None
    if isinstance(value, bool):
        raise ValueError(f"{name}={value!r} is not an integer")
    try:
        return int(value)
    except (TypeError, ValueError):
        raise ValueError(f"{name}={value!r} is not an integer") from None


def position_update(
    row: Any, *, default_category: Category = Category.LINEAR, received_ns: int
) -> PositionUpdate | Problem:
    """One row of a ``position`` push (``entryPrice``) or of /v5/position/list
    (``avgPrice``) as a :class:`PositionUpdate`. ``seq`` and ``updatedTime`` are kept:
    the book orders and deduplicates by them."""
    if not isinstance(row, dict):
        return Problem("malformed", f"position row is not an object: {str(row)[:80]}")
    try:
        symbol = row.get("symbol")
        if not isinstance(symbol, str) or not symbol:
            raise ValueError("symbol missing")
        cat_name = row.get("category") or default_category.value
        category = CATEGORY_BY_NAME.get(cat_name)
        if category is None:
            raise ValueError(f"category={cat_name!r} is not linear or inverse")
        size = _dec(row, "size")
        if size is None:  # never a close: a flat row says "0"
            return Problem("malformed", f"position row for {symbol!r}: size is "
                           f"{'missing' if 'size' not in row else repr(row['size'])}")
        if size < 0:
            raise ValueError(f"size={size} is negative")
        raw_side = row.get("side") or ""
        if size == 0:
            side = None
        elif raw_side in _SIDES:
            side = _SIDES[raw_side]
        else:
            raise ValueError(f"side={raw_side!r} with size {size}")
        entry_name = "entryPrice" if "entryPrice" in row else "avgPrice"
        entry = _dec(row, entry_name)
        if size > 0 and (entry is None or entry <= 0):  # an open row without its entry
            return Problem("malformed", f"position row for {symbol!r}: open ({size}) with "
                           f"{entry_name}={row.get(entry_name)!r}")
        idx = _int(row.get("positionIdx", 0), "positionIdx") or 0
        return PositionUpdate(
            category=category,
            symbol=symbol,
            position_idx=idx,
            side=side,
            size=size,
            entry_price=entry or _ZERO,
            mark_price=_opt_price(row, "markPrice"),
            leverage=_opt_price(row, "leverage"),
            liq_price=_opt_price(row, "liqPrice"),
            take_profit=_opt_price(row, "takeProfit"),
            stop_loss=_opt_price(row, "stopLoss"),
            trailing_stop=_opt_price(row, "trailingStop"),
            seq=_int(row.get("seq"), "seq"),
            exchange_ms=_int(row.get("updatedTime"), "updatedTime"),
            received_ns=received_ns,
        )
    except Exception as exc:  # ValueError, pydantic's ValidationError, anything odd
        sym = row.get("symbol", "?")
        return Problem("bad_field", f"position row for {sym!r}: {str(exc).splitlines()[0]}")


def position_push(
    msg: dict[str, Any], received_ns: int
) -> tuple[list[PositionUpdate], list[Problem]]:
    """The rows of a ``position`` push (``data`` is a list; one push may carry many)."""
    data = msg.get("data")
    if not isinstance(data, list):
        return [], [Problem("malformed", "position push without a data list")]
    updates: list[PositionUpdate] = []
    problems: list[Problem] = []
    for row in data:
        parsed = position_update(row, received_ns=received_ns)
        (problems if isinstance(parsed, Problem) else updates).append(parsed)
    return updates, problems


def push_order(update: PositionUpdate) -> tuple[int, int]:
    """Sort key for buffered pushes: exchange time, then seq (arrival order breaks ties)."""
    return (update.exchange_ms or 0, update.seq if update.seq is not None else -1)


# ------------------------------------------------------------------- tickers
class Tick(NamedTuple):
    """A ticker message that moved the mark price."""

    symbol: str
    mark: Decimal
    exchange_ms: int | None
    received_ns: int


class _TickerData(msgspec.Struct, gc=False):
    """What a ticker's ``data`` holds that the feed reads (every other field is skipped
    by the decoder, unread and unbuilt)."""

    markPrice: str | None = None  # Bybit's name


class _TickerFrame(msgspec.Struct, gc=False):
    """A ticker push as the fast path decodes it (:meth:`TickerState.apply_raw`)."""

    topic: str
    type: str
    data: _TickerData
    ts: int | None = None


_decode_ticker = msgspec.json.Decoder(_TickerFrame).decode
_DecodeError = msgspec.DecodeError

#: :meth:`TickerState.apply_raw`'s answer for a frame it leaves to the general path.
DECLINED: Final = object()


class TickerState:
    """Current marks of one public connection's tickers.

    A snapshot carries every field, a delta only the changed ones; the feed reads only
    ``markPrice``, so that is all this keeps (the last one seen per symbol: a delta
    without it leaves the mark as it was). ``apply`` returns a :class:`Tick` when the
    message moved the mark, ``None`` when it did not, or a :class:`Problem`. Only
    symbols in :attr:`symbols` are accepted.
    """

    __slots__ = ("_marks", "category", "last_seen_ns", "symbols")

    def __init__(self, category: Category = Category.LINEAR) -> None:
        self.category = category
        self.symbols: set[str] = set()
        self.last_seen_ns: dict[str, int] = {}
        self._marks: dict[str, str] = {}

    def mark_text(self, symbol: str) -> str | None:
        """The last ``markPrice`` seen for ``symbol``, as the exchange wrote it."""
        return self._marks.get(symbol)

    def forget(self, symbol: str) -> None:
        self.symbols.discard(symbol)
        self.last_seen_ns.pop(symbol, None)
        self._marks.pop(symbol, None)

    def apply(self, msg: dict[str, Any], received_ns: int) -> Tick | Problem | None:
        topic = msg.get("topic")
        if type(topic) is not str or not topic.startswith(TICKERS_PREFIX):
            return Problem("unexpected_topic", f"topic {topic!r} on the public socket")
        symbol = topic[_PREFIX_LEN:]
        if symbol not in self.symbols:
            return Problem("unknown_symbol", f"ticker for unsubscribed symbol {symbol!r}")
        data = msg.get("data")
        if type(data) is not dict:
            return Problem("malformed", f"{topic}: data is not an object")
        kind = msg.get("type")
        if kind != "delta" and kind != "snapshot":
            return Problem("malformed", f"{topic}: type {kind!r} is neither snapshot nor delta")
        self.last_seen_ns[symbol] = received_ns
        text = data.get("markPrice")
        if text is None or text == self._marks.get(symbol):
            return None
        if type(text) is not str:  # Bybit sends strings; a list would not even hash
            return Problem("bad_field", f"{topic}: markPrice={text!r} is not a string")
        mark = wire_decimal(text)
        if mark is None or mark <= _ZERO:
            return _bad_mark(topic, text, mark)
        ts = msg.get("ts")
        if type(ts) is not int:
            ts = _safe_int(ts)
        self._marks[symbol] = text
        return _tuple_new(Tick, (symbol, mark, ts, received_ns))  # Tick(...) without its __new__

    def apply_raw(self, raw: bytes | bytearray | memoryview | str, received_ns: int
                  ) -> Tick | Problem | object | None:
        """:meth:`apply` straight from the frame's bytes, for the common case: a ticker
        push of a subscribed symbol whose fields have the types Bybit sends. The frame is
        decoded into :class:`_TickerFrame` (topic, type, ts and ``data.markPrice``; the
        other fields are skipped, never built into a dict: about half the decoding
        time). Anything else - an answer, a malformed or odd frame, another topic, a
        symbol not subscribed - is :data:`DECLINED`, untouched: the caller takes the
        general path (decode to a dict, :meth:`apply`), which says what is wrong. What
        is accepted gets exactly :meth:`apply`'s answer."""
        try:
            frame = _decode_ticker(raw)
        except _DecodeError:  # msgspec's ValidationError is a DecodeError
            return DECLINED
        topic = frame.topic
        symbol = topic[_PREFIX_LEN:]
        kind = frame.type
        if (not topic.startswith(TICKERS_PREFIX) or symbol not in self.symbols
                or (kind != "delta" and kind != "snapshot")):
            return DECLINED
        self.last_seen_ns[symbol] = received_ns
        text = frame.data.markPrice
        if text is None or text == self._marks.get(symbol):
            return None
        mark = wire_decimal(text)
        if mark is None or mark <= _ZERO:
            return _bad_mark(topic, text, mark)
        self._marks[symbol] = text
        return _tuple_new(Tick, (symbol, mark, frame.ts, received_ns))


def _bad_mark(topic: str, text: str, mark: Decimal | None) -> Problem:
    if mark is None:
        return Problem("bad_field", f"{topic}: markPrice={text!r} is not a number")
    return Problem("bad_field", f"{topic}: markPrice={text!r} is not a positive price")


def _safe_int(value: Any) -> int | None:
    try:
        return int(value)
    except (TypeError, ValueError):
        return None
