"""The polling loop: snapshot, mark prices, reconcile, every ``interval``.

States: STARTING -> CONNECTING (markets) -> HEALTHY after the first complete snapshot
(``resync_done``). A failed poll makes the feed DEGRADED (reason ``error``,
``rate_limited`` or ``malformed``); ``reconnect_after`` failed polls in a row drop the
HTTP session (RECONNECTING, reason ``reconnect``); the next complete snapshot makes
it HEALTHY again (``recovered``, or ``resync_done`` after a reconnect).
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import math
import time
from typing import Any

import ccxt.async_support as ccxt_async

from feedctl import (
    Backoff,
    Category,
    FatalFeedError,
    Feed,
    FeedContext,
    FeedState,
    MarkPrice,
    PositionKey,
    PriorState,
    now_ns,
)

from . import constants as c
from .client import PollerClient, Snapshot
from .config import RestPollingSettings
from .parse import MalformedRow

#: Least time between two market reloads caused by a position in an unknown market.
MARKET_RELOAD_EVERY = 60.0

_RATE_LIMITED = (ccxt_async.RateLimitExceeded, ccxt_async.DDoSProtection)
_TRANSIENT = (ccxt_async.NetworkError, ccxt_async.ExchangeError, TimeoutError, OSError)


class RestPollingFeed(Feed):
    """Positions and mark prices of one account, polled through ccxt."""

    settings: RestPollingSettings

    def __init__(self, ctx: FeedContext, settings: RestPollingSettings) -> None:
        super().__init__(ctx, settings)
        self.client: PollerClient | None = None
        self._backoff = Backoff(settings.backoff_base, settings.backoff_cap)
        self.slowdown = 1.0
        self._last_rate_limit = -math.inf
        self._failures = 0
        self._resync_due = True
        self._last_reload = -math.inf
        self._reload_due = False
        self.last_cycle: dict[str, float] = {}
        #: the first poll resumes from what the account's consumers last knew
        #: (``ctx.take_prior``), if the core has it
        self._first_poll = True

    # ------------------------------------------------------------------ run
    async def run(self) -> None:
        ctx = self.ctx
        self.client = PollerClient.create(
            feed=ctx.name, settings=self.settings, account=ctx.account,
            endpoints=ctx.endpoints, on_request=lambda: ctx.count("requests"),
            environment=ctx.environment,
            profile=ctx.profile or "<PROFILE>")
        try:
            ctx.set_state(FeedState.CONNECTING, f"loading {self.client.id} markets")
            await self._retrying(self._load_markets)
            await self._poll_forever()
        finally:
            await self.client.close()

    async def _load_markets(self) -> None:
        assert self.client is not None
        await self.client.load_markets()

    async def _poll_forever(self) -> None:
        loop = asyncio.get_running_loop()
        while True:
            started = loop.time()
            delay = await self._guarded(self.poll_once)
            if delay is None:  # a good poll: keep the cadence, whatever the poll took
                delay = max(0.0, self.effective_interval - (loop.time() - started))
            await asyncio.sleep(delay)

    async def _retrying(self, step: Any) -> None:
        """Run ``step`` until it succeeds (used for the start-up market load)."""
        while True:
            delay = await self._guarded(step)
            if delay is None:
                return
            await asyncio.sleep(delay)

    @property
    def effective_interval(self) -> float:
        return self.settings.interval * self.slowdown

    # ------------------------------------------------------------------ one poll
    def covers(self, key: PositionKey) -> bool:
        """Whether a poll lists ``key``: the scope handed to ``ctx.reconcile``, so a poll
        closes only what it asked for (another feed of the profile may watch more).
        ``symbols`` narrows it; Bybit's listing covers the categories and settle coins of
        ``settle_coins`` (an inverse contract settles in its base coin: BTCUSD in BTC);
        ccxt's fetch_positions elsewhere covers the whole account."""
        if self.settings.symbols and key.symbol not in self.settings.symbols:
            return False
        if self.client is None or not self.client.paginates:
            return True
        return self._listing_coin(key) is not None

    def _listing_coin(self, key: PositionKey) -> str | None:
        """The settle coin of ``settle_coins`` whose Bybit listing would list ``key``."""
        coins = self.settings.settle_coins
        inst = self.ctx.instruments.get((key.category, key.symbol))
        if inst is not None and inst.settle_coin:
            return inst.settle_coin if inst.settle_coin in coins else None
        sym = key.symbol
        if key.category is Category.INVERSE:
            return next((coin for coin in coins
                         if coin not in c.BYBIT_LINEAR_SETTLE and sym.startswith(coin)), None)
        linear = next((coin for coin in coins
                       if coin in c.BYBIT_LINEAR_SETTLE and sym.endswith(coin)), None)
        if linear is None and "USDC" in coins and (sym.endswith("PERP") or "-" in sym):
            return "USDC"
        return linear

    def listed_at(self, key: PositionKey, snap: Snapshot) -> int | None:
        """When the listing that would list ``key`` was answered (ms, exchange time): a
        key the snapshot lacks was flat then (None: the snapshot's first answer)."""
        if not snap.listing_as_of_ms:
            return None
        coin = self._listing_coin(key)
        return None if coin is None else snap.listing_as_of_ms.get(coin)

    async def poll_once(self) -> None:
        """One complete cycle; raises on anything that makes the snapshot untrustworthy."""
        client, ctx = self.client, self.ctx
        assert client is not None
        t0 = time.perf_counter()
        requests_before = ctx.counters.get("requests", 0)
        if self._reload_due:
            self._reload_due = False
            await client.load_markets(reload=True)
        snap = await client.snapshot()
        if client.paginates and snap.pages > len(self.settings.settle_coins):
            await self._confirm_missing(snap)
        rows = [r for r in snap.rows if client.wanted(r)]
        open_rows = [r for r in rows if r.update.is_open]
        marks = await self._marks(open_rows, snap)
        received = now_ns()
        if self._first_poll:  # no await from here to the reconcile
            self._first_poll = False
            self._resume(ctx.take_prior())
        ctx.message_received(received)
        for server_ms, at_ns in snap.samples:
            ctx.observe_latency(server_ms, at_ns)
        for mark in marks:
            ctx.apply_mark(mark)
        ctx.reconcile([r.update for r in rows], as_of_ms=snap.as_of_ms, covers=self.covers,
                      listed_at=functools.partial(self.listed_at, snap=snap))
        ctx.count("polls")
        self.last_cycle = {
            "seconds": time.perf_counter() - t0,
            "requests": ctx.counters.get("requests", 0) - requests_before,
            "positions": len(open_rows),
        }
        self._succeeded(len(open_rows))

    def _resume(self, prior: PriorState | None) -> None:
        """Start the book from what the account's consumers last knew (another process
        served it until now): its open positions (the bus writes nothing for their
        ``opened``: its snapshot holds them), so that the first poll delivers only what
        changed since - a close, a change, an open (a flip as a close and an open) - and
        never a second ``opened`` of a position consumers hold. A poller sees no history: what
        opened and closed between the prior state and the first poll is not delivered,
        and a close and reopen on one side is a change."""
        if prior is None:
            return
        opened = [s for s in prior.positions.values() if s.is_open and self.covers(s.key)]
        for state in opened:
            self.ctx.apply(state)
        self.ctx.count("resumed_from_prior")
        self.ctx.log.info("resuming from what consumers last knew: %d open positions",
                          len(opened))

    async def _confirm_missing(self, snap: Snapshot) -> None:
        """A multi-page listing can miss a row that moved between pages while it was
        read: ask for each position it lacks by symbol before calling it closed."""
        assert self.client is not None
        listed = {r.update.key for r in snap.rows}
        missing = {(k.category, k.symbol) for k in self.ctx.positions() if k not in listed}
        if missing:
            extra = await self.client.rows_for(missing)
            have = {r.update.key for r in snap.rows}
            snap.rows.extend(r for r in extra.rows if r.update.key not in have)

    async def _marks(self, open_rows: list[Any], snap: Snapshot) -> list[MarkPrice]:
        assert self.client is not None
        source = self.settings.mark_price_source
        stamp = snap.samples[-1][0] if snap.samples else None
        marks: dict[tuple[Category, str], MarkPrice] = {}
        if source in ("auto", "positions"):
            for r in open_rows:
                u = r.update
                if r.mark is not None:
                    marks[(u.category, u.symbol)] = MarkPrice(
                        category=u.category, symbol=u.symbol, mark_price=r.mark,
                        exchange_ms=stamp, received_ns=u.received_ns)
        lacking = {(r.update.category, r.update.symbol) for r in open_rows} - set(marks)
        if lacking and source != "positions":
            for mark in await self.client.mark_prices(sorted(lacking)):
                marks[(mark.category, mark.symbol)] = mark
        return list(marks.values())

    # ------------------------------------------------------------------ outcomes
    def _succeeded(self, n_open: int) -> None:
        ctx = self.ctx
        self._backoff.reset()
        self._failures = 0
        cooled = time.monotonic() - self._last_rate_limit >= self.settings.slowdown_cooldown
        if self.slowdown > 1 and cooled:
            self.slowdown = max(1.0, self.slowdown / 2)
        detail = f"{n_open} open positions, polling every {self.effective_interval:g}s"
        if self._resync_due:
            self._resync_due = False
            ctx.count("resyncs")
            ctx.set_state(FeedState.HEALTHY, detail, reason="resync_done")
        elif ctx.state is not FeedState.HEALTHY:
            ctx.set_state(FeedState.HEALTHY, detail, reason="recovered")
        else:
            ctx.set_state(FeedState.HEALTHY, detail)

    async def _guarded(self, step: Any) -> float | None:
        """Run ``step``; None when it succeeded, else the delay before the next try.
        Raises FatalFeedError for what retrying cannot fix."""
        ctx = self.ctx
        try:
            await step()
            return None
        except (FatalFeedError, asyncio.CancelledError):
            raise
        except ccxt_async.AuthenticationError as exc:  # includes PermissionDenied
            raise FatalFeedError(self._auth_message(exc)) from None
        except _RATE_LIMITED as exc:
            ctx.count("rate_limited")
            self._last_rate_limit = time.monotonic()
            self.slowdown = min(self.settings.max_slowdown, self.slowdown * 2)
            return self._failed("rate_limited", exc, self.effective_interval)
        except MalformedRow as exc:
            ctx.count("malformed")
            self._maybe_reload(exc)
            return self._failed("malformed", exc, self.effective_interval)
        except ccxt_async.BadResponse as exc:
            ctx.count("malformed")
            return self._failed("malformed", exc, self.effective_interval)
        except ccxt_async.InvalidNonce as exc:
            delay = self._failed("error", exc, self._backoff.next())
            with contextlib.suppress(Exception):
                await self.client.sync_clock()  # type: ignore[union-attr]
            return delay
        except _TRANSIENT as exc:
            return await self._transient(exc)
        except Exception as exc:  # a bug or odd input must not kill the feed
            ctx.log.exception("unexpected error in a poll")
            return await self._transient(exc)

    async def _transient(self, exc: BaseException) -> float:
        self._failures += 1
        delay = self._failed("error", exc, self._backoff.next())
        if self._failures % self.settings.reconnect_after == 0 and self.client is not None:
            self.ctx.count("reconnects")
            self._resync_due = True
            self.ctx.set_state(FeedState.RECONNECTING, self._describe(exc), reason="reconnect")
            await self.client.reconnect()
        return delay

    def _failed(self, reason: str, exc: BaseException, delay: float) -> float:
        ctx = self.ctx
        ctx.count("errors")
        text = self._describe(exc)
        ctx.log.warning("poll failed (%s): %s; next try in %.2fs", reason, text, delay)
        if ctx.state in (FeedState.STARTING, FeedState.CONNECTING):
            ctx.set_state(FeedState.CONNECTING, text)
        elif ctx.state is FeedState.RECONNECTING:
            ctx.set_state(FeedState.RECONNECTING, text)
        else:
            ctx.set_state(FeedState.DEGRADED, text, reason=reason)
        return delay

    def _describe(self, exc: BaseException) -> str:
        text = f"{type(exc).__name__}: {exc}"[:300]
        return self.client.redact(text) if self.client else text

    def _maybe_reload(self, exc: MalformedRow) -> None:
        """A position in a market listed after start: reload the markets (rarely)."""
        if "unknown market" in str(exc) and self.client is not None:
            now = time.monotonic()
            if now - self._last_reload >= MARKET_RELOAD_EVERY:
                self._last_reload = now
                self._reload_due = True

    def _auth_message(self, exc: BaseException) -> str:
        ex_id = self.client.id if self.client else "the exchange"
        return (
            f"{ex_id} rejected the API credentials ({self._describe(exc)}); check "
            f"{self.ctx.env_var('account.api_key')} and "
            f"{self.ctx.env_var('account.api_secret')} "
            "(account.api_key / account.api_secret) and the key's read permission")

    def details(self) -> dict[str, Any]:
        client = self.client
        return {
            "exchange": client.id if client else self.settings.exchange,
            "interval_s": self.settings.interval,
            "effective_interval_s": self.effective_interval,
            "mark_price_call": ("positions' markPrice, then " if client else "")
            + str(client.mark_call if client else None),
            "last_cycle": dict(self.last_cycle),
        }
