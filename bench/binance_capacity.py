"""Binance USDⓈ-M mark-price messages per CPU-second: feedctl's binance_usdm Session vs
ccxt.pro ``binanceusdm`` vs python-binance, and the bare reader ceiling, on the
simulator's Binance personality.

    python bench/binance_capacity.py [--symbols 500] [--interval 0.05] [--seconds 5]
                                     [--warmup 1.5] [--runs 3]
                                     [--clients ceiling,ours,ccxt,pbinance]

The simulator (bench/binance_procs.py, CPU 0) pushes ``<symbol>@markPrice@1s`` for N
symbols every ``--interval`` s (500 x 0.05 s = 10,000 frames/s offered); each client
(bench/binance_clients.py, the same four as bench/binance_latency.py) runs alone on
CPU 1, subscribed to all N. Per client: ``msg/s`` the frames it absorbed per wall
second (ours: frames its market socket parsed; ccxt: frames its handler parsed;
python-binance and the ceiling: frames read), ``cpu%`` its process's CPU over the
window, ``msg/cpu-s`` = msg/s / CPU fraction — the figure that does not depend on how
much the simulator manages to offer. Rounds interleaved; medians; ``vs ceiling`` the
median per-round ratio of msg/cpu-s to the ceiling's.

Prints a table and writes bench/results/binance_capacity.json.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
from binance_latency import CLIENTS, dump, fmt, medians, run_client, start_sim, stop_sim
from hybrid_latency import write_report

RESULTS = HERE / "results" / "binance_capacity.json"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--symbols", default="500")
    ap.add_argument("--interval", type=float, default=0.05, help="mark push period, s")
    ap.add_argument("--seconds", type=float, default=5.0)
    ap.add_argument("--warmup", type=float, default=1.5)
    ap.add_argument("--runs", type=int, default=3, help="interleaved rounds (medians)")
    ap.add_argument("--clients", default=CLIENTS)
    ap.add_argument("--out", default=str(RESULTS))
    args = ap.parse_args()
    runs: list[dict[str, Any]] = []
    for n in [int(x) for x in args.symbols.split(",")]:
        proc, info = start_sim(n, args.interval)
        try:
            for rnd in range(args.runs):
                for kind in args.clients.split(","):
                    cfg = {**info, "seconds": args.seconds, "warmup": args.warmup, "cpu": 1}
                    dump(proc)
                    t0 = time.perf_counter()
                    res = run_client("capacity", kind, cfg, timeout=150 + args.seconds)
                    sim = dump(proc)
                    if res is None:
                        runs.append({"symbols": n, "client": kind, "round": rnd,
                                     "failed": True})
                        continue
                    offered = sum(1 for s, _e, _ns in sim["sent"] if s != "*")
                    cpu = max(res["cpu_pct"], 1e-6) / 100
                    row = {"symbols": n, "client": kind, "round": rnd,
                           "msg_s": round(res["rate"], 1),
                           "events_s": round(res["events_rate"], 1),
                           "cpu_pct": round(res["cpu_pct"], 1),
                           "msg_per_cpu_s": round(res["rate"] / cpu, 1),
                           "offered_s": round(offered / max(1e-9, time.perf_counter() - t0),
                                              1),
                           "rss_mb": round(res["rss_end_mb"], 1),
                           "run_s": round(time.perf_counter() - t0, 1)}
                    runs.append(row)
                    print(json.dumps(row), flush=True)
        finally:
            stop_sim(proc)
    rows = medians(runs, ("msg_per_cpu_s",))
    print()
    head = (f"{'N':>4} {'client':<9} {'msg/s':>9} {'events/s':>9} {'cpu%':>6} "
            f"{'msg/cpu-s':>10} {'rss MB':>7} {'vs ceiling':>10}")
    print(head)
    print("-" * len(head))
    for r in rows:
        print(f"{r['symbols']:>4} {r['client']:<9} {r['msg_s']:>9.0f} {r['events_s']:>9.0f} "
              f"{r['cpu_pct']:>6.1f} {r['msg_per_cpu_s']:>10.0f} {r['rss_mb']:>7.1f} "
              f"{fmt(r['msg_per_cpu_s_vs_ceiling']):>10}")
    print(f"medians of {args.runs} interleaved round(s); {args.symbols} symbols every "
          f"{args.interval}s offered. msg/s: frames the client absorbed; events/s: what "
          "reached its consumer (ours emits a price event only when a mark moved: the "
          "simulator's prices step every 0.1 s; ccxt's watch_mark_prices returns only what "
          "arrived since its last call); msg/cpu-s: msg/s "
          "over the client process's CPU fraction; vs ceiling: that over the bare reader's "
          "(websockets + orjson) in the same round")
    for r in rows:
        if r["failed_runs"]:
            print(f"{r['client']} at {r['symbols']} symbols: {r['failed_runs']} round(s) "
                  "failed (see stderr), medians of the others")
    print(f"load average {os.getloadavg()[0]:.1f}")
    write_report(args.out, "binance_capacity", interval_s=args.interval, rows=rows, runs=runs)


if __name__ == "__main__":
    main()
