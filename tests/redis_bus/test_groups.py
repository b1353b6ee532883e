"""Consumer groups: a new group starts at the snapshot, an existing one resumes where it
was acknowledged, and entries a crashed consumer held are recovered."""

from __future__ import annotations

import asyncio
import contextlib
from pathlib import Path
from typing import Any

import pytest
import redis.asyncio as aioredis

from feedctl import EventKind, GapEvent, PositionEvent, RemoteSession, StatusEvent
from tests.conftest import run_async
from tests.redis_bus.conftest import RedisServer
from tests.redis_bus.helpers import book_state, publishing, replay, wait_until_published
from tests.rollout.conftest import wait_for

pytestmark = [pytest.mark.integration, pytest.mark.timeout(120)]


async def until_opened(stream: Any, symbol: str) -> list[tuple[Any, Any]]:
    got = []
    while True:
        ev = await anext(stream)
        got.append((ev, stream.meta))
        if isinstance(ev, PositionEvent) and ev.kind is EventKind.OPENED and \
                ev.position.symbol == symbol and not ev.synthetic:
            return got


def from_a_snapshot(ev: Any) -> bool:
    """Whether ``ev`` is part of a snapshot (or the gap before one): a feed's status
    as of now, or an ``opened`` synthesized for an open position. A synthetic *price*
    is not: the router makes those from another source's fresher mark."""
    if isinstance(ev, GapEvent):
        return True
    if isinstance(ev, StatusEvent):
        return ev.reason == "current"
    return isinstance(ev, PositionEvent) and ev.kind is EventKind.OPENED and ev.synthetic


@pytest.mark.parametrize("second_consumer", ["c1", "c2"])
def test_unacknowledged_entries_are_delivered_again_with_their_ids(
        tmp_path: Path, redis_server: RedisServer, second_consumer: str) -> None:
    """c1 takes BTCUSDT's opened and dies before asking for more (no ack). The same
    consumer coming back gets it again from its pending entries; another consumer of
    the group claims it (claim_after=0). Either way without a snapshot, then ETHUSDT."""

    async def main() -> tuple[list[Any], list[Any]]:
        async with publishing(tmp_path, redis_server.url) as (_, ctl, session):
            async with RemoteSession(redis_server.url, accounts=["main"], group="g",
                                     consumer="c1") as first:
                stream = first.events()
                head = [(await anext(stream), stream.meta)]  # the snapshot is read
                await ctl.set_position("BTCUSDT", "Buy", "0.5")
                seen = head + await until_opened(stream, "BTCUSDT")
            await ctl.set_position("ETHUSDT", "Buy", "0.5")
            await wait_for(lambda: len(session.router.delivered) == 2, 15)
            async with RemoteSession(redis_server.url, accounts=["main"], group="g",
                                     consumer=second_consumer, claim_after=0) as again:
                stream = again.events()
                resumed = await until_opened(stream, "ETHUSDT")
            return seen, resumed

    seen, resumed = run_async(main(), timeout=90)
    assert any(from_a_snapshot(e) for e, _ in seen)  # a new group starts from the snapshot
    btc_id = seen[-1][1].event_id
    assert btc_id.endswith("BTCUSDT:0:1:0")
    resumed_ids = [m.event_id for _, m in resumed if m.event_id]
    assert resumed_ids[0] == btc_id  # delivered again, same id
    assert resumed_ids.count(btc_id) == 1  # once (pending and claimed are one entry)
    assert not any(from_a_snapshot(e) for e, _ in resumed)  # no gap, no snapshot
    assert resumed_ids[-1].endswith("ETHUSDT:0:1:0")


def test_acknowledged_entries_are_not_delivered_again(tmp_path: Path,
                                                       redis_server: RedisServer) -> None:
    async def main() -> list[Any]:
        async with publishing(tmp_path, redis_server.url) as (_, ctl, _session):
            async with RemoteSession(redis_server.url, accounts=["main"], group="g",
                                     consumer="c1", block=0.2) as first:
                stream = first.events()
                await anext(stream)  # the snapshot is read
                await ctl.set_position("BTCUSDT", "Buy", "0.5")
                await until_opened(stream, "BTCUSDT")
                await ctl.set_position("SOLUSDT", "Buy", "0.5")
                await until_opened(stream, "SOLUSDT")  # asking for it acked BTCUSDT's
            async with RemoteSession(redis_server.url, accounts=["main"], group="g",
                                     consumer="c1", block=0.2) as again:
                stream = again.events()
                await ctl.set_position("ETHUSDT", "Buy", "0.5")
                resumed = await until_opened(stream, "ETHUSDT")
            return [m.event_id for _, m in resumed if m.event_id]

    ids = run_async(main(), timeout=90)
    assert not any("BTCUSDT" in i for i in ids)


def test_a_group_consumer_past_a_gap_acknowledges_the_batch_the_fresh_snapshot_covers(
        tmp_path: Path, redis_server: RedisServer) -> None:
    """Entries trimmed before the group read them: a gap, a fresh snapshot, and the
    entries of the same batch the snapshot already covers are acknowledged (none left
    pending), not delivered again."""
    async def main() -> tuple[list[Any], dict[Any, str], dict[Any, str], int]:
        async with publishing(tmp_path, redis_server.url) as (_, ctl, session), \
                RemoteSession(redis_server.url, accounts=["main"], group="g",
                              consumer="c1", block=0.2) as rs:
            stream = rs.events()
            got = [await anext(stream)]  # the group is made at the snapshot
            await ctl.set_position("BTCUSDT", "Buy", "0.5")
            await wait_for(lambda: session.router.delivered, 15)
            await wait_until_published(session)
            r = aioredis.from_url(redis_server.url)
            try:
                await r.xtrim("feedctl:events:main", maxlen=0)  # unread, trimmed away
                await ctl.set_position("BTCUSDT", "Buy", "0.7")
                await ctl.set_position("ETHUSDT", "Sell", "1")
                await wait_for(lambda: len(session.router.delivered) == 2, 15)
                await wait_until_published(session)
                async with asyncio.timeout(15):
                    while not any(isinstance(e, GapEvent) for e in got) or \
                            replay(got) != book_state(session):
                        got.append(await anext(stream))
                # asking for more than what is queued sends the acks (the stream then
                # waits for new entries: nothing more is published)
                with contextlib.suppress(TimeoutError):
                    async with asyncio.timeout(2):
                        while True:
                            got.append(await anext(stream))
                pending = (await r.xpending("feedctl:events:main", "g"))["pending"]
            finally:
                await r.aclose()
            return got, replay(got), book_state(session), pending

    got, state, book, pending = run_async(main(), timeout=90)
    assert sum(isinstance(e, GapEvent) for e in got) == 1
    assert state == book
    assert pending == 0
