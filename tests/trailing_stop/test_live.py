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


def test_two_sessions_in_one_process_keep_their_own_trailing_stops(tmp_path: Path) -> None:
    """One plugin instance, two sessions on two exchanges: each session's activation is
    published to that session only, from that session's own prices."""
    async def main() -> tuple[list[Any], list[Any]]:
        async with running(tmp_path / "a", mode="production", trailing_stop=RULE) as (
                _, ctl_a, a), running(tmp_path / "b", mode="production",
                                      trailing_stop=RULE) as (_, ctl_b, b):
            got: dict[str, list[Any]] = {"a": [], "b": []}

            async def pump(name: str, stream: Any) -> None:
                async for ev in stream:
                    got[name].append(ev)

            tasks = [asyncio.create_task(pump("a", a.events(name="t"))),
                     asyncio.create_task(pump("b", b.events(name="t")))]
            for ctl in (ctl_a, ctl_b):
                await ctl.set_price("ETHUSDT", "3000")
                await ctl.set_position("ETHUSDT", "Buy", "0.5", entry_price="3000")
            await wait_for(lambda: a.router.delivered and b.router.delivered, 5)
            await ctl_a.set_price("ETHUSDT", "3020")  # only session a's price activates
            await wait_for(lambda: any(getattr(e, "action", "") == "activated"
                                       for e in got["a"]), 3)
            await asyncio.sleep(0.5)
            for t in tasks:
                t.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
            return got["a"], got["b"]

    (tmp_path / "a").mkdir()
    (tmp_path / "b").mkdir()
    in_a, in_b = run_async(main())
    assert [e.action for e in in_a if getattr(e, "type", "") == "trailing_stop"] == ["activated"]
    assert not [e for e in in_b if getattr(e, "type", "") == "trailing_stop"]


def test_the_distance_set_on_the_exchange_is_on_the_instruments_tick(tmp_path: Path) -> None:
    """BTCUSDT's tick is 0.1: 0.2 % of 65432.1 (130.8642) is set as 130.9."""
    async def main() -> tuple[list[Any], dict[str, Any]]:
        async with running(tmp_path, mode="production", trailing_stop=RULE,
                           trading={"enabled": True}) as (_, ctl, session):
            events: list[Any] = []
            stream = session.events(name="test")

            async def pump() -> None:
                async for ev in stream:
                    events.append(ev)

            task = asyncio.create_task(pump())
            await ctl.set_price("BTCUSDT", "65800")
            await ctl.set_position("BTCUSDT", "Sell", "0.01", entry_price="65800")
            await wait_for(lambda: session.router.delivered, 5)
            await ctl.set_price("BTCUSDT", "65432.1")  # short, -0.56 %: activates
            await wait_for(lambda: any(getattr(e, "action", "") == "activated"
                                       for e in events), 3)
            await asyncio.sleep(0.5)
            position = next(p for p in await ctl.positions() if p["symbol"] == "BTCUSDT")
            task.cancel()
            await asyncio.gather(task, return_exceptions=True)
            return events, position

    events, position = run_async(main())
    assert Decimal(position["trailingStop"]) == Decimal("130.9")
    (act,) = [e for e in events if getattr(e, "action", "") == "activated"]
    assert act.activation_price == act.activation_price.quantize(Decimal("0.1"))
