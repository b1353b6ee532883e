"""Capacity: ticker messages per second one client process absorbs on one core.

    python bench/hybrid_capacity.py [--symbols 100] [--seconds 5] [--warmup 2] [--profile]

A replay server (bench/hybrid_procs.py ``replay``, pinned to CPU 0 with the simulator)
answers the public subscribe like Bybit and then writes pre-encoded ticker deltas
straight to the socket as fast as the client's TCP window allows; every delta moves the
mark. Each client runs alone in its own process pinned to CPU 1, so the rate it reaches
is the rate it can absorb on one core: beyond it the server is throttled by TCP and the
client falls behind. Ours runs the whole feed (private socket and REST against the
simulator, which holds a position on every symbol) and counts the book's ``price``
events — each one a parsed, merged ticker, a new mark and a recomputed PnL.

Rows: ours; ours with the standard library's ``json`` instead of orjson (what orjson
buys); ccxt.pro ``watch_tickers``; pybit ``ticker_stream``. ``--profile`` prints a
cProfile of ours. Prints a table and writes bench/results/hybrid_capacity.json.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
from hybrid_latency import ENV, run_client, start_sim, write_report

RESULTS = HERE / "results" / "hybrid_capacity.json"
TARGET = 50_000


def start_replay() -> tuple[subprocess.Popen[str], str]:
    proc = subprocess.Popen([sys.executable, str(HERE / "hybrid_procs.py"), "replay", "0"],
                            stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True, env=ENV)
    assert proc.stdout is not None
    return proc, json.loads(proc.stdout.readline())["url"]


def stop(proc: subprocess.Popen[str]) -> None:
    assert proc.stdin is not None
    proc.stdin.write("quit\n")
    proc.stdin.flush()
    proc.wait(10)


def capacity_runs(symbols: int, seconds: float, warmup: float, clients: list[str],
                  options: dict[str, Any]) -> list[dict[str, Any]]:
    sim, info = start_sim(symbols)
    replay, url = start_replay()
    rows = []
    try:
        for label in clients:
            kind, _, variant = label.partition("+")
            opts = dict(options)
            if variant == "json":
                opts["json_stdlib"] = True
            cfg = {**info, "urls": {**info["urls"], "public_ws": url}, "seconds": seconds,
                   "warmup": warmup, "cpu": 1, "options": opts}
            result = run_client("capacity", kind, cfg, timeout=120 + seconds)
            row = {"client": label, "symbols": symbols, "rate": round(result["rate"]),
                   "events_rate": round(result["events_rate"]),
                   "count": result["count"], "seconds": round(result["seconds"], 2),
                   "cpu_pct": round(result["cpu_pct"]),
                   "per_cpu_s": round(result["rate"] * 100 / max(1.0, result["cpu_pct"])),
                   "rss_mb": result["rss_mb"], "rss_end_mb": round(result["rss_end_mb"], 1)}
            rows.append(row)
            print(json.dumps(row), flush=True)
    finally:
        stop(replay)
        stop(sim)
    return rows


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--symbols", type=int, default=100)
    ap.add_argument("--seconds", type=float, default=5.0)
    ap.add_argument("--warmup", type=float, default=2.0)
    ap.add_argument("--clients", default="ours,ours+json,ccxt,pybit")
    ap.add_argument("--profile", action="store_true", help="cProfile ours (slower)")
    ap.add_argument("--out", default=str(RESULTS))
    args = ap.parse_args()
    clients = args.clients.split(",")
    if args.profile:
        clients = ["ours"]
    rows = capacity_runs(args.symbols, args.seconds, args.warmup, clients,
                         {"profile": args.profile})
    ours = next((r["per_cpu_s"] for r in rows if r["client"] == "ours"), None)
    for r in rows:
        r["vs_ours"] = round(r["per_cpu_s"] / ours, 3) if ours else "-"
    print()
    head = (f"{'client':<11} {'symbols':>7} {'msgs/s':>9} {'events/s':>9} {'CPU %':>6} "
            f"{'msgs/CPU-s':>10} {'vs ours':>8} {'RSS MB':>7}")
    print(head)
    print("-" * len(head))
    for r in rows:
        print(f"{r['client']:<11} {r['symbols']:>7} {r['rate']:>9} {r['events_rate']:>9} "
              f"{r['cpu_pct']:>6} {r['per_cpu_s']:>10} {r['vs_ours']:>8} {r['rss_end_mb']:>7}")
    print("msgs/s: messages the client parsed; events/s: what its consumer received; "
          "msgs/CPU-s: msgs/s per second of CPU the client used (one core's capacity, "
          "robust to a shared machine); vs ours: ratio of msgs/CPU-s")
    if ours is not None:
        print(f"target >= {TARGET}/s on one core: {'met' if ours >= TARGET else 'NOT met'} "
              f"({ours} msgs per CPU-second; load average {os.getloadavg()[0]:.1f})")
    if not args.profile:
        write_report(args.out, "hybrid_capacity", target=TARGET, rows=rows)


if __name__ == "__main__":
    main()
