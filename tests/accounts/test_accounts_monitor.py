"""The monitor of a session of many accounts: one summary row per account, the
``?account=`` filter, ``account`` labels in /metrics, the accounts table in the views."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from click.testing import CliRunner
from rich.console import Console

from feedctl.manager import FeedctlPluginManager
from feedctl.monitor import status_command
from feedctl.monitor.live import LiveModel
from feedctl.monitor.server import Monitor
from feedctl.monitor.views import positions_payload
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


def test_the_live_view_shows_a_row_per_account_and_every_accounts_positions_and_feeds(
        clean_env: Path, pm: FeedctlPluginManager) -> None:
    path = write(clean_env, THREE)
    (clean_env / ".secrets.toml").write_text(SECRETS)

    async def main() -> str:
        async with Session("t", settings_path=path, plugin_manager=pm) as s:
            await synced(s)
            console = Console(width=140, record=True, force_terminal=False)
            console.print(LiveModel(s).render())
            return console.export_text()

    text = run_async(main())
    assert "Accounts: 3 (3 healthy, 0 failed)" in text
    assert "Positions of every account" in text and "Feeds of every account" in text
    lines = text.splitlines()
    held = {(a, sym) for line in lines for a in ("alpha", "beta", "gamma")
            for sym in ("BTCUSDT", "ETHUSDT", "SOLUSDT") if f" {a} " in line and sym in line}
    assert held == {("alpha", "BTCUSDT"), ("alpha", "ETHUSDT"), ("beta", "BTCUSDT"),
                    ("beta", "ETHUSDT"), ("gamma", "SOLUSDT")}
    feed_lines = [line for line in lines if "acct_live *" in line]
    assert len(feed_lines) == 3  # one delivering feed per account


def test_an_account_that_never_synced_is_shown_unknown_not_empty(
        clean_env: Path, pm: FeedctlPluginManager) -> None:
    path = write(clean_env, THREE)
    (clean_env / ".secrets.toml").write_text(SECRETS.replace('"kb"', '"rejected"'))

    async def main() -> tuple[dict[str, Any], str, dict[str, Any]]:
        async with Session("t", settings_path=path, plugin_manager=pm) as s:
            async with asyncio.timeout(5):
                while not (s.accounts["beta"].failure and all(
                        s.accounts[a].router and s.accounts[a].router.delivered  # type: ignore[union-attr]
                        for a in ("alpha", "gamma"))):
                    await asyncio.sleep(0.01)
            console = Console(width=140, record=True, force_terminal=False)
            console.print(LiveModel(s).render())
            row = next(r for r in s.account_rows() if r["account"] == "beta")
            return positions_payload(s), console.export_text(), row

    payload, text, row = run_async(main())
    assert not payload["known"] and list(payload["unknown"]) == ["beta"]
    assert payload["unknown_reason"].startswith("1 account not known complete (beta: failed")
    assert row["positions"] is None  # unknown, not 0
    beta = next(line for line in text.splitlines() if line.startswith("│ beta"))
    assert beta.split("│")[5].strip() == "unknown"  # the Positions cell
    assert "positions unknown: 1 account not known complete (beta" in text


def test_the_dashboard_shows_every_account_or_the_filtered_one(
        clean_env: Path, pm: FeedctlPluginManager) -> None:
    path = write(clean_env, THREE)
    (clean_env / ".secrets.toml").write_text(SECRETS)

    async def main() -> dict[str, Any]:
        async with Session("t", settings_path=path, plugin_manager=pm) as s:
            monitor = Monitor(s, MonitorSettings(port=0))
            await monitor.start()
            try:
                await synced(s)
                out: dict[str, Any] = {"all": monitor.snapshot(),
                                       "gamma": monitor.snapshot("gamma")}
                async with aiohttp.ClientSession(monitor.url) as http:
                    async with http.get("/api/feeds") as r:
                        out["feeds"] = await r.json()
                    async with http.get("/api/feeds?account=beta") as r:
                        out["feeds_beta"] = await r.json()
                    async with http.get("/api/events?account=nobody") as r:
                        out["nobody"] = r.status
                    async with http.get("/api/events?account=gamma") as r:
                        frames = b""
                        async with asyncio.timeout(3):
                            while b"event: feeds" not in frames:
                                frames += await r.content.readany()
                        out["frames"] = frames.decode()
                return out
            finally:
                await monitor.stop()

    out = run_async(main())
    snap = out["all"]
    assert [r["account"] for r in snap["accounts"]] == ["alpha", "beta", "gamma"]
    assert {(p["account"], p["symbol"]) for p in snap["positions"]} == {
        ("alpha", "BTCUSDT"), ("alpha", "ETHUSDT"), ("beta", "BTCUSDT"), ("beta", "ETHUSDT"),
        ("gamma", "SOLUSDT")}
    assert {f["account"] for f in snap["feeds"]} == {"alpha", "beta", "gamma"}
    assert snap["filter"] is None and snap["positions_unknown"] is None
    gamma = out["gamma"]
    assert {p["account"] for p in gamma["positions"]} == {"gamma"}
    assert [f["account"] for f in gamma["feeds"]] == ["gamma"]
    assert len(out["feeds"]["feeds"]) == 3
    assert [f["account"] for f in out["feeds_beta"]["feeds"]] == ["beta"]
    assert out["nobody"] == 404
    first = out["frames"].split("event: feeds")[0]  # the snapshot: gamma's only
    assert '"account":"gamma"' in first and '"account":"alpha","active"' not in first


def test_feedctl_status_shows_every_account_or_one_with_account(
        clean_env: Path, pm: FeedctlPluginManager) -> None:
    path = write(clean_env, THREE)
    (clean_env / ".secrets.toml").write_text(SECRETS)

    async def main() -> dict[str, Any]:
        async with Session("t", settings_path=path, plugin_manager=pm) as s:
            monitor = Monitor(s, MonitorSettings(port=0))
            await monitor.start()
            try:
                await synced(s)
                run = CliRunner().invoke  # blocking HTTP: in a thread, the session runs on
                every = await asyncio.to_thread(run, status_command, ["--url", monitor.url])
                one = await asyncio.to_thread(run, status_command,
                                              ["--url", monitor.url, "--account", "gamma"])
                nobody = await asyncio.to_thread(run, status_command,
                                                 ["--url", monitor.url, "--account", "x"])
                return {"every": every, "one": one, "nobody": nobody}
            finally:
                await monitor.stop()

    out = run_async(main())
    every, one, nobody = out["every"], out["one"], out["nobody"]
    assert every.exit_code == 0, every.output
    assert "Accounts: 3" in every.output and "Positions of every account" in every.output
    assert all(f"│ {a} " in every.output for a in ("alpha", "beta", "gamma"))
    assert one.exit_code == 0, one.output
    assert "Positions of gamma" in one.output and "SOLUSDT" in one.output
    assert "BTCUSDT" not in one.output and "account=gamma" in one.output
    assert nobody.exit_code == 1 and "no account 'x'" in nobody.output
