"""The private socket: auth, ``position`` pushes, resync from REST after every gap.

Cycle: connect → auth (expires = server-corrected now + margin) → wait for the ack →
start buffering → subscribe ``position.<category>`` for each configured category →
wait for the ack → REST snapshot →
``ctx.reconcile`` → apply the buffered pushes in (updatedTime, seq) order → healthy.
A planned reconnect (``max_connection_lifetime``) opens, authenticates and subscribes
the new socket before the old one closes, so no push is missed and no resync is
needed; if the old one died meanwhile, the feed resyncs anyway.

One job: supervising the socket and its resyncs. The stream talks to its feed only
through :class:`~.ports.PrivateHost`; what the book was given and what is lost is the
loss ledger's (:mod:`.ledger`), putting it back the fill replay's (:mod:`.recovery`),
both shared with the audit.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from typing import Any
from urllib.parse import urlencode, urlsplit, urlunsplit

from feedctl import (
    Backoff,
    FatalFeedError,
    PositionUpdate,
    PriorState,
    RetryableFeedError,
    redact,
    staggered,
)

from .constants import POSITION_TOPICS, position_topics
from .parse import Problem, position_push, push_order
from .ports import PrivateHost
from .rest import setting_hint
from .signing import ws_auth_args
from .ws import Conn, ConnectionLost, RequestRejected

#: A resync replays the fills since the fill floor (the last snapshot: every fill before
#: it is in the book) - pushes can be lost unnoticed before the gap itself - but not
#: more than this before the lost socket's known-good point (``Conn.known_good_ns``:
#: its last answered ping, its opening, or its last frame if older): a bound on REST
#: pages when no snapshot was taken for long (audit off).
REPLAY_LOOKBACK_MS = 600_000


class AuthRejected(Exception):
    """Bybit answered ``auth`` with ``success: false``."""


class PrivateStream:
    """Owns the private socket(s) of one feed; ``run()`` until cancelled."""

    def __init__(self, feed: PrivateHost) -> None:
        self.feed = feed
        self.ctx, self.s = feed.ctx, feed.settings
        self.recovery = feed.recovery
        self.ledger = feed.recovery.ledger
        self.conn: Conn | None = None
        self._buffer: list[PositionUpdate] | None = None
        self._auth_failures = 0
        self._backoff = Backoff(self.s.backoff_base, self.s.backoff_cap)
        #: server ms since which pushes may be missing; None while none are
        self._gap_from_ms: int | None = None
        #: what the account's consumers last knew (another process served it), until the
        #: first resync has brought the book from it to the exchange's state
        self._prior: PriorState | None = None

    def url(self) -> str:
        url = self.ctx.endpoints.private_ws
        param = self.s.max_active_time_param
        if param is None:
            return url
        parts = urlsplit(url)
        query = f"{parts.query}&" if parts.query else ""
        query += urlencode({"max_active_time": param})
        return urlunsplit(parts._replace(query=query))

    # ----------------------------------------------------------------- supervisor
    async def run(self) -> None:
        if self.s.replay_gaps and self.ledger.fills_floor_ms is None:
            self._prior = self.ctx.take_prior()
        conn: Conn | None = None
        try:
            while True:
                if conn is not None and conn.closed.done():  # died while we tried to swap
                    await self._lost(conn, conn.closed.result())
                    conn = None
                swapping = conn is not None  # the old socket still serves: no state change
                try:
                    new = await self._connect_while(conn)
                    if new is None:  # the old socket died while the new one waited
                        continue
                except AuthRejected as exc:
                    await self._auth_rejected(str(exc), swapping)
                    await self._wait(conn, self._backoff.next())
                    continue
                except (ConnectionLost, RequestRejected, RetryableFeedError) as exc:
                    if swapping:
                        self.ctx.log.warning("planned private reconnect failed: %s", exc)
                    else:
                        self.feed.private_trouble(str(exc))
                    await self._wait(conn, self._backoff.next())
                    continue
                old, conn = conn, new
                self.conn = new
                if old is None or old.closed.done() or old.holding:
                    if old is not None:  # the old socket died during the swap (or holds
                        # frames behind an unanswered ping: closing it loses them): a gap
                        self._mark_gap(old)
                        await old.close()
                        self._buffer = []
                    try:
                        await self._resync()
                    except RetryableFeedError as exc:
                        await new.close()
                        conn = self.conn = None
                        self.feed.private_lost(f"resync failed: {exc}", count=False)
                        await asyncio.sleep(self._backoff.next())
                        continue
                else:  # make-before-break: the new socket is subscribed, drop the old
                    await old.close()
                    self.ctx.count("planned_reconnects")
                    self.ctx.log.info("private socket replaced (planned, age %.0fs)", old.age())
                reason = await self._watch(conn)
                if reason is not None:
                    await self._lost(conn, reason)
                    conn = None
        finally:
            self._buffer = None
            self.conn = None
            if conn is not None:
                await conn.close()

    async def _lost(self, conn: Conn, reason: str) -> None:
        lived = conn.age()
        self._mark_gap(conn)
        await conn.close()
        self.conn = None
        self.feed.private_lost(reason)
        if lived >= self.s.backoff_reset_after:
            self._backoff.reset()
        await asyncio.sleep(self._backoff.next())

    def _mark_gap(self, conn: Conn) -> None:
        if self._gap_from_ms is None:
            # not the last frame: frames can arrive after the loss began (a stall that
            # ended before the unanswered ping timed out), the last pong cannot
            self._gap_from_ms = conn.known_good_ns() // 1_000_000 + self.feed.clock.offset_ms

    async def _wait(self, conn: Conn | None, delay: float) -> None:
        """Sleep ``delay``, cut short if the still-serving old socket dies."""
        if conn is None or conn.closed.done():
            await asyncio.sleep(delay)
            return
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(delay):
                await asyncio.shield(conn.closed)

    async def _watch(self, conn: Conn) -> str | None:
        """Wait until ``conn`` dies (its reason) or reaches its planned lifetime (None)."""
        lifetime = self.s.max_connection_lifetime
        if lifetime is not None:  # the accounts that connected together swap apart
            lifetime = staggered(lifetime, f"{self.ctx.account.name}:private")
        timeout = None if lifetime is None else max(0.0, lifetime - conn.age())
        try:
            async with asyncio.timeout(timeout):
                return await asyncio.shield(conn.closed)
        except TimeoutError:
            return None

    async def _connect_while(self, old: Conn | None) -> Conn | None:
        """``_connect``, for a planned swap raced against the death of ``old``, the socket
        it replaces: a planned connect may wait long for the connection budget's headroom,
        and a socket that died meanwhile must be a loss at once (its gap replayed, the
        feed reconnecting), not a healthy-looking feed with no socket. None: ``old`` died
        first and the connect was abandoned."""
        if old is None:
            return await self._connect(buffer=True)
        making = asyncio.ensure_future(self._connect(buffer=False))
        handed = False
        try:
            waits: set[asyncio.Future[Any]] = {making, old.closed}
            await asyncio.wait(waits, return_when=asyncio.FIRST_COMPLETED)
            if making.done():
                handed = True
                return making.result()
            return None
        finally:
            if not making.done():
                making.cancel()
            await asyncio.wait([making])  # never swallows a cancel of this task
            if not handed and not making.cancelled() and making.exception() is None:
                # made just as we were cancelled: nobody else owns it
                await making.result().close()

    # ----------------------------------------------------------------- one socket
    async def _connect(self, *, buffer: bool) -> Conn:
        feed = self.feed
        conn = Conn(
            name="private", url=self.url(), on_data=self._on_data,
            ping_interval=self.s.ping_interval, pong_timeout=self.s.pong_timeout,
            request_timeout=self.s.request_timeout, log=self.ctx.log,
            count=self.ctx.count, report=feed.report,
            pong_overdue_after=self.s.pong_overdue_after,
            server_offset_ms=feed.clock.known_offset_ms,
        )
        try:
            if feed.connects is not None:  # the process's per-IP budget of new sockets
                await feed.connects.acquire(planned=not buffer)
            await conn.open()
            acct = self.ctx.account
            assert acct.api_key is not None and acct.api_secret is not None
            expires = feed.clock.now_ms() + int(self.s.expires_margin * 1000)
            try:
                await conn.request("auth", ws_auth_args(acct.api_key, acct.api_secret, expires))
            except RequestRejected as exc:
                msg = redact(exc.answer.ret_msg, acct.api_key, acct.api_secret)
                raise AuthRejected(msg or "no reason given") from None
            self._auth_failures = 0
            if buffer:
                self._buffer = []
            await conn.request("subscribe", position_topics(self.s.categories))
        except BaseException:
            if buffer:
                self._buffer = None
            await conn.close()
            raise
        return conn

    async def _auth_rejected(self, ret_msg: str, swapping: bool = False) -> None:
        """Re-measure the clock and ask REST whether the key itself is bad (10003/10004
        are fatal there); give up after ``max_auth_failures`` rejections in a row."""
        self._auth_failures += 1
        self.ctx.count("auth_failures")
        if swapping:
            self.ctx.log.warning("planned private reconnect: auth rejected: %s", ret_msg)
        else:
            self.feed.private_trouble(f"auth rejected: {ret_msg}", reason="auth_failed")
        if self._auth_failures >= self.s.max_auth_failures:
            raise FatalFeedError(
                f"Bybit rejected the WebSocket auth {self._auth_failures} times in a row "
                f"(ret_msg {ret_msg!r}): check {setting_hint(self.ctx.profile, 'API_KEY')} and "
                f"{setting_hint(self.ctx.profile, 'API_SECRET')}, and the host clock"
            )
        rest = self.feed.rest
        try:
            await rest.sync_clock()
            await rest.positions(self.s.categories[:1], self.s.settle_coins[:1])  # fatal: bad key
        except RetryableFeedError as exc:
            self.ctx.log.warning("REST check after an auth rejection failed: %s", exc)

    async def _resync(self) -> None:
        ctx = self.ctx
        self.feed.private_resyncing()
        try:
            rows, as_of = await self.feed.rest.positions(self.s.categories, self.s.settle_coins)
            floor = self.ledger.fills_floor_ms
            if self._prior is not None:
                # the first resync of an account another process served: from what its
                # consumers were told, replay every fill since (recovery.resume_from)
                since = self.recovery.resume_since(self._prior)
                await self.recovery.replay_fills(rows, since, None, prior=self._prior)
            elif self._gap_from_ms is not None and floor is not None:
                # from the fill floor, not just the gap: pushes can also have been lost
                # before it, unnoticed (a stall holding no ping), and a replay from a
                # wrong start state builds wrong states (F13)
                since = max(floor, self._gap_from_ms - REPLAY_LOOKBACK_MS)
                await self.recovery.replay_fills(rows, since, None)
        except BaseException:
            # the gap stays open and the next resync covers these pushes; applied now
            # they would move the replay cursor past the gap's fills (F12)
            self._buffer = None
            raise
        before = set(ctx.positions())
        ctx.reconcile(rows, as_of_ms=as_of, covers=self.feed.covers)
        self.ledger.note_closed(before - set(ctx.positions()), as_of)
        self.ledger.note_snapshot(rows, as_of)
        self._gap_from_ms = None
        self._prior = None
        buffered, self._buffer = self._buffer or [], None
        for update in sorted(buffered, key=push_order):
            self.recovery.apply(update)
        ctx.count("resyncs")
        ctx.log.info("resynced %d open positions from REST (+%d buffered pushes)",
                     len(rows), len(buffered), extra={"as_of_ms": as_of})
        self.feed.private_synced()

    # ----------------------------------------------------------------- data
    def _on_data(self, msg: dict[str, Any], received_ns: int) -> None:
        ctx = self.ctx
        ctx.message_received(received_ns)
        ctx.count("messages")
        topic = msg["topic"]
        if topic not in POSITION_TOPICS:
            self.feed.report(Problem("unexpected_topic", f"topic {topic!r}"), "private")
            return
        updates, problems = position_push(msg, received_ns)
        for p in problems:
            self.feed.report(p, "private")
        if self._buffer is not None:
            self._buffer.extend(updates)
            return
        for u in updates:
            self.recovery.apply(u)
        if updates:
            self.feed.sync_subscriptions()

    def details(self) -> dict[str, Any]:
        conn = self.conn
        return {
            "connected": bool(conn and conn.alive),
            "age_s": round(conn.age(), 3) if conn else None,
            "subscriptions": position_topics(self.s.categories)
            if conn and conn.alive else [],
            "buffering": self._buffer is not None,
            "unrecoverable": list(self.ledger.unrecoverable),
            "last_pong_age_s": round(time.monotonic() - conn.last_pong, 3)
            if conn and conn.last_pong else None,
        }
