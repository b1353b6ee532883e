"""RollingBudget: at most N per rolling window, spaced past its burst; jitter spreads."""

from __future__ import annotations

import asyncio
import time

import pytest

from feedctl import RollingBudget, jitter, staggered
from tests.conftest import run_async

pytestmark = pytest.mark.unit


def test_no_more_than_the_limit_in_any_window() -> None:
    async def main() -> list[float]:
        budget = RollingBudget(3, 0.3)
        t0 = time.monotonic()
        times = []
        for _ in range(7):
            await budget.acquire()
            times.append(time.monotonic() - t0)
        return times

    times = run_async(main())
    for i in range(len(times) - 3):  # any 4 consecutive span at least one window
        assert times[i + 3] - times[i] >= 0.3 - 0.005
    assert times[2] < 0.05  # the first three at once


def test_waiters_are_served_in_order_and_spaced_past_the_burst() -> None:
    async def main() -> list[int]:
        budget = RollingBudget(100, 5.0, spacing=0.02, burst=2)
        order: list[int] = []

        async def one(n: int) -> None:
            await budget.acquire()
            order.append(n)

        t0 = time.monotonic()
        await asyncio.gather(*(one(n) for n in range(6)))
        assert time.monotonic() - t0 >= 4 * 0.02 - 0.005  # 2 at once, then 4 spaced
        return order

    assert run_async(main()) == [0, 1, 2, 3, 4, 5]


def test_jitter_is_stable_per_account_and_spreads_accounts() -> None:
    offsets = [jitter(f"a{n}", 60.0) for n in range(200)]
    assert offsets == [jitter(f"a{n}", 60.0) for n in range(200)]
    assert all(0 <= o < 60 for o in offsets)
    assert max(offsets) - min(offsets) > 50  # spread over the period, not bunched


def test_a_planned_acquisition_leaves_the_reserve_to_unplanned_ones() -> None:
    """limit 4, reserve 2: after 2 acquisitions a planned one waits for the window while
    an unplanned one still goes at once."""
    async def main() -> tuple[float, float]:
        budget = RollingBudget(4, 0.4)
        assert budget.reserve == 2
        await budget.acquire()
        await budget.acquire()
        t0 = time.monotonic()
        planned = asyncio.create_task(budget.acquire(planned=True))
        await asyncio.sleep(0.05)
        await budget.acquire()  # not behind the planned one
        unplanned = time.monotonic() - t0
        await planned
        return unplanned, time.monotonic() - t0

    unplanned, planned = run_async(main())
    assert unplanned < 0.1
    assert planned >= 0.4 - 0.05


def test_tighten_keeps_the_strictest_numbers_in_either_order() -> None:
    a = RollingBudget(400, 300.0, spacing=0.02)
    a.tighten(100, 60.0, 0.05)
    b = RollingBudget(100, 60.0, spacing=0.05)
    b.tighten(400, 300.0, 0.02)
    for x in (a, b):
        assert (x.limit, x.window, x.spacing, x.reserve) == (100, 300.0, 0.05, 50)


def test_staggered_lifetimes_fall_in_the_last_quarter_and_spread() -> None:
    lives = [staggered(3600.0, f"a{n}:private") for n in range(200)]
    assert lives == [staggered(3600.0, f"a{n}:private") for n in range(200)]
    assert all(2700.0 < v <= 3600.0 for v in lives)
    assert max(lives) - min(lives) > 800


def test_the_dashboard_stream_stretches_price_frames_when_many_positions_stream() -> None:
    """2,500 positions (500 accounts x 5) at 0.25 s each would be 10,000 frames per
    second to every browser: the hub stretches each position's interval to keep all of
    them under max_price_frames per second."""
    from feedctl.monitor.hub import EventHub

    hub = EventHub(None, price_interval=0.25)  # type: ignore[arg-type]
    hub._last_sent = {("a", "f", n): 0.0 for n in range(100)}
    assert hub._interval() == 0.25
    hub._last_sent = {("a", "f", n): 0.0 for n in range(2500)}
    assert hub._interval() == 2500 / hub.max_price_frames == 2.5
