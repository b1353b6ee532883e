"""Workers share an account by lease: a dead one's account is taken over, a paused one
is fenced, and consumers see every lifecycle once, by event id, never a step back."""

from __future__ import annotations

import asyncio
import contextlib
import json
import signal
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
import redis.asyncio as aioredis

from feedctl import PositionEvent, RemoteSession
from feedctl.simulator import SimConfig, SimControl, Simulator
from tests.conftest import run_async
from tests.redis_bus.conftest import RedisServer
from tests.redis_bus.helpers import Reader, replay, trade
from tests.redis_bus.workers import WorkerProc, lease_owner, worker_settings
from tests.rollout.conftest import wait_for

pytestmark = [pytest.mark.integration, pytest.mark.slow, pytest.mark.timeout(170)]


@contextlib.asynccontextmanager
async def two_workers(folder: Path, url: str) -> AsyncIterator[
        tuple[SimControl, dict[str, WorkerProc], Any, Reader]]:
    cfg = SimConfig(symbols=["BTCUSDT", "ETHUSDT", "SOLUSDT"], seed=3)
    async with Simulator(cfg) as sim, SimControl(sim.urls["control"]) as ctl:
        settings = worker_settings(folder, sim)
        workers = {n: WorkerProc(n, settings, sim, url, folder) for n in ("wa", "wb")}
        redis = aioredis.from_url(url, decode_responses=True)
        rs = RemoteSession(url, accounts=["main"])
        try:
            for w in workers.values():
                await w.start()
            await wait_for_owner(redis, None, 30)
            await rs.start()
            reader = Reader(rs)
            yield ctl, workers, redis, reader
            await reader.close()
        finally:
            await rs.stop()
            for w in workers.values():
                await w.stop()
            await redis.aclose()


async def wait_for_owner(redis: Any, other_than: str | None, timeout: float) -> str:
    async with asyncio.timeout(timeout):
        while True:
            owner = await lease_owner(redis)
            snap_last = await redis.hget("feedctl:snap:main", "_last")
            if owner is not None and owner != other_than and snap_last:
                return owner
            await asyncio.sleep(0.05)


async def exchange_state(ctl: SimControl) -> dict[str, str]:
    return {p["symbol"]: p["size"] for p in await ctl.positions()}


async def until_published(ctl: SimControl, reader: Reader, timeout: float = 20) -> None:
    """Until a remote consumer holds the exchange's positions (the owner wrote them)."""
    want = await exchange_state(ctl)
    await wait_for(lambda: reader_state(reader) == want, timeout)


def reader_state(reader: Reader) -> dict[str, str]:
    return {k[1].symbol: json.loads(v)["size"]
            for k, v in replay(reader.events).items()}


def never_backwards(reader: Reader) -> bool:
    """Per position key, (lifecycle, n) of successive event ids only grows."""
    last: dict[str, tuple[int, int]] = {}
    for eid in reader.ids():
        base, lc, n = eid.rsplit(":", 2)
        if "past" in base:
            continue
        step = (int(lc), int(n))
        if step <= last.get(base, (0, -1)):
            return False
        last[base] = step
    return True


def test_a_killed_workers_account_is_taken_over_and_every_lifecycle_arrives_once(
        tmp_path: Path, redis_server: RedisServer) -> None:
    async def main() -> tuple[Reader, dict[str, str], str, str]:
        async with two_workers(tmp_path, redis_server.url) as (ctl, workers, redis, reader):
            first = await wait_for_owner(redis, None, 30)
            await trade(ctl, 7)  # BTC, ETH, SOL open; BTC changed
            await until_published(ctl, reader)  # the first owner wrote them
            workers[first].signal(signal.SIGKILL)
            await trade(ctl, 3, pause=0.1)  # ETH and SOL changed, BTC... while nobody serves
            await ctl.close_position("BTCUSDT")
            second = await wait_for_owner(redis, first, 20)
            want = await exchange_state(ctl)
            await wait_for(lambda: reader_state(reader) == want, 20)
            await ctl.set_position("BTCUSDT", "Sell", "0.3")  # the new owner goes on
            want = await exchange_state(ctl)
            await wait_for(lambda: reader_state(reader) == want, 10)
            return reader, want, first, second

    reader, want, first, second = run_async(main(), timeout=150)
    assert first != second
    ids = reader.ids()
    assert len(ids) == len(set(ids)), "an event id arrived twice"
    assert not reader.gaps()
    assert never_backwards(reader)
    btc = [i for i in ids if ":BTCUSDT:" in i]
    lifecycles = [int(i.rsplit(":", 2)[1]) for i in btc]
    assert lifecycles[0] == 1 and lifecycles[-1] == 2 and lifecycles == sorted(lifecycles)
    assert reader_state(reader) == want


def test_a_paused_worker_resumes_without_a_stale_write(tmp_path: Path,
                                                      redis_server: RedisServer) -> None:
    """SIGSTOP past the lease, SIGCONT: the worker finds its lease gone and stops its
    session; nothing it held reaches consumers twice or out of order (a write that is
    already on its way is refused by the script: test_fence.py)."""
    async def main() -> tuple[Reader, dict[str, str], WorkerProc, str]:
        async with two_workers(tmp_path, redis_server.url) as (ctl, workers, redis, reader):
            first = await wait_for_owner(redis, None, 30)
            paused = workers[first]
            await trade(ctl, 4)
            await until_published(ctl, reader)
            workers[first].signal(signal.SIGSTOP)
            second = await wait_for_owner(redis, first, 20)
            await trade(ctl, 3, pause=0.1)  # the paused worker's sockets queue these too
            await until_published(ctl, reader)  # the new owner wrote them
            workers[first].signal(signal.SIGCONT)
            # it wakes, finds its lease gone, stops its session
            await wait_for(lambda: "stopping the session of account main" in paused.text(),
                           30)
            await ctl.close_position("ETHUSDT")
            want = await exchange_state(ctl)
            await wait_for(lambda: reader_state(reader) == want, 10)
            return reader, want, workers[first], second

    reader, want, paused, _ = run_async(main(), timeout=150)
    ids = reader.ids()
    assert len(ids) == len(set(ids)), "an event id arrived twice"
    assert never_backwards(reader)
    assert reader_state(reader) == want
    assert "lease lost" in paused.text()
    assert "stopping the session of account main" in paused.text()


def test_workers_split_the_accounts_and_a_survivor_takes_them_all(
        tmp_path: Path, redis_server: RedisServer) -> None:
    profiles = ("a1", "a2", "a3", "a4")

    async def owners(redis: Any) -> dict[str, str | None]:
        return {p: await lease_owner(redis, p) for p in profiles}

    async def main() -> tuple[dict[str, str | None], dict[str, str | None]]:
        cfg = SimConfig(symbols=["BTCUSDT", "ETHUSDT"], seed=3)
        async with Simulator(cfg) as sim:
            settings = worker_settings(tmp_path, sim, profiles)
            workers = [WorkerProc(n, settings, sim, redis_server.url, tmp_path, profiles)
                       for n in ("wa", "wb")]
            redis = aioredis.from_url(redis_server.url, decode_responses=True)
            try:
                for w in workers:
                    await w.start()
                async with asyncio.timeout(30):
                    while True:  # both live, each with its share
                        split = await owners(redis)
                        held = list(split.values())
                        if held.count("wa") == 2 and held.count("wb") == 2:
                            break
                        await asyncio.sleep(0.1)
                workers[0].signal(signal.SIGKILL)
                async with asyncio.timeout(30):
                    while True:
                        after = await owners(redis)
                        if list(after.values()).count("wb") == 4:
                            break
                        await asyncio.sleep(0.1)
                return split, after
            finally:
                for w in workers:
                    await w.stop()
                await redis.aclose()

    split, after = run_async(main(), timeout=150)
    assert sorted(v for v in split.values() if v) == ["wa", "wa", "wb", "wb"]
    assert set(after.values()) == {"wb"}


def test_what_happened_while_nobody_served_the_account_reaches_consumers_once(
        tmp_path: Path, redis_server: RedisServer) -> None:
    """B1: boundaries that fall while no worker can publish (the owner SIGKILLed) are
    recovered by the next holder from the snapshot (feedctl_prior_state) and the fills
    since: a close and a reopen on the same side arrive as two lifecycles, a lifecycle
    opened and closed unseen arrives whole, each event once, in order, each flagged
    ``recovered``."""
    async def main() -> tuple[Reader, dict[str, str]]:
        async with two_workers(tmp_path, redis_server.url) as (ctl, workers, redis, reader):
            first = await wait_for_owner(redis, None, 30)
            await ctl.place_order("BTCUSDT", "Buy", "0.1")  # orders: the fills tell
            await until_published(ctl, reader)
            workers[first].signal(signal.SIGKILL)
            for symbol, side, qty in (("BTCUSDT", "Sell", "0.1"),  # closed...
                                      ("BTCUSDT", "Buy", "0.2"),  # ...and reopened
                                      ("ETHUSDT", "Sell", "0.5"),
                                      ("ETHUSDT", "Buy", "0.5")):  # opened and closed
                await ctl.place_order(symbol, side, qty)
                await asyncio.sleep(0.05)
            await wait_for_owner(redis, first, 20)
            want = await exchange_state(ctl)
            await wait_for(lambda: reader_state(reader) == want and any(
                ":ETHUSDT:" in i for i in reader.ids()), 20)
            await asyncio.sleep(0.5)  # anything written twice would have arrived
            return reader, want

    reader, want = run_async(main(), timeout=150)
    ids = reader.ids()
    assert len(ids) == len(set(ids)), "an event id arrived twice"
    assert not reader.gaps() and never_backwards(reader)
    btc = [tuple(i.rsplit(":", 2)[1:]) for i in ids if ":BTCUSDT:" in i]
    assert btc == [("1", "0"), ("1", "1"), ("2", "0")], ids  # opened, closed, reopened
    eth = [tuple(i.rsplit(":", 2)[1:]) for i in ids if ":ETHUSDT:" in i]
    assert eth == [("1", "0"), ("1", "1")], ids  # the unseen lifecycle, whole
    assert reader_state(reader) == want
    # what the next holder recovered is flagged so (the core's ``recovered``), not
    # ``past`` (it comes in order, after the state consumers held); the first open,
    # published live by the first holder, is not
    flags = {m.event_id: (e.recovered, e.past)
             for e, m in zip(reader.events, reader.metas, strict=True)
             if m.event_id and isinstance(e, PositionEvent)}
    btc_ids = [i for i in ids if ":BTCUSDT:" in i]
    assert flags[btc_ids[0]] == (False, False), flags
    assert [flags[i] for i in btc_ids[1:]] == [(True, False)] * 2, flags
    assert [flags[i] for i in ids if ":ETHUSDT:" in i] == [(True, False)] * 2, flags
