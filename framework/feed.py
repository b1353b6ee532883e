"""What a feed plugin implements (:class:`Feed`, :class:`FeedKind`) and what the core
hands it (:class:`FeedContext`).

A feed kind is contributed through the ``feedctl_feed_kinds`` hook as a
:class:`FeedKind` record. For each feed of that kind in a profile the core builds a
:class:`FeedContext` and calls ``kind.factory(ctx, settings)``; the core then runs
``await feed.run()`` as a task it owns, and cancels it at shutdown.

Duties of a feed (the conformance kit in :mod:`feedctl.testing` checks them):

* hand lifecycle states to ``ctx.apply`` / ``ctx.reconcile`` and prices to
  ``ctx.apply_mark`` — never build events itself;
* report its state through ``ctx.set_state`` (healthy only when the book is in sync
  with the exchange: after a (re)connect, resync first);
* retry transient failures itself with backoff; raise :class:`FatalFeedError` for
  what retrying cannot fix;
* on cancellation, close every connection and task it opened, then re-raise.
"""

from __future__ import annotations

import abc
import bisect
import functools
import logging
from collections import Counter, deque
from collections.abc import Callable, Hashable, Iterable, Mapping
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any, TypeVar

from pydantic import BaseModel, ConfigDict

from ._version import API_VERSION
from .book import PositionBook
from .config import env_var_name
from .models import (
    Category,
    FeedState,
    FeedStatus,
    Instrument,
    MarkPrice,
    Position,
    PositionEvent,
    PositionKey,
    PositionUpdate,
    StatusEvent,
    now_ns,
)
from .settings import AccountSettings, Endpoints, Role, Rollout
from .shared import SharedResources

T = TypeVar("T")


class NoSettings(BaseModel):
    """Settings model of a feed kind that takes no settings."""

    model_config = ConfigDict(extra="forbid", frozen=True)


@dataclass(frozen=True)
class FeedKind:
    """A feed kind contributed by a plugin.

    ``factory(ctx, settings)`` returns a :class:`Feed`; ``settings`` is an instance of
    ``settings_model`` validated from the profile's ``[<profile>.feeds.<name>]`` table.
    ``capabilities`` are claims the conformance kit verifies: ``"resync"`` (after a
    dropped connection the feed resyncs from a snapshot before it is healthy again,
    and counts each resync with ``ctx.count("resyncs")``).

    How the kind takes part in a profile (docs/plugins.md, "Exchange, endpoints and
    rollout role"):

    * ``exchange``: the exchange id profiles name in ``account.exchange`` (ccxt's id where
      there is one), or ``"*"`` for a kind that serves any exchange it is configured for.
    * ``rollout``: the slot the kind fills in its exchange's rollout modes,
      :attr:`Rollout.LIVE` (the streaming feed) or :attr:`Rollout.FALLBACK` (the poller);
      ``None``: only used by feeds that name it with an explicit role.
    * ``endpoints_model``: an :class:`Endpoints` subclass, one field per URL the kind reads
      from ``ctx.endpoints``; ``default_endpoints``: per environment (``"mainnet"``,
      ``"testnet"``...), the values of those fields. A profile's ``[endpoints]`` table
      overrides them key by key.
    """

    name: str
    factory: Callable[[FeedContext, Any], Feed]
    settings_model: type[BaseModel] = NoSettings
    description: str = ""
    requires_credentials: bool = True
    api_version: int = API_VERSION
    capabilities: frozenset[str] = field(default_factory=frozenset)
    exchange: str | None = None
    rollout: Rollout | None = None
    endpoints_model: type[Endpoints] = Endpoints
    default_endpoints: Mapping[str, Mapping[str, str]] = field(default_factory=dict)
    #: ``coverage(settings, exchange)``: what the kind's snapshots list, as
    #: ``"<category>:<settle coin>"`` strings (``"inverse:*"``: every coin), or None for
    #: the whole account. A profile whose feeds cover different scopes is warned about at
    #: check and run (after a failover, what the other feed does not list is not watched).
    coverage: Callable[[Any, str | None], frozenset[str] | None] | None = None
    #: ``check(feed, settings, account, environment, endpoints, env_var)``: what the feed
    #: would refuse when it starts that its settings model cannot see alone (an exchange
    #: its library does not have, a credential or sandbox it needs, no URL for the
    #: environment), one message per problem. ``account`` is the account's settings (its
    #: exchange, and its keys unless a service provides them at start);
    #: ``env_var(setting)`` names the variable that sets one of the account's settings
    #: (``env_var("account.password")``: ``FEEDCTL_MAINNET__ACCOUNT__PASSWORD``, or
    #: ``..._ACCOUNTS__<NAME>__PASSWORD`` for one account of many). Called for every feed
    #: a profile runs, by ``feedctl check`` and before ``run`` starts anything, so both
    #: refuse alike (exit 2); ``endpoints`` is None when a service provides them at start
    #: (the embedded exchange). It must not connect, nor import what is slow to import
    #: (``feedctl check`` stays quick).
    check: Callable[[str, Any, AccountSettings, str, Endpoints | None,
                     Callable[[str], str]], Iterable[str]] | None = None

    def serves(self, exchange: str | None) -> bool:
        """True if the kind can run for ``exchange`` (a kind that names no exchange runs for
        any, under explicit roles only: the modes never pick it)."""
        return self.exchange in (None, "*") or self.exchange == exchange

    def endpoints_for(self, environment: str, overrides: Mapping[str, str]) -> Endpoints:
        """The kind's endpoints in ``environment`` with ``overrides`` (the profile's and its
        services' URLs; names the model does not declare are left to other kinds)."""
        names = self.endpoints_model.model_fields
        declared = self.endpoints_model is not Endpoints
        values = dict(self.default_endpoints.get(environment, {}))
        values.update({k: v for k, v in overrides.items() if k in names or not declared})
        return self.endpoints_model.model_validate(values)


class Feed(abc.ABC):
    """Base class of a feed: one source of position data for one account."""

    def __init__(self, ctx: FeedContext, settings: Any) -> None:
        self.ctx = ctx
        self.settings = settings

    @abc.abstractmethod
    async def run(self) -> None:
        """Run until cancelled: connect, resync, stream, reconnect. Never returns normally
        unless the feed has nothing left to do."""

    def details(self) -> dict[str, Any]:
        """Extra read-only facts for the status API (subscriptions, ...). Optional."""
        return {}

    def __repr__(self) -> str:
        return f"<{type(self).__name__} feed={self.ctx.name!r}>"


#: Upper bounds (ms) of the receive-latency histogram's buckets (+Inf implied).
LATENCY_BUCKETS_MS: tuple[float, ...] = (1, 2.5, 5, 10, 25, 50, 100, 250, 500, 1000, 2500,
                                         5000, 10000)
_bucket_of = functools.partial(bisect.bisect_left, LATENCY_BUCKETS_MS)


class _Latency:
    """Receive-latency samples (ms): a bounded reservoir of the most recent ones (for the
    status's p50/p99) and a cumulative histogram since start (for Prometheus).

    A sample is only appended to :attr:`_new` (one list append on the hot path); they
    are binned into reservoir and histogram in bulk, :attr:`BATCH` at a time or when a
    reader asks (:meth:`histogram`, :meth:`percentile`), in C loops."""

    #: Samples binned at once.
    BATCH = 256

    def __init__(self, size: int = 4096) -> None:
        self.samples: deque[float] = deque(maxlen=size)
        self.buckets = [0] * (len(LATENCY_BUCKETS_MS) + 1)  # the last one: +Inf
        self.count = 0
        self.sum_ms = 0.0
        #: samples not binned yet (at most BATCH - 1 between reads)
        self._new: list[float] = []
        #: the samples sorted, as of ``count`` == ``_sorted_at`` (status reads sort once)
        self._sorted: list[float] = []
        self._sorted_at = -1

    def add(self, ms: float) -> None:
        new = self._new
        new.append(ms)
        if len(new) >= self.BATCH:
            self._bin()

    def _bin(self) -> None:
        new = self._new
        if not new:
            return
        self._new = []
        self.samples.extend(new)
        buckets = self.buckets
        for i, n in Counter(map(_bucket_of, new)).items():
            buckets[i] += n
        self.count += len(new)
        self.sum_ms += sum(new)

    def histogram(self) -> dict[str, Any] | None:
        """``{"le_ms": [...], "counts": [...cumulative, +Inf last], "sum_ms", "count"}``."""
        self._bin()
        if not self.count:
            return None
        cumulative, running = [], 0
        for n in self.buckets:
            running += n
            cumulative.append(running)
        return {"le_ms": list(LATENCY_BUCKETS_MS), "counts": cumulative,
                "sum_ms": round(self.sum_ms, 3), "count": self.count}

    def percentile(self, q: float) -> float | None:
        self._bin()
        if not self.samples:
            return None
        if self._sorted_at != self.count:  # sorted once per new samples, not per read
            self._sorted = sorted(self.samples)
            self._sorted_at = self.count
        ordered = self._sorted
        idx = min(len(ordered) - 1, max(0, round(q * (len(ordered) - 1))))
        return ordered[idx]


@dataclass(frozen=True, slots=True)
class PriorState:
    """What the account's remote consumers were last told (a bus's snapshot), so that a
    feed starting on an account another process served can recover what happened since
    instead of starting from the exchange's current state.

    ``positions``: the last state consumers hold per key - an open position's state, or
    the flat state (``size == 0``, ``side`` None) of its last close - each with the
    exchange's ``seq`` and ``exchange_ms`` when known. A key not listed was never told.
    ``as_of_ms``: wall-clock ms at which that was last written (a floor for keys not
    listed: what happened to them before it was published or is older than the bus)."""

    positions: Mapping[PositionKey, PositionUpdate]
    as_of_ms: int | None = None


class FeedContext:
    """The core's side of a feed: book access, status reporting, counters, logger."""

    def __init__(
        self,
        *,
        name: str,
        kind: str,
        role: Role | None,
        account: AccountSettings,
        endpoints: Endpoints,
        book: PositionBook,
        on_status: Callable[[StatusEvent], None] | None = None,
        profile: str = "",
        environment: str = "mainnet",
        shared: SharedResources | None = None,
    ) -> None:
        self.name = name
        #: Objects shared by the feeds of every account of the session (``shared``).
        self._shared = shared if shared is not None else SharedResources()
        #: The profile this feed runs in (for messages naming settings).
        self.profile = profile
        #: The profile's environment (``mainnet``, ``testnet``...): which of the kind's
        #: default endpoints apply; a kind that has none (a ccxt poller) may act on it.
        self.environment = environment
        self.kind = kind
        self.role = role
        self.account = account
        self.endpoints = endpoints
        self.book = book
        self.log = logging.LoggerAdapter(
            logging.getLogger(f"feedctl.feed.{kind}"), {"feed": name}
        )
        self._on_status = on_status
        self._state = FeedState.STARTING
        self._detail = ""
        self._since = now_ns()
        self._last_message_ns: int | None = None
        self.counters: dict[str, int] = {}
        self._latency = _Latency()
        self._stale: tuple[str, ...] = ()
        self._instruments: dict[tuple[Category, str], Instrument] = {}
        self._watch_extra: Callable[[], set[tuple[Category, str]]] | None = None
        self._watch_listeners: list[Callable[[], None]] = []
        self._prior: PriorState | None = None
        self._prior_taken = False

    # ------------------------------------------------------------ prior state
    def set_prior(self, prior: PriorState | None) -> None:
        """The core: what the account's consumers last knew (``feedctl_prior_state``)."""
        self._prior = prior

    def take_prior(self) -> PriorState | None:
        """The consumers' last known state, for a feed that recovers from it on its first
        sync (None: nothing known - start from the exchange's state). A feed calls it once,
        before its first state reaches the book, and must then bring the book from that
        state to the exchange's: seed it with the prior positions and replay what happened
        since, in exchange order. Taking it tells the bus that the book's events lead from
        the prior state (see :attr:`prior_taken`)."""
        prior, self._prior = self._prior, None
        if prior is not None:
            self._prior_taken = True
        return prior

    @property
    def prior_taken(self) -> bool:
        """True once the feed took a prior state: its book's events start from it."""
        return self._prior_taken

    def set_instrument(self, instrument: Instrument) -> None:
        """Tell the views a symbol's tick, step and settle coin (amounts are shown to
        them). Optional: without it, amounts are shown as the exchange sent them."""
        self._instruments[(instrument.category, instrument.symbol)] = instrument

    @property
    def instruments(self) -> Mapping[tuple[Category, str], Instrument]:
        return self._instruments

    def shared(self, key: Hashable, factory: Callable[[], T]) -> T:
        """One object per session per ``key``, shared by the feeds of every account:
        ``factory()`` makes it on the first call, later calls with an equal key get the
        same object, and the session closes it (``aclose()``/``close()``) when it stops.
        Use it for what the accounts can share: public market-data sockets, per-IP rate
        limiters. Put your kind's name in the key."""
        return self._shared.get(key, factory)

    def env_var(self, setting: str) -> str:
        """The environment variable that sets ``setting`` in this feed's profile:
        ``ctx.env_var("account.api_key")`` -> ``FEEDCTL_MAINNET__ACCOUNT__API_KEY``.
        Name it in errors the user must act on."""
        return env_var_name(self.profile or "<PROFILE>", setting)

    # -------------------------------------------------------------- book access
    def apply(self, update: PositionUpdate) -> list[PositionEvent]:
        """Merge one lifecycle state (a push or a snapshot row) into the book."""
        return self.book.apply(update)

    def apply_mark(self, mark: MarkPrice) -> list[PositionEvent]:
        """Merge one mark price into the book."""
        return self.book.apply_mark(mark)

    def apply_mark_price(self, category: Category, symbol: str, mark_price: Decimal,
                         exchange_ms: int | None, received_ns: int) -> list[PositionEvent]:
        """:meth:`apply_mark` for a price the feed has already checked - a positive,
        finite Decimal (:func:`feedctl.wire_decimal` and ``> 0``) - without building and
        validating a :class:`MarkPrice` first: the hot path of a streaming feed."""
        return self.book.apply_mark_price(category, symbol, mark_price, exchange_ms,
                                          received_ns)

    def apply_streamed_mark(self, category: Category, symbol: str, mark_price: Decimal,
                            exchange_ms: int | None, received_ns: int) -> None:
        """:meth:`observe_latency` and :meth:`apply_mark_price` in one call, for a mark
        just received from a stream: the hot path of a streaming feed (one call and no
        result list per ticker instead of three calls)."""
        if exchange_ms is not None:  # _Latency.add, inlined
            new = self._latency._new
            new.append(received_ns / 1e6 - exchange_ms)
            if len(new) >= _Latency.BATCH:
                self._latency._bin()
        self.book.apply_mark_price(category, symbol, mark_price, exchange_ms, received_ns)

    def reconcile(
        self, snapshot: Iterable[PositionUpdate], *, as_of_ms: int | None = None,
        covers: Callable[[PositionKey], bool] | None = None,
        listed_at: Callable[[PositionKey], int | None] | None = None,
    ) -> list[PositionEvent]:
        """Make the book match a complete snapshot of what ``covers`` says it covers
        (None: the whole account), read as of ``as_of_ms`` (its first answer) or, per
        key, ``listed_at(key)`` (the answer that would have listed it); see
        PositionBook.reconcile."""
        return self.book.reconcile(snapshot, as_of_ms=as_of_ms, covers=covers,
                                   listed_at=listed_at)

    def past_lifecycles(self, states: Iterable[PositionUpdate]) -> list[PositionEvent]:
        """Deliver lifecycles that began and ended before the book's current state of
        their key (history recovered late, from flat to flat), as ``past`` events; the
        book's positions are untouched (see PositionBook.past_lifecycles)."""
        return self.book.past_lifecycles(states)

    def split_lifecycle(self, key: PositionKey, close: PositionUpdate,
                        opened: PositionUpdate) -> list[PositionEvent]:
        """The position held for ``key`` was two lifecycles whose boundary the stream
        lost (``close``, then ``opened``): consumers get the close and the reopen (see
        PositionBook.split)."""
        return self.book.split(key, close, opened)

    def positions(self) -> Mapping[PositionKey, Position]:
        return dict(self.book.positions)

    def open_symbols(self) -> set[tuple[Category, str]]:
        return self.book.open_symbols()

    def watch_symbols(self) -> set[tuple[Category, str]]:
        """The symbols to stream prices for: this feed's open positions and those its
        account's consumers hold (delivered from another feed, e.g. opened while this
        one's private socket was down): subscribe marks for these, so consumers keep live
        prices whichever feed knows the position."""
        extra = self._watch_extra() if self._watch_extra is not None else set()
        return self.book.open_symbols() | extra

    def on_watch_change(self, callback: Callable[[], None]) -> None:
        """Call ``callback`` when :meth:`watch_symbols` may have changed because of what
        consumers hold (this feed's own book changes are the feed's to see)."""
        self._watch_listeners.append(callback)

    def notify_watch(self) -> None:
        """The core: what consumers hold changed."""
        for callback in self._watch_listeners:
            try:
                callback()
            except Exception:
                self.log.exception("watch-change callback failed")

    # ------------------------------------------------------------ health, metrics
    @property
    def state(self) -> FeedState:
        return self._state

    def set_state(self, state: FeedState, detail: str = "", reason: str = "") -> None:
        """Report a state; consumers get a status event when the state changes."""
        if state is self._state and detail == self._detail and not reason:
            return
        previous = self._state
        changed = state is not previous
        self._state, self._detail = state, detail
        if changed:
            self._since = now_ns()
        log_level = logging.WARNING if state in (FeedState.FAILED, FeedState.DEGRADED) else (
            logging.INFO)
        if changed or reason:
            # a reason without a change (a retry while reconnecting) is not a transition
            if changed:
                self.log.log(log_level, "feed state %s -> %s", previous.value, state.value,
                             extra={"state": state.value, "reason": reason, "detail": detail})
            else:
                self.log.log(log_level, "feed still %s (%s)", state.value, reason,
                             extra={"state": state.value, "reason": reason, "detail": detail})
            if self._on_status is not None:
                self._on_status(
                    StatusEvent(feed=self.name, status=self.status, previous=previous,
                                reason=reason, account=self.account.name)
                )

    def set_stale_symbols(self, symbols: Iterable[str]) -> None:
        self._stale = tuple(sorted(symbols))

    def count(self, name: str, n: int = 1) -> None:
        """Add ``n`` to counter ``name`` (``reconnects`` and ``resyncs`` show in the status)."""
        self.counters[name] = self.counters.get(name, 0) + n

    def message_received(self, at_ns: int | None = None) -> None:
        """Mark socket/data liveness: the feed received something."""
        self._last_message_ns = at_ns or now_ns()

    def observe_latency(self, exchange_ms: int | None, received_ns: int) -> None:
        """Record receive latency: exchange send time to local receipt."""
        if exchange_ms is not None:
            self._latency.add(received_ns / 1e6 - exchange_ms)

    @property
    def status(self) -> FeedStatus:
        return FeedStatus(
            feed=self.name,
            kind=self.kind,
            state=self._state,
            detail=self._detail,
            since_ns=self._since,
            last_message_ns=self._last_message_ns,
            reconnects=self.counters.get("reconnects", 0),
            resyncs=self.counters.get("resyncs", 0),
            counters={**self.book.counters, **self.counters},
            latency_ms_p50=self._latency.percentile(0.5),
            latency_ms_p99=self._latency.percentile(0.99),
            latency_histogram=self._latency.histogram(),
            stale_symbols=self._stale,
            synced_ns=self.book.synced_ns,
        )

    def __repr__(self) -> str:
        return f"<FeedContext feed={self.name!r} kind={self.kind!r} state={self._state.value}>"
