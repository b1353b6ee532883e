"""The trailing-stop consumer in a live session against the simulator."""

from __future__ import annotations

import asyncio
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest

from feedctl import EventKind, PositionEvent
from tests.conftest import run_async
from tests.rollout.conftest import running, wait_for

pytestmark = pytest.mark.integration
RULE = {"activation_pct": "0.5", "callback_pct": "0.2"}


async def scenario(tmp_path: Path, trading: bool) -> tuple[list[Any], dict[str, Any]]:
    async with running(tmp_path, mode="production", trailing_stop=RULE,
                       trading={"enabled": trading}) as (_, ctl, session):
        events: list[Any] = []
        stream = session.events(name="test")

        async def pump() -> None:
            async for ev in stream:
                events.append(ev)

        task = asyncio.create_task(pump())
        await ctl.set_price("ETHUSDT", "3000")
        await ctl.set_position("ETHUSDT", "Buy", "0.5", entry_price="3000")
        await wait_for(lambda: session.router.delivered, 5)
        await ctl.set_price("ETHUSDT", "3020")  # +0.67 %: activates
        await wait_for(lambda: any(getattr(e, "action", "") == "activated" for e in events), 2)
        await asyncio.sleep(0.3)
        position = (await ctl.positions())[0]
        await ctl.set_price("ETHUSDT", "3010")  # 0.33 % below the best: triggers
        if trading:  # the exchange executes the stop it was given: the position closes
            await wait_for(lambda: any(isinstance(e, PositionEvent) and
                                       e.kind is EventKind.CLOSED for e in events), 2)
        else:
            await wait_for(lambda: any(getattr(e, "action", "") == "triggered"
                                       for e in events), 2)
        await asyncio.sleep(0.5)
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
        return events, position


def test_dry_run_reports_activation_and_trigger_and_places_nothing(tmp_path: Path) -> None:
    events, position = run_async(scenario(tmp_path, trading=False))
    stops = [e for e in events if getattr(e, "type", "") == "trailing_stop"]
    assert [s.action for s in stops] == ["activated", "triggered"]
    assert all(s.dry_run for s in stops)
    assert stops[0].mark_price == Decimal("3020") and stops[0].best_price == Decimal("3020")
    assert Decimal(position["trailingStop"] or "0") == 0
    assert not any(isinstance(e, PositionEvent) and e.kind is EventKind.CLOSED for e in events)


def test_with_trading_enabled_the_exchange_trails_and_closes_the_position(
    tmp_path: Path,
) -> None:
    events, position = run_async(scenario(tmp_path, trading=True))
    stops = [e for e in events if getattr(e, "type", "") == "trailing_stop"]
    assert stops[0].action == "activated" and not stops[0].dry_run
    # 0.2 % of the best price 3020, set on the exchange at activation
    assert Decimal(position["trailingStop"]) == Decimal("6.04")
    closed = [e for e in events if isinstance(e, PositionEvent) and e.kind is EventKind.CLOSED]
    assert [c.position.symbol for c in closed] == ["ETHUSDT"]
