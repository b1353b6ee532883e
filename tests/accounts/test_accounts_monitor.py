"""The monitor of a session of many accounts: one summary row per account, the
``?account=`` filter, ``account`` labels in /metrics, the accounts table in the views."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from rich.console import Console

from feedctl.manager import FeedctlPluginManager
from feedctl.monitor.render import dashboard
from feedctl.monitor.server import Monitor
from feedctl.monitor.views import feed_rows, positions_payload
from feedctl.session import Session
from feedctl.settings import MonitorSettings
from tests.accounts.conftest import SECRETS, THREE, write
from tests.conftest import run_async

pytestmark = pytest.mark.integration


async def synced(s: Session) -> None:
    async with asyncio.timeout(5):
        while not all(a.router and a.router.delivered for a in s.accounts.values()):
            await asyncio.sleep(0.01)


def test_api_accounts_rows_and_the_account_filter(
        clean_env: Path, pm: FeedctlPluginManager) -> None:
    path = write(clean_env, THREE)
    (clean_env / ".secrets.toml").write_text(SECRETS.replace('"kb"', '"rejected"'))

    async def main() -> dict[str, Any]:
        out: dict[str, Any] = {}
        async with Session("t", settings_path=path, plugin_manager=pm) as s:
            monitor = Monitor(s, MonitorSettings(port=0))
            await monitor.start()
            try:
                async with asyncio.timeout(5):
                    while not (s.accounts["beta"].failure and s.accounts["gamma"].router
                               and s.accounts["gamma"].router.delivered):
                        await asyncio.sleep(0.01)
                async with aiohttp.ClientSession(monitor.url) as http:
                    for path_ in ("/api/accounts", "/api/accounts?account=gamma",
                                  "/api/positions?account=gamma", "/api/status?account=alpha",
                                  "/api/status?account=nobody"):
                        async with http.get(path_) as r:
                            out[path_] = (r.status, await r.json())
                    async with http.get("/metrics") as r:
                        out["metrics"] = await r.text()
            finally:
                await monitor.stop()
        return out

    out = run_async(main())
    status, body = out["/api/accounts"]
    assert status == 200 and body["count"] == 3 and body["failed"] == ["beta"]
    assert [r["account"] for r in out["/api/accounts?account=gamma"][1]["accounts"]] == [
        "gamma"]
    (pos,) = out["/api/positions?account=gamma"][1]["delivered"]
    assert pos["symbol"] == "SOLUSDT" and pos["account"] == "gamma"
    assert out["/api/status?account=alpha"][1]["account"] == "alpha"
    assert out["/api/status?account=nobody"][0] == 404
    metrics = out["metrics"]
    assert 'feedctl_account_failed{account="beta"} 1.0' in metrics
    assert 'feedctl_account_positions_open{account="gamma"} 1.0' in metrics
    assert 'feedctl_feed_up{account="alpha",feed="acct_live"' in metrics
    assert "feedctl_position_size{" not in metrics  # counted per account, not listed


def test_the_view_shows_one_row_per_account(
        clean_env: Path, pm: FeedctlPluginManager) -> None:
    path = write(clean_env, THREE)
    (clean_env / ".secrets.toml").write_text(SECRETS)

    async def main() -> str:
        async with Session("t", settings_path=path, plugin_manager=pm) as s:
            await synced(s)
            status = s.status()
            console = Console(width=120, record=True, force_terminal=False)
            console.print(dashboard(status, positions_payload(s)["delivered"],
                                    feed_rows(status), []))
            return console.export_text()

    text = run_async(main())
    assert "Accounts: 3 (3 healthy, 0 failed)" in text
    assert all(n in text for n in ("alpha", "beta", "gamma"))
    assert "ETHUSDT" not in text  # no row per account per symbol


def test_the_dashboard_gets_every_account_row_and_the_first_accounts_positions(
        clean_env: Path, pm: FeedctlPluginManager) -> None:
    path = write(clean_env, THREE)
    (clean_env / ".secrets.toml").write_text(SECRETS)

    async def main() -> dict[str, Any]:
        async with Session("t", settings_path=path, plugin_manager=pm) as s:
            monitor = Monitor(s, MonitorSettings(port=0))
            await monitor.start()
            try:
                await synced(s)
                return monitor.snapshot()
            finally:
                await monitor.stop()

    snap = run_async(main())
    assert [r["account"] for r in snap["accounts"]] == ["alpha", "beta", "gamma"]
    assert snap["account"] == "alpha"
    assert {p["account"] for p in snap["positions"]} == {"alpha"}
