"""Memory: RSS of a client after 1,000,000 ticker messages vs after 100,000.

    python bench/hybrid_memory.py [--symbols 100] [--clients ours] [--at 100000,1000000]

Same setup as bench/hybrid_capacity.py (replay server on CPU 0, client alone on CPU 1,
ours running the whole feed with a position on every symbol); the client notes its
RSS when it has absorbed each checkpoint count of messages. Growth between the first
and the last checkpoint is what a long-running feed would leak (target < 5 %).
Prints a table and writes bench/results/hybrid_memory.json.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
from hybrid_capacity import capacity_runs
from hybrid_latency import write_report

RESULTS = HERE / "results" / "hybrid_memory.json"
TARGET_PCT = 5.0


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--symbols", type=int, default=100)
    ap.add_argument("--clients", default="ours")
    ap.add_argument("--at", default="100000,1000000")
    ap.add_argument("--out", default=str(RESULTS))
    args = ap.parse_args()
    points = [int(x) for x in args.at.split(",")]
    rows = capacity_runs(args.symbols, 1.0, 0.0, args.clients.split(","), {"rss_at": points})
    print()
    a, b = f"RSS@{points[0]}", f"RSS@{points[-1]}"
    head = f"{'client':<8} {a:>12} {b:>13} {'growth':>8}"
    print(head)
    print("-" * len(head))
    for r in rows:
        rss = {int(k): v for k, v in r["rss_mb"].items()}
        first, last = rss.get(points[0]), rss.get(points[-1])
        growth = 100 * (last - first) / first if first and last else float("nan")
        r["growth_pct"] = round(growth, 2)
        print(f"{r['client']:<8} {first:>10.1f}MB {last:>11.1f}MB {growth:>7.2f}%")
    ours = next((r for r in rows if r["client"] == "ours"), None)
    if ours is not None:
        ok = ours["growth_pct"] < TARGET_PCT
        print(f"target < {TARGET_PCT}% growth: {'met' if ok else 'NOT met'}")
    write_report(args.out, "hybrid_memory", checkpoints=points, rows=rows)


if __name__ == "__main__":
    main()
