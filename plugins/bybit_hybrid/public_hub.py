"""One set of public ticker sockets per (exchange, category, URL), shared by every account
of a session (``ctx.shared``).

A hub is keyed, and configured, by what its sockets are - the exchange, the category, the
URL and the settings a public socket runs by (:data:`PUBLIC_FIELDS`: pings, staleness,
lifetime, backoff, args budget) - never by which account asked first: accounts whose
public settings agree share one hub, two accounts with different public endpoints (or
different public settings) get one hub each. Its new sockets draw from the per-IP
connection budget of its URL's host, which the private sockets to that host share.

Each account's feed holds a :class:`PublicLease` in place of its own
:class:`~.public.PublicStream`; the lease says which symbols the account wants. The hub
counts, per symbol, the leases that want it: a symbol held by 50 accounts is subscribed
once, and unsubscribed when the last of them lets it go. Symbols are spread over shards —
each one :class:`PublicStream` on its own socket — so that no socket's topics exceed the
``max_args_chars`` budget (Bybit's 21,000 characters of args per connection). A shard
runs unchanged stream code; what it thinks is its feed is the hub's :class:`_HubFeed`:
a mark it hands to the book goes to the book of every account holding the symbol, and a
change of its health (down, stale, fresh) goes to every account with a symbol on it — a
dead socket degrades those symbols for every account at once, and its return restores
them at once.

The shards' tasks belong to the hub, not to any one feed: one account's feed stopping
does not close a socket the others use. They stop when the last lease is released, or
when the session closes its shared resources.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Hashable
from decimal import Decimal
from typing import TYPE_CHECKING, Any, cast

from feedctl import Category, FeedContext, MarkPrice, RollingBudget

from .budgets import connect_budget
from .config import HybridSettings
from .constants import TICKERS_PREFIX
from .public import PublicStream
from .util import Reporter

if TYPE_CHECKING:
    from .feed import HybridFeed

log = logging.getLogger("feedctl.feed.bybit_hybrid")


#: The settings a public socket runs by: a hub's are these, and they are part of its key.
PUBLIC_FIELDS: tuple[str, ...] = (
    "ping_interval", "pong_timeout", "pong_overdue_after", "stale_after",
    "stale_mark_interval", "max_connection_lifetime", "backoff_base", "backoff_cap",
    "backoff_reset_after", "max_topics_per_request", "max_args_chars", "request_timeout",
)


def public_settings(settings: HybridSettings) -> tuple[tuple[str, Any], ...]:
    return tuple((name, getattr(settings, name)) for name in PUBLIC_FIELDS)


def hub_key(exchange: str, category: Category, url: str,
            settings: HybridSettings) -> Hashable:
    return ("bybit_hybrid.public", exchange, category.value, url, public_settings(settings))


def lease_for(feed: HybridFeed, category: Category, url: str) -> PublicLease:
    """The feed's lease on its session's hub for its exchange, ``category``, ``url`` and
    public settings."""
    ctx = feed.ctx
    exchange = ctx.account.exchange or "bybit"
    settings = feed.settings  # its PUBLIC_FIELDS are in the key: equal for every sharer
    hub = ctx.shared(hub_key(exchange, category, url, settings),
                     lambda: PublicHub(category, url, settings, exchange=exchange,
                                       connects=connect_budget(ctx, settings, url)))
    return PublicLease(hub, feed)


class _HubCtx:
    """The ctx a shard's stream sees: marks and liveness fan out to the holders."""

    def __init__(self, hub: PublicHub) -> None:
        self._hub = hub
        self.log = logging.LoggerAdapter(log, {"feed": f"public-hub-{hub.category.value}"})
        self.counters: dict[str, int] = {}
        self._latency: tuple[int | None, int] | None = None

    def count(self, name: str, n: int = 1) -> None:
        """The hub's own count, and every account's: their feeds' status shows what
        their public socket went through (reconnects, bad frames, messages)."""
        self.counters[name] = self.counters.get(name, 0) + n
        for lease in self._hub.leases:
            lease.ctx.count(name, n)

    def observe_latency(self, exchange_ms: int | None, received_ns: int) -> None:
        self._latency = (exchange_ms, received_ns)  # handed on with the mark that follows

    def apply_mark(self, mark: MarkPrice) -> list[Any]:
        holders = self._hub.holders.get(mark.symbol)
        if not holders:
            return []
        latency, self._latency = self._latency, None
        for lease in holders:
            ctx = lease.ctx
            if latency is not None:
                ctx.observe_latency(*latency)
            ctx.apply_mark(mark)
        return []

    def apply_mark_price(self, category: Category, symbol: str, mark_price: Decimal,
                         exchange_ms: int | None, received_ns: int) -> list[Any]:
        holders = self._hub.holders.get(symbol)
        if not holders:
            return []
        latency, self._latency = self._latency, None
        for lease in holders:
            ctx = lease.ctx
            if latency is not None:
                ctx.observe_latency(*latency)
            ctx.apply_mark_price(category, symbol, mark_price, exchange_ms, received_ns)
        return []

    def apply_streamed_mark(self, category: Category, symbol: str, mark_price: Decimal,
                            exchange_ms: int | None, received_ns: int) -> None:
        """The ticker hot path: latency and mark to each holder in one call."""
        holders = self._hub.holders.get(symbol)
        if holders:
            for lease in holders:
                lease.ctx.apply_streamed_mark(category, symbol, mark_price, exchange_ms,
                                              received_ns)

    def message_received(self, at_ns: int | None = None) -> None:
        for lease in self._hub.leases:
            lease.ctx.message_received(at_ns)


class _HubFeed:
    """What a shard's :class:`PublicStream` takes for its feed."""

    def __init__(self, hub: PublicHub, shard: _Shard) -> None:
        self._hub, self._shard = hub, shard
        self.ctx = hub.ctx
        self.settings = hub.settings
        self.connects = hub.connects
        self.report = Reporter(cast(FeedContext, hub.ctx))

    @property
    def clock(self) -> Any:
        lease = next(iter(self._hub.leases), None)
        if lease is None:
            raise RuntimeError("a public hub runs only while an account holds a lease")
        return lease.feed.clock

    def public_changed(self, reason: str) -> None:
        self._hub.changed(self._shard, reason)


class _Shard:
    """One socket of the hub and the symbols it carries."""

    def __init__(self, hub: PublicHub, index: int) -> None:
        self.index = index
        self.symbols: set[str] = set()
        self.chars = 0
        self.stream = PublicStream(cast("HybridFeed", _HubFeed(hub, self)), hub.category,
                                   hub.url, stagger_key=f"{hub.exchange}:{hub.url}:{index}")
        self.stream.name = f"public-{hub.category.value}" + (f"-{index}" if index else "")
        self.task: asyncio.Task[None] | None = None


def _cost(symbol: str) -> int:
    return len(TICKERS_PREFIX) + len(symbol)


class PublicHub:
    """The shared public sockets of one exchange, category, URL and public settings."""

    def __init__(self, category: Category, url: str, settings: HybridSettings, *,
                 exchange: str = "bybit", connects: RollingBudget | None = None) -> None:
        self.category, self.url, self.exchange = category, url, exchange
        #: Its key's settings (``PUBLIC_FIELDS`` are what its shards use).
        self.settings = settings
        #: The per-IP budget of new sockets to its URL's host (None: unbudgeted).
        self.connects = connects
        self.ctx = _HubCtx(self)
        self.leases: set[PublicLease] = set()
        #: symbol -> the leases that want it (its reference count is the set's size)
        self.holders: dict[str, set[PublicLease]] = {}
        self._where: dict[str, _Shard] = {}
        self.shards: list[_Shard] = []
        #: Tasks of shards dropped while the hub runs, until they have finished.
        self._dying: set[asyncio.Task[None]] = set()
        self.closed = False

    # ----------------------------------------------------------------- leases
    def attach(self, lease: PublicLease) -> None:
        if self.closed:
            raise RuntimeError("the session's public hub is closed")
        self.leases.add(lease)
        if not self.shards:
            self._new_shard()

    async def release(self, lease: PublicLease) -> None:
        self.update(lease, set())
        self.leases.discard(lease)
        if not self.leases:
            await self.aclose(final=False)

    def update(self, lease: PublicLease, symbols: set[str]) -> None:
        """``lease`` now wants ``symbols``: count the references, subscribe what became
        wanted by its first holder, unsubscribe what lost its last one."""
        touched: set[_Shard] = set()
        for sym in lease.wanted - symbols:
            holders = self.holders.get(sym)
            if holders is None:
                continue
            holders.discard(lease)
            if not holders:
                del self.holders[sym]
                shard = self._where.pop(sym)
                shard.symbols.discard(sym)
                shard.chars -= _cost(sym)
                touched.add(shard)
        for sym in symbols - lease.wanted:
            holders = self.holders.get(sym)
            if holders is None:
                holders = self.holders[sym] = set()
                shard = self._place(sym)
                shard.symbols.add(sym)
                shard.chars += _cost(sym)
                self._where[sym] = shard
                touched.add(shard)
            holders.add(lease)
        lease.wanted = set(symbols)
        for shard in touched:
            shard.stream.want(set(shard.symbols))
        self._drop_empty()

    def _place(self, symbol: str) -> _Shard:
        budget = self.settings.max_args_chars
        for shard in self.shards:
            if shard.chars + _cost(symbol) <= budget:
                return shard
        return self._new_shard()

    def _new_shard(self) -> _Shard:
        shard = _Shard(self, len(self.shards))
        self.shards.append(shard)
        shard.task = asyncio.get_running_loop().create_task(
            shard.stream.run(), name=f"bybit-{shard.stream.name}-shared")
        shard.task.add_done_callback(self._shard_done)
        return shard

    def _shard_done(self, task: asyncio.Task[None]) -> None:
        """A shard's stream retries by itself; one that ended with an error is a bug,
        said loudly and marked down for the accounts on it."""
        if task.cancelled() or task.exception() is None:
            return
        exc = task.exception()
        log.error("shared public socket %s crashed: %r", task.get_name(), exc, exc_info=exc)
        for shard in self.shards:
            if shard.task is task:
                shard.stream.down = f"crashed: {type(exc).__name__}: {exc}"
                self.changed(shard, "crash")

    def _drop_empty(self) -> None:
        """Shards past the first that carry nothing are closed (their socket with them)."""
        while len(self.shards) > 1 and not self.shards[-1].symbols:
            shard = self.shards.pop()
            if shard.task is not None:
                shard.task.cancel()
                self._dying.add(shard.task)
                shard.task.add_done_callback(self._dying.discard)

    # ----------------------------------------------------------------- health
    def changed(self, shard: _Shard, reason: str) -> None:
        """A shard went down, up, stale or fresh: every account with a symbol on it (and,
        for the first shard, every account: it is their socket while they hold none)."""
        for lease in list(self.leases):
            if shard.index == 0 or lease.wanted & shard.symbols:
                lease.feed.public_changed(reason)

    def shard_of(self, symbol: str) -> _Shard | None:
        return self._where.get(symbol)

    def down_for(self, lease: PublicLease) -> str | None:
        for shard in self.shards:
            if shard.stream.down and (shard.index == 0 or lease.wanted & shard.symbols):
                return shard.stream.down
        return None

    def stale_for(self, lease: PublicLease) -> frozenset[str]:
        out: set[str] = set()
        for shard in self.shards:
            if shard.stream.stale:
                out |= shard.stream.stale & lease.wanted
        return frozenset(out)

    # ----------------------------------------------------------------- stop
    async def aclose(self, *, final: bool = True) -> None:
        """Stop every shard and close its socket; ``final`` (the session stops): no lease
        may attach again."""
        self.closed = self.closed or final
        shards, self.shards = self.shards, []
        self._where.clear()
        self.holders.clear()
        tasks = [s.task for s in shards if s.task is not None] + list(self._dying)
        for t in tasks:
            t.cancel()
        if tasks:
            await asyncio.wait(tasks)

    def details(self) -> dict[str, Any]:
        return {"exchange": self.exchange, "url": self.url,
                "accounts": len(self.leases), "symbols": len(self.holders),
                "shards": [{"symbols": len(s.symbols), "chars": s.chars,
                            "connected": s.stream.details()["connected"],
                            "down": s.stream.down} for s in self.shards]}


class PublicLease:
    """An account's share of the hub: what its feed uses in place of a PublicStream."""

    def __init__(self, hub: PublicHub, feed: HybridFeed) -> None:
        self.hub, self.feed = hub, feed
        self.ctx = feed.ctx
        self.url = hub.url
        self.wanted: set[str] = set()
        self._attached = False

    def _attach(self) -> None:
        if not self._attached:
            self.hub.attach(self)
            self._attached = True

    def want(self, symbols: set[str]) -> None:
        self._attach()
        if symbols != self.wanted:
            self.hub.update(self, set(symbols))

    @property
    def down(self) -> str | None:
        return self.hub.down_for(self) if self._attached else None

    @property
    def stale(self) -> frozenset[str]:
        return self.hub.stale_for(self) if self._attached else frozenset()

    @property
    def suspect(self) -> frozenset[str]:
        """This account's symbols a shard suspects (silent: its REST mark decides)."""
        if not self._attached:
            return frozenset()
        out: set[str] = set()
        for shard in self.hub.shards:
            out |= shard.stream.suspect & self.wanted
        return frozenset(out)

    def judge_quiet(self, symbol: str, rest_mark: str) -> bool:
        """A REST mark of a suspect symbol, handed to the shard that carries it."""
        shard = self.hub.shard_of(symbol)
        return shard.stream.judge_quiet(symbol, rest_mark) if shard is not None else False

    async def run(self) -> None:
        """Hold the lease until cancelled (the feed's task); then let its symbols go."""
        self._attach()
        try:
            await asyncio.Event().wait()
        finally:
            self._attached = False
            await self.hub.release(self)

    def details(self) -> dict[str, Any]:
        """The stream's details as this account sees them, and the hub's."""
        mine = [s for s in self.hub.shards if s.index == 0 or self.wanted & s.symbols]
        rejected: set[str] = set()
        subscribed: set[str] = set()
        connected = bool(mine)
        ages = []
        for shard in mine:
            d = shard.stream.details()
            connected = connected and d["connected"]
            rejected |= set(d["rejected"]) & self.wanted
            subscribed |= {t for t in d["subscriptions"]
                           if t[len(TICKERS_PREFIX):] in self.wanted}
            if d["age_s"] is not None:
                ages.append(d["age_s"])
        return {
            "url": self.url,
            "connected": connected,
            "age_s": min(ages) if ages else None,
            "subscriptions": sorted(subscribed),
            "wanted": sorted(self.wanted),
            "rejected": sorted(rejected),
            "stale": sorted(self.stale),
            "down": self.down,
            "shared": self.hub.details(),
        }
