"""Start/stop hygiene, the demo trader, generated symbols and the CLI."""

from __future__ import annotations

import asyncio
import gc
import json
import os
import signal
import subprocess
import sys
import urllib.request
from decimal import Decimal
from pathlib import Path

import pytest
from websockets.asyncio.client import connect

from feedctl.simulator import SimConfig, Simulator, generated_symbols
from feedctl.simulator.demo import DemoTrader

ROOT = Path(__file__).resolve().parents[2]


@pytest.mark.integration
def test_stop_cancels_everything(h):
    problems: list = []

    async def main():
        loop = asyncio.get_running_loop()
        loop.set_exception_handler(lambda _loop, ctx: problems.append(ctx.get("message")))
        sim = Simulator(SimConfig(symbols=["BTCUSDT"], demo=True, demo_interval=0.05))
        await sim.start()
        pub = await connect(sim.urls["public_ws"])
        priv = await connect(sim.urls["private_ws"])
        await pub.send(json.dumps({"op": "subscribe", "args": ["tickers.BTCUSDT"]}))
        await pub.recv()
        await asyncio.sleep(0.3)
        assert sim.demo is not None and sim.demo.actions > 0
        await sim.stop()
        for ws in (pub, priv):
            await asyncio.wait_for(ws.wait_closed(), 3)
        await sim.stop()  # idempotent
        others = [t for t in asyncio.all_tasks() if t is not asyncio.current_task()]
        assert not any(t.get_name().startswith("simulator") for t in others), others
        gc.collect()

    h.run(main())
    gc.collect()
    assert problems == []


@pytest.mark.unit
def test_demo_trader_covers_the_lifecycle():
    sim = Simulator(SimConfig(symbols=["BTCUSDT", "ETHUSDT", "SOLUSDT"], seed=3))
    demo = DemoTrader(sim.account, sim.prices, seed=3)
    actions = {demo.step() for _ in range(300)}
    assert {"open", "add", "reduce", "close", "flip", "leverage"} <= actions
    kinds = {t["kind"] for t in sim.account.transitions}
    assert kinds == {"opened", "changed", "closed"}
    for pos in sim.account.positions.values():
        cap = demo._unit(pos.symbol) * 6
        assert pos.size <= cap


@pytest.mark.unit
def test_generated_symbols_are_plausible():
    names = generated_symbols(500)
    assert names[:5] == ["BTCUSDT", "ETHUSDT", "SOLUSDT", "XRPUSDT", "DOGEUSDT"]
    assert names[5] == "SYM001USDT" and len(set(names)) == 500
    sim = Simulator(SimConfig(symbols=names))
    for name in names[5:]:
        inst = sim.instruments[name]
        mark = sim.prices.mark(name)
        assert mark > 0 and mark % inst.tick_size == 0
        assert inst.min_qty * mark < 100
        row = inst.info_row()
        assert "E" not in json.dumps(row)
    assert sim.api_secret not in repr(sim.config)
    assert Decimal(sim.instruments["SYM001USDT"].info_row()["priceFilter"]["tickSize"]) > 0


@pytest.mark.integration
@pytest.mark.parametrize("argv", [["-m", "simulator"], ["-m", "feedctl.simulator.cli"]])
def test_cli_prints_urls_then_exits_cleanly_on_sigint(argv):
    env = dict(os.environ, PYTHONPATH=str(ROOT) + os.pathsep + os.environ.get("PYTHONPATH", ""))
    proc = subprocess.Popen([sys.executable, *argv, "--port", "0", "--symbols", "12",
                             "--seed", "5"], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True, cwd=ROOT, env=env)
    try:
        assert proc.stdout is not None
        line = json.loads(proc.stdout.readline())
        assert set(line) == {"rest", "public_ws", "private_ws", "control", "api_key",
                             "api_secret", "public_ws_inverse"}
        with urllib.request.urlopen(line["control"] + "/info", timeout=5) as resp:
            info = json.loads(resp.read())
        assert len(info["symbols"]) == 12 and "api_secret" not in info
        proc.send_signal(signal.SIGINT)
        _, err = proc.communicate(timeout=10)
        assert proc.returncode == 0, err
        assert line["api_secret"] not in err
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.communicate()
