"""Trailing-stop activation delay: `rest` mode vs `production` mode, on Bybit (the
hybrid feed) and on Binance USDⓈ-M (the binance_usdm feed).

One command: ``python bench/trailing_stop_delay.py [--trials 10] [--rest-interval 10]
[--exchanges bybit,binanceusdm]``.

For each exchange and mode, on the in-process simulator (its Bybit or its Binance
personality): open a long at 3000, wait a random phase, then move the exchange's mark
past the activation level (+0.5 %) in one step and record the time of that move. The
activation delay is the trailing-stop consumer's decision time minus that time: how
late a trailing stop would react. Every row runs the same scripted path on the same
simulator build, side by side. On Binance the production feed's marks come from
``<symbol>@markPrice@1s`` (Binance pushes it every second; so does the simulator
here) and rest mode polls ccxt's binanceusdm. Prints a table and writes
bench/results/trailing_stop_delay.json.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import random
import statistics
import sys
import tempfile
import time
from decimal import Decimal
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from feedctl import EventKind, PositionEvent, Session
from feedctl.simulator import SimConfig, Simulator, generated_symbols

SYMBOL, ENTRY, CROSS = "ETHUSDT", Decimal("3000"), Decimal("3016")


def overrides(sim: Simulator, mode: str, rest_interval: float, exchange: str
              ) -> dict[str, Any]:
    if exchange == "binanceusdm":
        endpoints = {"rest": sim.urls["rest"], "market_ws": sim.urls["market_ws"],
                     "private_ws": sim.urls["private_ws"]}
    else:
        endpoints = {"rest": sim.urls["rest"], "public_ws": sim.urls["public_ws"],
                     "private_ws": sim.urls["private_ws"]}
    return {
        "mode": mode,
        "account": {"exchange": exchange, "api_key": sim.api_key,
                    "api_secret": sim.api_secret},
        "endpoints": endpoints,
        "feeds": {"rest_polling": {"kind": "rest_polling", "interval": rest_interval}},
        "trailing_stop": {"activation_pct": "0.5", "callback_pct": "0.2"},
        "logging": {"level": "WARNING"},
    }


async def run_mode(mode: str, trials: int, rest_interval: float, seed: int,
                   exchange: str = "bybit") -> list[float]:
    rnd = random.Random(seed)
    delays: list[float] = []
    settings = Path(tempfile.mkdtemp()) / "settings.toml"
    settings.write_text("[bench]\n")
    # Binance: each trial on a symbol of its own. The feed streams a symbol's mark only
    # while a position is open, so after a close the book keeps that symbol's last mark
    # (the previous trial's 3016); a new position opened on it would start from that
    # stale mark and activate at once. Bybit's ticker stream keeps every mark fresh.
    symbols = ([SYMBOL] if exchange == "bybit"
               else [SYMBOL, *generated_symbols(5 + trials)[5:]][:trials])
    async with Simulator(SimConfig(symbols=symbols, seed=seed, exchange=exchange)) as sim:
        session = Session("bench", settings_path=settings,
                          overrides=overrides(sim, mode, rest_interval, exchange))
        async with session:
            stream = session.events(name="bench")
            activations: asyncio.Queue[Any] = asyncio.Queue()
            opened: asyncio.Queue[Any] = asyncio.Queue()

            async def pump() -> None:
                async for ev in stream:
                    if getattr(ev, "type", "") == "trailing_stop" and ev.action == "activated":
                        activations.put_nowait(ev)
                    elif isinstance(ev, PositionEvent) and ev.kind is EventKind.OPENED:
                        opened.put_nowait(ev)

            pump_task = asyncio.create_task(pump())
            try:
                for trial in range(trials):
                    symbol = symbols[trial % len(symbols)]
                    sim.prices.set_price(symbol, ENTRY)
                    await asyncio.sleep(0.3)  # the ticker stream shows the entry price
                    qty = Decimal("0.5") if symbol == SYMBOL else sim.instruments[symbol].min_qty
                    sim.account.set_position(symbol, "Buy", qty, entry_price=ENTRY)
                    await asyncio.wait_for(opened.get(), rest_interval * 3 + 5)
                    await asyncio.sleep(rnd.uniform(0.2, rest_interval))  # random poll phase
                    if not activations.empty():
                        raise RuntimeError("an activation came before the price crossed: "
                                           f"{activations.get_nowait()!r}")
                    crossed_ns = time.time_ns()
                    sim.prices.set_price(symbol, CROSS)
                    act = await asyncio.wait_for(activations.get(), rest_interval * 3 + 5)
                    delays.append((act.decided_ns - crossed_ns) / 1e6)
                    sim.account.close_position(symbol)
                    while session.router is not None and session.router.delivered:
                        await asyncio.sleep(0.05)
            finally:
                pump_task.cancel()
                await asyncio.gather(pump_task, return_exceptions=True)
    return delays


def summary(delays: list[float]) -> dict[str, float]:
    ordered = sorted(delays)
    return {"trials": len(ordered), "p50_ms": statistics.median(ordered),
            "p99_ms": ordered[min(len(ordered) - 1, round(0.99 * (len(ordered) - 1)))],
            "max_ms": ordered[-1]}


async def main(args: argparse.Namespace) -> dict[str, Any]:
    results = {}
    for exchange in args.exchanges.split(","):
        for mode in ("production", "rest"):
            row = f"{mode}" if exchange == "bybit" else f"{exchange} {mode}"
            results[row] = summary(await run_mode(mode, args.trials, args.rest_interval,
                                                  args.seed, exchange))
    return results


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--trials", type=int, default=10)
    parser.add_argument("--rest-interval", type=float, default=10.0)
    parser.add_argument("--seed", type=int, default=11)
    parser.add_argument("--exchanges", default="bybit,binanceusdm",
                        help="simulator personalities: bybit, binanceusdm")
    args = parser.parse_args()
    results = asyncio.run(main(args))
    print(f"trailing-stop activation delay, {args.trials} trials per mode, "
          f"rest interval {args.rest_interval:g} s")
    print(f"{'mode':<24}{'p50 ms':>10}{'p99 ms':>10}{'max ms':>10}")
    for mode, r in results.items():
        print(f"{mode:<24}{r['p50_ms']:>10.1f}{r['p99_ms']:>10.1f}{r['max_ms']:>10.1f}")
    for exchange in args.exchanges.split(","):
        prefix = "" if exchange == "bybit" else f"{exchange} "
        ratio = results[f"{prefix}rest"]["p50_ms"] / results[f"{prefix}production"]["p50_ms"]
        print(f"{exchange}: production reacts {ratio:.1f}x sooner at the median")
    out = ROOT / "bench" / "results" / "trailing_stop_delay.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps({"args": vars(args), "results": results}, indent=2))
