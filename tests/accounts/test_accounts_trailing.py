"""Trailing stops per account: two accounts of one session holding the same symbol each
get their own stop, published with their account."""

from __future__ import annotations

import asyncio
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest

from feedctl import build_plugin_manager
from feedctl.plugins.bybit_hybrid import plugin as hybrid_plugin
from feedctl.plugins.trailing_stop import plugin as trailing_plugin
from feedctl.session import Session
from feedctl.simulator.accounts import MultiAccountSimulator
from tests.accounts.sim_session import ENDPOINTS, mark_of, profile
from tests.accounts.test_accounts_sim import until
from tests.bybit_hybrid.conftest import run

pytestmark = pytest.mark.integration


def test_two_accounts_on_one_symbol_each_get_their_own_trailing_stop(clean_env: Path) -> None:
    async def main() -> list[Any]:
        async with MultiAccountSimulator(symbols=["ETHUSDT"], demo=False, accounts=2) as sim:
            sim.prices.set_price("ETHUSDT", "3000")
            for acc in sim.sim_accounts:
                acc.engine.place_market_order("ETHUSDT", "Buy", Decimal("0.5"))
            path = profile(clean_env, 2)
            creds = {f"a{n}": {"api_key": a.api_key, "api_secret": a.api_secret}
                     for n, a in enumerate(sim.sim_accounts)}
            pm = build_plugin_manager([hybrid_plugin, trailing_plugin.plugin],
                                      load_entrypoints=False)
            session = Session("t", settings_path=path, plugin_manager=pm, overrides={
                "accounts": creds, "endpoints": {k: v for k, v in sim.urls.items()
                                                 if k in ENDPOINTS},
                "trailing_stop": {"activation_pct": "0.5", "callback_pct": "0.2"}})
            got: list[Any] = []
            async with session:
                async def pump() -> None:
                    async for ev in session.events(name="t"):
                        if getattr(ev, "type", "") == "trailing_stop":
                            got.append(ev)

                task = asyncio.create_task(pump())
                await until(lambda: all(mark_of(session, a, "ETHUSDT") is not None
                                        for a in ("a0", "a1")))
                sim.prices.set_price("ETHUSDT", "3030")  # +1 %: past both activations
                await until(lambda: len(got) >= 2, 5)
                await asyncio.sleep(0.3)  # nothing more may come
                task.cancel()
                await asyncio.gather(task, return_exceptions=True)
            return got

    got = run(main())
    assert sorted((e.account, e.action, e.symbol) for e in got) == [
        ("a0", "activated", "ETHUSDT"), ("a1", "activated", "ETHUSDT")]
