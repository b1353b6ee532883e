"""binance_usdm's listenKey lifecycle and planned reconnects on the embedded simulator's
Binance personality, with its lifetimes shortened."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from decimal import Decimal
from typing import Any

import pytest

from feedctl.testing import FeedProbe, run_scenario

from .sim_harness import FAST, SimBinanceHarness

pytestmark = pytest.mark.integration
BTC = "BTCUSDT"


def run(scenario: Callable[[FeedProbe, Any], Awaitable[None]], binance: dict[str, Any],
        **settings: Any) -> FeedProbe:
    class Harness(SimBinanceHarness):
        pass

    Harness.settings = {**FAST, **settings}
    Harness.binance = {**SimBinanceHarness.binance, **binance}
    harness = Harness()

    async def body(probe: FeedProbe) -> None:
        await scenario(probe, harness.ctl)

    return run_scenario(harness, body, limit=60)


def test_keepalive_holds_the_key_past_its_validity() -> None:
    async def scenario(probe: FeedProbe, ctl: Any) -> None:
        await probe.healthy()
        await asyncio.sleep(3.0)  # twice the key's validity
        await ctl.place_order(BTC, "Buy", Decimal("0.01"))
        await probe.wait_for(lambda: probe.lifecycle(BTC) == ["opened"], "opened")

    probe = run(scenario, {"listen_key_validity": 1.5}, keepalive_interval=0.5)
    assert probe.ctx.counters["keepalives"] >= 4
    assert "listen_key_recreated" not in probe.ctx.counters


def test_an_expired_key_is_recreated_and_later_pushes_arrive() -> None:
    async def scenario(probe: FeedProbe, ctl: Any) -> None:
        await probe.healthy()
        assert await ctl.expire_listen_keys() == 1
        await probe.wait_for(lambda: probe.ctx.counters.get("resyncs", 0) >= 2, "a resync")
        await probe.healthy()
        await ctl.place_order(BTC, "Sell", Decimal("0.01"))  # python-binance misses this
        await probe.wait_for(lambda: probe.lifecycle(BTC) == ["opened"], "opened")

    probe = run(scenario, {})
    assert probe.ctx.counters["listen_key_recreated"] == 1


def test_planned_reconnects_beat_the_servers_cut() -> None:
    async def scenario(probe: FeedProbe, ctl: Any) -> None:
        await probe.healthy()
        await ctl.place_order(BTC, "Buy", Decimal("0.01"))
        await asyncio.sleep(4.5)  # two server cuts' worth
        await ctl.place_order(BTC, "Buy", Decimal("0.01"))
        await ctl.close_position(BTC)
        await probe.wait_for(lambda: probe.lifecycle(BTC) == ["opened", "changed", "closed"],
                             "the lifecycle across swaps")

    probe = run(scenario, {"connection_lifetime": 2.0}, max_connection_lifetime=1.0)
    states = [s.status.state.value for s in probe.statuses]
    assert probe.ctx.counters["planned_reconnects"] >= 6
    assert probe.ctx.counters["resyncs"] == 1 and "reconnecting" not in states


def test_a_keepalive_answered_1125_recreates_the_key() -> None:
    async def scenario(probe: FeedProbe, ctl: Any) -> None:
        await probe.healthy()
        await ctl.reject_keepalives(1)
        await probe.wait_for(lambda: probe.ctx.counters.get("listen_key_recreated", 0) == 1,
                             "the key recreated after -1125")
        await probe.wait_for(lambda: probe.ctx.counters.get("resyncs", 0) >= 2, "a resync")
        await probe.healthy()
        await ctl.place_order(BTC, "Buy", Decimal("0.01"))
        await probe.wait_for(lambda: probe.lifecycle(BTC) == ["opened"], "opened on the new key")

    run(scenario, {}, keepalive_interval=0.3)
