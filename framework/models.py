"""The data model at feedctl's boundaries: positions, updates from feeds, events to consumers.

Every price and size is a :class:`~decimal.Decimal`. Models are frozen pydantic models;
their JSON form (``model_dump(mode="json")``) is the documented wire form of
``feedctl run --output jsonl`` (see docs/events.md): decimals become strings, times
are integers (exchange times in milliseconds, local receive times in nanoseconds).
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from decimal import Decimal, InvalidOperation
from enum import StrEnum
from typing import Annotated, Any, Literal, NamedTuple

from pydantic import BaseModel, ConfigDict, Field, PlainSerializer

#: A Decimal that serialises to a plain string in JSON ("0.01", never 1E-2 surprises
#: for values that came from the exchange as strings).
Dec = Annotated[
    Decimal, PlainSerializer(lambda d: format(d, "f"), return_type=str, when_used="json")
]


_new = object.__new__
_setattr = object.__setattr__


def _trusted(cls: type[BaseModel], data: dict[str, object]) -> BaseModel:
    """Build a model from values already validated by feedctl itself, skipping pydantic's
    validation: the hot path of price events (about 1 us instead of 3-5 us)."""
    obj = _new(cls)
    _setattr(obj, "__dict__", data)
    _setattr(obj, "__pydantic_fields_set__", _FIELDS[cls])
    _setattr(obj, "__pydantic_extra__", None)
    _setattr(obj, "__pydantic_private__", None)
    return obj


_FIELDS: dict[type[BaseModel], set[str]] = {}


def now_ns() -> int:
    """Local wall-clock time in nanoseconds (the ``received_ns`` clock)."""
    return time.time_ns()


#: Largest |exponent| a price or size read from an exchange may have: far beyond any real
#: value and far inside Decimal's limits, so the book's arithmetic on it (PnL: price x
#: size) cannot overflow. "1e999999" is a bad field, not a position.
MAX_EXPONENT = 30


def wire_decimal(value: Any) -> Decimal | None:
    """``value`` (a JSON string or number from an exchange) as a finite Decimal whose
    exponent is within ``MAX_EXPONENT``; None for anything else (bools, lists, 'NaN',
    '1e999999')."""
    try:
        if type(value) is str:  # what exchanges send: first, one test (a ticker's price)
            d = Decimal(value)
        elif isinstance(value, bool) or not isinstance(value, str | int | float):
            return None
        else:
            d = Decimal(value) if isinstance(value, str) else Decimal(str(value))
    except (InvalidOperation, TypeError, ValueError):
        return None
    if not d.is_finite() or (d and abs(d.adjusted()) > MAX_EXPONENT):
        return None
    return d


class Side(StrEnum):
    LONG = "long"
    SHORT = "short"


class Category(StrEnum):
    """Contract category. Linear contracts settle in the quote coin, inverse in the base coin."""

    LINEAR = "linear"
    INVERSE = "inverse"


class PositionKey(NamedTuple):
    """Identity of a position within one account: (category, symbol, position index; 0 one-way,
    1 and 2 the long and short sides of a two-sided account: docs/plugins.md)."""

    category: Category
    symbol: str
    position_idx: int = 0

    def __str__(self) -> str:
        return f"{self.category}:{self.symbol}:{self.position_idx}"


#: Where a :class:`Position` keeps its computed key.
_KEY_CACHE = "_key"


class _Frozen(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid", defer_build=True)


class PositionUpdate(_Frozen):
    """A lifecycle state of one position as a feed saw it (a push or a snapshot row).

    This is a *state*, not a delta: the book replaces what it holds for the key.
    ``size == 0`` (and ``side is None``) means the position is flat.
    ``seq`` and ``exchange_ms`` order updates; either may be unknown.
    """

    category: Category = Category.LINEAR
    symbol: str
    position_idx: int = 0
    side: Side | None
    size: Dec = Field(ge=0)
    entry_price: Dec = Decimal(0)
    mark_price: Dec | None = None
    leverage: Dec | None = None
    liq_price: Dec | None = None
    take_profit: Dec | None = None
    stop_loss: Dec | None = None
    trailing_stop: Dec | None = None
    seq: int | None = None
    exchange_ms: int | None = None
    received_ns: int = Field(default_factory=now_ns)

    @property
    def key(self) -> PositionKey:
        return PositionKey(self.category, self.symbol, self.position_idx)

    @property
    def is_open(self) -> bool:
        return self.size > 0 and self.side is not None


class MarkPrice(_Frozen):
    """A mark price for one symbol, from a ticker stream or a REST poll."""

    category: Category = Category.LINEAR
    symbol: str
    mark_price: Dec = Field(gt=0)
    exchange_ms: int | None = None
    received_ns: int = Field(default_factory=now_ns)


class Instrument(_Frozen):
    """What the views need to show one symbol's amounts as the exchange does: its price
    tick, its quantity step, and the coin its PnL settles in."""

    category: Category = Category.LINEAR
    symbol: str
    tick_size: Dec = Field(gt=0)
    qty_step: Dec = Field(gt=0)
    settle_coin: str | None = None


class Position(_Frozen):
    """The merged, live view of one open (or just closed) position."""

    exchange: str
    account: str
    feed: str
    category: Category
    symbol: str
    position_idx: int = 0
    side: Side
    size: Dec
    entry_price: Dec
    mark_price: Dec | None = None
    unrealised_pnl: Dec | None = None
    leverage: Dec | None = None
    liq_price: Dec | None = None
    take_profit: Dec | None = None
    stop_loss: Dec | None = None
    trailing_stop: Dec | None = None
    seq: int | None = None
    #: Exchange time (ms) of the newest input merged into this view.
    exchange_ms: int | None = None
    #: Local receive time (ns) of the newest input merged into this view.
    received_ns: int
    #: Exchange time (ms) of the mark price, when known.
    mark_exchange_ms: int | None = None
    #: Local receive time (ns) of the mark price.
    mark_received_ns: int | None = None
    #: Counts lifecycles of this key within a feed: 1 for the first open, +1 per reopen.
    lifecycle: int = 1

    @property
    def key(self) -> PositionKey:
        # computed once per instance: the book, the router, the run summary and every
        # delivery queue ask for it on each event. Kept under a private name in
        # ``__dict__`` (pydantic's dumps, equality, repr and ``dict()`` ignore it); a
        # price event's copy keeps it (same key), ``model_copy`` drops it.
        d = self.__dict__
        key = d.get(_KEY_CACHE)
        if key is None:
            key = d[_KEY_CACHE] = PositionKey(d["category"], d["symbol"], d["position_idx"])
        return key

    def model_copy(self, *, update: Mapping[str, Any] | None = None,
                   deep: bool = False) -> Position:
        new = super().model_copy(update=update, deep=deep)
        new.__dict__.pop(_KEY_CACHE, None)  # an update may move the key's fields
        return new


class EventKind(StrEnum):
    OPENED = "opened"
    CHANGED = "changed"
    PRICE = "price"
    CLOSED = "closed"

    @property
    def is_lifecycle(self) -> bool:
        return self is not EventKind.PRICE


class PositionEvent(_Frozen):
    """A change of one position, carrying the position *after* the change.

    ``closed`` carries the last open state with ``size`` unchanged and the
    closing mark price; ``changes`` names the fields a ``changed`` event altered.
    """

    type: Literal["position"] = "position"
    kind: EventKind
    feed: str
    position: Position
    changes: tuple[str, ...] = ()
    #: Per-feed event number, strictly increasing: lets consumers check order.
    #: 0 for events the router synthesized when it switched feeds.
    seq: int = 0
    #: True for events the router synthesized to reconcile consumers across a switch.
    synthetic: bool = False
    #: True for a lifecycle event of the primary delivered while the standby was the
    #: delivering feed: a change the primary recovered (its resync snapshot or fill
    #: replay) that consumers would otherwise have missed. ``position.exchange_ms`` says
    #: when it happened on the exchange.
    recovered: bool = False
    #: True for the ``opened`` and ``closed`` of a lifecycle that began and ended
    #: *before* the state consumers hold for this key (or its last close): history the
    #: primary recovered that the standby never saw. Delivered as a pair, both
    #: ``recovered``; it does not touch the key's current position, so a consumer that
    #: keeps positions by key skips it and a journal records it.
    past: bool = False

    @property
    def key(self) -> PositionKey:
        return self.position.key

    @property
    def account(self) -> str:
        return self.position.account


class FeedState(StrEnum):
    STARTING = "starting"
    CONNECTING = "connecting"
    RESYNCING = "resyncing"
    HEALTHY = "healthy"
    DEGRADED = "degraded"
    RECONNECTING = "reconnecting"
    FAILED = "failed"
    STOPPED = "stopped"

    @property
    def is_healthy(self) -> bool:
        """Only a healthy feed is trusted to deliver; everything else counts as down."""
        return self is FeedState.HEALTHY


class FeedStatus(_Frozen):
    """A feed's health at one moment."""

    feed: str
    kind: str
    state: FeedState
    detail: str = ""
    since_ns: int = Field(default_factory=now_ns)
    last_message_ns: int | None = None
    reconnects: int = 0
    resyncs: int = 0
    counters: dict[str, int] = Field(default_factory=dict)
    latency_ms_p50: float | None = None
    latency_ms_p99: float | None = None
    #: Receive latency since start, cumulative per bucket (``le_ms`` upper bounds, the
    #: last count is +Inf), with ``sum_ms`` and ``count``; None before the first sample.
    latency_histogram: dict[str, Any] | None = None
    stale_symbols: tuple[str, ...] = ()
    #: Wall-clock ns of the feed's last complete snapshot of the account; None while it
    #: has never had one: its positions are unknown (not "no open positions").
    synced_ns: int | None = None


class StatusEvent(_Frozen):
    """A feed status transition, delivered to consumers like position events.

    ``reason`` is a short machine-readable cause: ``"reconnect"``, ``"resync_done"``,
    ``"stale"``, ``"fresh"``, ``"failover"``, ``"failback"``, ``"error"``, ...
    """

    type: Literal["status"] = "status"
    feed: str
    status: FeedStatus
    #: The account whose feed this is ("" outside a session).
    account: str = ""
    previous: FeedState | None = None
    reason: str = ""


class RouteEvent(_Frozen):
    """The router switched the feed whose events consumers receive (failover/failback)."""

    type: Literal["route"] = "route"
    #: The account whose router switched ("" outside a session).
    account: str = ""
    active: str
    previous: str
    reason: str
    at_ns: int = Field(default_factory=now_ns)


Event = PositionEvent | StatusEvent | RouteEvent

for _cls in (Position, PositionEvent, MarkPrice):
    _FIELDS[_cls] = set(_cls.model_fields)
_POSITION_FIELDS, _EVENT_FIELDS, _MARK_FIELDS = (
    _FIELDS[Position], _FIELDS[PositionEvent], _FIELDS[MarkPrice])
_PRICE = EventKind.PRICE


def trusted_position(data: dict[str, object]) -> Position:
    """A Position from a complete field dict of trusted values, without re-validation."""
    return _trusted(Position, data)  # type: ignore[return-value]


def trusted_mark(category: Category, symbol: str, mark_price: Decimal,
                 exchange_ms: int | None, received_ns: int) -> MarkPrice:
    """A MarkPrice from values a feed has already checked (``mark_price`` a positive,
    finite Decimal, e.g. from :func:`wire_decimal`), without re-validation."""
    obj = _new(MarkPrice)  # _trusted, inlined: one per ticker frame
    _setattr(obj, "__dict__", {
        "category": category, "symbol": symbol, "mark_price": mark_price,
        "exchange_ms": exchange_ms, "received_ns": received_ns})
    _setattr(obj, "__pydantic_fields_set__", _MARK_FIELDS)
    _setattr(obj, "__pydantic_extra__", None)
    _setattr(obj, "__pydantic_private__", None)
    return obj


#: BaseModel's slots, set directly (their descriptors: no attribute lookup per call)
_set_fields_set = BaseModel.__dict__["__pydantic_fields_set__"].__set__
_set_extra = BaseModel.__dict__["__pydantic_extra__"].__set__
_set_private = BaseModel.__dict__["__pydantic_private__"].__set__
#: A price event's fields but its feed, position and seq (copied per event)
_PRICE_EVENT: dict[str, object] = {
    "type": "position", "kind": _PRICE, "feed": "", "position": None, "changes": (),
    "seq": 0, "synthetic": False, "recovered": False, "past": False}


def price_event(feed: str, data: dict[str, object], seq: int) -> PositionEvent:
    """A ``price`` PositionEvent and its Position (``data``: the position's complete
    field dict) from trusted values, without re-validation: the book's hot path, one per
    mark that moved a position (:func:`trusted_position` and :func:`position_event`
    in one step)."""
    pos = _new(Position)
    _setattr(pos, "__dict__", data)
    _set_fields_set(pos, _POSITION_FIELDS)
    _set_extra(pos, None)
    _set_private(pos, None)
    ev = _new(PositionEvent)
    fields = _PRICE_EVENT.copy()
    fields["feed"] = feed
    fields["position"] = pos
    fields["seq"] = seq
    _setattr(ev, "__dict__", fields)
    _set_fields_set(ev, _EVENT_FIELDS)
    _set_extra(ev, None)
    _set_private(ev, None)
    return ev


def position_event(kind: EventKind, feed: str, position: Position, changes: tuple[str, ...],
                   seq: int, synthetic: bool = False) -> PositionEvent:
    """A PositionEvent from trusted values, without re-validation."""
    return _trusted(PositionEvent, {  # type: ignore[return-value]
        "type": "position", "kind": kind, "feed": feed, "position": position,
        "changes": changes, "seq": seq, "synthetic": synthetic, "recovered": False,
        "past": False})
