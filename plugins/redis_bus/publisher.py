"""The publisher of one session: outboxes per account, flushed to Redis by one task.

``offer`` is called from the plugin's consumer hooks and never waits: the feed and the
in-process consumers go on whatever Redis does. The flush task writes each account's
waiting events through the publish script (fenced by the account's lease), resyncs a
dirty account from the book once its feed is synced, and backs off while Redis is down.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Callable
from typing import Any

from redis.exceptions import RedisError

from feedctl import (
    Backoff,
    BusKeys,
    EventKind,
    Position,
    PositionEvent,
    Session,
    StatusEvent,
)

from .accounts import account_of, exchange_of, session_accounts
from .config import BusSettings
from .lease import Lease
from .metrics import BusMetrics
from .outbox import AccountOutbox, Item, Planned
from .scripts import MARKS, PUBLISH

log = logging.getLogger("feedctl.redis_bus")

#: Errors that mean "Redis cannot be reached now": retried, never fatal to the session.
DOWN = (RedisError, OSError, TimeoutError)


class Publisher:
    def __init__(self, session: Session, redis: Any, settings: BusSettings,
                 leases: Callable[[str], Lease | None], metrics: BusMetrics,
                 primed: dict[str, tuple[dict[str, str], int | None]] | None = None) -> None:
        self.session, self.redis, self.settings = session, redis, settings
        self.keys = BusKeys(settings.prefix)
        self.leases = leases
        self.metrics = metrics
        self.boxes = {a: AccountOutbox(exchange_of(session, a), a, settings.outbox_max)
                      for a in session_accounts(session)}
        for account, (snapshot, at_ms) in (primed or {}).items():
            box = self.boxes.get(account)
            if box is not None:
                box.prime(snapshot, at_ms)
        self._publish = redis.register_script(PUBLISH)
        self._marks = redis.register_script(MARKS)
        self._wake = asyncio.Event()
        #: one flush at a time: the flush task's and the shutdown's drain would write the
        #: same waiting items and pop them twice
        self._flushing = asyncio.Lock()
        self.connected: bool | None = None
        self._lag_due = 0.0
        self.metrics.outboxes.append(self.boxes)

    # ---------------------------------------------------------------- producer side
    def offer(self, event: Any) -> None:
        box = self.boxes.get(account_of(event, self.session))
        if box is None:
            return
        at_ms = _exchange_ms(event)
        if at_ms is not None:
            self.metrics.observe_age(max(0.0, time.time() - at_ms / 1000))
        before, dropped = box.overflows, box.trails_dropped
        box.offer(event)
        if box.trails_dropped != dropped:
            self.metrics.trails_dropped += 1
            log.warning("outbox trail past its bound (%d items): the account is resynced "
                        "from the book when Redis keeps up", box.trail_len,
                        extra={"account": box.account})
        if box.overflows != before:
            self.metrics.overflows += 1
            log.warning("outbox full: account marked dirty; its lifecycles' boundaries "
                        "are kept and published when Redis keeps up",
                        extra={"account": box.account})
        self._wake.set()

    # ---------------------------------------------------------------- flush task
    async def run(self) -> None:
        backoff = Backoff(0.05, 2.0)
        while True:
            try:
                async with asyncio.timeout(0.1):
                    await self._wake.wait()
            except TimeoutError:
                pass
            self._wake.clear()
            try:
                async with self._flushing:
                    for box in self.boxes.values():
                        await self._flush_account(box)
            except DOWN as exc:
                self._down(exc)
                await asyncio.sleep(backoff.next())
                continue
            if self.connected is not True:
                if self.connected is False:
                    log.info("redis reachable again")
                self.connected = True
            backoff.reset()
            if time.monotonic() >= self._lag_due:
                self._lag_due = time.monotonic() + 1.0
                with contextlib.suppress(*DOWN):
                    await self._read_lag()

    async def _read_lag(self) -> None:
        """Consumer groups' lag on this session's accounts, for the metrics."""
        for account, box in self.boxes.items():
            if box.dirty:
                continue
            async with asyncio.timeout(self.settings.timeout):
                groups = await self.redis.xinfo_groups(self.keys.events(account))
            for k in [k for k in self.metrics.consumer_lag if k[0] == account]:
                del self.metrics.consumer_lag[k]
            for g in groups:
                lag = g.get("lag")
                if lag is not None:
                    self.metrics.consumer_lag[(account, str(g.get("name")))] = int(lag)

    async def drain(self, seconds: float = 1.0) -> None:
        """Write what waits (at shutdown), for at most ``seconds``."""
        try:
            async with asyncio.timeout(seconds), self._flushing:
                for box in self.boxes.values():
                    await self._flush_account(box)
        except (*DOWN, TimeoutError) as exc:
            log.warning("events not published at shutdown: %s", type(exc).__name__)

    def _down(self, exc: BaseException) -> None:
        self.metrics.redis_errors += 1
        if self.connected is not False:
            log.warning("redis unreachable (%s: %s); events wait in the outbox",
                        type(exc).__name__, exc)
        self.connected = False

    async def _flush_account(self, box: AccountOutbox) -> None:
        lease = self.leases(box.account)
        if lease is None or not lease.held:
            box.make_dirty()
            box.marks.clear()
            return
        if box.priming and not self._settle_priming(box):
            box.marks.clear()
            return
        if box.dirty:
            if not self._synced(box.account):
                box.marks.clear()
                return
            await self._resync(box)
        async with asyncio.timeout(self.settings.timeout):
            while box.items and not box.dirty:
                await self._write_batch(box, lease)
            if box.marks and not box.dirty:
                await self._write_marks(box, lease)

    def _settle_priming(self, box: AccountOutbox) -> bool:
        """A primed account (its feeds were given the snapshot as prior state): True once
        its events may be written. If the delivering feed took the prior state, its book's
        events lead from the snapshot: written as they are, in order, each once (the
        publish script checks every step against the snapshot). If it did not, once the
        book is synced the account resyncs from the book as usual."""
        art = self.session.accounts[box.account]
        rt = art.feeds.get(art.router.active) if art.router is not None else None
        if rt is not None and rt.ctx.prior_taken:
            box.priming = False
            # the feeds' statuses as of now, after what waits: consumers (and the bus
            # campaign) see the new holder publishing live, as after a resync
            for n, frt in art.feeds.items():
                box.items.append(Item("status", n, StatusEvent(
                    feed=n, status=frt.ctx.status, reason="current", account=box.account)))
            return True
        if self._synced(box.account):
            box.make_dirty()
            return True
        return False

    def _synced(self, account: str) -> bool:
        """Whether the account's delivering feed holds a synced book (what a resync
        publishes the differences from)."""
        art = self.session.accounts[account]
        if art.router is None:
            return False
        rt = art.feeds.get(art.router.active)
        return rt is not None and rt.book.synced_ns is not None and rt.ctx.state.is_healthy

    async def _resync(self, box: AccountOutbox) -> None:
        async with asyncio.timeout(self.settings.timeout):
            snapshot = await self.redis.hgetall(self.keys.snapshot(box.account))
        believed = box.expects()
        box.load(snapshot)
        # no await from here to the diff: the book and the outbox change together
        art = self.session.accounts[box.account]
        assert art.router is not None
        statuses = [StatusEvent(feed=n, status=rt.ctx.status, reason="current",
                                account=box.account) for n, rt in art.feeds.items()]
        if box.trail is not None and box.expects() == believed:
            # Redis holds what this outbox last wrote: the trail leads from there
            box.from_trail(statuses)
            self.metrics.resyncs += 1
            self.metrics.trail_resyncs += 1
            log.info("account resynced with redis from its trail: %d events",
                     len(box.items) - len(statuses), extra={"account": box.account})
            return
        if box.trail is not None:
            box.trails_dropped += 1
            self.metrics.trails_dropped += 1
            log.warning("redis does not hold what this worker last wrote: the account is "
                        "resynced from the book (lifecycles that began and ended while it "
                        "was dirty are not published)", extra={"account": box.account})
        book: dict[str, Position] = {str(k): p for k, p in art.router.delivered.items()}
        box.diff(book, statuses)
        self.metrics.resyncs += 1
        log.info("account resynced with redis: %d differences", len(box.items) -
                 len(statuses), extra={"account": box.account})

    async def _write_batch(self, box: AccountOutbox, lease: Lease) -> None:
        items = [box.items[i] for i in range(min(self.settings.batch, len(box.items)))]
        plans = box.plan(items)
        written = [p for p in plans if p is not None]
        if not written:
            for _ in items:
                box.items.popleft()
            return
        args: list[Any] = [lease.value, self.settings.events_maxlen, self._minid(),
                           box.exchange, box.account]
        for p in written:
            args.extend(p.args)
        t0 = time.monotonic()
        box.inflight = len(items)
        try:
            result = await self._publish(
                keys=[self.keys.events(box.account), self.keys.snapshot(box.account),
                      self.keys.lease(box.account), self.keys.accounts], args=args)
        finally:
            box.inflight = 0
        now = time.monotonic()
        verdict = _text(result[0])
        if verdict == "fenced":
            self.metrics.fenced_writes += 1
            lease.lost(f"write fenced (lease now {_text(result[1])!r})")
            box.make_dirty()
            return
        count = len(plans)
        if verdict == "conflict":  # written up to the conflicting item, which waits
            count = plans.index(written[int(_text(result[1]))])
        self._applied(box, plans[:count], now)
        self.metrics.write_seconds.append(now - t0)
        if verdict == "conflict":
            log.warning("snapshot differs from what this writer believed: resync",
                        extra={"account": box.account})
            box.make_dirty()

    def _applied(self, box: AccountOutbox, plans: list[Planned | None], now: float) -> None:
        for p in plans:
            box.items.popleft()
            if p is None:
                continue
            if p.after is not None:
                box.told[p.item.key] = p.after
            self.metrics.observe_publish(now - p.item.at)
        self.metrics.events_published += sum(p is not None for p in plans)

    async def _write_marks(self, box: AccountOutbox, lease: Lease) -> None:
        by_category: dict[str, list[str]] = {}
        taken = list(box.marks.items())
        box.marks.clear()
        for key, (ev, _) in taken:
            if box.told.get(key) is None or not box.told[key].present:
                continue  # a price of a position Redis does not hold open: not published
            by_category.setdefault(str(ev.position.category), []).append(ev.model_dump_json())
        for category, bodies in by_category.items():
            result = await self._marks(
                keys=[self.keys.marks(box.exchange, category), self.keys.lease(box.account)],
                args=[lease.value, self.settings.marks_maxlen, *bodies])
            if int(result) < 0:
                self.metrics.fenced_writes += 1
                lease.lost("marks write fenced")
                box.make_dirty()
                return
        now = time.monotonic()
        for _, (_, at) in taken:
            self.metrics.observe_publish(now - at)
        self.metrics.marks_published += len(taken)

    def _minid(self) -> str:
        if self.settings.retention <= 0:
            return ""
        return f"{int((time.time() - self.settings.retention) * 1000)}-0"

    def depth(self) -> int:
        return sum(len(b) for b in self.boxes.values())


def _text(value: Any) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)


def _exchange_ms(event: Any) -> int | None:
    """The exchange time of what an event reports: its mark's for a price, else its
    position's."""
    if not isinstance(event, PositionEvent):
        return None
    pos = event.position
    if event.kind is EventKind.PRICE:
        return pos.mark_exchange_ms
    return pos.exchange_ms
