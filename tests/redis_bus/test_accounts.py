"""Many accounts on the bus (issue 17's ``[<profile>.accounts.<name>]``): a session
publishes every account of its profile to that account's stream under that account's
lease, and a worker leases and serves each account separately."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
import redis.asyncio as aioredis

from feedctl import RemoteSession, Session
from feedctl.simulator import SimConfig
from feedctl.simulator.accounts import MultiAccountSimulator
from tests.accounts.sim_session import ENDPOINTS, open_positions, profile
from tests.conftest import run_async
from tests.redis_bus.conftest import RedisServer
from tests.redis_bus.helpers import FAST_BUS, Reader, replay
from tests.redis_bus.workers import lease_owner
from tests.rollout.conftest import wait_for

pytestmark = [pytest.mark.integration, pytest.mark.timeout(90)]

ACCOUNTS = ("a0", "a1")


def two_account_profile(folder: Path, sim: MultiAccountSimulator, url: str
                        ) -> tuple[Path, dict[str, Any]]:
    """The profile (two accounts on the simulator) and what the test overrides: each
    account's keys, the simulator's URLs, the bus."""
    path = profile(folder, len(ACCOUNTS))
    creds = {name: {"api_key": a.api_key, "api_secret": a.api_secret}
             for name, a in zip(ACCOUNTS, sim.sim_accounts, strict=False)}
    urls = {k: v for k, v in sim.urls.items() if k in ENDPOINTS}
    return path, {"accounts": creds, "endpoints": urls, "redis_bus": {"url": url, **FAST_BUS}}


@contextlib.asynccontextmanager
async def two_accounts() -> AsyncIterator[MultiAccountSimulator]:
    cfg = SimConfig(symbols=["BTCUSDT", "ETHUSDT", "SOLUSDT"], seed=3)
    async with MultiAccountSimulator(cfg, accounts=len(ACCOUNTS)) as sim:
        yield sim


def held(reader: Reader) -> dict[str, set[str]]:
    """The symbols a remote consumer holds open, by account."""
    out: dict[str, set[str]] = {}
    for account, key in replay(reader.events):
        out.setdefault(account, set()).add(key.symbol)
    return out


def test_a_session_publishes_every_account_to_its_stream_under_its_own_lease(
        tmp_path: Path, redis_server: RedisServer) -> None:
    async def main() -> tuple[dict[str, set[str]], dict[str, str | None], dict[str, set[str]]]:
        async with two_accounts() as sim:
            open_positions(sim, {0: ["BTCUSDT"], 1: ["ETHUSDT", "SOLUSDT"]})
            path, overrides = two_account_profile(tmp_path, sim, redis_server.url)
            async with Session("t", settings_path=path, overrides=overrides) as session, \
                    RemoteSession(redis_server.url, accounts=list(ACCOUNTS)) as rs:
                assert sorted(session.accounts) == list(ACCOUNTS)
                reader = Reader(rs)
                want = {"a0": {"BTCUSDT"}, "a1": {"ETHUSDT", "SOLUSDT"}}
                await wait_for(lambda: held(reader) == want, 30)
                await reader.close()
                redis = aioredis.from_url(redis_server.url, decode_responses=True)
                try:
                    owners = {a: await lease_owner(redis, a) for a in ACCOUNTS}
                    in_stream: dict[str, set[str]] = {}
                    for a in ACCOUNTS:
                        for _, fields in await redis.xrange(f"feedctl:events:{a}"):
                            in_stream.setdefault(a, set()).add(fields["id"].split(":")[1])
                finally:
                    await redis.aclose()
                return held(reader), owners, in_stream

    got, owners, in_stream = run_async(main(), timeout=60)
    assert got == {"a0": {"BTCUSDT"}, "a1": {"ETHUSDT", "SOLUSDT"}}
    assert all(owners[a] for a in ACCOUNTS)  # a lease per account
    assert in_stream == {"a0": {"a0"}, "a1": {"a1"}}  # each stream holds its account's ids


def test_a_worker_serves_each_account_in_a_session_of_its_own_under_its_lease(
        tmp_path: Path, redis_server: RedisServer) -> None:
    """Losing one account's lease stops that account's session only."""
    from feedctl import build_plugin_manager
    from feedctl.plugins.redis_bus.config import BusSettings
    from feedctl.plugins.redis_bus.worker import Worker, session_factory

    async def main() -> tuple[dict[str, list[str]], bool]:
        async with two_accounts() as sim:
            open_positions(sim, {0: ["BTCUSDT"], 1: ["ETHUSDT"]})
            path, overrides = two_account_profile(tmp_path, sim, redis_server.url)
            make = session_factory(str(path), overrides, build_plugin_manager())
            settings = BusSettings.model_validate({"lease_ttl": "3s", "timeout": "0.5s"})
            worker = Worker(make, ["t"], settings, redis_server.url, owner="wa")
            stop = asyncio.Event()
            task = asyncio.create_task(worker.run(stop))
            redis = aioredis.from_url(redis_server.url, decode_responses=True)
            try:
                await wait_for(lambda: sorted(worker.sessions) == list(ACCOUNTS), 30)
                served = {a: sorted(s.accounts) for a, s in worker.sessions.items()}
                a0, a1 = worker.sessions["a0"], worker.sessions["a1"]
                await redis.delete("feedctl:lease:a1")  # a1's lease is gone: not renewed
                # a1's session stops (the worker may take the free lease again: a new one)
                await wait_for(lambda: worker.sessions.get("a1") is not a1, 20)
                return served, worker.sessions.get("a0") is a0
            finally:
                stop.set()
                async with asyncio.timeout(20):
                    await task
                await redis.aclose()

    served, a0_kept = run_async(main(), timeout=80)
    assert served == {"a0": ["a0"], "a1": ["a1"]}  # a session per account, that one alone
    assert a0_kept  # a1's lost lease did not touch a0's session
