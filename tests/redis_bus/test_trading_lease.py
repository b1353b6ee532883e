"""Trading actions only while the lease is held: the trailing stop sets a stop on the
exchange for an account only while this process holds the account's lease (asked
right before each order, ``feedctl_trading_allowed``), in a session that takes its own
lease (``feedctl run`` with a bus) as in a worker's."""

from __future__ import annotations

import asyncio
import time
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
import redis.asyncio as aioredis

from feedctl import Session, build_plugin_manager
from feedctl.simulator import SimConfig, SimControl, Simulator
from tests.conftest import run_async
from tests.redis_bus.conftest import RedisServer
from tests.redis_bus.helpers import FAST_BUS, bus
from tests.rollout.conftest import collector, overrides, settings_file, wait_for

pytestmark = [pytest.mark.integration, pytest.mark.timeout(90)]
RULE = {"activation_pct": "0.5", "callback_pct": "0.2"}
SYMBOLS = ["BTCUSDT", "ETHUSDT", "SOLUSDT"]


async def trailing(ctl: SimControl, symbol: str) -> Decimal:
    rows = [p for p in await ctl.positions() if p["symbol"] == symbol]
    return Decimal(rows[0]["trailingStop"] or "0") if rows else Decimal(0)


async def activate(ctl: SimControl, events: list[Any], symbol: str, price: str,
                   up: str) -> None:
    """Open a long of ``symbol`` at ``price``, then move the price ``up`` (> 0.5 %): the
    trailing stop activates (its ``activated`` event reaches the consumers)."""
    await ctl.set_price(symbol, price)
    await ctl.set_position(symbol, "Buy", "1", entry_price=price)
    await wait_for(lambda: any(getattr(getattr(e, "position", None), "symbol", "") == symbol
                               for e in events), 10)
    await ctl.set_price(symbol, up)
    await wait_for(lambda: any(getattr(e, "action", "") == "activated" and
                               getattr(e, "symbol", "") == symbol for e in events), 10)
    await asyncio.sleep(0.5)  # an order would have reached the exchange by now


def test_a_session_sets_trailing_stops_of_an_account_only_while_it_holds_its_lease(
        tmp_path: Path, redis_server: RedisServer) -> None:
    """A peer holds the account's lease: the stop activates in this process (the feed
    and the consumers go on) but is not set on the exchange. Once the peer lets go and
    this process takes the lease, the next activation is set."""
    async def main() -> tuple[Decimal, bool, Decimal]:
        redis = aioredis.from_url(redis_server.url, decode_responses=True)
        await redis.set("feedctl:lease:main", "peer:7", px=60_000)
        cfg = SimConfig(symbols=SYMBOLS, seed=3)
        try:
            async with Simulator(cfg) as sim, SimControl(sim.urls["control"]) as ctl:
                session = Session("t", settings_path=settings_file(tmp_path),
                                  overrides=overrides(
                                      sim, mode="production", trailing_stop=RULE,
                                      trading={"enabled": True},
                                      account={"exchange": "bybit", "name": "main",
                                               "api_key": sim.api_key,
                                               "api_secret": sim.api_secret},
                                      redis_bus=bus(redis_server.url)))
                async with session:
                    events, task = collector(session)
                    await activate(ctl, events, "ETHUSDT", "3000", "3020")
                    while_peer = await trailing(ctl, "ETHUSDT")
                    refused_then = not session.trading_allowed("main")
                    await redis.delete("feedctl:lease:main")  # the peer lets go
                    await wait_for(lambda: session.trading_allowed("main"), 10)
                    await activate(ctl, events, "SOLUSDT", "100", "100.7")
                    once_held = await trailing(ctl, "SOLUSDT")
                    task.cancel()
                    await asyncio.gather(task, return_exceptions=True)
                    return while_peer, refused_then, once_held
        finally:
            await redis.aclose()

    while_peer, refused_then, once_held = run_async(main(), timeout=80)
    assert refused_then
    assert while_peer == 0  # activated here, not set on the exchange: the peer trades
    assert once_held > 0  # this process holds the lease: the stop is on the exchange


def test_a_worker_paused_past_its_lease_may_not_trade_from_the_moment_it_runs_again(
        tmp_path: Path, redis_server: RedisServer) -> None:
    """A worker's loop held past the lease time (what SIGSTOP, a long pause or a
    partition does): the first code that runs after it - before any renewal tells the
    worker that the lease is gone - is refused a trading action; the worker then stops
    the account's session."""
    from feedctl.plugins.redis_bus.config import BusSettings
    from feedctl.plugins.redis_bus.worker import Worker, session_factory

    async def main() -> tuple[bool, bool]:
        cfg = SimConfig(symbols=SYMBOLS, seed=3)
        async with Simulator(cfg) as sim:
            ov = overrides(sim, mode="production", trailing_stop=RULE,
                           trading={"enabled": True},
                           account={"exchange": "bybit", "name": "main",
                                    "api_key": sim.api_key, "api_secret": sim.api_secret},
                           redis_bus=bus(redis_server.url))  # as `feedctl worker --redis`
            make = session_factory(str(settings_file(tmp_path)), ov, build_plugin_manager())
            settings = BusSettings.model_validate(FAST_BUS)
            worker = Worker(make, ["t"], settings, redis_server.url, owner="wa")
            stop = asyncio.Event()
            task = asyncio.create_task(worker.run(stop))
            try:
                await wait_for(lambda: "main" in worker.sessions, 30)
                session = worker.sessions["main"]
                before = session.trading_allowed("main")
                # the whole process held (on purpose: nothing may run, no renewal either)
                time.sleep(settings.lease_ttl)  # noqa: ASYNC251
                after = session.trading_allowed("main")  # nothing ran in between
                # and the worker stops the session that lost the lease (else: TimeoutError)
                await wait_for(lambda: worker.sessions.get("main") is not session, 20)
                return before, after
            finally:
                stop.set()
                async with asyncio.timeout(20):
                    await task

    before, after = run_async(main(), timeout=80)
    assert before and not after
