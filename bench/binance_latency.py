"""Exchange-to-consumer latency of Binance USDⓈ-M mark prices: feedctl's binance_usdm
Session vs ccxt.pro ``binanceusdm`` ``watch_mark_prices`` vs python-binance's futures
mark-price sockets, with a bare reader as the ceiling, on the simulator's Binance
personality.

    python bench/binance_latency.py [--symbols 10,100,500] [--seconds 5] [--warmup 1.5]
                                    [--runs 3] [--interval 0.1]
                                    [--clients ceiling,ours,ccxt,pbinance]

For each N the simulator (bench/binance_procs.py) runs in its own process pinned to
CPU 0 with N symbols, a position open on each, ``<symbol>@markPrice@1s`` pushed every
``--interval`` seconds (Binance: 1 s; 0.1 s here for 10x the samples; the client's work
per frame is the same). Each client (bench/binance_clients.py) then runs in turn in its
own process pinned to CPU 1, subscribing every symbol: ``ceiling`` is websockets +
orjson on one /market/ws connection keeping the latest mark per symbol; ``ours`` a whole
:class:`feedctl.Session` (binance_usdm feed, book, router, delivery queue) read through
``session.events()``; ``ccxt`` a ``watch_mark_prices(symbols)`` loop; ``pbinance``
python-binance's ``futures_multiplex_socket`` (200 streams per socket) read by
``recv()``. Rounds are interleaved (ceiling, ours, ccxt, pbinance, ceiling, ...);
figures are medians over rounds, ratios to the ceiling per round.

Reported per client, in ms:

- ``wire``: consumer gets it - the simulator handed that frame (symbol, ``E``) to its
  socket (the client's own latency: kernel, parsing, for ours the book and PnL);
- ``tick``: consumer gets it - the publish started (adds the fan-out of N frames);
- ``deliv%``: the frames sent while the client measured that reached its consumer.

Prints a table and writes bench/results/binance_latency.json.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import orjson

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
from hybrid_latency import write_report
from hybrid_procs import pct

RESULTS = HERE / "results" / "binance_latency.json"
ENV = {**os.environ, "PYTHONPATH": str(HERE.parent)}
CLIENTS = "ceiling,ours,ccxt,pbinance"


def start_sim(n: int, interval: float) -> tuple[subprocess.Popen[str], dict[str, Any]]:
    proc = subprocess.Popen([sys.executable, str(HERE / "binance_procs.py"), str(n), "0",
                             str(interval)], stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                            text=True, env=ENV)
    assert proc.stdout is not None
    return proc, json.loads(proc.stdout.readline())


def stop_sim(proc: subprocess.Popen[str]) -> None:
    assert proc.stdin is not None
    proc.stdin.write("quit\n")
    proc.stdin.flush()
    proc.wait(10)


def run_client(mode: str, kind: str, cfg: dict[str, Any], timeout: float
               ) -> dict[str, Any] | None:
    """The client's results, or None when its process failed or overran (reported as a
    failed round, left out of the medians)."""
    with tempfile.TemporaryDirectory() as tmp:
        out, conf = Path(tmp) / "out.json", Path(tmp) / "cfg.json"
        conf.write_text(json.dumps({**cfg, "out": str(out)}))
        try:
            subprocess.run([sys.executable, str(HERE / "binance_clients.py"), mode, kind,
                            str(conf)], check=True, timeout=timeout, env=ENV)
        except (subprocess.CalledProcessError, subprocess.TimeoutExpired) as exc:
            print(f"{kind}: {type(exc).__name__}: {exc}", file=sys.stderr, flush=True)
            return None
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
    sent = {(s, e): ns for s, e, ns in sim["sent"]}
    ticks = dict(sim["ticks"])
    wire, tick = [], []
    matched = []
    for sym, e, ns in samples:
        sent_ns = sent.get((sym, e), sent.get(("*", e)))
        if sent_ns is None:
            continue
        matched.append(sent_ns)
        wire.append((ns - sent_ns) / 1e6)
        if e in ticks:
            tick.append((ns - ticks[e]) / 1e6)
    lo, hi = (min(matched), max(matched)) if matched else (0, -1)
    window = [ns for (s, _e), ns in sent.items() if s != "*" and lo <= ns <= hi]
    r = lambda v: round(v, 3)  # noqa: E731
    return {"samples": len(wire), "delivered_pct": r(100 * len(wire) / max(1, len(window))),
            "wire_p50": r(pct(wire, 0.5)), "wire_p99": r(pct(wire, 0.99)),
            "tick_p50": r(pct(tick, 0.5)), "tick_p99": r(pct(tick, 0.99))}


def medians(runs: list[dict[str, Any]], keys: tuple[str, ...]) -> list[dict[str, Any]]:
    """One row per (N, client): medians over rounds; ``<key>_vs_ceiling`` the median of
    the per-round ratios to the ceiling measured in the same round."""
    ok = [r for r in runs if not r.get("failed")]
    ceiling = {(r["symbols"], r["round"]): r for r in ok if r["client"] == "ceiling"}
    out = []
    for n, kind in dict.fromkeys((r["symbols"], r["client"]) for r in ok):
        mine = [r for r in ok if r["symbols"] == n and r["client"] == kind]
        failed = sum(1 for r in runs if r.get("failed") and r["symbols"] == n
                     and r["client"] == kind)
        row: dict[str, Any] = {"symbols": n, "client": kind, "runs": len(mine),
                               "failed_runs": failed}
        for k, v in mine[0].items():
            if k not in row and k != "round" and isinstance(v, int | float):
                vals = [m[k] for m in mine if isinstance(m.get(k), int | float)]
                row[k] = round(statistics.median(vals), 3)
        for k in keys:
            ratios = [m[k] / c[k] for m in mine
                      if (c := ceiling.get((n, m["round"]))) and c[k] and m[k] == m[k]]
            row[f"{k}_vs_ceiling"] = round(statistics.median(ratios), 2) if ratios else None
        out.append(row)
    return out


def fmt(v: float | None) -> str:
    return "-" if v is None else f"{v:.2f}"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--symbols", default="10,100,500")
    ap.add_argument("--seconds", type=float, default=5.0)
    ap.add_argument("--warmup", type=float, default=1.5)
    ap.add_argument("--runs", type=int, default=3, help="interleaved rounds (medians)")
    ap.add_argument("--interval", type=float, default=0.1, help="mark push period, s")
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
                    dump(proc)  # clear what earlier clients left
                    t0 = time.perf_counter()
                    result = run_client("latency", kind, cfg, timeout=150 + args.seconds)
                    if result is None:
                        dump(proc)
                        runs.append({"symbols": n, "client": kind, "round": rnd,
                                     "failed": True})
                        continue
                    row = {"symbols": n, "client": kind, "round": rnd,
                           **summarise(result["samples"], dump(proc)),
                           "cpu_pct": round(result["cpu_pct"], 1),
                           "ready_s": result.get("ready_s"),
                           "run_s": round(time.perf_counter() - t0, 1)}
                    runs.append(row)
                    print(json.dumps(row), flush=True)
        finally:
            stop_sim(proc)
    rows = medians(runs, ("wire_p50", "wire_p99"))
    print()
    head = (f"{'N':>4} {'client':<9} {'samples':>8} {'deliv%':>7} {'wire p50':>9} "
            f"{'wire p99':>9} {'tick p50':>9} {'tick p99':>9} {'cpu%':>6} "
            f"{'p50/ceil':>8} {'p99/ceil':>8}")
    print(head)
    print("-" * len(head))
    for r in rows:
        print(f"{r['symbols']:>4} {r['client']:<9} {r['samples']:>8} {r['delivered_pct']:>7.1f} "
              f"{r['wire_p50']:>9.3f} {r['wire_p99']:>9.3f} {r['tick_p50']:>9.3f} "
              f"{r['tick_p99']:>9.3f} {r['cpu_pct']:>6.1f} "
              f"{fmt(r['wire_p50_vs_ceiling']):>8} {fmt(r['wire_p99_vs_ceiling']):>8}")
    print(f"medians of {args.runs} interleaved round(s), ms; marks every {args.interval}s per "
          "symbol. wire: consumer - frame handed to the simulator's socket; tick: consumer - "
          "publish start; deliv%: frames sent in the client's window that reached its "
          "consumer (ours: only marks that moved make an event); p50/ceil, p99/ceil: wire "
          "over the ceiling's (websockets + orjson) in the same round")
    for r in rows:
        if r["failed_runs"]:
            print(f"{r['client']} at {r['symbols']} symbols: {r['failed_runs']} round(s) "
                  "failed (see stderr), medians of the others")
    print(f"load average {os.getloadavg()[0]:.1f}")
    write_report(args.out, "binance_latency", interval_s=args.interval, rows=rows, runs=runs)


if __name__ == "__main__":
    main()
