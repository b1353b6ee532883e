"""The ``binance_usdm`` feed: user-data-stream lifecycle + market-stream mark prices +
REST snapshots (start, every user-stream reconnect, a lost push, the periodic audit).

Health is derived from the parts: HEALTHY only when the user stream has resynced since
its last (re)connect, the market socket is up and no wanted symbol's mark is stale.
Every task is owned: ``run()`` runs the streams in a TaskGroup inside one
``aiohttp.ClientSession``; cancelling ``run()`` closes every socket, the session and
every task before it re-raises.
"""

from __future__ import annotations

import asyncio
from typing import Any

import aiohttp
from pydantic import ValidationError

from feedctl import FatalFeedError, Feed, FeedContext, FeedState, RetryableFeedError

from .audit import audit_diff, without
from .config import BinanceEndpoints, BinanceSettings
from .market import MarketStream
from .rest import Banned, RestClient, WeightDeferred, setting_hint
from .signing import ServerClock
from .user import UserStream
from .util import Reporter

_PHASE_STATE = {
    "connecting": FeedState.CONNECTING,
    "reconnecting": FeedState.RECONNECTING,
    "resyncing": FeedState.RESYNCING,
}


def endpoints_of(ctx: FeedContext) -> BinanceEndpoints:
    """``ctx.endpoints`` as this kind's endpoints (the core builds them from the kind's
    ``endpoints_model``); a set without ``market_ws``/``private_ws`` is a configuration
    error naming the settings."""
    eps: Any = ctx.endpoints
    if isinstance(eps, BinanceEndpoints):
        return eps
    given: dict[str, Any] = eps.model_dump() if hasattr(eps, "model_dump") else {}
    values = {k: given[k] for k in BinanceEndpoints.model_fields if k in given}
    try:
        return BinanceEndpoints.model_validate(values)
    except ValidationError as exc:
        bad = [str(e["loc"][0]) for e in exc.errors() if e.get("loc")]
        names = ", ".join(setting_hint(ctx.profile, k, "ENDPOINTS") for k in bad)
        raise FatalFeedError(f"binance_usdm needs the endpoints {', '.join(bad)} "
                             f"(missing or not a URL of the right scheme): set {names}"
                             ) from None


class BinanceFeed(Feed):
    """User data stream lifecycle + market stream mark prices + REST resync and audit."""

    settings: BinanceSettings

    def __init__(self, ctx: FeedContext, settings: BinanceSettings) -> None:
        super().__init__(ctx, settings)
        self.clock = ServerClock()
        self.report = Reporter(ctx)
        self.user = UserStream(self)
        self.market = MarketStream(self)
        ctx.on_watch_change(self.sync_subscriptions)  # marks follow what consumers hold
        self.phase = "connecting"
        self._rest: RestClient | None = None
        self._endpoints: BinanceEndpoints | None = None
        self._detail = ""
        self._last_audit: dict[str, Any] = {}

    @property
    def endpoints(self) -> BinanceEndpoints:
        if self._endpoints is None:
            self._endpoints = endpoints_of(self.ctx)
        return self._endpoints

    @property
    def rest(self) -> RestClient:
        if self._rest is None:
            raise RuntimeError("the REST client exists only while run() runs")
        return self._rest

    # ----------------------------------------------------------------- run
    async def run(self) -> None:
        ctx, s = self.ctx, self.settings
        acct = ctx.account
        try:
            if not acct.has_credentials() or acct.api_key is None or acct.api_secret is None:
                raise FatalFeedError(
                    f"binance_usdm needs an API key and secret: set "
                    f"{setting_hint(ctx.profile, 'API_KEY')} and "
                    f"{setting_hint(ctx.profile, 'API_SECRET')}")
            eps = self.endpoints
            self._set(FeedState.CONNECTING, "measuring the server clock", reason="start")
            timeout = aiohttp.ClientTimeout(total=s.request_timeout)
            async with aiohttp.ClientSession(timeout=timeout) as http:
                self._rest = RestClient(http, eps.rest, acct.api_key, acct.api_secret,
                                        self.clock, s, ctx.log, ctx.count, profile=ctx.profile)
                try:
                    await self.rest.sync_clock()
                except RetryableFeedError as exc:  # the stream's retries will measure again
                    ctx.log.warning("could not measure the server clock: %s", exc)
                try:
                    async with asyncio.TaskGroup() as tg:
                        tg.create_task(self.user.run(), name="binance-user")
                        tg.create_task(self.market.run(), name="binance-market")
                        tg.create_task(self.user.keepalive_loop(), name="binance-keepalive")
                        tg.create_task(self.user.fills_loop(), name="binance-fills")
                        tg.create_task(self.user.unseen_loop(), name="binance-unseen")
                        tg.create_task(self._audit_loop(), name="binance-audit")
                        tg.create_task(self._stale_marks_loop(), name="binance-stale-marks")
                except BaseExceptionGroup as group:  # one cause, fatal first, not a group
                    causes: list[BaseException] = list(group.exceptions)
                    fatal = [e for e in causes if isinstance(e, FatalFeedError)]
                    raise (fatal or causes)[0] from None
        except FatalFeedError as exc:
            text = str(exc)
            reason = "auth_failed" if "API_KEY" in text or "API_SECRET" in text else "fatal"
            ctx.set_state(FeedState.FAILED, text, reason=reason)
            raise
        finally:
            self._rest = None

    # ----------------------------------------------------------------- health
    def _set(self, state: FeedState, detail: str, reason: str = "") -> None:
        self._detail = detail
        self.ctx.set_state(state, detail, reason=reason if state is not self.ctx.state
                           else "")

    def _refresh(self, reason: str = "", detail: str = "") -> None:
        if self.phase in _PHASE_STATE:
            self._set(_PHASE_STATE[self.phase], detail or self._detail, reason)
            return
        m = self.market
        self.ctx.set_stale_symbols(sorted(m.stale))
        if m.down is not None and m.wanted:
            self._set(FeedState.DEGRADED, f"market socket down: {m.down}", reason)
        elif m.stale:
            self._set(FeedState.DEGRADED, f"stale mark prices: {', '.join(sorted(m.stale))}",
                      reason)
        else:
            self._set(FeedState.HEALTHY, "in sync", reason)

    def user_trouble(self, detail: str) -> None:
        self.ctx.log.warning("user stream: %s", detail, extra={"socket": "user"})
        if self.phase == "synced":
            self.phase = "reconnecting"
        reason = "banned" if "banned" in detail else "reconnect"
        self._refresh(reason, detail)

    def user_lost(self, reason: str, count: bool = True) -> None:
        if count:
            self.ctx.count("reconnects")
        self.ctx.log.warning("user stream lost: %s", reason, extra={"socket": "user"})
        self.phase = "reconnecting"
        self._refresh("reconnect", f"user stream lost: {reason}")

    def user_resyncing(self) -> None:
        if self.phase == "synced":  # a resync in place (a lost push): say so
            self.phase = "resyncing"
            self._refresh("resync", "REST snapshot in flight")
            return
        self.phase = "resyncing"
        self._refresh("", "REST snapshot in flight")

    def user_synced(self) -> None:
        self.phase = "synced"
        self.sync_subscriptions()
        self._refresh("resync_done")

    def market_changed(self, reason: str) -> None:
        self._refresh(reason)

    def sync_subscriptions(self) -> None:
        """Want a mark price for every open position's symbol, this feed's or one its
        consumers hold from another feed (``ctx.watch_symbols``); a symbol wanted while the
        market socket is down has no price: the feed is degraded at once."""
        self.market.want({symbol for _cat, symbol in self.ctx.watch_symbols()})
        if self.phase == "synced" and self.market.down is not None:
            self._refresh("stale")

    # ----------------------------------------------------------------- stale marks
    async def _stale_marks_loop(self) -> None:
        """While a wanted symbol's mark is stale (or the market socket down), read it
        from REST premiumIndex every ``stale_mark_interval`` (weight 1 each); the feed
        still reports the symbol stale."""
        interval = self.settings.stale_mark_interval
        if interval <= 0:
            return
        while True:
            await asyncio.sleep(interval)
            m = self.market
            symbols = sorted(m.wanted if m.down is not None else m.stale)
            for symbol in symbols[:10]:
                try:
                    mark = await self.rest.mark(symbol)
                except WeightDeferred:
                    self.ctx.count("stale_marks_deferred")
                    break  # the minute's weight is for recovery now
                except (RetryableFeedError, FatalFeedError) as exc:
                    self.ctx.count("stale_mark_failures")
                    self.ctx.log.info("REST mark of %s not read: %s", symbol, exc)
                    continue
                if mark is not None:
                    self.ctx.count("stale_marks")
                    self.ctx.apply_mark(mark)

    # ----------------------------------------------------------------- audit
    async def _audit_loop(self) -> None:
        interval = self.settings.audit_interval
        if interval <= 0:
            return
        while True:
            await asyncio.sleep(interval)
            if self.phase != "synced":
                continue
            resyncs = self.ctx.counters.get("resyncs", 0)
            try:
                await self.rest.sync_clock()  # clocks drift: keep timestamps in recvWindow
                rows, as_of = await self.rest.positions(self.user.hedge, self.user.leverage)
            except Banned as exc:
                self.ctx.count("audit_failures")
                self.ctx.log.warning("audit skipped: %s", exc)
                continue
            except RetryableFeedError as exc:
                self.ctx.count("audit_failures")
                self.ctx.log.warning("audit skipped: %s", exc)
                continue
            if self.phase != "synced" or self.ctx.counters.get("resyncs", 0) != resyncs:
                continue  # a resync happened meanwhile: it did the audit's job
            self.ctx.count("audits")
            positions = self.ctx.positions()
            diffs, young = audit_diff(positions, rows, as_of, self.user.last_push_ms)
            self._last_audit = {"as_of_ms": as_of, "rows": len(rows), "mismatches": diffs,
                                "unsettled": len(young)}
            if not diffs and not young:
                # the book matches: every fill up to the snapshot is in it - unless a
                # lifecycle opened and closed while the stream lost its pushes (F57)
                floor, upto = self.user.fills_floor_ms, self.user.audit_floor(as_of)
                if upto is not None and floor is not None and upto > floor:
                    try:
                        unseen = await self.user.unseen_fills(floor, upto)
                    except (RetryableFeedError, FatalFeedError) as exc:
                        self.ctx.count("audit_failures")
                        self.ctx.log.warning("audit: fills since the floor not read (the "
                                             "floor stays): %s", exc)
                        continue
                    if self.phase != "synced" or self.ctx.counters.get(
                            "resyncs", 0) != resyncs:
                        continue  # a resync happened meanwhile: it did the audit's job
                    if unseen:
                        first = unseen[0]
                        self.ctx.count("unseen_fills", len(unseen))
                        self.user.resync_for(
                            f"audit: {len(unseen)} fill(s) the stream never showed (first "
                            f"{first.key.symbol} at {first.time_ms})")
                        continue
                if upto is not None:
                    self.user.fills_floor_ms = upto if floor is None else max(floor, upto)
            if not diffs:
                continue
            self.ctx.count("audit_mismatches", len(diffs))
            self.user.mode_suspect = True  # the next resync reads the position mode again
            self.ctx.log.warning("audit: book differs from REST: %s", "; ".join(diffs.values()),
                                 extra={"mismatches": len(diffs)})
            self.ctx.reconcile(without(rows, positions, young), as_of_ms=as_of)
            self.user.repaired({k for k in (*positions, *(r.key for r in rows))
                                if str(k) in diffs}, as_of)
            self.sync_subscriptions()

    # ----------------------------------------------------------------- status
    def details(self) -> dict[str, Any]:
        return {
            "user": self.user.details(),
            "market": self.market.details(),
            "clock_offset_ms": self.clock.offset_ms,
            "used_weight_1m": self._rest.weights.used if self._rest else None,
            "last_audit": self._last_audit,
            "phase": self.phase,
        }
