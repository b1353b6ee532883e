"""Capacity: ticker messages per second one client process absorbs on one core.

    python bench/hybrid_capacity.py [--symbols 100] [--seconds 5] [--warmup 2] [--runs 3]
                                    [--clients ceiling,ours,ours+3,...] [--profile]

A replay server (bench/hybrid_procs.py ``replay``, pinned to CPU 0 with the simulator)
answers the public subscribe like Bybit and then writes pre-encoded ticker deltas
straight to the socket as fast as the client's TCP window allows; every delta moves the
mark. Each client runs alone in its own process pinned to CPU 1, so the rate it reaches
is the rate it can absorb on one core: beyond it the server is throttled by TCP and the
client falls behind.

Rows: ``ceiling``, a bare websockets + orjson reader that only keeps the latest
markPrice per symbol (what a Python client on these libraries can reach at most);
``ours``, the whole feed - a :class:`feedctl.Session` (private socket and REST against
the simulator, which holds a position on every symbol; book, PnL, router, delivery
queue) with one consumer task reading ``session.events()``; ``ours+3``, the same with
three consumers; ``ours+wsparse``, ours with every frame parsed by websockets (as the
ceiling's are: the hybrid parses unfragmented text frames itself, see
plugins/bybit_hybrid/ws.py); ``ours+orjson``, ours with the ticker fast path off (every
frame decoded by orjson into a dict, as before msgspec's typed decode: what it buys);
``ours+json``, every frame decoded by the standard library's ``json`` instead (the fast
path off too: what the fast decoders buy together); ccxt.pro ``watch_tickers``; pybit
``ticker_stream``. Each row is reported as a share of the ceiling measured in the same
round; rounds are interleaved and the table shows medians. ``--profile`` prints a
cProfile of ours. Prints a table and writes bench/results/hybrid_capacity.json.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
from hybrid_latency import ENV, run_client, start_sim, write_report

RESULTS = HERE / "results" / "hybrid_capacity.json"
CEILING = "ceiling"
#: Share of the ceiling's msgs/CPU-s each row must reach (issue 16).
TARGETS = {"ours": 0.8, "ours+3": 0.7}


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
                  options: dict[str, Any], runs: int = 1,
                  timeout: float | None = None) -> list[dict[str, Any]]:
    """Each client in turn, ``runs`` rounds (interleaved: every round sees the same
    machine load for all clients); one row per client and round (``round`` field)."""
    sim, info = start_sim(symbols)
    replay, url = start_replay()
    rows = []
    try:
        for rnd in range(runs):
            for label in clients:
                kind, _, variant = label.partition("+")
                opts = dict(options)
                if variant == "json":
                    opts["json_stdlib"] = True
                elif variant == "orjson":
                    opts["no_fast_path"] = True
                elif variant == "wsparse":
                    opts["ws_parser"] = True
                elif variant.isdigit():
                    opts["consumers"] = int(variant)
                cfg = {**info, "urls": {**info["urls"], "public_ws": url}, "seconds": seconds,
                       "warmup": warmup, "cpu": 1, "options": opts}
                result = run_client("capacity", kind, cfg, timeout=timeout or 120 + seconds)
                row = {"client": label, "round": rnd, "symbols": symbols,
                       "rate": round(result["rate"]),
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


def summarise(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """One row per client: medians over rounds; ``of_ceiling`` is the median over rounds
    of msgs/CPU-s divided by the ceiling's in the same round."""
    ceiling = {r["round"]: r["per_cpu_s"] for r in rows if r["client"] == CEILING}
    out = []
    for label in dict.fromkeys(r["client"] for r in rows):
        mine = [r for r in rows if r["client"] == label]
        shares = [r["per_cpu_s"] / ceiling[r["round"]] for r in mine if ceiling.get(r["round"])]
        med = {k: statistics.median(r[k] for r in mine)
               for k in ("rate", "events_rate", "cpu_pct", "per_cpu_s", "rss_end_mb")}
        out.append({"client": label, "symbols": mine[0]["symbols"], "runs": len(mine),
                    **{k: round(v, 1) if k == "rss_end_mb" else round(v)
                       for k, v in med.items()},
                    "of_ceiling": round(statistics.median(shares), 3) if shares else None,
                    "of_ceiling_runs": [round(x, 3) for x in shares]})
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--symbols", type=int, default=100)
    ap.add_argument("--seconds", type=float, default=5.0)
    ap.add_argument("--warmup", type=float, default=2.0)
    ap.add_argument("--runs", type=int, default=3, help="interleaved rounds (medians)")
    ap.add_argument("--clients",
                    default="ceiling,ours,ours+3,ours+wsparse,ours+json,ccxt,pybit")
    ap.add_argument("--profile", action="store_true", help="cProfile ours (slower)")
    ap.add_argument("--out", default=str(RESULTS))
    args = ap.parse_args()
    clients = args.clients.split(",")
    if args.profile:
        clients, args.runs = ["ours"], 1
    raw = capacity_runs(args.symbols, args.seconds, args.warmup, clients,
                        {"profile": args.profile}, runs=args.runs)
    rows = summarise(raw)
    print()
    head = (f"{'client':<11} {'symbols':>7} {'msgs/s':>9} {'events/s':>9} {'CPU %':>6} "
            f"{'msgs/CPU-s':>10} {'of ceiling':>10} {'RSS MB':>7}")
    print(head)
    print("-" * len(head))
    for r in rows:
        share = "-" if r["of_ceiling"] is None else f"{r['of_ceiling']:.3f}"
        print(f"{r['client']:<11} {r['symbols']:>7} {r['rate']:>9} {r['events_rate']:>9} "
              f"{r['cpu_pct']:>6} {r['per_cpu_s']:>10} {share:>10} {r['rss_end_mb']:>7}")
    print(f"medians of {args.runs} interleaved rounds. msgs/s: messages the client parsed; "
          "events/s: what its (first) consumer received (ours coalesces); msgs/CPU-s: msgs/s "
          "per second of CPU the client used (one core's capacity, robust to a shared "
          "machine); of ceiling: msgs/CPU-s / the ceiling's in the same round. "
          "ours = Session (book, router, delivery) + 1 consumer; ours+3: 3 consumers; "
          "ours+wsparse: ours with websockets parsing every frame; ours+orjson: the ticker "
          "fast path off (orjson dicts); ours+json: the fast path off, stdlib json")
    by = {r["client"]: r for r in rows}
    verdicts = {}
    for label, target in TARGETS.items():
        share = by.get(label, {}).get("of_ceiling")
        if share is not None:
            verdicts[label] = share >= target
            print(f"target {label} >= {target} of the ceiling: "
                  f"{'met' if share >= target else 'NOT met'} ({share:.3f})")
    print(f"load average {os.getloadavg()[0]:.1f}")
    if not args.profile:
        write_report(args.out, "hybrid_capacity", targets=TARGETS, met=verdicts, rows=rows,
                     runs=raw)


if __name__ == "__main__":
    main()
