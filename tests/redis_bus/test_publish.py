"""A session publishes its routed events; a RemoteSession reads them back."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import pytest

from feedctl import EventKind, PositionEvent, RemoteSession, StatusEvent
from tests.conftest import run_async
from tests.redis_bus.conftest import RedisServer
from tests.redis_bus.helpers import Reader, publisher, publishing, wait_until_published
from tests.rollout.conftest import collector, wait_for

pytestmark = [pytest.mark.integration, pytest.mark.timeout(120)]


def from_opened(events: list[Any]) -> list[Any]:
    """``events`` from the first ``opened`` that is not a snapshot's on."""
    at = next(i for i, e in enumerate(events) if isinstance(e, PositionEvent)
              and e.kind is EventKind.OPENED and not e.synthetic)
    return events[at:]


def test_a_remote_consumer_gets_the_same_json_as_jsonl(tmp_path: Path,
                                                       redis_server: RedisServer) -> None:
    async def main() -> tuple[list[str], list[str]]:
        async with publishing(tmp_path, redis_server.url) as (_, ctl, session), \
                RemoteSession(redis_server.url, accounts=["main"]) as rs:
            local, task = collector(session)
            remote = Reader(rs)
            await wait_for(lambda: remote.events, 5)  # the snapshot has been read
            await ctl.set_price("ETHUSDT", "3000")
            await ctl.set_position("ETHUSDT", "Buy", "0.5", entry_price="3000")
            await wait_for(lambda: session.router.delivered, 15)
            await ctl.set_position("ETHUSDT", "Buy", "0.8", entry_price="3000")
            await asyncio.sleep(0.5)
            await ctl.close_position("ETHUSDT")
            await wait_for(lambda: any(e.kind is EventKind.CLOSED for e in remote.lifecycle()),
                           5)
            await wait_until_published(session)
            await asyncio.sleep(0.3)
            task.cancel()
            await remote.close()
            # Both sides from ETHUSDT's opened on: a status published between the remote
            # snapshot and the local replay is in one side's head only, not a difference.
            want = [e.model_dump_json() for e in from_opened(local)
                    if isinstance(e, StatusEvent) or
                    (isinstance(e, PositionEvent) and e.kind.is_lifecycle)]
            got = [e.model_dump_json() for e in from_opened(remote.events)
                   if not (isinstance(e, PositionEvent) and e.kind is EventKind.PRICE)]
            return want, got

    want, got = run_async(main(), timeout=90)
    kinds = [e for e in want if '"type":"position"' in e]
    assert len(kinds) >= 3  # opened, changed, closed at least
    assert got == want


def test_snapshot_and_tail_while_publishing_goes_on_has_no_gap_and_no_duplicate(
        tmp_path: Path, redis_server: RedisServer) -> None:
    """Readers that join at different moments of a busy stream each end with the book's
    positions, every event id once, and no gap."""
    from tests.redis_bus.helpers import book_state, replay, trade

    async def main() -> tuple[list[Reader], dict[Any, str]]:
        async with publishing(tmp_path, redis_server.url) as (_, ctl, session):
            readers: list[Reader] = []
            sessions: list[RemoteSession] = []
            trader = asyncio.create_task(trade(ctl, 40, pause=0.04))
            for _ in range(4):
                rs = RemoteSession(redis_server.url, accounts=["main"])
                await rs.start()
                sessions.append(rs)
                readers.append(Reader(rs))
                await asyncio.sleep(0.4)
            await trader
            await wait_for(lambda: not publisher(session).depth(), 15)
            want = book_state(session)
            await wait_for(lambda: all(replay(r.events) == want for r in readers), 15)
            for r in readers:
                await r.close()
            for rs in sessions:
                await rs.stop()
            return readers, want

    readers, want = run_async(main(), timeout=90)
    assert want, "the trader left positions open"
    for r in readers:
        assert not r.gaps()
        ids = r.ids()
        assert len(ids) == len(set(ids)), "an event id arrived twice"
        assert replay(r.events) == want
    assert len(readers[0].ids()) > len(readers[-1].ids())  # the last joined later


def test_a_reader_whose_position_was_trimmed_away_gets_a_gap_then_a_fresh_snapshot(
        tmp_path: Path, redis_server: RedisServer) -> None:
    import redis.asyncio as aioredis

    from tests.redis_bus.helpers import book_state, replay

    async def main() -> tuple[list[Any], dict[Any, str]]:
        async with publishing(tmp_path, redis_server.url) as (_, ctl, session), \
                RemoteSession(redis_server.url, accounts=["main"]) as rs:
            stream = rs.events()
            await ctl.set_position("BTCUSDT", "Buy", "0.5")
            got = [await anext(stream)]  # the snapshot's first event
            await wait_for(lambda: session.router.delivered, 15)
            await ctl.set_position("ETHUSDT", "Sell", "1")
            await wait_for(lambda: len(session.router.delivered) == 2, 15)
            await wait_until_published(session)
            r = aioredis.from_url(redis_server.url)
            await r.xtrim("feedctl:events:main", maxlen=0)  # what MAXLEN does to a laggard
            await r.aclose()
            await ctl.close_position("BTCUSDT")
            async with asyncio.timeout(15):
                while not any(getattr(e, "type", "") == "gap" for e in got) or \
                        replay(got) != book_state(session):
                    got.append(await anext(stream))
            return got, book_state(session)

    got, want = run_async(main(), timeout=90)
    gap_at = next(i for i, e in enumerate(got) if getattr(e, "type", "") == "gap")
    after = got[gap_at + 1:]
    assert after and all(getattr(e, "synthetic", True) or e.type == "status"
                         for e in after[:len(want)])
    assert replay(got) == want


def test_event_ids_count_lifecycles_and_events_within_them(tmp_path: Path,
                                                           redis_server: RedisServer) -> None:
    async def main() -> list[str]:
        async with publishing(tmp_path, redis_server.url) as (_, ctl, session), \
                RemoteSession(redis_server.url, accounts=["main"]) as rs:
            reader = Reader(rs)
            for size in ("0.5", "0.7"):
                await ctl.set_position("BTCUSDT", "Buy", size)
                await wait_for(lambda s=size: any(  # type: ignore[misc]
                    str(p.size) == s for p in session.router.delivered.values()), 15)
            await ctl.close_position("BTCUSDT")
            await wait_for(lambda: not session.router.delivered, 15)
            await ctl.set_position("BTCUSDT", "Sell", "0.2")
            await wait_for(lambda: len(reader.ids()) >= 4, 15)
            await reader.close()
            return reader.ids()

    base = "bybit:main:linear:BTCUSDT:0"
    assert run_async(main(), timeout=90) == [
        f"{base}:1:0", f"{base}:1:1", f"{base}:1:2", f"{base}:2:0"]


def test_no_secret_is_written_to_any_key(tmp_path: Path, redis_server: RedisServer) -> None:
    """The API key and secret of the account appear in no key name and no value."""
    import redis.asyncio as aioredis

    async def main() -> tuple[list[str], list[str], bytes]:
        async with publishing(tmp_path, redis_server.url) as (sim, ctl, session):
            await ctl.set_position("ETHUSDT", "Buy", "0.5")
            await wait_for(lambda: session.router.delivered, 15)
            await asyncio.sleep(0.5)  # some price events too
            await wait_until_published(session)
            secrets = [sim.api_key, sim.api_secret]
            r = aioredis.from_url(redis_server.url)
            dump = b""
            keys = [k async for k in r.scan_iter(count=1000)]
            for key in keys:
                dump += key + b"\n"
                kind = (await r.type(key)).decode()
                if kind == "stream":
                    for sid, fields in await r.xrange(key):
                        dump += sid + b"".join(k + v for k, v in fields.items())
                elif kind == "hash":
                    dump += b"".join(k + v for k, v in (await r.hgetall(key)).items())
                elif kind == "set":
                    dump += b"".join(await r.smembers(key))
                else:
                    dump += await r.get(key) or b""
            await r.aclose()
            return secrets, [k.decode() for k in keys], dump

    secrets, keys, dump = run_async(main(), timeout=90)
    assert {k.split(":")[1] for k in keys} >= {"events", "snap", "marks", "lease", "fence"}
    assert b"ETHUSDT" in dump
    for s in secrets:
        assert s.encode() not in dump


def test_a_reader_started_from_an_entry_id_gets_the_entries_after_it_and_no_snapshot(
        tmp_path: Path, redis_server: RedisServer) -> None:
    async def main() -> list[Any]:
        async with publishing(tmp_path, redis_server.url) as (_, ctl, session):
            await ctl.set_position("BTCUSDT", "Buy", "0.5")
            await wait_for(lambda: session.router.delivered, 15)
            await wait_until_published(session)
            import redis.asyncio as aioredis

            r = aioredis.from_url(redis_server.url, decode_responses=True)
            start = await r.hget("feedctl:snap:main", "_last")
            await r.aclose()
            await ctl.set_position("ETHUSDT", "Buy", "0.5")
            async with RemoteSession(redis_server.url, accounts=["main"], start=start,
                                     marks=False) as rs:
                stream = rs.events()
                got = [await anext(stream)]
                while not (isinstance(got[-1], PositionEvent) and
                           got[-1].position.symbol == "ETHUSDT"):
                    got.append(await anext(stream))
            return got

    got = run_async(main(), timeout=90)
    assert not any(getattr(e, "synthetic", False) for e in got)
    assert not any(isinstance(e, PositionEvent) and e.position.symbol == "BTCUSDT"
                   for e in got)


def test_the_drain_at_shutdown_and_the_flush_task_never_write_the_same_items(
        tmp_path: Path, redis_server: RedisServer) -> None:
    """A drain (the session stopping) while the flush task is writing waits for it: each
    waiting event is written once and popped once (two flushes at once wrote the same
    items twice and popped an empty outbox)."""
    import redis.asyncio as aioredis

    from feedctl import FeedState, FeedStatus

    n = 3000

    async def main() -> int:
        async with publishing(tmp_path, redis_server.url) as (_, _ctl, session):
            pub = publisher(session)
            for i in range(n):
                pub.offer(StatusEvent(feed="drain-test", account="main", reason=f"r{i}",
                                      status=FeedStatus(feed="drain-test", kind="probe",
                                                        state=FeedState.HEALTHY)))
            await asyncio.sleep(0.01)  # the flush task starts its writes
            await pub.drain(20)
            assert not any(b.items for b in pub.boxes.values())
        r = aioredis.from_url(redis_server.url, decode_responses=True)
        try:
            entries = await r.xrange("feedctl:events:main")
        finally:
            await r.aclose()
        return sum("drain-test" in f.get("body", "") for _, f in entries)

    assert run_async(main(), timeout=60) == n
