"""The ``bybit_hybrid`` feed: private ``position`` lifecycle + public ``tickers`` mark
prices + REST snapshots (start, every private reconnect, periodic audit).

Health is derived from the parts, never guessed: the feed is HEALTHY only when the
private stream has resynced since its last (re)connect, every public socket is up and
no subscribed ticker is stale. Every task is owned: ``run()`` runs the streams in a
TaskGroup inside an ``aiohttp.ClientSession``; cancelling ``run()`` closes every socket,
the session and every task before it returns.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import math
import time
from collections.abc import Awaitable
from typing import Any, TypeVar

import aiohttp

from feedctl import (
    Category,
    FatalFeedError,
    Feed,
    FeedContext,
    FeedState,
    Instrument,
    PositionKey,
    RetryableFeedError,
    RollingBudget,
    jitter,
)

from .audit import audit_diff, covered, fill_floor, forced_updates, settled
from .budgets import connect_budget, host, rest_budget, uid_budgets
from .config import HybridSettings
from .ledger import LossLedger
from .private import PrivateStream
from .public import PublicStream
from .public_hub import PublicLease, lease_for
from .recovery import FillReplay
from .rest import RestClient, setting_hint
from .signing import ServerClock
from .util import Reporter

#: The audit replays only fills older than this (ms before its snapshot), and leaves
#: alone keys whose row changed less than this before it: a younger change's pushes may
#: still be on their way; the stream (or the next audit) covers it.
FILL_SETTLE_MS = 1000

_PHASE_STATE = {
    "connecting": FeedState.CONNECTING,
    "reconnecting": FeedState.RECONNECTING,
    "resyncing": FeedState.RESYNCING,
}


T = TypeVar("T")

#: REST mark reads of stale symbols in flight at once (each holds a pooled connection).
_READS_AT_ONCE = 2


class HybridFeed(Feed):
    """Private WS lifecycle + public WS mark prices + REST resync and audit."""

    settings: HybridSettings

    def __init__(self, ctx: FeedContext, settings: HybridSettings) -> None:
        super().__init__(ctx, settings)
        self.clock = ServerClock()
        self.report = Reporter(ctx)
        #: what the book was given and what is lost; the replay that puts it back -
        #: shared by the private stream's resyncs and the audit
        self.ledger = LossLedger()
        self.recovery = FillReplay(ctx, settings, lambda: self.rest, self.ledger)
        self.private = PrivateStream(self)
        ctx.on_watch_change(self._watch_changed)
        self.publics: dict[Category, PublicStream | PublicLease] = {}
        self._rest: RestClient | None = None
        self._tg: asyncio.TaskGroup | None = None
        self._phase = "connecting"
        self._detail = ""
        self._last_audit: dict[str, Any] = {}
        self._audit_suspects: dict[str, str] = {}
        #: The process's budget of new sockets to this exchange host (``run()`` sets it).
        self.connects: RollingBudget | None = None
        self._ban_timer: asyncio.TimerHandle | None = None
        #: what ``sync_subscriptions`` last watched, and (category, symbol) -> when a
        #: symbol that left it stops lingering (monotonic)
        self._watched: set[tuple[Category, str]] = set()
        self._linger: dict[tuple[Category, str], float] = {}
        self._linger_timer: asyncio.TimerHandle | None = None

    @property
    def rest(self) -> RestClient:
        if self._rest is None:
            raise RuntimeError("the REST client exists only while run() runs")
        return self._rest

    # ----------------------------------------------------------------- run
    async def run(self) -> None:
        ctx, s = self.ctx, self.settings
        acct = ctx.account
        if not acct.has_credentials() or acct.api_key is None or acct.api_secret is None:
            msg = (f"bybit_hybrid needs an API key and secret: set "
                   f"{setting_hint(ctx.profile, 'API_KEY')} and "
                   f"{setting_hint(ctx.profile, 'API_SECRET')}")
            ctx.set_state(FeedState.FAILED, msg, reason="config")
            raise FatalFeedError(msg)
        self._set(FeedState.CONNECTING, "measuring the server clock", reason="start")
        timeout = aiohttp.ClientTimeout(total=s.request_timeout)
        eps = ctx.endpoints
        self.connects = connect_budget(ctx, s, eps.private_ws)
        for url in (eps.public_ws, eps.public_ws_inverse):  # this account's numbers count
            connect_budget(ctx, s, url)                     # for its public host too
        try:
            async with aiohttp.ClientSession(timeout=timeout) as http:
                self._rest = RestClient(http, eps.rest, acct.api_key, acct.api_secret,
                                        self.clock, s, ctx.log, ctx.count, profile=ctx.profile,
                                        budget=rest_budget(ctx, s, eps.rest),
                                        uid_budget=uid_budgets(ctx, s, eps.rest, acct.api_key))
                self._rest.on_ban = self._rest_banned
                await self._initial_clock()
                try:
                    async with asyncio.TaskGroup() as tg:
                        self._tg = tg
                        tg.create_task(self.private.run(), name="bybit-private")
                        self._public(Category.LINEAR)
                        tg.create_task(self._audit_loop(), name="bybit-audit")
                        tg.create_task(self._instruments_loop(), name="bybit-instruments")
                        tg.create_task(self._stale_marks_loop(), name="bybit-stale-marks")
                except BaseExceptionGroup as group:  # one cause, fatal first, not a group
                    causes: list[BaseException] = list(group.exceptions)
                    fatal = [e for e in causes if isinstance(e, FatalFeedError)]
                    raise (fatal or causes)[0] from None
        except FatalFeedError as exc:
            ctx.set_state(FeedState.FAILED, str(exc), reason=_fatal_reason(exc))
            raise
        finally:
            if self._ban_timer is not None:
                self._ban_timer.cancel()
                self._ban_timer = None
            if self._linger_timer is not None:
                self._linger_timer.cancel()
                self._linger_timer = None
            self._tg = None
            self._rest = None

    async def _initial_clock(self) -> None:
        try:
            await self.rest.sync_clock()
        except RetryableFeedError as exc:  # the reconnect loop will retry; REST may recover
            self.ctx.log.warning("could not measure the server clock: %s", exc)

    def _public(self, category: Category) -> PublicStream | PublicLease:
        stream = self.publics.get(category)
        if stream is None:
            eps = self.ctx.endpoints
            url = eps.public_ws_inverse if category is Category.INVERSE else eps.public_ws
            stream = self.publics[category] = (
                lease_for(self, category, url) if self.settings.share_public
                else PublicStream(self, category, url))
            if self._tg is not None:
                self._tg.create_task(stream.run(), name=f"bybit-public-{category.value}")
        return stream

    def sync_subscriptions(self) -> None:
        """Want a ticker for every symbol of an open position, this feed's or one its
        consumers hold from another feed (``ctx.watch_symbols``), per category - and,
        for ``mark_linger``, for a symbol that just left that set."""
        watch = set(self.ctx.watch_symbols())
        now = time.monotonic()
        linger = self._linger
        for key in self._watched - watch:
            linger[key] = now + self.settings.mark_linger
        for key in [k for k, until in linger.items() if k in watch or until <= now]:
            del linger[key]
        self._watched = watch
        if self._linger_timer is not None:
            self._linger_timer.cancel()
            self._linger_timer = None
        if linger and self._tg is not None:  # unsubscribe when the first one's time is up
            self._linger_timer = asyncio.get_running_loop().call_later(
                max(0.0, min(linger.values()) - now), self._watch_changed)
        wanted: dict[Category, set[str]] = {c: set() for c in self.publics}
        for category, symbol in watch | set(linger):
            wanted.setdefault(category, set()).add(symbol)
        for category, symbols in wanted.items():
            if symbols or category in self.publics:
                self._public(category).want(symbols)

    def _watch_changed(self) -> None:
        """What consumers hold changed: follow it while the feed runs (the public socket
        serves them even while the private one is down)."""
        if self._tg is not None:
            self.sync_subscriptions()

    def covers(self, key: PositionKey) -> bool:
        """Whether this feed's REST snapshot lists ``key`` (its categories and settle
        coins): the scope handed to ``ctx.reconcile`` - a snapshot closes only what it
        covered."""
        inst = self.ctx.instruments.get((key.category, key.symbol))
        return covered(key, self.settings.categories, self.settings.settle_coins,
                       inst.settle_coin if inst is not None else None)

    # ----------------------------------------------------------------- health
    def _set(self, state: FeedState, detail: str, reason: str = "") -> None:
        if state is not self.ctx.state or reason in ("auth_failed",):
            self.ctx.set_state(state, detail, reason=reason)
        else:
            self.ctx.set_state(state, detail)
        self._detail = detail

    def _rest_banned(self, pause: float) -> None:
        """HTTP 403: the status says REST is paused, and says so again when it ends."""
        if self._ban_timer is not None:
            self._ban_timer.cancel()
        self._ban_timer = asyncio.get_running_loop().call_later(
            pause, lambda: self._refresh("rest_ban_over"))
        self._refresh("rest_banned")

    def _refresh(self, reason: str = "", detail: str = "") -> None:
        banned = self._rest is not None and self._rest.ban_left() > 0
        if self._phase in _PHASE_STATE:
            text = detail or self._detail
            if banned and self._rest is not None and "REST paused" not in text:
                text = f"{text}; {self._rest.ban_text()}"
            self._set(_PHASE_STATE[self._phase], text, reason)
            return
        down = {c.value: p.down for c, p in self.publics.items() if p.down}
        stale = sorted({sym for p in self.publics.values() for sym in p.stale})
        self.ctx.set_stale_symbols(stale)
        # under an IP ban the sockets still serve (the book stays right) but no resync
        # is possible until it ends: the detail says so
        ban = f"; {self._rest.ban_text()}" if banned and self._rest is not None else ""
        if down:
            self._set(FeedState.DEGRADED, "public socket down: " + "; ".join(
                f"{c}: {r}" for c, r in down.items()) + ban, reason)
        elif stale:
            self._set(FeedState.DEGRADED, f"stale tickers: {', '.join(stale)}{ban}", reason)
        else:
            self._set(FeedState.HEALTHY, f"in sync{ban}", reason)

    def private_trouble(self, detail: str, reason: str = "reconnect") -> None:
        self.ctx.log.warning("private socket: %s", detail, extra={"socket": "private"})
        if self._phase == "synced":
            self._phase = "reconnecting"
        self._refresh(reason, detail)

    def private_lost(self, reason: str, count: bool = True) -> None:
        if count:
            self.ctx.count("reconnects")
        self.ctx.log.warning("private socket lost: %s", reason, extra={"socket": "private"})
        self._phase = "reconnecting"
        self._refresh("reconnect", f"private socket lost: {reason}")

    def private_resyncing(self) -> None:
        self._phase = "resyncing"
        self._refresh("", "REST snapshot in flight")

    def private_synced(self) -> None:
        self._phase = "synced"
        self.sync_subscriptions()
        self._refresh("resync_done")

    def public_changed(self, reason: str) -> None:
        self._refresh(reason)

    # ----------------------------------------------------------------- stale marks
    async def _stale_marks_loop(self) -> None:
        """While a symbol's ticker is stale (its topic silent, the public socket stalled
        or down), read its mark from REST every ``stale_mark_interval``: the position's
        price keeps moving while the socket recovers. The feed still reports the symbol
        stale; the book takes a REST mark only if it is newer than the one it holds.

        Each symbol's read runs on its own, ``_READS_AT_ONCE`` at a time, and asks once
        (this loop's per-symbol interval is its retry): a read refused with a rate limit
        or a 5xx holds up no other symbol's read, and a socket's worth of stale symbols
        does not open a connection each. A finished read lets the next one start at once
        (not at the next check), and the symbol waiting longest goes first, so every
        stale symbol is read each interval while reads keep up (F47)."""
        interval = self.settings.stale_mark_interval
        if interval <= 0:
            return
        check = min(interval, max(0.05, self.settings.stale_after / 4))
        #: (category, symbol) -> when its mark was last read: each stale symbol is read
        #: once per interval, and one that just became stale (or wanted while the socket
        #: is down: a position opened by a resync) at once, not a whole interval later
        #: with the mark it had before it was wanted
        last_read: dict[tuple[Category, str], float] = {}
        #: (category, symbol) -> when a suspect's read last started: judged again a check
        #: later at the soonest
        last_judged: dict[tuple[Category, str], float] = {}
        reading: dict[tuple[Category, str], asyncio.Task[None]] = {}
        done = asyncio.Event()
        try:
            while True:
                # suspects are judged soon, stale ones per interval; a read that ends
                # makes room for the next at once. (asyncio.timeout, not wait_for: on
                # 3.11 wait_for can swallow a cancel that comes as the wait ends)
                with contextlib.suppress(TimeoutError):
                    async with asyncio.timeout(check):
                        await done.wait()
                done.clear()
                now = time.monotonic()
                suspects: set[tuple[Category, str]] = set()
                stale: set[tuple[Category, str]] = set()
                for c, p in self.publics.items():
                    suspects |= {(c, sym) for sym in p.suspect}
                    stale |= {(c, sym) for sym in
                              (p.stale | (p.wanted if p.down else set())) - p.suspect}
                for book in (last_read, last_judged):
                    for key in [k for k in book if k not in stale and k not in suspects]:
                        del book[key]  # fresh again: read at once when next stale
                # (waited since, symbol, suspect): never read first, then the longest wait
                due = [(last_judged.get(k, -math.inf), k, True) for k in suspects
                       if now - last_judged.get(k, -math.inf) >= check]
                due += [(last_read.get(k, -math.inf), k, False) for k in stale
                        if now - last_read.get(k, -math.inf) >= interval]
                due = [d for d in due if d[1] not in reading]
                room = min(self.settings.stale_mark_max, _READS_AT_ONCE) - len(reading)
                if not due or room <= 0:
                    continue
                # held symbols first: a lingering one (no position) takes what the cap
                # leaves
                linger = self._linger
                due.sort(key=lambda d: (d[1] in linger, d[0], d[1]))
                for _, key, suspect in due[:room]:
                    (last_judged if suspect else last_read)[key] = now
                    category, symbol = key
                    task = asyncio.create_task(self._stale_mark(category, symbol, suspect),
                                               name=f"bybit-stale-mark-{symbol}")
                    reading[key] = task
                    task.add_done_callback(functools.partial(self._stale_read_done,
                                                             reading, key, done))
        finally:
            for task in reading.values():
                task.cancel()
            await asyncio.gather(*reading.values(), return_exceptions=True)

    def _stale_read_done(self, reading: dict[tuple[Category, str], asyncio.Task[None]],
                         key: tuple[Category, str], done: asyncio.Event,
                         task: asyncio.Task[None]) -> None:
        reading.pop(key, None)
        done.set()
        if not task.cancelled() and (exc := task.exception()) is not None:
            self.ctx.count("crashes")  # a bug: logged with its traceback, the loop goes on
            self.ctx.log.error("stale-mark read of %s failed", key[1], exc_info=exc)

    async def _stale_mark(self, category: Category, symbol: str, suspect: bool) -> None:
        """One stale (or suspect) symbol's mark from REST, to the book."""
        mark = await self._public_read(self.rest.mark(category, symbol, attempts=1),
                                       "stale_mark_failures", f"mark of {symbol}")
        if mark is None:
            return
        if suspect:
            self.publics[category].judge_quiet(symbol, str(mark.mark_price))
        self.ctx.count("stale_marks")
        self.ctx.apply_mark(mark)

    async def _public_read(self, read: Awaitable[T], counter: str, what: str) -> T | None:
        """A best-effort public REST read: its result, or None (counted, logged) when it
        failed; the caller tries again later."""
        try:
            return await read
        except (RetryableFeedError, FatalFeedError) as exc:
            self.ctx.count(counter)
            self.ctx.log.info("REST %s not read: %s", what, exc)
            return None

    # ----------------------------------------------------------------- instruments
    async def _instruments_loop(self) -> None:
        """Tell the views each open symbol's tick, step and settle coin (read once per
        symbol from the public instruments-info; a failure is tried again a minute
        later). Nothing here affects what is delivered."""
        tried: dict[tuple[Category, str], float] = {}
        # read once for every account of the session (their REST budget is shared): the
        # first to want a symbol reads it, the others wait for its answer
        known: dict[tuple[Category, str], asyncio.Future[Instrument | None]] = \
            self.ctx.shared(("bybit_hybrid.instruments", host(self.ctx.endpoints.rest)), dict)
        while True:
            now = time.monotonic()
            symbols = sorted(self.ctx.open_symbols()) if self._phase == "synced" else []
            for category, symbol in symbols:  # after the snapshot: it goes first
                key = (category, symbol)
                if key in self.ctx.instruments or now - tried.get(key, -1e9) < 60:
                    continue
                tried[key] = now
                inst = await self._instrument(known, key)
                if inst is not None:
                    self.ctx.set_instrument(inst)
            await asyncio.sleep(2.0)

    async def _instrument(self, known: dict[tuple[Category, str],
                                            asyncio.Future[Instrument | None]],
                          key: tuple[Category, str]) -> Instrument | None:
        pending = known.get(key)
        if pending is not None:
            return await asyncio.shield(pending) if not pending.done() else pending.result()
        pending = known[key] = asyncio.get_running_loop().create_future()
        inst: Instrument | None = None
        try:
            inst = await self._public_read(self.rest.instrument(*key), "instrument_failures",
                                           f"instrument {key[1]}")
        finally:
            pending.set_result(inst)  # None (failed, cancelled): a later reader tries again
            if inst is None:
                known.pop(key, None)
        return inst

    # ----------------------------------------------------------------- audit
    async def _audit_loop(self) -> None:
        interval = self.settings.audit_interval
        if interval <= 0:
            return
        # many accounts in one process: their audits spread over the interval
        await asyncio.sleep(jitter(self.ctx.account.name, interval))
        while True:
            await asyncio.sleep(interval)
            if self._phase != "synced":
                continue
            resyncs = self.ctx.counters.get("resyncs", 0)
            try:
                await self.rest.sync_clock()  # clocks drift: keep signatures in the window
                rows, as_of = await self.rest.positions(self.settings.categories,
                                                        self.settings.settle_coins)
            except RetryableFeedError as exc:
                self.ctx.count("audit_failures")
                self.ctx.log.warning("audit skipped: %s", exc)
                continue
            if self._phase != "synced" or self.ctx.counters.get("resyncs", 0) != resyncs:
                continue  # a resync happened meanwhile: it did the audit's job
            self.ctx.count("audits")
            # pushes lost while the socket stayed up leave no trace in positions when a
            # lifecycle began and ended inside the loss: the fills do
            until = None if as_of is None else as_of - FILL_SETTLE_MS
            floor = self.ledger.fills_floor_ms
            replayed = 0
            if until is not None and floor is not None:
                try:
                    # a key the snapshot shows flat is about to be closed by it: its
                    # fills up to the snapshot go first, or a lifecycle that began and
                    # ended in the settle window would be hidden behind the close (F14)
                    replayed = await self.recovery.replay_fills(rows, floor, until,
                                                               flat_until_ms=as_of)
                except RetryableFeedError as exc:  # the floor stays: the next audit retries
                    self.ctx.count("audit_failures")
                    self.ctx.log.warning("audit skipped (fills unavailable): %s", exc)
                    continue
            # a row younger than the settle time: its pushes may still be in flight, and a
            # repair now would make them arrive stale (a close+reopen would be lost)
            rows, unsettled = settled(rows, self.ctx.positions(), as_of, FILL_SETTLE_MS)
            # the fills of a key left to the stream stay above the floor (F21)
            floor_to = fill_floor(until, unsettled, self.ctx.positions(), floor)
            diffs = audit_diff(self.ctx.positions(), rows, as_of, self.ledger.last_push_ms,
                               covers=self.covers)
            if replayed:
                self.ctx.count("audit_mismatches", replayed)
            self._last_audit = {"as_of_ms": as_of, "rows": len(rows), "mismatches": diffs,
                                "replayed": replayed, "unsettled": len(unsettled)}
            if not diffs:
                self._audit_suspects = {}
                self.ledger.note_snapshot(rows, floor_to)
                continue
            self.ctx.count("audit_mismatches", len(diffs))
            self.ctx.log.warning("audit: book differs from REST: %s", "; ".join(diffs.values()),
                                 extra={"mismatches": len(diffs)})
            # a mismatch seen twice in a row survives the book's version guard: force it
            force = {k for k, d in diffs.items() if self._audit_suspects.get(k) == d}
            self._audit_suspects = dict(diffs)
            before = set(self.ctx.positions())
            self.ctx.reconcile(rows, as_of_ms=as_of, covers=self.covers)
            if force:
                self._force(force, rows)
            # a key the snapshot closed has no row (no seq) to stop a later replay of its
            # closing fill onto the flat book: its fills up to as_of are reflected
            self.ledger.note_closed(before - set(self.ctx.positions()), as_of)
            self.ledger.note_snapshot(rows, floor_to)
            self.sync_subscriptions()

    def _force(self, keys: set[str], rows: list[Any]) -> None:
        for update in forced_updates(keys, self.ctx.positions(), rows):
            self.ctx.apply(update)
        self.ctx.log.warning("audit: forced repair of %s", sorted(keys))

    # ----------------------------------------------------------------- status
    def details(self) -> dict[str, Any]:
        return {
            "private": self.private.details(),
            "public": {c.value: p.details() for c, p in self.publics.items()},
            "clock_offset_ms": self.clock.offset_ms,
            "last_audit": self._last_audit,
            "phase": self._phase,
        }


def _fatal_reason(exc: FatalFeedError) -> str:
    text = str(exc)
    return "auth_failed" if ("API_KEY" in text or "API_SECRET" in text) else "fatal"
