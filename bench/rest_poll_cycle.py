"""What one rest_polling cycle costs: requests per cycle and time per cycle.

Runs the embedded simulator on loopback with N open positions (default 50), builds a
``rest_polling`` feed exactly as the core would, and times complete poll cycles
(snapshot + mark prices + reconcile into the book) for each mark-price source.
Prints a table and writes bench/results/rest_poll_cycle.json.

    PYTHONPATH=. python bench/rest_poll_cycle.py [--positions 50] [--cycles 20]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import platform
import statistics
import sys
import time
from pathlib import Path
from typing import Any

import ccxt

from feedctl import AccountSettings, Endpoints, FeedContext, PositionBook
from feedctl.plugins.rest_polling import RestPollingFeed, RestPollingSettings
from feedctl.plugins.rest_polling.client import PollerClient
from feedctl.simulator import SimConfig, SimControl, Simulator, generated_symbols

RESULTS = Path(__file__).with_name("results") / "rest_poll_cycle.json"

#: (label, mark_price_source, ccxt rate limiter on)
CASES = [
    ("positions' markPrice (bybit default)", "auto", True),
    ("fetch_tickers for marks", "tickers", True),
    ("positions' markPrice, limiter off*", "auto", False),
]


async def measure(sim: Simulator, source: str, limiter: bool, cycles: int,
                  gap: float) -> dict[str, Any]:
    book = PositionBook(exchange="bybit", account="main", feed="bench")
    ctx = FeedContext(
        name="bench", kind="rest_polling", role=None,
        account=AccountSettings(api_key=sim.api_key, api_secret=sim.api_secret),
        endpoints=Endpoints(rest=sim.urls["rest"]), book=book)
    feed = RestPollingFeed(ctx, RestPollingSettings(mark_price_source=source))
    feed.client = PollerClient.create(feed="bench", settings=feed.settings, account=ctx.account,
                                      endpoints=ctx.endpoints,
                                      on_request=lambda: ctx.count("requests"))
    try:
        t0 = time.perf_counter()
        await feed.client.load_markets()
        await feed.poll_once()  # the first snapshot: every position opens
        startup = {"seconds": time.perf_counter() - t0, "requests": ctx.counters["requests"]}
        feed.client.exchange.enableRateLimit = limiter
        seconds, requests, server = [], [], []
        for _ in range(cycles):
            await asyncio.sleep(gap)  # polls are spaced in real use
            before = sim.rest.requests
            await feed.poll_once()
            seconds.append(feed.last_cycle["seconds"])
            requests.append(int(feed.last_cycle["requests"]))
            server.append(sim.rest.requests - before)
    finally:
        await feed.client.close()
    assert requests == server, f"feed counted {requests}, the exchange saw {server}"
    return {
        "open_positions": len(book.positions),
        "requests_per_cycle": int(statistics.median(requests)),
        "cycle_ms_median": round(statistics.median(seconds) * 1000, 2),
        "cycle_ms_p90": round(sorted(seconds)[int(0.9 * (len(seconds) - 1))] * 1000, 2),
        "cycle_ms_min": round(min(seconds) * 1000, 2),
        "startup_requests": startup["requests"],
        "startup_ms": round(startup["seconds"] * 1000, 1),
    }


async def main(positions: int, cycles: int, gap: float) -> dict[str, Any]:
    symbols = generated_symbols(positions)
    async with Simulator(SimConfig(port=0, symbols=symbols, seed=1)) as sim, \
            SimControl(sim.urls["control"]) as ctl:
        for i, sym in enumerate(symbols):
            await ctl.set_position(sym, "Buy" if i % 2 else "Sell", "1")
        rows = []
        for label, source, limiter in CASES:
            result = await measure(sim, source, limiter, cycles, gap)
            rows.append({"case": label, "mark_price_source": source,
                         "ccxt_rate_limiter": limiter, **result})
    return {
        "benchmark": "rest_poll_cycle",
        "command": " ".join(["PYTHONPATH=. python bench/rest_poll_cycle.py", *sys.argv[1:]]),
        "positions": positions, "cycles": cycles, "gap_s": gap,
        "exchange": "simulator (Bybit V5) on 127.0.0.1 via ccxt bybit",
        "python": platform.python_version(), "ccxt": ccxt.__version__,
        "machine": platform.machine(), "at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "rows": rows,
    }


def table(report: dict[str, Any]) -> str:
    head = ("case", "positions", "req/cycle", "median ms", "p90 ms", "min ms", "startup req")
    lines = [" | ".join(head), " | ".join("---" for _ in head)]
    for r in report["rows"]:
        lines.append(" | ".join(str(x) for x in (
            r["case"], r["open_positions"], r["requests_per_cycle"], r["cycle_ms_median"],
            r["cycle_ms_p90"], r["cycle_ms_min"], r["startup_requests"])))
    lines.append("")
    lines.append("* for reference only: the feed always runs with ccxt's limiter on, which holds "
                 "each request back by its cost (5 x 20 ms for /v5/position/list).")
    return "\n".join(lines)


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--positions", type=int, default=50)
    parser.add_argument("--cycles", type=int, default=20)
    parser.add_argument("--gap", type=float, default=0.2, help="seconds between cycles")
    args = parser.parse_args()
    report = asyncio.run(main(args.positions, args.cycles, args.gap))
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text(json.dumps(report, indent=2) + "\n")
    print(table(report))
    print(f"\nwritten to {RESULTS}")
