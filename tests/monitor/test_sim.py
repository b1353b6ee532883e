"""The monitor over the real thing: the ``sim`` profile (embedded exchange, bybit_hybrid
primary, rest_polling standby), in-process."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

import aiohttp
import pytest

from feedctl import build_plugin_manager
from feedctl.monitor import Monitor
from feedctl.session import Session
from tests.conftest import run_async
from tests.monitor.conftest import monitor_settings, wait_for

pytestmark = [pytest.mark.integration, pytest.mark.slow]

ENDPOINTS = ["/", "/api/status", "/api/positions", "/api/subscriptions", "/api/validation",
             "/metrics"]


def test_sim_session_through_the_monitor_shows_positions_and_no_secret(clean_env: Path) -> None:
    pm = build_plugin_manager()
    if "simulator" not in {i.name for i in pm.plugins_info()}:
        pytest.skip("the simulator plugin is not installed (pip install -e .)")

    async def main() -> tuple[list[bytes], dict[str, object], tuple[str, str]]:
        async with Session("sim", plugin_manager=pm) as session:
            account = session.settings.account
            assert account.api_key is not None and account.api_secret is not None
            secrets = (account.api_key.get_secret_value(), account.api_secret.get_secret_value())
            async with Monitor(session, monitor_settings()) as monitor, \
                    aiohttp.ClientSession(monitor.url) as http:
                await wait_for(lambda: session.router is not None and session.router.delivered,
                               within=10)
                bodies = []
                for path in ENDPOINTS:
                    async with http.get(path) as r:
                        assert r.status == 200, path
                        bodies.append(await r.read())
                for _ in range(100):  # the ticker subscription follows the position
                    async with http.get("/api/subscriptions") as r:
                        subs = await r.json()
                    if "tickers." in json.dumps(subs["bybit_hybrid"]):
                        break
                    await asyncio.sleep(0.05)
                async with http.get("/api/events") as r:
                    bodies.append(await asyncio.wait_for(
                        r.content.readuntil(b"event: position"), 5))
        return bodies, subs, secrets

    bodies, subs, (key, secret) = run_async(main(), timeout=30)
    everything = b"\n".join(bodies)
    assert key.encode() not in everything and secret.encode() not in everything
    assert b"feedctl_feed_up{feed=\"bybit_hybrid\",kind=\"bybit_hybrid\",role=\"primary\"}" \
        in everything
    assert "tickers." in json.dumps(subs["bybit_hybrid"])  # the public stream's topics
