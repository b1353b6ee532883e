"""Auth rejections at and beyond the hybrid's ``max_auth_failures``: what the campaign
leaves out on purpose (docs/reliability.md, "Auth rejections").

A key rejected that many times in a row is a bad key: the hybrid fails for good by
design (no retry storm against an exchange that says no). In production the REST
standby takes over and keeps delivering, without a duplicate; in parallel mode nothing
else delivers, so the session reports the failure.
"""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import pytest

from feedctl import EventKind, FatalFeedError, FeedState, PositionEvent
from tests.conftest import run_async
from tests.rollout.conftest import collector, lifecycle_is_consistent, running, wait_for

pytestmark = pytest.mark.integration


def _lifecycle(events: list[Any]) -> list[tuple[str, str, str]]:
    return [(e.kind.value, e.position.symbol, e.feed) for e in events
            if isinstance(e, PositionEvent) and e.kind is not EventKind.PRICE]


def test_production_survives_a_rejected_key_on_the_rest_standby(tmp_path: Path) -> None:
    async def main() -> list[Any]:
        async with running(tmp_path, mode="production",
                           router={"failover_after": "0.3s", "failback_after": "1s"}) as (
                _, ctl, session):
            events, task = collector(session)
            hybrid = session.feeds["bybit_hybrid"]
            await wait_for(lambda: all(rt.ctx.state is FeedState.HEALTHY
                                       for rt in session.feeds.values()), 10)
            await ctl.place_order("BTCUSDT", "Buy", "0.01")
            await wait_for(lambda: session.router.delivered, 5)
            await ctl.reject_auth(3)  # = max_auth_failures: the key looks bad
            await ctl.drop("private")
            await wait_for(lambda: hybrid.ctx.state is FeedState.FAILED, 15)
            await wait_for(lambda: session.router.active == "rest_polling", 5)
            await ctl.place_order("ETHUSDT", "Sell", "0.1")
            await ctl.place_order("BTCUSDT", "Sell", "0.01", reduce_only=True)
            await wait_for(lambda: ("closed", "BTCUSDT", "rest_polling") in _lifecycle(events)
                           and ("opened", "ETHUSDT", "rest_polling") in _lifecycle(events), 10)
            assert session.failure is None  # the standby still delivers
            assert isinstance(hybrid.fatal, FatalFeedError)
            assert "API_KEY" in str(hybrid.fatal)
            task.cancel()
            await asyncio.gather(task, return_exceptions=True)
            return events

    events = run_async(main(), timeout=60)
    assert lifecycle_is_consistent(events)
    assert [x for x in _lifecycle(events) if x[1] == "BTCUSDT"] == [
        ("opened", "BTCUSDT", "bybit_hybrid"), ("closed", "BTCUSDT", "rest_polling")]


def test_parallel_mode_reports_a_rejected_key_as_the_session_failure(tmp_path: Path) -> None:
    async def main() -> BaseException | None:
        async with running(tmp_path, mode="parallel") as (_, ctl, session):
            await wait_for(lambda: session.feeds["bybit_hybrid"].ctx.state
                           is FeedState.HEALTHY, 10)
            await ctl.reject_auth(3)
            await ctl.drop("private")
            try:
                async with asyncio.timeout(15):
                    await session.wait()
            except FatalFeedError as exc:
                return exc
            return None

    failure = run_async(main(), timeout=60)
    assert isinstance(failure, FatalFeedError) and "rejected" in str(failure)
