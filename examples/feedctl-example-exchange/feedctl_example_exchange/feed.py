"""The ``example_exchange`` feed: lifecycle from the private socket, snapshot from REST
after every (re)connect, mark prices polled from REST.

The duties of a feed (docs/plugins.md) and where this one meets them:

* events — it hands states to ``ctx.reconcile`` / ``ctx.apply`` and prices to
  ``ctx.apply_mark``; the book makes the events and drops duplicates;
* status — CONNECTING → RESYNCING → HEALTHY; RECONNECTING (reason ``reconnect``) when
  the socket is lost; DEGRADED (reason ``stale``) while mark prices cannot be polled;
* resync — after every (re)connect it subscribes first, then takes the REST snapshot
  and reconciles the book, and only then says HEALTHY; pushes that arrived meanwhile
  wait in the socket's buffer and are applied after (the book drops the stale ones);
* bad input — a frame or row it cannot read is counted (``malformed``) and logged; a
  bad position row also triggers a fresh snapshot, so nothing is lost;
* reconnect — capped exponential backoff with full jitter (``feedctl.Backoff``),
  reset only by a connection that lived longer than the cap (no reconnect storm);
  a rejected key is a :class:`FatalFeedError` naming the settings to fix;
* shutdown — everything lives in ``async with`` blocks and one TaskGroup inside
  ``run()``: cancelling ``run()`` closes the socket, the HTTP session and every task.
"""

from __future__ import annotations

import asyncio
from typing import Any

import aiohttp

from feedctl import (
    Backoff,
    FatalFeedError,
    Feed,
    FeedContext,
    FeedState,
    RetryableFeedError,
    now_ns,
)

from .client import RestClient, auth_args
from .config import ExampleSettings
from .constants import CREDENTIALS_HINT, TOPIC_POSITION
from .parse import Malformed, position_push
from .ws import AuthRejected, ConnectionLost, PrivateSocket


class ExampleFeed(Feed):
    """One account of the example exchange."""

    settings: ExampleSettings

    def __init__(self, ctx: FeedContext, settings: ExampleSettings) -> None:
        super().__init__(ctx, settings)
        self._backoff = Backoff(settings.backoff_base, settings.backoff_cap)
        self._synced = False
        self._mark_failures = 0
        self._auth_failures = 0
        self._resync_due = False

    # ------------------------------------------------------------------ run
    async def run(self) -> None:
        ctx, s = self.ctx, self.settings
        key, secret = ctx.account.api_key, ctx.account.api_secret
        if key is None or secret is None or not ctx.account.has_credentials():
            message = f"example_exchange needs an API key and secret: set {CREDENTIALS_HINT}"
            ctx.set_state(FeedState.FAILED, message, reason="config")
            raise FatalFeedError(message)
        ctx.set_state(FeedState.CONNECTING, "connecting", reason="start")
        timeout = aiohttp.ClientTimeout(total=s.request_timeout)
        try:
            async with aiohttp.ClientSession(timeout=timeout) as http:
                rest = RestClient(http, ctx.endpoints.rest, key.get_secret_value(),
                                  secret.get_secret_value(), s.recv_window)
                async with asyncio.TaskGroup() as tg:
                    tg.create_task(self._stream(rest), name=f"{ctx.name}-stream")
                    tg.create_task(self._poll_marks(rest), name=f"{ctx.name}-marks")
        except* FatalFeedError as group:
            error = group.exceptions[0]
            ctx.set_state(FeedState.FAILED, str(error), reason="fatal")
            raise error from None

    # ------------------------------------------------------------------ lifecycle
    async def _stream(self, rest: RestClient) -> None:
        """Connect, resync, stream; on any loss, back off and do it again."""
        loop = asyncio.get_running_loop()
        while True:
            started = loop.time()
            try:
                await self._connection(rest)
            except Malformed as exc:  # an unreadable snapshot: count it, start over
                self._malformed(exc)
                self._lost(f"unreadable snapshot: {exc}")
            except (ConnectionLost, RetryableFeedError) as exc:
                self._lost(str(exc))
            except AuthRejected:
                self._auth_failures += 1
                if self._auth_failures >= self.settings.max_auth_failures:
                    raise FatalFeedError(
                        f"the exchange rejected the WebSocket auth {self._auth_failures} "
                        f"times in a row; check {CREDENTIALS_HINT}") from None
                self._lost("auth rejected")
            if loop.time() - started > self.settings.backoff_cap:
                self._backoff.reset()  # it lived long enough to prove itself
            await asyncio.sleep(self._backoff.next())

    async def _connection(self, rest: RestClient) -> None:
        ctx = self.ctx
        await rest.sync_clock()
        key, secret = ctx.account.api_key, ctx.account.api_secret
        assert key is not None and secret is not None
        auth = auth_args(key.get_secret_value(), secret.get_secret_value(), rest.server_ms())
        async with PrivateSocket.open(ctx.endpoints.private_ws, auth, self.settings) as sock:
            self._auth_failures = 0
            await self._resync(rest)
            async for msg in sock.messages(alive=self.ctx.message_received):
                if isinstance(msg, Malformed):
                    self._malformed(msg)
                    continue
                self._on_push(msg)
                if self._resync_due:
                    await self._resync(rest)

    async def _resync(self, rest: RestClient) -> None:
        """Subscribed already: take the snapshot, reconcile, then say healthy."""
        ctx = self.ctx
        ctx.set_state(FeedState.RESYNCING, "taking the REST snapshot")
        self._resync_due = False
        rows, as_of = await rest.positions(self.settings.settle_coin)
        ctx.reconcile(rows, as_of_ms=as_of)
        ctx.message_received()
        ctx.count("resyncs")
        ctx.log.info("resynced: %d open positions", sum(r.is_open for r in rows))
        self._synced = True
        self._refresh("resync_done")

    def _on_push(self, msg: dict[str, Any]) -> None:
        received = now_ns()
        if msg.get("topic") != TOPIC_POSITION:
            self.ctx.count("unexpected_topic")
            return
        updates, bad = position_push(msg, received_ns=received)
        for update in updates:
            self.ctx.observe_latency(update.exchange_ms, received)
            self.ctx.apply(update)
        for problem in bad:
            self._malformed(problem)
            self._resync_due = True  # a state we could not read: ask REST for the truth

    def _lost(self, why: str) -> None:
        self._synced = False
        self.ctx.count("reconnects")
        self.ctx.log.warning("private socket lost: %s", why)
        self.ctx.set_state(FeedState.RECONNECTING, why[:200], reason="reconnect")

    def _malformed(self, problem: Malformed) -> None:
        self.ctx.count("malformed")
        self.ctx.log.warning("malformed input skipped: %s", problem)

    # ------------------------------------------------------------------ mark prices
    async def _poll_marks(self, rest: RestClient) -> None:
        while True:
            await asyncio.sleep(self.settings.mark_interval)
            symbols = {symbol for _, symbol in self.ctx.open_symbols()}
            if not symbols:
                continue
            try:
                marks, bad = await rest.mark_prices(symbols)
            except (RetryableFeedError, Malformed) as exc:
                self._mark_failures += 1
                if isinstance(exc, Malformed):
                    self._malformed(exc)
                self.ctx.log.warning("mark price poll failed: %s", exc)
                self._refresh("stale")
                continue
            for problem in bad:
                self._malformed(problem)
            for mark in marks:
                self.ctx.apply_mark(mark)
            if self._mark_failures:
                self._mark_failures = 0
                self._refresh("fresh")

    # ------------------------------------------------------------------ health
    def _refresh(self, reason: str) -> None:
        """HEALTHY only when the book is synced and mark prices flow."""
        if not self._synced:
            return
        stale = self._mark_failures >= self.settings.mark_failures
        state = FeedState.DEGRADED if stale else FeedState.HEALTHY
        if state is not self.ctx.state or reason == "resync_done":
            self.ctx.set_state(state, "mark prices are stale" if stale else "in sync",
                               reason="stale" if stale else reason)

    def details(self) -> dict[str, Any]:
        return {"synced": self._synced, "mark_failures": self._mark_failures,
                "mark_interval_s": self.settings.mark_interval}
