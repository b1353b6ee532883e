"""The ``simaccts`` profile: the embedded exchange serves a profile's accounts (one key and
one demo trader each) in `feedctl run`, so the views of many accounts can be seen without
any account or network."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from feedctl import FeedState, build_plugin_manager
from feedctl.session import Session
from tests.conftest import run_async

pytestmark = [pytest.mark.integration, pytest.mark.slow]


def test_the_embedded_exchange_serves_every_account_of_the_profile(clean_env: Path) -> None:
    pm = build_plugin_manager()
    if "simulator" not in {i.name for i in pm.plugins_info()}:
        pytest.skip("the simulator plugin is not installed (pip install -e .)")

    async def main() -> tuple[set[str], int, dict[str, int]]:
        overrides = {"simulator": {"demo_interval": 0.2}}
        async with Session("simaccts", plugin_manager=pm, overrides=overrides) as s:
            async with asyncio.timeout(20):
                while not all(a.feeds["bybit_hybrid"].ctx.state is FeedState.HEALTHY
                              and a.router is not None and a.router.delivered
                              for a in s.accounts.values()):
                    await asyncio.sleep(0.05)
            keys = {a.plan.account.api_key.get_secret_value()  # type: ignore[union-attr]
                    for a in s.accounts.values()}
            held = {n: len(a.router.delivered)  # type: ignore[union-attr]
                    for n, a in s.accounts.items()}
            return set(s.accounts), len(keys), held

    names, keys, held = run_async(main(), timeout=40)
    assert names == {"alpha", "beta", "gamma", "delta"}
    assert keys == 4  # one simulated account (key) each
    assert all(n >= 1 for n in held.values())  # each account's own demo trader
