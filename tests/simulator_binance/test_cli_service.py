"""How the Binance personality is started: ``feedctl sim --exchange binanceusdm`` and the
embedded-simulator service of a profile whose exchange is binanceusdm."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys

import aiohttp
import pytest

from feedctl import ProfileSettings
from feedctl.simulator.plugin import SimulatorSection, feedctl_services

from .conftest import connect, recv_event, run

pytestmark = pytest.mark.integration


def test_feedctl_sim_exchange_binanceusdm_prints_its_urls_and_serves_fapi(tmp_path):
    env = {k: v for k, v in os.environ.items() if not k.startswith("FEEDCTL_")}
    proc = subprocess.Popen([sys.executable, "-m", "feedctl.cli", "sim", "--exchange",
                             "binanceusdm", "--symbols", "BTCUSDT"], cwd=tmp_path, env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        assert proc.stdout is not None
        line = json.loads(proc.stdout.readline())
        assert set(line) >= {"rest", "market_ws", "private_ws", "api_key", "api_secret"}
        assert line["market_ws"].endswith("/market") and line["private_ws"].endswith("/private")

        async def probe():
            async with aiohttp.ClientSession() as session, \
                    session.get(line["rest"] + "/fapi/v1/time") as resp:
                assert resp.status == 200 and "serverTime" in await resp.json()

        run(probe(), timeout=20)
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=20) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(timeout=10)


def test_the_embedded_service_of_a_binanceusdm_profile_overrides_its_endpoints():
    async def main():
        settings = ProfileSettings.model_validate({
            "profile": "binsim", "account": {"exchange": "binanceusdm"},
            "plugins": {"simulator": SimulatorSection(embedded=True, symbols=["BTCUSDT"],
                                                      demo=True, demo_interval=0.2)}})
        (service,) = feedctl_services(settings)
        overrides = await service.start()
        try:
            assert set(overrides["endpoints"]) == {"rest", "market_ws", "private_ws"}
            assert overrides["account"]["api_key"] and overrides["account"]["api_secret"]
            url = overrides["endpoints"]["market_ws"] + "/ws/btcusdt@markPrice@1s"
            async with connect(url) as ws:
                update = await recv_event(ws, "markPriceUpdate", timeout=5)
                assert update["s"] == "BTCUSDT"
            sim = service.sim
            rest = overrides["endpoints"]["rest"]
            async with aiohttp.ClientSession() as session, session.post(
                    rest + "/fapi/v1/listenKey", headers={"X-MBX-APIKEY": sim.api_key}) as resp:
                key = (await resp.json())["listenKey"]
            async with connect(f"{overrides['endpoints']['private_ws']}/ws?listenKey={key}"
                               ) as ws:  # the demo trader's fills reach the user stream
                await recv_event(ws, "ORDER_TRADE_UPDATE", timeout=10)
        finally:
            await service.stop()

    run(main())


def test_an_embedded_simulator_for_an_exchange_it_does_not_speak_is_refused():
    settings = ProfileSettings.model_validate({
        "profile": "x", "account": {"exchange": "okx"},
        "plugins": {"simulator": SimulatorSection(embedded=True)}})
    with pytest.raises(ValueError, match="bybit or binanceusdm"):
        feedctl_services(settings)
