"""The per-UID REST limiter: each account's signed requests stay inside Bybit's per-UID
limits (50/s for the position list), beside the per-IP limiter, against a simulated
exchange that applies them - a burst goes through without one 10006."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path
from typing import Any

import pytest

from feedctl import Category
from feedctl.session import Session
from feedctl.simulator.accounts import BYBIT_UID_LIMITS, MultiAccountSimulator
from tests.accounts.sim_session import open_positions, running
from tests.accounts.test_accounts_sim import healthy, until
from tests.bybit_hybrid.conftest import run

pytestmark = pytest.mark.integration

BURST = 100  # position-list reads per account at once


async def burst(s: Session, accounts: list[str]) -> float:
    """Every account reads its positions BURST times at once; the seconds it took."""
    feeds = [s.accounts[a].feeds["bybit_hybrid"].feed for a in accounts]
    t0 = time.monotonic()
    await asyncio.gather(*(f.rest.positions([Category.LINEAR], ["USDT"])
                           for f in feeds for _ in range(BURST)))
    return time.monotonic() - t0


def scenario(folder: Path, feed: dict[str, Any]) -> dict[str, Any]:
    async def main() -> dict[str, Any]:
        async with MultiAccountSimulator(symbols=["BTCUSDT"], demo=False, accounts=2,
                                         uid_limits=BYBIT_UID_LIMITS) as sim:
            open_positions(sim, {0: ["BTCUSDT"], 1: ["BTCUSDT"]})
            async with running(folder, sim, 2, feed=feed) as s:
                await until(lambda: healthy(s))
                took = await burst(s, ["a0", "a1"])
                retries = sum(s.accounts[a].feeds["bybit_hybrid"].ctx.counters.get(
                    "rest_retries", 0) for a in ("a0", "a1"))
                return {"took": took, "limited": sim.stats()["uid_limited"],
                        "ip_refused": sim.rest_limit.refused, "retries": retries}

    return run(main(), timeout=60)


def test_a_burst_of_position_reads_stays_inside_the_per_uid_limit(clean_env: Path) -> None:
    out = scenario(clean_env, {"uid_requests_per_second": 40})
    assert out["limited"] == 0 and out["retries"] == 0 and out["ip_refused"] == 0
    # 100 per account at 40 per rolling second: the limiter, not luck, spread them
    assert out["took"] >= (BURST - 40) / 40 - 0.1


def test_without_the_per_uid_limiter_the_exchange_answers_10006(clean_env: Path) -> None:
    out = scenario(clean_env, {"uid_requests_per_second": 1000})
    assert out["limited"] > 0
