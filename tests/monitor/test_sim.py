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


def _dead_port() -> int:
    import socket
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])  # closed on exit: nothing listens there


def test_with_rest_unreachable_positions_are_unknown_not_flat(tmp_path: Path) -> None:
    """The real feeds at the shipped router defaults, REST unreachable: no feed ever
    synced. The API, /readyz and the terminal view say unknown, never "no open
    positions" beside a healthy light."""
    from feedctl.monitor.render import dashboard
    from feedctl.monitor.views import feed_rows, positions_payload
    from feedctl.simulator import SimConfig, Simulator
    from tests.monitor.test_live import draw
    from tests.rollout.conftest import overrides, settings_file

    async def main() -> None:
        async with Simulator(SimConfig(symbols=["BTCUSDT"], seed=3)) as sim:
            over = overrides(sim, mode="production")
            over["endpoints"]["rest"] = f"http://127.0.0.1:{_dead_port()}"
            async with Session("t", settings_path=settings_file(tmp_path),
                               overrides=over) as session, \
                    Monitor(session, monitor_settings()) as monitor, \
                    aiohttp.ClientSession(monitor.url) as http:
                await asyncio.sleep(2.0)
                async with http.get("/api/positions") as r:
                    positions = await r.json()
                assert positions["known"] is False and positions["delivered"] == []
                assert positions["unknown_reason"].startswith("not synced yet (bybit_hybrid: ")
                async with http.get("/readyz") as r:
                    assert r.status == 503
                status = session.status()
                assert all(f["synced_ns"] is None for f in status["feeds"].values())
                text = draw(dashboard(status, positions_payload(session)["delivered"],
                                      feed_rows(status), []))
                assert "positions unknown: not synced yet" in text
                assert "no open positions" not in text

    run_async(main(), timeout=30)
