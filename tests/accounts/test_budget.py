"""RollingBudget: at most N per rolling window, spaced past its burst; jitter spreads."""

from __future__ import annotations

import asyncio
import time

import pytest

from feedctl import RollingBudget, jitter
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
