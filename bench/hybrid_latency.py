"""End-to-end ticker latency: simulator send → consumer callback, ours vs ccxt.pro vs pybit.

    python bench/hybrid_latency.py [--symbols 10,100,500] [--seconds 5] [--warmup 1.5]

For each N the simulator runs in its own process (pinned to CPU 0) with N symbols
ticking at 10 Hz and a position open on each; then each client runs in turn in its own
process (pinned to CPU 1) on the same symbols and rate, so the three see the same
stream and never compete for a core.

The frame's ``ts`` is the tick start truncated to the millisecond: too coarse for a
1 ms target. The simulator process therefore records, in nanoseconds, when it hands
each ticker frame to its socket (keyed by symbol and ts) and when each tick started.
Reported per client, in ms:

- ``wire``: consumer callback - frame handed to the simulator's socket (the client's
  own latency: kernel, parsing, merging, for ours the book and PnL);
- ``tick``: consumer callback - tick start (adds the simulator's fan-out of N frames);
- ``ts``: callback ms - ``ts`` as a client would compute it (ms resolution).

Prints a table and writes bench/results/hybrid_latency.json.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import orjson

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
from hybrid_procs import pct

RESULTS = HERE / "results" / "hybrid_latency.json"
ENV = {**os.environ, "PYTHONPATH": str(HERE.parent)}


def start_sim(n: int) -> tuple[subprocess.Popen[str], dict[str, Any]]:
    proc = subprocess.Popen([sys.executable, str(HERE / "hybrid_procs.py"), "sim", str(n), "0"],
                            stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True, env=ENV)
    assert proc.stdout is not None
    return proc, json.loads(proc.stdout.readline())


def run_client(mode: str, kind: str, cfg: dict[str, Any], timeout: float) -> dict[str, Any]:
    with tempfile.TemporaryDirectory() as tmp:
        out, conf = Path(tmp) / "out.json", Path(tmp) / "cfg.json"
        conf.write_text(json.dumps({**cfg, "out": str(out)}))
        subprocess.run([sys.executable, str(HERE / "hybrid_clients.py"), mode, kind, str(conf)],
                       check=True, timeout=timeout, env=ENV)
        return orjson.loads(out.read_bytes())


def dump(proc: subprocess.Popen[str]) -> dict[str, Any]:
    assert proc.stdin is not None and proc.stdout is not None
    with tempfile.NamedTemporaryFile(suffix=".json", delete=False) as f:
        path = f.name
    proc.stdin.write(f"dump {path}\n")
    proc.stdin.flush()
    assert proc.stdout.readline().strip() == "dumped"
    data = orjson.loads(Path(path).read_bytes())
    Path(path).unlink()
    return data


def summarise(samples: list[list[Any]], sim: dict[str, Any]) -> dict[str, Any]:
    sent = {(s, ts): ns for s, ts, ns in sim["sent"]}
    ticks = dict(sim["ticks"])
    wire, tick, coarse = [], [], []
    for sym, ts, ns in samples:
        sent_ns = sent.get((sym, ts))
        if sent_ns is None:
            continue  # a snapshot answer, not a tick
        wire.append((ns - sent_ns) / 1e6)
        if ts in ticks:
            tick.append((ns - ticks[ts]) / 1e6)
        coarse.append(ns / 1e6 - ts)
    matched = [sent[(s, t)] for s, t, _ in samples if (s, t) in sent]
    lo, hi = (min(matched), max(matched)) if matched else (0, -1)
    window = [ns for ns in sent.values() if lo <= ns <= hi]
    first = {}  # the first frame the simulator sent in each tick: no queue ahead of it
    for (_s, ts), ns in sent.items():
        if ns < first.get(ts, 1 << 62):
            first[ts] = ns
    first_lat = [(ns - sent[(s, ts)]) / 1e6 for s, ts, ns in samples
                 if (s, ts) in sent and sent[(s, ts)] == first[ts]]
    spans: dict[int, list[int]] = {}
    for (_s, ts), ns in sent.items():
        spans.setdefault(ts, []).append(ns)
    span = [(max(v) - min(v)) / 1e6 for v in spans.values()]
    r = lambda v: round(v, 3)  # noqa: E731
    return {
        "samples": len(wire), "delivered_pct": r(100 * len(wire) / max(1, len(window))),
        "wire_p50": r(pct(wire, 0.5)), "wire_p99": r(pct(wire, 0.99)),
        "tick_p50": r(pct(tick, 0.5)), "tick_p99": r(pct(tick, 0.99)),
        "ts_p50": r(pct(coarse, 0.5)), "ts_p99": r(pct(coarse, 0.99)),
        "first_p50": r(pct(first_lat, 0.5)), "first_p99": r(pct(first_lat, 0.99)),
        "burst_ms_p50": r(pct(span, 0.5)),
    }


def write_report(out: str | Path, bench: str, **fields: Any) -> None:
    """``out`` as JSON: the bench's name, its arguments and the machine, then ``fields``."""
    path = Path(out)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps({
        "bench": bench, "argv": sys.argv[1:], "python": platform.python_version(),
        "machine": platform.machine(), "cpus": os.cpu_count(), "loadavg": os.getloadavg(),
        **fields,
    }, indent=1) + "\n")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--symbols", default="10,100,500")
    ap.add_argument("--seconds", type=float, default=5.0)
    ap.add_argument("--warmup", type=float, default=1.5)
    ap.add_argument("--clients", default="ours,ccxt,pybit,raw")
    ap.add_argument("--out", default=str(RESULTS))
    args = ap.parse_args()
    rows: list[dict[str, Any]] = []
    for n in [int(x) for x in args.symbols.split(",")]:
        proc, info = start_sim(n)
        try:
            for kind in args.clients.split(","):
                cfg = {**info, "seconds": args.seconds, "warmup": args.warmup, "cpu": 1}
                dump(proc)  # clear what earlier clients left
                t0 = time.perf_counter()
                result = run_client("latency", kind, cfg, timeout=60 + args.seconds)
                run_s = round(time.perf_counter() - t0, 1)
                row = {"symbols": n, "client": kind, **summarise(result["samples"], dump(proc)),
                       "run_s": run_s}
                rows.append(row)
                print(json.dumps(row), flush=True)
        finally:
            assert proc.stdin is not None
            proc.stdin.write("quit\n")
            proc.stdin.flush()
            proc.wait(10)
    ours = {r["symbols"]: r for r in rows if r["client"] == "ours"}
    for r in rows:
        base = ours.get(r["symbols"])
        r["wire_p50_vs_ours"] = round(r["wire_p50"] / base["wire_p50"], 2) if base else None
        r["wire_p99_vs_ours"] = round(r["wire_p99"] / base["wire_p99"], 2) if base else None
    print()
    head = (f"{'N':>4} {'client':<6} {'samples':>8} {'deliv%':>7} {'wire p50':>9} "
            f"{'wire p99':>9} {'first p50':>9} {'tick p50':>9} {'tick p99':>9} {'ts p50':>7} "
            f"{'ts p99':>7} {'burst':>6} {'p50/ours':>8} {'p99/ours':>8}")
    print(head)
    print("-" * len(head))
    for r in rows:
        print(f"{r['symbols']:>4} {r['client']:<6} {r['samples']:>8} {r['delivered_pct']:>7.1f} "
              f"{r['wire_p50']:>9.3f} {r['wire_p99']:>9.3f} {r['first_p50']:>9.3f} "
              f"{r['tick_p50']:>9.3f} {r['tick_p99']:>9.3f} {r['ts_p50']:>7.2f} "
              f"{r['ts_p99']:>7.2f} {r['burst_ms_p50']:>6.2f} "
              f"{r['wire_p50_vs_ours']:>8} {r['wire_p99_vs_ours']:>8}")
    print("ms. wire: callback - frame handed to the simulator's socket; first: wire for the "
          "first frame of each tick (no burst queued ahead); tick: callback - tick start; ts: "
          "callback - the frame's ms ts; burst: time the simulator takes to send one tick")
    write_report(args.out, "hybrid_latency", rows=rows)


if __name__ == "__main__":
    main()
