"""RemoteSession: a Session's ``events()`` for a consumer anywhere, read from Redis.

::

    async with RemoteSession("redis://bus:6379/0", accounts=["main"]) as rs:
        async for event in rs.events():
            ...

Each account starts from its snapshot (its feeds' status, then an ``opened`` marked
synthetic per open position, exactly as ``Session.events()`` replays) and goes on with
the entries after the snapshot's stream id: no gap, no duplicate. An entry whose
``prev`` is not the last entry read means entries were trimmed away unread: a
:class:`GapEvent`, then a fresh snapshot. Price events come from the marks streams
(latest wins), only for positions the consumer holds open.

With ``group``, the account's stream is read through a Redis consumer group: a new
group starts at the snapshot; an existing one resumes where it was acknowledged
(this consumer's pending entries first, then entries idle longer than
``claim_after`` in other consumers of the group, then new ones). An entry is
acknowledged when the consumer asks for the events after its batch (at least once:
after a crash, redelivered events have the ids they had; see ``stream.meta``).
"""

from __future__ import annotations

import asyncio
import os
from collections import deque
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from ..errors import ConfigError
from ..models import Category, EventKind, PositionEvent, PositionKey, StatusEvent
from .events import EntryMeta, GapEvent, decode
from .layout import DEFAULT_PREFIX, BusKeys, stream_id_tuple


@dataclass
class _Account:
    name: str
    last: str = "0-0"
    exchange: str | None = None
    open: dict[PositionKey, int] = field(default_factory=dict)
    #: False until the first entry after a ``--from`` start (its ``prev`` is unknown).
    chained: bool = True


class RemoteSession:
    def __init__(self, redis_url: str, *, accounts: Sequence[str] | None = None,
                 group: str | None = None, consumer: str | None = None,
                 prefix: str = DEFAULT_PREFIX, start: str | None = None, marks: bool = True,
                 block: float = 1.0, claim_after: float = 30.0, batch: int = 500) -> None:
        self._url = redis_url
        self.keys = BusKeys(prefix)
        self.accounts_wanted = list(accounts) if accounts is not None else None
        self.group = group
        self.consumer = consumer or f"{os.uname().nodename}-{os.getpid()}"
        self.start_id = start
        self.marks = marks
        self.block_ms = max(1, int(block * 1000))
        self.claim_ms = int(claim_after * 1000)
        self.batch = batch
        self.redis: Any = None

    async def __aenter__(self) -> RemoteSession:
        await self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.stop()

    async def start(self) -> None:
        try:
            import redis.asyncio as aioredis
        except ImportError as exc:
            raise ConfigError("RemoteSession needs redis-py: pip install "
                              "'feedctl-positions[redis]'") from exc
        from redis.asyncio.retry import Retry
        from redis.backoff import NoBackoff
        from redis.exceptions import ConnectionError as RedisConnectionError

        # no retries inside the client (its default: 10, with backoff, timeouts too):
        # a command a cancellation interrupted is not retried behind the reader's back
        # (the cancellation would be lost), and the reader retries outages itself
        self.redis = aioredis.from_url(self._url, decode_responses=True, retry=Retry(
            NoBackoff(), 0, supported_errors=(RedisConnectionError,)))
        await self.redis.ping()

    async def stop(self) -> None:
        if self.redis is not None:
            await self.redis.aclose()
            self.redis = None

    async def accounts(self) -> list[str]:
        if self.accounts_wanted is not None:
            return self.accounts_wanted
        return sorted(await self.redis.smembers(self.keys.accounts))

    def events(self) -> RemoteEventStream:
        if self.redis is None:
            raise RuntimeError("RemoteSession is not started: use `async with`")
        return RemoteEventStream(self)


class RemoteEventStream:
    """The async iterator of :meth:`RemoteSession.events`."""

    def __init__(self, rs: RemoteSession) -> None:
        self.rs = rs
        self.redis = rs.redis
        self._accounts: dict[str, _Account] = {}
        self._marks_cursor: dict[str, str] = {}
        self._marks_exchanges: set[str] = set()
        self._ready: deque[tuple[Any, EntryMeta]] = deque()
        self._to_ack: list[tuple[str, str]] = []
        self._started = False
        #: Where the event last returned came from.
        self.meta: EntryMeta | None = None
        self.gaps = 0
        self.reconnects = 0

    def __aiter__(self) -> RemoteEventStream:
        return self

    async def __anext__(self) -> Any:
        if not self._started:
            await self._start()
        task = asyncio.current_task()
        while not self._ready:
            try:
                await self._ack()
                await self._read()
            except Exception as exc:
                if task is not None and task.cancelling():
                    # the client turned our cancellation into a connection error (it
                    # drops the connection a cancelled command was using): the reader was
                    # cancelled, it does not retry
                    raise asyncio.CancelledError from exc
                if not _redis_down(exc):
                    raise
                self.reconnects += 1  # Redis down or restarting: try again
                await asyncio.sleep(min(2.0, 0.1 * 2 ** min(self.reconnects, 5)))
                await self._after_outage(exc)
                continue
            self.reconnects = 0
            if task is not None and task.cancelling():
                # a cancellation the client swallowed (it may finish a blocking read that
                # was interrupted): the reader was cancelled all the same
                raise asyncio.CancelledError
        event, self.meta = self._ready.popleft()
        return event

    async def _after_outage(self, exc: BaseException) -> None:
        """A group that Redis no longer has (restarted without persistence): join it
        again from a fresh snapshot, after saying so with a gap."""
        if self.rs.group is None or "NOGROUP" not in str(exc):
            return
        for acc in self._accounts.values():
            self._ready.append((GapEvent(account=acc.name, expected=acc.last, got="0-0"),
                                EntryMeta(acc.name, None, None)))
            self.gaps += 1
            await self._join_group(acc)

    # ------------------------------------------------------------------ start
    async def _start(self) -> None:
        self._started = True
        for name in await self.rs.accounts():
            acc = self._accounts[name] = _Account(name)
            if self.rs.group is not None:
                await self._join_group(acc)
            elif self.rs.start_id is not None:
                acc.last, acc.chained = self.rs.start_id, False
                acc.exchange = await self.redis.hget(self.rs.keys.snapshot(name), "_exchange")
            else:
                await self._snapshot(acc)
        if self.rs.marks:
            await self._seed_marks()

    async def _snapshot(self, acc: _Account, *, queue: bool = True) -> str:
        """Queue the account's snapshot (the feeds' status, then an ``opened`` per open
        position); returns the stream id it is as of. Without ``queue``, only learn
        which positions are open (for the price events)."""
        snap: dict[str, str] = await self.redis.hgetall(self.rs.keys.snapshot(acc.name))
        acc.exchange = snap.get("_exchange", acc.exchange)
        meta = EntryMeta(acc.name, None, None)
        events: list[tuple[Any, EntryMeta]] = []
        is_open: dict[PositionKey, int] = {}
        for name in sorted(snap):
            if name.startswith("s:") and name != "s:route":
                ev = decode(snap[name])
                if isinstance(ev, StatusEvent):
                    events.append((StatusEvent(feed=ev.feed, status=ev.status,
                                               account=ev.account or acc.name,
                                               reason="current"), meta))
        for name in sorted(snap):
            if name.startswith("p:"):
                ev = decode(snap[name])
                if isinstance(ev, PositionEvent):
                    is_open[ev.position.key] = ev.position.received_ns
                    events.append((PositionEvent(
                        kind=EventKind.OPENED, feed=ev.feed, position=ev.position,
                        synthetic=True), meta))
        last = snap.get("_last", "0-0")
        acc.open = is_open
        if queue:
            acc.last, acc.chained = last, True
            self._ready.extend(events)
        return last

    async def _join_group(self, acc: _Account) -> None:
        from redis.exceptions import ResponseError

        stream = self.rs.keys.events(acc.name)
        snap_last = await self._snapshot(acc, queue=False)
        try:
            await self.redis.xgroup_create(stream, self.rs.group, id=snap_last, mkstream=True)
        except ResponseError as exc:
            if "BUSYGROUP" not in str(exc):
                raise
        else:  # a new group: the snapshot, then everything after it
            await self._snapshot(acc)
            if acc.last != snap_last:  # written in between: start the group there too
                await self.redis.xgroup_setid(stream, self.rs.group, acc.last)
            return
        # the group exists: resume where it was acknowledged, not from the snapshot
        for g in await self.redis.xinfo_groups(stream):
            if g.get("name") == self.rs.group:
                acc.last = g.get("last-delivered-id") or "0-0"
        pending = await self.redis.xreadgroup(self.rs.group, self.rs.consumer, {stream: "0"},
                                              count=self.rs.batch)
        claimed = await self.redis.xautoclaim(stream, self.rs.group, self.rs.consumer,
                                              self.rs.claim_ms, "0-0", count=self.rs.batch)
        # XAUTOCLAIM also returns this consumer's own pending entries (they are idle
        # too): each entry once, in stream order.
        entries = dict([e for _, es in pending for e in es] + list(claimed[1]))
        for sid in sorted(entries, key=stream_id_tuple):
            self._take(acc, sid, entries[sid], chained=False)

    async def _seed_marks(self) -> None:
        """Follow the marks streams of every exchange the accounts are on (seeded with
        their latest price per position); called again when a snapshot names a new one."""
        for exchange in {a.exchange for a in self._accounts.values() if a.exchange}:
            if exchange in self._marks_exchanges:
                continue
            self._marks_exchanges.add(exchange)
            for category in Category:
                key = self.rs.keys.marks(exchange, category)
                latest = await self.redis.xrevrange(key, count=self.rs.batch)
                self._marks_cursor[key] = latest[0][0] if latest else "0-0"
                seen: set[tuple[str, PositionKey]] = set()
                for sid, fields in latest:
                    ev = decode(fields["body"])
                    if not isinstance(ev, PositionEvent):
                        continue
                    k = (ev.position.account, ev.position.key)
                    if k not in seen:
                        seen.add(k)
                        self._take_mark(ev, sid)

    # ------------------------------------------------------------------ reading
    async def _read(self) -> None:
        if self.rs.marks and any(a.exchange and a.exchange not in self._marks_exchanges
                                 for a in self._accounts.values()):
            await self._seed_marks()
            if self._ready:
                return
        group = self.rs.group
        streams = {self.rs.keys.events(a.name): (">" if group else a.last)
                   for a in self._accounts.values()}
        if group is not None:
            answer = await self.redis.xreadgroup(group, self.rs.consumer, streams,
                                                 count=self.rs.batch, block=self.rs.block_ms)
            if self._marks_cursor:
                answer = list(answer or []) + list(await self.redis.xread(
                    self._marks_cursor, count=self.rs.batch) or [])
        else:
            answer = await self.redis.xread({**streams, **self._marks_cursor},
                                            count=self.rs.batch, block=self.rs.block_ms)
        for stream, entries in answer or []:
            if stream in self._marks_cursor:
                for sid, fields in entries:
                    self._marks_cursor[stream] = sid
                    ev = decode(fields["body"])
                    if isinstance(ev, PositionEvent):
                        self._take_mark(ev, sid)
                continue
            acc = self._accounts[self.rs.keys.account_of(stream)]
            for sid, fields in entries:
                if not await self._take_checked(acc, sid, fields) and group is None:
                    break  # read again from the fresh snapshot's id

    async def _take_checked(self, acc: _Account, sid: str, fields: dict[str, str]) -> bool:
        """Take one entry; False if it revealed a gap. Without a group the rest of the
        batch is then read again after the fresh snapshot; in a group it was delivered
        to this consumer already, so it goes on here: entries the snapshot covers are
        acknowledged, not delivered (they would repeat what the snapshot said)."""
        prev = fields.get("prev", "0-0")
        if self.rs.group is not None and acc.chained and \
                stream_id_tuple(sid) <= stream_id_tuple(acc.last):
            self._to_ack.append((self.rs.keys.events(acc.name), sid))
            return True
        if acc.chained and prev != acc.last and not await self._delivered_elsewhere(acc, prev):
            self.gaps += 1
            self._ready.append((GapEvent(account=acc.name, expected=acc.last, got=prev),
                                EntryMeta(acc.name, sid, None)))
            snap_last = await self._snapshot(acc)
            if self.rs.group is not None:
                self._to_ack.append((self.rs.keys.events(acc.name), sid))
                if stream_id_tuple(sid) > stream_id_tuple(snap_last):
                    self._take(acc, sid, fields, chained=True)
                acc.last = max(acc.last, sid, key=stream_id_tuple)
            return False
        self._take(acc, sid, fields, chained=True)
        return True

    async def _delivered_elsewhere(self, acc: _Account, prev: str) -> bool:
        """In a group, an entry the group gave another consumer is no gap of ours."""
        if self.rs.group is None or prev == "0-0":
            return False
        return bool(await self.redis.xrange(self.rs.keys.events(acc.name), prev, prev))

    def _take(self, acc: _Account, sid: str, fields: dict[str, str], *, chained: bool) -> None:
        if chained or stream_id_tuple(sid) > stream_id_tuple(acc.last):
            acc.last, acc.chained = sid, True
        if self.rs.group is not None:
            self._to_ack.append((self.rs.keys.events(acc.name), sid))
        ev = decode(fields["body"])
        if isinstance(ev, PositionEvent) and not ev.past:
            if ev.kind is EventKind.CLOSED:
                acc.open.pop(ev.position.key, None)
            else:
                acc.open[ev.position.key] = ev.position.received_ns
        self._ready.append((ev, EntryMeta(acc.name, sid, fields.get("id"))))

    def _take_mark(self, ev: PositionEvent, sid: str) -> None:
        acc = self._accounts.get(ev.position.account)
        if acc is None:
            return
        since = acc.open.get(ev.position.key)
        if since is None or ev.position.received_ns < since:
            return  # not open here, or older than the lifecycle state held
        self._ready.append((ev, EntryMeta(acc.name, sid, None)))

    async def _ack(self) -> None:
        if not self._to_ack or self.rs.group is None:
            return
        by_stream: dict[str, list[str]] = {}
        for stream, sid in self._to_ack:
            by_stream.setdefault(stream, []).append(sid)
        for stream, ids in by_stream.items():
            await self.redis.xack(stream, self.rs.group, *ids)
        self._to_ack.clear()

    async def lag(self) -> dict[str, int | None]:
        """Entries of each account this consumer's group has not read (groups only)."""
        out: dict[str, int | None] = {}
        for name in self._accounts:
            for g in await self.redis.xinfo_groups(self.rs.keys.events(name)):
                if g.get("name") == self.rs.group:
                    out[name] = g.get("lag")
        return out


def _redis_down(exc: BaseException) -> bool:
    """Redis cannot be reached or lost the group: a reason to retry, not to stop."""
    from redis.exceptions import ConnectionError as RedisConnectionError
    from redis.exceptions import ResponseError
    from redis.exceptions import TimeoutError as RedisTimeoutError

    if isinstance(exc, RedisConnectionError | RedisTimeoutError | OSError | TimeoutError):
        return True
    return isinstance(exc, ResponseError) and ("NOGROUP" in str(exc) or
                                               "LOADING" in str(exc))
