"""Capacity of the simulator's public ticker stream.

    python bench/sim_capacity.py [--symbols 10,100,500] [--seconds 10]

Starts the simulator as a subprocess with as many symbols as the largest N (every
symbol ticks whatever is subscribed, so the server always does the full work), then,
for each N, runs a plain `websockets` client in a separate process that subscribes
`tickers.*` for N symbols and counts what arrives.  Reported per N:

- achieved delta messages/s against the expected N x (1 / tick_interval) (a 10 s
  window holds 100 or 101 ticks, so the ratio may read 1.01);
- completeness: messages received / ticks due between each topic's first and last
  message (1.0 = no tick skipped or lost);
- receive delay: client receive time minus the message's `ts` (same host clock);
- gap between consecutive `ts` of one symbol (the tick period as delivered);
- server tick lateness: how late each tick started against its schedule (`ts` is
  stamped at the tick start), from the simulator's own /sim/stats;
- CPU used by the simulator and by the client process during the window.

Prints a table and writes bench/results/sim_capacity.json.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "bench" / "results" / "sim_capacity.json"
TICK = 0.1


def pct(values: list[float], q: float) -> float:
    if not values:
        return float("nan")
    data = sorted(values)
    return data[min(len(data) - 1, int(len(data) * q))]


def cpu_seconds(pid: int) -> float:
    """utime + stime of a process, from /proc (Linux)."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
    except (OSError, IndexError, ValueError):
        return float("nan")


# -- the client (a separate process) --------------------------------------------------------
async def client(url: str, symbols: list[str], seconds: float) -> dict:
    import orjson
    from websockets.asyncio.client import connect

    async with connect(url, max_size=None, ping_interval=20) as ws:
        for i in range(0, len(symbols), 100):
            topics = [f"tickers.{s}" for s in symbols[i:i + 100]]
            await ws.send(json.dumps({"op": "subscribe", "req_id": str(i), "args": topics}))
        snapshots = 0
        while snapshots < len(symbols):
            msg = orjson.loads(await ws.recv())
            if msg.get("type") == "snapshot":
                snapshots += 1
        count = 0
        delays: list[float] = []
        gaps: list[float] = []
        last_ts: dict[str, int] = {}
        first_ts: dict[str, int] = {}
        cpu0 = time.process_time()
        start = time.time()
        end = start + seconds
        while True:
            remaining = end - time.time()
            if remaining <= 0:
                break
            try:
                raw = await asyncio.wait_for(ws.recv(), remaining)
            except TimeoutError:
                break
            now_ms = time.time() * 1000
            msg = orjson.loads(raw)
            if msg.get("type") != "delta":
                continue
            count += 1
            ts = msg["ts"]
            delays.append(now_ms - ts)
            topic = msg["topic"]
            prev = last_ts.get(topic)
            if prev is not None:
                gaps.append(ts - prev)
            else:
                first_ts[topic] = ts
            last_ts[topic] = ts
        elapsed = time.time() - start
        # ticks each topic should have delivered between its first and its last message
        due = sum(round((last_ts[t] - first_ts[t]) / (TICK * 1000)) + 1 for t in last_ts)
        return {"completeness": count / due if due else 0.0, "messages": count,
                "seconds": elapsed, "client_cpu_s": time.process_time() - cpu0,
                "delay_ms": {"p50": pct(delays, 0.5), "p99": pct(delays, 0.99),
                             "max": max(delays, default=float("nan"))},
                "gap_ms": {"p50": pct(gaps, 0.5), "p99": pct(gaps, 0.99),
                           "max": max(gaps, default=float("nan"))},
                "symbols_seen": len(last_ts)}


# -- the driver ----------------------------------------------------------------------------
def get_json(url: str) -> dict:
    with urllib.request.urlopen(url, timeout=10) as resp:
        return json.loads(resp.read())


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--symbols", default="10,100,500", help="comma-separated N values")
    parser.add_argument("--seconds", type=float, default=10.0, help="measuring window per N")
    parser.add_argument("--client", nargs=3, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.client:
        url, names, seconds = args.client
        print(json.dumps(asyncio.run(client(url, names.split(","), float(seconds)))))
        return 0

    sizes = [int(n) for n in args.symbols.split(",")]
    env = dict(os.environ, PYTHONPATH=str(ROOT) + os.pathsep + os.environ.get("PYTHONPATH", ""))
    sim = subprocess.Popen([sys.executable, "-m", "simulator", "--port", "0", "--symbols",
                            str(max(sizes)), "--seed", "1"], stdout=subprocess.PIPE, text=True,
                           cwd=ROOT, env=env)
    rows = []
    try:
        assert sim.stdout is not None
        urls = json.loads(sim.stdout.readline())
        symbols = get_json(urls["control"] + "/info")["symbols"]
        time.sleep(1.0)
        for n in sizes:
            proc = subprocess.Popen([sys.executable, __file__, "--client", urls["public_ws"],
                                     ",".join(symbols[:n]), str(args.seconds)],
                                    stdout=subprocess.PIPE, text=True, env=env)
            time.sleep(1.0)  # let it connect and take its snapshots
            get_json(urls["control"] + "/stats?reset=1")
            cpu0 = cpu_seconds(sim.pid)
            out, _ = proc.communicate(timeout=args.seconds + 60)
            cpu1 = cpu_seconds(sim.pid)
            stats = get_json(urls["control"] + "/stats")
            result = json.loads(out)
            expected = n / TICK
            achieved = result["messages"] / result["seconds"]
            rows.append({
                "symbols": n, "expected_msg_s": expected, "achieved_msg_s": round(achieved, 1),
                "ratio": round(achieved / expected, 4),
                "completeness": round(result["completeness"], 5),
                "delay_ms": {k: round(v, 2) for k, v in result["delay_ms"].items()},
                "gap_ms": {k: round(v, 1) for k, v in result["gap_ms"].items()},
                "tick_lateness_ms": stats["tick_lateness"],
                "tick_cost_ms": stats["tick_cost"], "skipped_ticks": stats["skipped_ticks"],
                "sim_cpu_pct": round(100 * (cpu1 - cpu0) / result["seconds"], 1),
                "client_cpu_pct": round(100 * result["client_cpu_s"] / result["seconds"], 1),
                "symbols_seen": result["symbols_seen"], "window_s": round(result["seconds"], 2),
            })
    finally:
        sim.terminate()
        sim.wait(10)

    header = (f"{'N':>4} {'expected/s':>10} {'achieved/s':>10} {'ratio':>6} {'complete':>8} "
              f"{'delay p50/p99 ms':>17} {'ts gap p50/p99':>15} {'lateness p50/p99/max ms':>24} "
              f"{'sim CPU':>7} {'client CPU':>10}")
    print(header)
    for r in rows:
        late = r["tick_lateness_ms"]
        print(f"{r['symbols']:>4} {r['expected_msg_s']:>10.0f} {r['achieved_msg_s']:>10.1f} "
              f"{r['ratio']:>6.3f} {r['completeness']:>8.4f} "
              f"{r['delay_ms']['p50']:>8.2f}/{r['delay_ms']['p99']:<8.2f} "
              f"{r['gap_ms']['p50']:>7.1f}/{r['gap_ms']['p99']:<7.1f} "
              f"{late.get('p50_ms', 0):>8.2f}/{late.get('p99_ms', 0):.2f}/"
              f"{late.get('max_ms', 0):<8.2f} {r['sim_cpu_pct']:>6.1f}% "
              f"{r['client_cpu_pct']:>9.1f}%")
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    report = {"benchmark": "sim_capacity", "tick_interval_s": TICK, "window_s": args.seconds,
              "python": platform.python_version(), "machine": platform.machine(),
              "cpus": os.cpu_count(), "when": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
              "rows": rows}
    RESULTS.write_text(json.dumps(report, indent=2) + "\n")
    print(f"wrote {RESULTS.relative_to(ROOT)}")
    ok = all(r["ratio"] >= 0.95 and r["completeness"] >= 0.99 for r in rows)
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
