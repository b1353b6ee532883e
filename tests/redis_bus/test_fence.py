"""The publish script itself: a write under a lease that has passed to a peer is refused
inside the same atomic step, and a writer with a wrong picture of the snapshot is told."""

from __future__ import annotations

import asyncio
from decimal import Decimal

import pytest
import redis.asyncio as aioredis

from feedctl import BusKeys, EventKind, Position, PositionEvent, Side, now_ns
from feedctl.plugins.redis_bus.lease import Lease
from feedctl.plugins.redis_bus.outbox import AccountOutbox
from feedctl.plugins.redis_bus.scripts import PUBLISH
from tests.conftest import run_async
from tests.redis_bus.conftest import RedisServer

pytestmark = [pytest.mark.integration, pytest.mark.timeout(30)]
KEYS = BusKeys()


def opened(symbol: str = "BTCUSDT") -> PositionEvent:
    pos = Position(exchange="bybit", account="main", feed="bybit_hybrid", category="linear",
                   symbol=symbol, side=Side.LONG, size=Decimal("0.5"),
                   entry_price=Decimal("30000"), received_ns=now_ns())
    return PositionEvent(kind=EventKind.OPENED, feed="bybit_hybrid", position=pos, seq=1)


async def publish(redis: aioredis.Redis, lease: Lease, box: AccountOutbox) -> list[str]:
    plans = [p for p in box.plan(list(box.items)) if p is not None]
    args: list[object] = [lease.value, 1000, "", "bybit", "main"]
    for p in plans:
        args.extend(p.args)
    script = redis.register_script(PUBLISH)
    return list(await script(keys=[KEYS.events("main"), KEYS.snapshot("main"),
                                   KEYS.lease("main"), KEYS.accounts], args=args))


def test_a_write_under_a_lease_taken_over_by_a_peer_is_refused(
        redis_server: RedisServer) -> None:
    async def main() -> tuple[list[str], list[str], int, int, int]:
        redis = aioredis.from_url(redis_server.url, decode_responses=True)
        paused = Lease(redis, KEYS, "main", "wa", ttl=0.3)
        assert await paused.try_acquire()
        await asyncio.sleep(0.5)  # paused past its lease: Redis let it expire
        peer = Lease(redis, KEYS, "main", "wb", ttl=5)
        assert await peer.try_acquire()
        box = AccountOutbox("bybit", "main", 100)
        box.dirty = False
        box.offer(opened())
        refused = await publish(redis, paused, box)
        after_refusal = await redis.xlen(KEYS.events("main"))
        accepted = await publish(redis, peer, box)
        length = await redis.xlen(KEYS.events("main"))
        token_gap = (peer.token or 0) - (paused.token or 0)
        await redis.aclose()
        return refused, accepted, after_refusal, length, token_gap

    refused, accepted, after_refusal, length, token_gap = run_async(main(), timeout=20)
    assert refused == ["fenced", "wb:2"]
    assert after_refusal == 0  # nothing of the refused write reached the stream
    assert accepted[0] == "ok" and length == 1
    assert token_gap == 1


def test_a_writer_whose_picture_of_the_snapshot_is_wrong_gets_a_conflict(
        redis_server: RedisServer) -> None:
    async def main() -> tuple[list[str], dict[str, str]]:
        redis = aioredis.from_url(redis_server.url, decode_responses=True)
        lease = Lease(redis, KEYS, "main", "wa", ttl=5)
        assert await lease.try_acquire()
        first = AccountOutbox("bybit", "main", 100)
        first.dirty = False
        first.offer(opened())
        await publish(redis, lease, first)
        stale = AccountOutbox("bybit", "main", 100)  # believes BTCUSDT is not open
        stale.dirty = False
        stale.offer(opened("ETHUSDT"))
        stale.offer(opened("BTCUSDT"))
        answer = await publish(redis, lease, stale)
        snap = await redis.hgetall(KEYS.snapshot("main"))
        await redis.aclose()
        return answer, snap

    answer, snap = run_async(main(), timeout=20)
    assert answer[0] == "conflict" and answer[1] == "1"  # ETHUSDT written, BTCUSDT refused
    assert len(answer) == 3
    assert snap["lc:linear:BTCUSDT:0"] == "1" and snap["_last"] == answer[2]
