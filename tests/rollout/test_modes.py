"""Rollout modes against the simulator: roles, validation, failover and failback."""

from __future__ import annotations

import asyncio
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest

from feedctl import EventKind, PositionEvent, RouteEvent
from tests.conftest import run_async
from tests.rollout.conftest import collector, lifecycle_is_consistent, running, wait_for

pytestmark = pytest.mark.integration


async def stop(task: asyncio.Task[None]) -> None:
    task.cancel()
    await asyncio.gather(task, return_exceptions=True)


def test_rest_mode_does_not_start_the_hybrid(tmp_path: Path) -> None:
    async def main() -> None:
        async with running(tmp_path, mode="rest") as (_, ctl, session):
            assert set(session.feeds) == {"rest_polling"}
            events, task = collector(session)
            await ctl.set_position("BTCUSDT", "Buy", "0.01")
            await wait_for(lambda: any(isinstance(e, PositionEvent) for e in events), 5)
            await stop(task)
            assert {e.feed for e in events if isinstance(e, PositionEvent)} == {"rest_polling"}

    run_async(main())


@pytest.mark.slow
def test_parallel_mode_agrees_with_rest_once_settled(tmp_path: Path) -> None:
    """The demo trader churns positions; the REST shadow agrees >= 99.9 % once settled."""

    async def main() -> dict[str, Any]:
        async with running(tmp_path, mode="parallel", demo=True, rest_interval="0.5s",
                           validation={"interval": "0.25s", "settle": "1.5s"}) as (
                _, _, session):
            assert session.router is not None and session.router.shadows == ["rest_polling"]
            await asyncio.sleep(10)
            assert session.validator is not None
            return session.validator.summary()["rest_polling"]

    report = run_async(main())
    assert report["agreeing"] > 0 and report["changes_matched"] > 0
    assert report["agreement"] >= 0.999, report
    assert report["side_disagreements"] == 0 and report["size_disagreements"] == 0
    assert report["primary_first"] >= report["shadow_first"]  # the hybrid sees changes first


def test_failover_on_a_dropped_hybrid_and_failback_without_duplicate_lifecycles(
    tmp_path: Path,
) -> None:
    async def main() -> list[Any]:
        async with running(tmp_path, mode="production",
                           router={"failover_after": "0.3s", "failback_after": "1s"}) as (
                _, ctl, session):
            events, task = collector(session)
            await wait_for(lambda: session.feeds["rest_polling"].ctx.state == "healthy", 5)
            await ctl.set_position("BTCUSDT", "Buy", "0.01")
            await wait_for(lambda: session.router.delivered, 5)
            # the hybrid cannot reconnect for a while: the private endpoint is stalled
            await ctl.stall("private", 3)
            await ctl.drop("private")
            await wait_for(lambda: session.router.active == "rest_polling", 5)
            detected = asyncio.get_running_loop().time()
            await ctl.set_position("ETHUSDT", "Sell", "0.2")  # seen only by REST now
            await wait_for(lambda: any(isinstance(e, PositionEvent) and e.feed == "rest_polling"
                                       and e.position.symbol == "ETHUSDT" for e in events), 5)
            assert asyncio.get_running_loop().time() - detected < 2.0
            await ctl.clear_faults()
            await wait_for(lambda: session.router.active == "bybit_hybrid", 15)
            await ctl.close_position("BTCUSDT")
            await wait_for(lambda: len(session.router.delivered) == 1, 5)
            await stop(task)
            return events

    events = run_async(main())
    routes = [e for e in events if isinstance(e, RouteEvent)]
    assert [r.active for r in routes] == ["rest_polling", "bybit_hybrid"]
    assert "failover" in routes[0].reason and "failback" in routes[1].reason
    assert lifecycle_is_consistent(events)
    opened = [e.position.symbol for e in events
              if isinstance(e, PositionEvent) and e.kind is EventKind.OPENED]
    assert opened.count("BTCUSDT") == 1 and opened.count("ETHUSDT") == 1


def test_failover_on_a_stalled_ticker_stream(tmp_path: Path) -> None:
    async def main() -> None:
        async with running(tmp_path, mode="production",
                           router={"failover_after": "0.3s", "failback_after": "60s"}) as (
                _, ctl, session):
            await wait_for(lambda: session.feeds["rest_polling"].ctx.state == "healthy", 5)
            await ctl.set_position("SOLUSDT", "Buy", "1")
            await wait_for(lambda: session.router.delivered, 5)
            await ctl.stall("public", 10)
            await wait_for(lambda: session.router.active == "rest_polling", 6)
            assert session.router.counters["failovers"] == 1

    run_async(main())


def test_validator_flags_a_size_the_shadow_disagrees_with(tmp_path: Path) -> None:
    """A shadow that has a different size than the primary beyond the settle time is flagged."""

    async def main() -> dict[str, Any]:
        async with running(tmp_path, mode="canary", rest_interval="0.3s",
                           validation={"interval": "0.2s", "settle": "0.5s"}) as (
                _, ctl, session):
            await ctl.set_position("BTCUSDT", "Buy", "0.01")
            await wait_for(lambda: session.feeds["bybit_hybrid"].book.positions and
                           session.feeds["rest_polling"].book.positions, 5)
            # the hybrid (shadow in canary) cannot see the add: its private socket is stalled
            await ctl.stall("private", 5)
            await ctl.set_position("BTCUSDT", "Buy", "0.03")
            await asyncio.sleep(1.5)
            assert session.validator is not None
            return session.validator.summary()["bybit_hybrid"]

    report = run_async(main())
    assert report["size_disagreements"] > 0 or report["side_disagreements"] > 0
    assert report["agreement"] is not None and report["agreement"] < 1.0
    flagged = {(d["field"], Decimal(d["primary"]), Decimal(d["shadow"]))
               for d in report["current"]}
    assert ("size", Decimal("0.03"), Decimal("0.01")) in flagged


def test_prices_flow_at_ticker_rate_in_production(tmp_path: Path) -> None:
    async def main() -> list[Any]:
        async with running(tmp_path, mode="production") as (_, ctl, session):
            events, task = collector(session)
            await ctl.set_position("BTCUSDT", "Buy", "0.01")
            await wait_for(lambda: session.router.delivered, 5)
            await asyncio.sleep(2)
            await stop(task)
            return events

    events = run_async(main())
    prices = [e for e in events if isinstance(e, PositionEvent) and e.kind is EventKind.PRICE]
    assert len(prices) >= 12  # ~10 per second
    assert all(isinstance(e.position.mark_price, Decimal) for e in prices)
