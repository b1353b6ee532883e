"""Memory: RSS of a client over 10,000,000 ticker messages, and what one position costs.

    python bench/hybrid_memory.py [--symbols 100] [--clients ours]
                                  [--at 1000000,4000000,7000000,10000000]
                                  [--positions 1000,10000]

Same setup as bench/hybrid_capacity.py (replay server on CPU 0, client alone on CPU 1,
ours the whole feed - a Session with one consumer - with a position on every symbol);
the client notes its RSS when it has absorbed each checkpoint count of messages.
Growth between the first and the last checkpoint is what a long-running feed would
leak (target < 5 %; the first checkpoint is past the warm-up).

Per position: in this process, ``tracemalloc`` measures what a PositionBook, the
router and one delivery queue hold for N open positions (one symbol each) after every
position has had 20 price events (marks, positions, what consumers were told, the
queue's pending price slot), divided by N, for each N of ``--positions``.
Prints two tables and writes bench/results/hybrid_memory.json.
"""

from __future__ import annotations

import argparse
import gc
import sys
import tracemalloc
from decimal import Decimal
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
sys.path.insert(0, str(HERE.parent))
from hybrid_capacity import capacity_runs
from hybrid_latency import write_report

RESULTS = HERE / "results" / "hybrid_memory.json"
TARGET_PCT = 5.0


def per_position(n: int, marks: int = 20) -> dict[str, Any]:
    """Bytes held per open position by book + router + one delivery queue."""
    from feedctl import Category, PositionBook, PositionUpdate, Role, Side
    from feedctl.delivery import ConsumerQueue
    from feedctl.models import trusted_mark
    from feedctl.router import Router

    gc.collect()
    tracemalloc.start()
    before = tracemalloc.get_traced_memory()[0]
    queue = ConsumerQueue("bench")
    book = PositionBook(exchange="bybit", account="main", feed="f")
    router = Router({"f": Role.PRIMARY}, {"f": book}, deliver=queue.put)
    book._emit = lambda ev: router.on_event("f", ev)
    symbols = [f"SYM{i}USDT" for i in range(n)]
    for i, sym in enumerate(symbols):
        book.apply(PositionUpdate(symbol=sym, side=Side.LONG if i % 2 else Side.SHORT,
                                  size=Decimal("0.01"), entry_price=Decimal("100.5"),
                                  leverage=Decimal(10), seq=1, exchange_ms=1))
    for r in range(marks):
        price = Decimal(100) + Decimal(r) / 100
        for sym in symbols:
            book.apply_mark(trusted_mark(Category.LINEAR, sym, price, 1000 + r, 0))
    gc.collect()
    held = tracemalloc.get_traced_memory()[0] - before
    tracemalloc.stop()
    assert len(book.positions) == n and len(router.delivered) == n
    return {"positions": n, "bytes_per_position": round(held / n), "pending": len(queue)}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--symbols", type=int, default=100)
    ap.add_argument("--clients", default="ours")
    ap.add_argument("--at", default="1000000,4000000,7000000,10000000")
    ap.add_argument("--positions", default="1000,10000")
    ap.add_argument("--out", default=str(RESULTS))
    args = ap.parse_args()
    points = [int(x) for x in args.at.split(",")]
    rows = capacity_runs(args.symbols, 1.0, 0.0, args.clients.split(","), {"rss_at": points},
                         timeout=1800)
    print()
    heads = [f"RSS@{p / 1e6:g}M" for p in points]
    head = f"{'client':<8} " + " ".join(f"{h:>10}" for h in heads) + f" {'growth':>8}"
    print(head)
    print("-" * len(head))
    for r in rows:
        rss = {int(k): v for k, v in r["rss_mb"].items()}
        first, last = rss.get(points[0]), rss.get(points[-1])
        growth = 100 * (last - first) / first if first and last else float("nan")
        r["growth_pct"] = round(growth, 2)
        cells = " ".join(f"{rss[p]:>8.1f}MB" if p in rss else f"{'-':>10}" for p in points)
        print(f"{r['client']:<8} {cells} {growth:>7.2f}%")
    ours = next((r for r in rows if r["client"] == "ours"), None)
    if ours is not None:
        ok = ours["growth_pct"] < TARGET_PCT
        print(f"target < {TARGET_PCT}% growth from {points[0]:,} to {points[-1]:,} messages: "
              f"{'met' if ok else 'NOT met'}")
    sizes = [per_position(int(n)) for n in args.positions.split(",")]
    print()
    print(f"{'positions':>10} {'bytes/position':>15}")
    for s in sizes:
        print(f"{s['positions']:>10} {s['bytes_per_position']:>15}")
    print("bytes/position: tracemalloc of book + router + one delivery queue, after 20 price "
          "events per position, divided by the positions")
    write_report(args.out, "hybrid_memory", checkpoints=points, rows=rows,
                 per_position=sizes)


if __name__ == "__main__":
    main()
