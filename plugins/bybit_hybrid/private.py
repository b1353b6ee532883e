"""The private socket: auth, ``position`` pushes, resync from REST after every gap.

Cycle: connect → auth (expires = server-corrected now + margin) → wait for the ack →
start buffering → subscribe ``position.<category>`` for each configured category →
wait for the ack → REST snapshot →
``ctx.reconcile`` → apply the buffered pushes in (updatedTime, seq) order → healthy.
A planned reconnect (``max_connection_lifetime``) opens, authenticates and subscribes
the new socket before the old one closes, so no push is missed and no resync is
needed; if the old one died meanwhile, the feed resyncs anyway.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections import deque
from typing import TYPE_CHECKING, Any
from urllib.parse import urlencode, urlsplit, urlunsplit

from feedctl import (
    Backoff,
    Category,
    FatalFeedError,
    PositionKey,
    PositionUpdate,
    RetryableFeedError,
    redact,
)

from .constants import POSITION_TOPICS, position_topics
from .gap import Fill, hedge_key, replay
from .parse import Problem, position_push, push_order
from .rest import setting_hint
from .signing import ws_auth_args
from .ws import Conn, ConnectionLost, RequestRejected

if TYPE_CHECKING:
    from .feed import HybridFeed


#: A resync replays the fills since the fill floor (the last snapshot: every fill before
#: it is in the book) - pushes can be lost unnoticed before the gap itself - but not
#: more than this before the lost socket's known-good point (``Conn.known_good_ns``:
#: its last answered ping, its opening, or its last frame if older): a bound on REST
#: pages when no snapshot was taken for long (audit off).
REPLAY_LOOKBACK_MS = 600_000


#: States remembered per key between snapshots for the unrecoverable-loss check.
SEEN_PER_KEY = 2000


class AuthRejected(Exception):
    """Bybit answered ``auth`` with ``success: false``."""


class PrivateStream:
    """Owns the private socket(s) of one feed; ``run()`` until cancelled."""

    def __init__(self, feed: HybridFeed) -> None:
        self.feed = feed
        self.ctx, self.s = feed.ctx, feed.settings
        self.conn: Conn | None = None
        self._buffer: list[PositionUpdate] | None = None
        self._auth_failures = 0
        self._backoff = Backoff(self.s.backoff_base, self.s.backoff_cap)
        #: newest exchange time of a push per key (the audit skips keys pushed after it)
        self.last_push_ms: dict[PositionKey, int] = {}
        #: newest seq applied per key (gap replay starts after it)
        self.last_seq: dict[PositionKey, int] = {}
        #: server ms since which pushes may be missing; None while none are
        self._gap_from_ms: int | None = None
        #: server ms up to which every fill is reflected in the book (the last snapshot)
        self.fills_floor_ms: int | None = None
        #: server ms up to which a key's fills are reflected, for keys a snapshot closed
        #: after ``fills_floor_ms`` (a listing has no seq for a key it no longer lists)
        self.key_floor_ms: dict[PositionKey, int] = {}
        #: per key, seq -> exchange ms of every state the book was given (push, snapshot
        #: row, replay) after the fill floor: a later fill whose seq is missing here and
        #: older than the book's was lost with the socket up and overtaken by a newer push
        self._seen: dict[PositionKey, dict[int, int]] = {}
        #: per key, the seen seqs whose state was flat (a lost run of fills between two
        #: of them is a complete lifecycle of the past: delivered as such)
        self._flat_seen: dict[PositionKey, set[int]] = {}
        #: the newest such losses (they cannot be delivered in order): status and audit
        self.unrecoverable: deque[dict[str, Any]] = deque(maxlen=100)
        #: (category, symbol) -> hedge mode? as rows, pushes and REST told (fills carry
        #: no positionIdx: the replay needs it to put a fill on its side)
        self.modes: dict[tuple[Category, str], bool] = {}

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
        conn: Conn | None = None
        try:
            while True:
                if conn is not None and conn.closed.done():  # died while we tried to swap
                    await self._lost(conn, conn.closed.result())
                    conn = None
                swapping = conn is not None  # the old socket still serves: no state change
                try:
                    new = await self._connect(buffer=conn is None)
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
                if old is None or old.closed.done():
                    if old is not None:  # the old socket died during the swap: a gap
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
        timeout = None if lifetime is None else max(0.0, lifetime - conn.age())
        try:
            async with asyncio.timeout(timeout):
                return await asyncio.shield(conn.closed)
        except TimeoutError:
            return None

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
                await feed.connects.acquire()
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
            if self._gap_from_ms is not None and self.fills_floor_ms is not None:
                # from the fill floor, not just the gap: pushes can also have been lost
                # before it, unnoticed (a stall holding no ping), and a replay from a
                # wrong start state builds wrong states (F13)
                since = max(self.fills_floor_ms, self._gap_from_ms - REPLAY_LOOKBACK_MS)
                await self.replay_fills(rows, since, None)
        except BaseException:
            # the gap stays open and the next resync covers these pushes; applied now
            # they would move the replay cursor past the gap's fills (F12)
            self._buffer = None
            raise
        before = set(ctx.positions())
        ctx.reconcile(rows, as_of_ms=as_of, covers=self.feed.covers)
        self.note_closed(before - set(ctx.positions()), as_of)
        self.note_snapshot(rows, as_of)
        self._gap_from_ms = None
        buffered, self._buffer = self._buffer or [], None
        for update in sorted(buffered, key=push_order):
            self._apply(update)
        ctx.count("resyncs")
        ctx.log.info("resynced %d open positions from REST (+%d buffered pushes)",
                     len(rows), len(buffered), extra={"as_of_ms": as_of})
        self.feed.private_synced()

    def note_snapshot(self, rows: list[PositionUpdate], floor_ms: int | None) -> None:
        """The book now holds a snapshot: its rows' seqs, and every fill up to
        ``floor_ms`` (server time), are accounted for; a replay starts after them."""
        for row in rows:
            self._note(row)
        if floor_ms is not None:
            floor = self.fills_floor_ms = max(self.fills_floor_ms or floor_ms, floor_ms)
            self.key_floor_ms = {k: ms for k, ms in self.key_floor_ms.items() if ms > floor}
            # a state's fills are not later than the state: none after the floor now
            for key, seqs in list(self._seen.items()):
                kept = {seq: ms for seq, ms in seqs.items() if ms > floor}
                if kept:
                    self._seen[key] = kept
                    self._flat_seen[key] = self._flat_seen.get(key, set()) & set(kept)
                else:
                    del self._seen[key]
                    self._flat_seen.pop(key, None)

    def note_closed(self, keys: set[PositionKey], as_of_ms: int | None) -> None:
        """A snapshot taken at ``as_of_ms`` closed ``keys``: every fill of theirs up to
        then is reflected (the flat book); a replay of one would reopen a phantom."""
        if as_of_ms is None:
            return
        for key in keys:
            self.key_floor_ms[key] = max(self.key_floor_ms.get(key, as_of_ms), as_of_ms)

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
            self._apply(u)
        if updates:
            self.feed.sync_subscriptions()

    async def replay_fills(
        self, rows: list[PositionUpdate], since_ms: int, until_ms: int | None,
        flat_until_ms: int | None = None,
    ) -> int:
        """Apply the states of fills the stream never delivered (see gap.py): fills
        after the floor and up to ``until_ms`` - for keys ``rows`` does not list (flat
        in the snapshot), up to ``flat_until_ms`` if given - with a seq newer than the
        book's. Returns how many states were applied. A transient failure to read the fills raises
        ``RetryableFeedError``: the caller must not move the fill floor past them; a
        refusal (``FatalFeedError``: the key may not read executions) skips the replay."""
        if not self.s.replay_gaps:
            return 0
        try:
            fills = await self.feed.rest.fills(self.s.categories, since_ms)
        except RetryableFeedError:
            self.ctx.count("gap_replay_failures")
            raise
        except FatalFeedError as exc:
            self.ctx.count("gap_replay_failures")
            self.ctx.log.warning("fill replay skipped (fills refused): %s", exc)
            return 0
        floor = self.fills_floor_ms if self.fills_floor_ms is not None else since_ms
        book = self.ctx.positions()
        current: set[tuple[Category, str]] = set()
        for k in [*book, *(r.key for r in rows)]:
            self.modes[(k.category, k.symbol)] = k.position_idx != 0
            current.add((k.category, k.symbol))
        fills = await self._on_their_sides(fills, current)
        listed = {r.key for r in rows}

        def due(f: Fill) -> bool:
            if until_ms is None or f.exec_ms <= until_ms:
                return True
            return flat_until_ms is not None and f.key not in listed and f.exec_ms <= flat_until_ms

        fills = [f for f in fills
                 if f.exec_ms > max(floor, self.key_floor_ms.get(f.key, floor)) and due(f)]
        self._report_unrecoverable(fills)
        final = {r.key: r.seq for r in rows if r.seq is not None}
        leverage = {r.key: r.leverage for r in rows}
        updates = replay(fills, book, self.last_seq, final, leverage, time.time_ns())
        for update in updates:
            self._apply(update)
        if updates:
            self.ctx.count("gap_replayed", len(updates))
            self.ctx.log.warning("replayed %d position states from %d fills the stream did "
                                 "not deliver", len(updates), len(fills))
        return len(updates)

    async def _on_their_sides(self, fills: list[Fill],
                              current: set[tuple[Category, str]]) -> list[Fill]:
        """``fills`` keyed by their position: hedge-mode symbols' fills on the side that
        moved (gap.hedge_key). The mode of a symbol neither the book nor the snapshot
        holds now is looked up (REST: it may have been switched while flat); one that
        cannot be is left out of the replay (counted) rather than replayed on the wrong
        key."""
        unknown: dict[Category, set[str]] = {}
        for f in fills:
            if (f.key.category, f.key.symbol) not in current:
                self.modes.pop((f.key.category, f.key.symbol), None)
                unknown.setdefault(f.key.category, set()).add(f.key.symbol)
        for category, symbols in unknown.items():
            try:
                self.modes.update({(category, sym): hedged for sym, hedged in
                                   (await self.feed.rest.hedged(category, sorted(symbols))
                                    ).items()})
            except (RetryableFeedError, FatalFeedError) as exc:
                self.ctx.log.warning("position modes of %s not read: %s", sorted(symbols), exc)
        out: list[Fill] = []
        for f in fills:
            mode = self.modes.get((f.key.category, f.key.symbol))
            if mode is None:
                self.ctx.count("gap_replay_mode_unknown")
                continue
            out.append(hedge_key(f) if mode else f)
        return out

    def _report_unrecoverable(self, fills: list[Fill]) -> None:
        """Fills after the floor whose states never reached the book although a newer
        state did: lost while the socket stayed up (docs/reliability.md, L1). Putting
        them back would reorder the position's history, so they are reported, once."""
        lost: dict[PositionKey, dict[int, int]] = {}
        for f in fills:
            if f.seq <= self.last_seq.get(f.key, -1) and f.seq not in self._seen.get(f.key, {}):
                states = lost.setdefault(f.key, {})
                states[f.seq] = max(states.get(f.seq, 0), f.exec_ms)
        for key, states in lost.items():
            recovered = self._recover_past(key, sorted(states), fills)
            self._seen.setdefault(key, {}).update(states)
            if recovered:
                self.ctx.count("states_recovered_past", len(recovered))
                self.ctx.log.warning(
                    "%s: %d position states (seq %d..%d) never arrived and a newer one did; "
                    "their fills make lifecycles that opened and closed before it: "
                    "delivered as past lifecycles", key.symbol, len(recovered),
                    min(recovered), max(recovered), extra={"symbol": key.symbol})
                for seq in recovered:
                    states.pop(seq, None)
            if not states:
                continue
            seqs = sorted(states)
            self.ctx.count("states_unrecoverable", len(seqs))
            self.unrecoverable.append({
                "category": key.category.value, "symbol": key.symbol, "seqs": seqs,
                "from_ms": min(states.values()), "to_ms": max(states.values())})
            self.ctx.log.warning(
                "%s: %d position states (seq %d..%d) never arrived and a newer one did: "
                "they cannot be delivered in order and are skipped (pushes lost with the "
                "socket up)", key.symbol, len(seqs), seqs[0], seqs[-1],
                extra={"symbol": key.symbol, "seqs": seqs})

    def _recover_past(self, key: PositionKey, lost: list[int], fills: list[Fill]) -> set[int]:
        """The lost seqs that form whole lifecycles between two flat states the book saw:
        replayed from flat and handed to ``ctx.past_lifecycles``; those seqs returned."""
        seen = self._seen.get(key, {})
        flat = self._flat_seen.get(key, set())
        before = [s for s in seen if s < lost[0]]
        after = [s for s in seen if s > lost[-1]]
        if not before or not after:
            return set()
        a, b = max(before), min(after)
        if a not in flat or b not in flat or any(a < s < b for s in seen):
            return set()
        run = [f for f in fills if f.key == key and a < f.seq <= b]
        states = replay(run, {}, {key: a}, {}, {}, time.time_ns())
        if not states or states[-1].size != 0 or states[-1].seq != b:
            return set()
        try:
            self.ctx.past_lifecycles(states)
        except ValueError:
            return set()
        return set(lost)

    def _note(self, update: PositionUpdate) -> None:
        key = update.key
        if update.seq is None:
            return
        seen = self._seen.setdefault(key, {})
        seen[update.seq] = update.exchange_ms or 0
        if update.size == 0:
            self._flat_seen.setdefault(key, set()).add(update.seq)
        if len(seen) > SEEN_PER_KEY:  # no snapshot for long (audit off): keep the newest
            self._seen[key] = dict(sorted(seen.items())[SEEN_PER_KEY // 2:])
            self._flat_seen[key] = self._flat_seen.get(key, set()) & set(self._seen[key])
        if update.seq > self.last_seq.get(key, -1):
            self.last_seq[key] = update.seq

    def _apply(self, update: PositionUpdate) -> None:
        key = update.key
        self.modes[(key.category, key.symbol)] = key.position_idx != 0
        if update.exchange_ms is not None and update.exchange_ms > self.last_push_ms.get(key, 0):
            self.last_push_ms[key] = update.exchange_ms
        self._note(update)
        self.ctx.apply(update)

    def details(self) -> dict[str, Any]:
        conn = self.conn
        return {
            "connected": bool(conn and conn.alive),
            "age_s": round(conn.age(), 3) if conn else None,
            "subscriptions": position_topics(self.s.categories)
            if conn and conn.alive else [],
            "buffering": self._buffer is not None,
            "unrecoverable": list(self.unrecoverable),
            "last_pong_age_s": round(time.monotonic() - conn.last_pong, 3)
            if conn and conn.last_pong else None,
        }
