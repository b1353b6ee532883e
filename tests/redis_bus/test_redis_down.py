"""Redis killed for 10 s: the feed and the in-process trailing stop go on, the outbox
stays bounded, and remote consumers converge once Redis is back (empty: no persistence).

The lease (20 s) outlives the outage, so the outbox's bound is what keeps it small; Redis
comes back without the lease, so the first write is fenced, the lease is taken again
and the account resynced from the book."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path
from typing import Any

import pytest

from feedctl import EventKind, PositionEvent, RemoteSession
from tests.conftest import run_async
from tests.redis_bus.conftest import RedisServer
from tests.redis_bus.helpers import Reader, book_state, bus, publisher, replay, trade
from tests.rollout.conftest import collector, running, wait_for

pytestmark = [pytest.mark.integration, pytest.mark.slow, pytest.mark.timeout(90)]
RULE = {"activation_pct": "0.5", "callback_pct": "0.2"}
OUTBOX = 10


def test_redis_killed_for_10s_the_local_stop_fires_and_consumers_converge_after(
        tmp_path: Path, redis_server: RedisServer) -> None:
    async def main() -> dict[str, Any]:
        async with running(tmp_path, mode="production", trailing_stop=RULE,
                           redis_bus=bus(redis_server.url, outbox_max=OUTBOX,
                                         lease_ttl="20s")) as (
                _, ctl, session), RemoteSession(redis_server.url, accounts=["main"]) as rs:
            local, task = collector(session)
            pub = publisher(session)
            await wait_for(lambda: not any(b.dirty for b in pub.boxes.values()), 10)
            reader = Reader(rs)
            await ctl.set_price("ETHUSDT", "3000")
            await ctl.set_position("ETHUSDT", "Buy", "0.5", entry_price="3000")
            await wait_for(lambda: replay(reader.events) == book_state(session) != {}, 15)
            redis_server.kill()
            down_at = time.monotonic()
            await ctl.set_price("ETHUSDT", "3020")  # activates the trailing stop
            await wait_for(lambda: any(getattr(e, "action", "") == "activated"
                                       for e in local), 3)
            activated_after = time.monotonic() - down_at
            depth = 0
            trader = asyncio.create_task(trade(ctl, 24, pause=0.1))  # > OUTBOX lifecycles
            while time.monotonic() - down_at < 10:
                depth = max(depth, pub.depth())
                await asyncio.sleep(0.05)
            await trader
            redis_server.start()
            want = book_state(session)
            await wait_for(lambda: replay(reader.events) == want, 15)
            task.cancel()
            await reader.close()
            return {"activated_after": activated_after, "depth": depth,
                    "overflows": sum(b.overflows for b in pub.boxes.values()),
                    "gaps": len(reader.gaps()), "want": want,
                    "got": replay(reader.events)}

    out = run_async(main(), timeout=80)
    assert out["activated_after"] < 3  # the in-process consumer did not wait on Redis
    assert out["depth"] <= OUTBOX + 6  # lifecycles bounded; at most one price per position
    assert out["overflows"] >= 1  # the lease outlived the outage: the bound did it
    assert out["gaps"] >= 1  # Redis came back empty: the consumer was told, then resynced
    assert out["got"] == out["want"]


def boundaries(events: list[Any]) -> dict[str, list[str]]:
    """Per symbol, the opens and closes consumers were told, in order."""
    out: dict[str, list[str]] = {}
    for ev in events:
        if isinstance(ev, PositionEvent) and ev.kind in (EventKind.OPENED, EventKind.CLOSED) \
                and not ev.past:
            out.setdefault(ev.position.symbol, []).append(ev.kind.value)
    return out


def test_an_outage_shorter_than_the_lease_loses_no_lifecycle_past_the_outbox_bound(
        tmp_path: Path) -> None:
    """Redis killed for 4 s (it restarts from its append-only file) while positions open,
    close and reopen on the same side, far past ``outbox_max``: the outbox keeps every
    lifecycle's boundaries and, Redis holding what it last wrote, publishes them, so a
    remote consumer is told every open and close the local one was, in order."""
    folder = tmp_path / "redis"
    folder.mkdir()
    server = RedisServer(folder, persist=True, extra=["--appendfsync", "always"])
    server.start()

    async def main() -> dict[str, Any]:
        async with running(tmp_path, mode="production",
                           redis_bus=bus(server.url, outbox_max=OUTBOX, lease_ttl="20s")) as (
                _, ctl, session), RemoteSession(server.url, accounts=["main"]) as rs:
            pub = publisher(session)
            await wait_for(lambda: not any(b.dirty for b in pub.boxes.values()), 10)
            local, task = collector(session)
            reader = Reader(rs)
            await ctl.set_position("ETHUSDT", "Buy", "0.5")
            await wait_for(lambda: boundaries(reader.events) == boundaries(local) != {}, 15)
            server.kill()
            trader = asyncio.create_task(trade(ctl, 24, pause=0.1))  # > OUTBOX lifecycles
            await asyncio.sleep(4)
            await trader
            server.start()
            await wait_for(lambda: boundaries(reader.events) == boundaries(local), 15)
            task.cancel()
            await reader.close()
            return {"overflows": sum(b.overflows for b in pub.boxes.values()),
                    "dropped": sum(b.trails_dropped for b in pub.boxes.values()),
                    "gaps": len(reader.gaps()), "want": boundaries(local),
                    "got": boundaries(reader.events), "ids": reader.ids()}

    try:
        out = run_async(main(), timeout=80)
    finally:
        server.stop()
    assert out["overflows"] >= 1 and out["dropped"] == 0  # the bound was passed, kept
    assert out["gaps"] == 0
    assert out["got"] == out["want"]
    assert sum(v.count("opened") for v in out["want"].values()) >= 8  # lifecycles meanwhile
    assert len(out["ids"]) == len(set(out["ids"]))
