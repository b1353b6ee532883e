"""Nothing lost at the seams between feeds (issue 12), with the router at its shipped
defaults (failover after 1 s, failback after 3 s): real feeds, the simulator, loopback."""

from __future__ import annotations

import asyncio
import itertools
from pathlib import Path
from typing import Any

import pytest

from feedctl import EventKind, PositionEvent, RouteEvent, Side
from tests.conftest import run_async
from tests.rollout.conftest import collector, lifecycle_is_consistent, running, wait_for

pytestmark = [pytest.mark.integration, pytest.mark.slow]


async def stop(task: asyncio.Task[None]) -> None:
    task.cancel()
    await asyncio.gather(task, return_exceptions=True)


def _lifecycles(events: list[Any], symbol: str) -> list[tuple[str, bool]]:
    return [(e.kind.value, e.past) for e in events if isinstance(e, PositionEvent)
            and e.position.symbol == symbol and e.kind in (EventKind.OPENED, EventKind.CLOSED)]


def _mark_gaps(events: list[Any], symbol: str, idx: int | None = None) -> list[float]:
    """Seconds between the consecutive marks (by receive time) of ``symbol``'s price
    events (of position index ``idx``, or any)."""
    marks = [e.position.mark_received_ns / 1e9 for e in events
             if isinstance(e, PositionEvent) and e.position.symbol == symbol
             and (idx is None or e.position.position_idx == idx)
             and e.kind is EventKind.PRICE and e.position.mark_received_ns]
    return [b - a for a, b in itertools.pairwise(marks)]


def test_a_private_outage_keeps_the_marks_and_delivers_the_lifecycle_inside_it(
        tmp_path: Path) -> None:
    """1.5 s without the private socket, a 2 s REST standby: the router fails over after
    1 s, yet the public socket's marks keep reaching consumers (no gap over 300 ms for
    the open position), the lifecycle opened and closed inside the outage reaches them
    once (the hybrid's fill replay recovered it), and the hybrid delivers again 3 s after
    it is healthy."""
    async def main() -> tuple[list[Any], list[float], float]:
        async with running(tmp_path, mode="production", rest_interval="2s",
                           symbols=["BTCUSDT", "XRPUSDT"]) as (_, ctl, session):
            assert session.router is not None  # at the shipped defaults:
            assert (session.router.failover_after, session.router.failback_after) == (1.0, 3.0)
            events, task = collector(session)
            await wait_for(lambda: session.feeds["rest_polling"].ctx.state == "healthy", 8)
            await wait_for(lambda: session.feeds["bybit_hybrid"].ctx.state == "healthy", 8)
            await ctl.set_position("BTCUSDT", "Buy", "0.01")
            await wait_for(lambda: session.router.delivered, 5)
            await asyncio.sleep(1.0)  # the ticker subscription is up
            watch_from = len(events)
            await ctl.stall("private", 1.5)
            await ctl.drop("private")
            await asyncio.sleep(0.3)
            # opened and closed inside, by orders: the fills are what the replay reads
            await ctl.place_order("XRPUSDT", "Sell", "100")
            await asyncio.sleep(0.4)
            await ctl.close_position("XRPUSDT")
            await wait_for(lambda: session.router.counters["failovers"] >= 1, 5)
            back = asyncio.get_running_loop().time()
            await wait_for(lambda: session.router.active == "bybit_hybrid"
                           and any(e.position.symbol == "XRPUSDT"
                                   and e.kind is EventKind.CLOSED for e in events
                                   if isinstance(e, PositionEvent)), 15)
            failback_s = asyncio.get_running_loop().time() - back
            await asyncio.sleep(0.5)
            await stop(task)
            gaps = _mark_gaps(events[watch_from:], "BTCUSDT")
            return events, gaps, failback_s

    events, gaps, failback_s = run_async(main(), timeout=60)
    routes = [e.active for e in events if isinstance(e, RouteEvent)]
    assert routes[:2] == ["rest_polling", "bybit_hybrid"], routes
    xrp = _lifecycles(events, "XRPUSDT")
    assert [k for k, _ in xrp] == ["opened", "closed"], xrp  # once, whoever saw it
    assert {e.position.side for e in events if isinstance(e, PositionEvent)
            and e.position.symbol == "XRPUSDT" and e.kind is EventKind.OPENED} == {Side.SHORT}
    assert lifecycle_is_consistent(events)
    assert gaps and max(gaps) <= 0.3, f"longest gap between BTCUSDT marks {max(gaps):.3f}s"
    assert failback_s < 10, failback_s


def test_a_public_stall_that_starts_with_a_subscribe_fails_over_and_keeps_prices(
        tmp_path: Path) -> None:
    """The public socket stalls just as a new position's ticker is subscribed (its answer
    never comes): the hybrid is degraded after ``stale_after`` (0.6 s here), not after the
    request timeout, the router fails over within its 1 s, and the new position gets
    marks from the standby meanwhile."""
    async def main() -> tuple[float, list[Any]]:
        async with running(tmp_path, mode="production", rest_interval="0.5s",
                           symbols=["BTCUSDT", "SOLUSDT"],
                           hybrid={"request_timeout": "10s", "ping_interval": "20s",
                                   "pong_timeout": "10s"}) as (_, ctl, session):
            events, task = collector(session)
            await wait_for(lambda: session.feeds["rest_polling"].ctx.state == "healthy", 8)
            await wait_for(lambda: session.feeds["bybit_hybrid"].ctx.state == "healthy", 8)
            await ctl.stall("public", 6)
            began = asyncio.get_running_loop().time()
            await ctl.set_position("SOLUSDT", "Buy", "1")
            await wait_for(lambda: session.router.active == "rest_polling", 4)
            took = asyncio.get_running_loop().time() - began
            await asyncio.sleep(1.5)
            await stop(task)
            return took, events

    took, events = run_async(main(), timeout=60)
    assert took < 3.0, f"failover {took:.1f}s after the stall began"
    sol_marks = [e for e in events if isinstance(e, PositionEvent)
                 and e.position.symbol == "SOLUSDT" and e.kind is EventKind.PRICE]
    assert sol_marks, "no mark for the new position during the stall"


def test_a_position_only_the_standby_saw_open_gets_the_public_sockets_marks(
        tmp_path: Path) -> None:
    """The hybrid's private socket is stalled; a position opened meanwhile reaches
    consumers from the 2 s REST standby. The hybrid's public socket (up all along)
    subscribes that symbol because consumers hold it, and its marks reach them at ticker
    rate — not only the poller's every 2 s."""
    async def main() -> tuple[list[float], int]:
        async with running(tmp_path, mode="production", rest_interval="2s",
                           symbols=["BTCUSDT", "ETHUSDT"]) as (_, ctl, session):
            assert session.router is not None
            events, task = collector(session)
            await wait_for(lambda: session.feeds["rest_polling"].ctx.state == "healthy", 8)
            await wait_for(lambda: session.feeds["bybit_hybrid"].ctx.state == "healthy", 8)
            await ctl.stall("private", 8.0)
            await wait_for(lambda: session.router.active == "rest_polling", 6)
            await ctl.set_position("ETHUSDT", "Buy", "0.5")
            await wait_for(lambda: any(p.symbol == "ETHUSDT"
                                       for p in session.router.delivered.values()), 5)
            hybrid_book = session.feeds["bybit_hybrid"].book
            assert not any(p.symbol == "ETHUSDT" for p in hybrid_book.positions.values())
            watch_from = len(events)
            await asyncio.sleep(2.5)
            await stop(task)
            return _mark_gaps(events[watch_from:], "ETHUSDT"), \
                session.router.counters["free_marks"]

    gaps, free = run_async(main(), timeout=60)
    assert free >= 5, free
    assert len(gaps) >= 5 and max(gaps) < 1.0, gaps  # the poller alone: one per 2 s


def test_a_hedge_side_only_the_standby_saw_open_gets_the_marks_of_the_other_side(
        tmp_path: Path) -> None:
    """A mark is the symbol's, not the position's. The hybrid holds the long side of a
    two-sided ETHUSDT account; its private socket stalls and the short side opens, seen
    only by the 2 s REST standby. The hybrid's public socket streams ETHUSDT for the long
    side it holds, and its marks move the short side consumers hold too — not only the
    poller's every 2 s."""
    async def main() -> tuple[list[float], int]:
        async with running(tmp_path, mode="production", rest_interval="2s",
                           symbols=["BTCUSDT", "ETHUSDT"]) as (_, ctl, session):
            assert session.router is not None
            events, task = collector(session)
            await ctl.position_mode("ETHUSDT", 3)
            await wait_for(lambda: session.feeds["rest_polling"].ctx.state == "healthy", 8)
            await wait_for(lambda: session.feeds["bybit_hybrid"].ctx.state == "healthy", 8)
            await ctl.set_position("ETHUSDT", "Buy", "0.5", position_idx=1)
            hybrid_book = session.feeds["bybit_hybrid"].book
            await wait_for(lambda: any(k.position_idx == 1 for k in hybrid_book.positions), 5)
            await ctl.stall("private", 8.0)
            await wait_for(lambda: session.router.active == "rest_polling", 6)
            await ctl.set_position("ETHUSDT", "Sell", "0.3", position_idx=2)
            await wait_for(lambda: any(k.position_idx == 2
                                       for k in session.router.delivered), 5)
            assert not any(k.position_idx == 2 for k in hybrid_book.positions)
            watch_from = len(events)
            await asyncio.sleep(2.5)
            await stop(task)
            return _mark_gaps(events[watch_from:], "ETHUSDT", 2), \
                session.router.counters["free_marks"]

    gaps, free = run_async(main(), timeout=60)
    assert free >= 5, free
    assert len(gaps) >= 5 and max(gaps) < 1.0, gaps  # the poller alone: one per 2 s
