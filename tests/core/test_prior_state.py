"""feedctl_prior_state: what an account's consumers last knew reaches its feeds before
they start (FeedContext.take_prior), once; a failing hook leaves them to start blind."""

from __future__ import annotations

import asyncio
import logging
import sys
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest

from feedctl import Feed, FeedKind, PositionKey, PositionUpdate, PriorState, Side, hookimpl
from feedctl.manager import FeedctlPluginManager
from feedctl.session import Session
from tests.conftest import run_async

pytestmark = pytest.mark.unit

TAKEN: list[tuple[PriorState | None, PriorState | None, bool]] = []

STATE = PositionUpdate(symbol="BTCUSDT", side=Side.LONG, size=Decimal("0.1"),
                       entry_price=Decimal(100), seq=7, exchange_ms=1_000)
PRIOR = PriorState(positions={STATE.key: STATE}, as_of_ms=2_000)


class TakingFeed(Feed):
    """Takes the prior state as a feed that replays history does, then idles."""

    async def run(self) -> None:
        first = self.ctx.take_prior()
        TAKEN.append((first, self.ctx.take_prior(), self.ctx.prior_taken))
        await asyncio.Event().wait()


@hookimpl
def feedctl_feed_kinds(register: Any) -> None:
    register(FeedKind("taking", TakingFeed, requires_credentials=False))


class Bus:
    def __init__(self, fail: bool = False) -> None:
        self.fail = fail
        self.asked: list[str] = []

    @hookimpl
    async def feedctl_prior_state(self, account: str, session: Session) -> PriorState | None:
        self.asked.append(account)
        if self.fail:
            raise RuntimeError("bus down")
        await asyncio.sleep(0)
        return PRIOR


def run_session(folder: Path, pm: FeedctlPluginManager) -> None:
    pm.register(sys.modules[__name__], name="taking-plugin")
    path = folder / "settings.toml"
    path.write_text("[t.account]\nexchange='x'\nname='main'\n"
                    "[t.feeds.x]\nkind='taking'\nrole='primary'\n")

    async def main() -> None:
        async with Session("t", settings_path=path, plugin_manager=pm):
            async with asyncio.timeout(5):
                while not TAKEN:
                    await asyncio.sleep(0.01)

    TAKEN.clear()
    run_async(main())


def test_the_feed_takes_what_the_hook_says_consumers_knew_once(
        clean_env: Path, pm: FeedctlPluginManager) -> None:
    bus = Bus()
    pm.register(bus, name="bus")
    run_session(clean_env, pm)
    assert bus.asked == ["main"]
    first, second, taken = TAKEN[0]
    assert first is PRIOR and first.positions[PositionKey(STATE.category, "BTCUSDT", 0)].seq == 7
    assert second is None and taken


def test_a_failing_hook_leaves_the_feed_to_start_from_the_exchange(
        clean_env: Path, pm: FeedctlPluginManager, caplog: pytest.LogCaptureFixture) -> None:
    pm.register(Bus(fail=True), name="bus")
    with caplog.at_level(logging.ERROR, logger="feedctl"):
        run_session(clean_env, pm)
    assert TAKEN[0] == (None, None, False)
    assert "failed in feedctl_prior_state" in caplog.text
