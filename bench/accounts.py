"""Many accounts in one process: 1, 10, 100, 500 accounts x 5 open positions over 50
symbols, one feedctl Session (bybit_hybrid) against one MultiAccountSimulator.

    python bench/accounts.py                        # 1,10,100,500 accounts
    python bench/accounts.py --accounts 1,10 --measure 5

Each size runs in a fresh subprocess (a clean RSS), the simulator and the session in
that one process and event loop, on 127.0.0.1. Per size:

* RSS per account: (RSS once every account is synced and has streamed ``--settle``
  seconds) - (RSS with the simulator up and its positions open, before the session),
  divided by the accounts; the table's last column is the marginal cost of one more
  account against the 1-account run;
* CPU per 1,000 price events: process CPU seconds (the simulator's share included: one
  process) over ``--measure`` seconds, per 1,000 position events the accounts' routers
  delivered in that time (price events: nothing trades meanwhile);
* sockets: public and private connections as the exchange counts them;
* synced: seconds from ``Session.start()`` until every account's delivering feed is
  healthy and has its snapshot;
* marks fresh after a public drop: the exchange drops every public socket; seconds until
  every position of every account has a mark received after the drop;
* refused: new sockets the exchange refused (its per-IP limit); budgeted: sockets drawn
  from the process's connection budget / sockets the exchange admitted (public and
  private: equal when every socket goes through the budget);
* 10006: REST requests the exchange refused by its per-UID limits (Bybit's 50/s for the
  position and execution lists, ``BYBIT_UID_LIMITS``).

Bybit allows 500 new sockets per 5 minutes per IP. 500 accounts need 501 or more, so
their start spans two windows. To keep a run short, time is scaled: the exchange's
window and the feed's connection budget window are both ``300 s / --time-scale`` (the
limit counts, 500 and 400, are Bybit's and the default). REST limits are unscaled
(600 per 5 s at the exchange, 400 per 5 s in the feed). Prints a table and writes
bench/results/accounts.json.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import os
import subprocess
import sys
import tempfile
import time
from decimal import Decimal
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
RESULTS = HERE / "results" / "accounts.json"
SYMBOLS = [f"X{n:02d}USDT" for n in range(50)]
PER_ACCOUNT = 5


def rss_mb() -> float:
    with open("/proc/self/status") as fh:
        for line in fh:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    return float("nan")


def profile(folder: Path, accounts: int, window: float) -> Path:
    lines = ["[t]", "[t.account]", 'exchange = "bybit"', "[t.feeds.bybit_hybrid]",
             'role = "primary"', f"connection_window = {window}",
             "stale_mark_interval = 0", "[t.logging]", 'level = "WARNING"']
    lines += [f"[t.accounts.a{n}]" for n in range(accounts)]
    path = folder / "settings.toml"
    path.write_text("\n".join(lines) + "\n")
    return path


async def one(accounts: int, args: argparse.Namespace) -> dict[str, Any]:
    from feedctl import build_plugin_manager
    from feedctl.plugins.bybit_hybrid import plugin as hybrid_plugin
    from feedctl.session import Session
    from feedctl.simulator.accounts import BYBIT_UID_LIMITS, MultiAccountSimulator

    window = 300.0 / args.time_scale
    out: dict[str, Any] = {"accounts": accounts, "positions": accounts * PER_ACCOUNT,
                           "ws_window_s": window, "tick_interval_s": args.tick}
    async with MultiAccountSimulator(symbols=SYMBOLS, demo=False, accounts=accounts,
                                     tick_interval=args.tick, ws_window=window,
                                     uid_limits=BYBIT_UID_LIMITS) as sim:
        for n, acct in enumerate(sim.sim_accounts):
            for j in range(PER_ACCOUNT):
                symbol = SYMBOLS[(n * PER_ACCOUNT + j) % len(SYMBOLS)]
                inst = acct.engine.instrument(symbol)
                lots = int(Decimal(10) / (inst.min_qty * sim.prices.mark(symbol))) + 1
                acct.engine.place_market_order(symbol, "Buy", inst.min_qty * lots)
        base = rss_mb()
        folder = Path(tempfile.mkdtemp(prefix="feedctl-accounts-"))
        creds = {f"a{n}": {"api_key": a.api_key, "api_secret": a.api_secret}
                 for n, a in enumerate(sim.sim_accounts)}
        urls = {k: v for k, v in sim.urls.items()
                if k in ("rest", "public_ws", "private_ws", "public_ws_inverse")}
        pm = build_plugin_manager([hybrid_plugin], load_entrypoints=False)
        session = Session("t", settings_path=profile(folder, accounts, window),
                          plugin_manager=pm, overrides={"accounts": creds, "endpoints": urls})
        began = time.monotonic()
        await session.start()
        stream = session.events(name="bench", replay=False)

        async def drain() -> None:
            async for _ev in stream:
                pass

        drainer = asyncio.create_task(drain())
        try:
            out["synced_s"] = await _until(lambda: _all_synced(session), args.timeout, began)
            if out["synced_s"] is None:  # say how they stood
                out["not_synced"] = _standing(session)
            await asyncio.sleep(args.settle)
            out["rss_base_mb"] = round(base, 1)
            out["rss_mb"] = round(rss_mb(), 1)
            out["rss_per_account_mb"] = round((out["rss_mb"] - base) / accounts, 3)
            events0, cpu0, t0 = _delivered(session), time.process_time(), time.monotonic()
            await asyncio.sleep(args.measure)
            events, cpu = _delivered(session) - events0, time.process_time() - cpu0
            out["price_events_per_s"] = round(events / (time.monotonic() - t0), 1)
            out["cpu_s_per_1000_events"] = round(1000 * cpu / events, 4) if events else None
            out["cpu_pct"] = round(100 * cpu / (time.monotonic() - t0), 1)
            stats = sim.stats()
            out["public_sockets"] = stats["public"]["connections"]
            out["private_sockets"] = stats["private"]["connections"]
            dropped_ns = time.time_ns()
            drop_at = time.monotonic()
            await sim.public.drop_all()
            out["marks_fresh_after_drop_s"] = await _until(
                lambda: _all_fresh(session, dropped_ns), args.timeout, drop_at)
            out["refused_sockets"] = sim.ws_limit.refused
            out["refused_rest"] = sim.rest_limit.refused
            out["uid_limited_rest"] = sim.stats()["uid_limited"]
            budget = next(iter(session.accounts.values())).feeds["bybit_hybrid"].feed.connects
            # every socket the exchange admitted was drawn from the process's budget
            out["budgeted_sockets"] = budget.acquired if budget is not None else None
            out["admitted_sockets"] = sim.ws_limit.admitted
            out["failed_accounts"] = len(session.failed_accounts())
        finally:
            stream.close()
            await asyncio.gather(drainer, return_exceptions=True)
            await session.stop()
    return out


async def _until(cond: Any, timeout: float, began: float) -> float | None:
    deadline = began + timeout
    while not cond():
        if time.monotonic() > deadline:
            return None
        await asyncio.sleep(0.05)
    return round(time.monotonic() - began, 3)


def _all_synced(session: Any) -> bool:
    for art in session.accounts.values():
        rt = art.feeds["bybit_hybrid"]
        st = rt.ctx.status
        if st.synced_ns is None or not st.state.is_healthy:
            return False
        if len(art.router.delivered) < PER_ACCOUNT:
            return False
    return True


def _standing(session: Any) -> dict[str, int]:
    """How many accounts stand in each (state, detail, positions) when not all synced."""
    out: dict[str, int] = {}
    for art in session.accounts.values():
        st = art.feeds["bybit_hybrid"].ctx.status
        key = (f"{st.state.value}: {st.detail[:60]} synced={st.synced_ns is not None} "
               f"positions={len(art.router.delivered)}")
        out[key] = out.get(key, 0) + 1
    return out


def _all_fresh(session: Any, after_ns: int) -> bool:
    for art in session.accounts.values():
        for pos in art.router.delivered.values():
            if (pos.mark_received_ns or 0) <= after_ns:
                return False
    return True


def _delivered(session: Any) -> int:
    return sum(a.router.counters["delivered"] for a in session.accounts.values())


def run_sizes(sizes: list[int], args: argparse.Namespace) -> list[dict[str, Any]]:
    rows = []
    for n in sizes:
        with tempfile.NamedTemporaryFile(suffix=".json", delete=False) as fh:
            target = fh.name
        cmd = [sys.executable, __file__, "--one", str(n), "--json-out", target,
               "--tick", str(args.tick), "--settle", str(args.settle),
               "--measure", str(args.measure), "--time-scale", str(args.time_scale),
               "--timeout", str(args.timeout)]
        print(f"running {n} accounts ...", file=sys.stderr, flush=True)
        started = time.monotonic()
        proc = subprocess.run(cmd, timeout=args.timeout * 3 + 120, check=False)
        if proc.returncode != 0:
            rows.append({"accounts": n, "error": f"exit code {proc.returncode}"})
            continue
        row = json.loads(Path(target).read_text())
        os.unlink(target)
        row["wall_s"] = round(time.monotonic() - started, 1)
        rows.append(row)
    first = next((r for r in rows if r.get("accounts") == 1 and "rss_mb" in r), None)
    for r in rows:
        if first is not None and "rss_mb" in r and r["accounts"] > 1:
            grown = (r["rss_mb"] - r["rss_base_mb"]) - (first["rss_mb"] - first["rss_base_mb"])
            r["rss_marginal_mb_per_account"] = round(grown / (r["accounts"] - 1), 3)
    return rows


def table(rows: list[dict[str, Any]]) -> None:
    head = (f"{'accounts':>8} {'synced s':>9} {'RSS/acct MB':>12} {'marginal MB':>12} "
            f"{'CPU s/1k ev':>12} {'ev/s':>8} {'pub sock':>9} {'priv sock':>10} "
            f"{'fresh s':>8} {'refused':>8} {'budgeted':>9} {'10006':>6} {'failed':>7}")
    print(head)
    print("-" * len(head))

    def f(v: Any, fmt: str) -> str:
        return "-" if v is None else format(v, fmt)

    for r in rows:
        if "error" in r:
            print(f"{r['accounts']:>8} {r['error']}")
            continue
        print(f"{r['accounts']:>8} {f(r['synced_s'], '9.2f')} "
              f"{f(r['rss_per_account_mb'], '12.3f')} "
              f"{f(r.get('rss_marginal_mb_per_account'), '12.3f')} "
              f"{f(r['cpu_s_per_1000_events'], '12.4f')} {f(r['price_events_per_s'], '8.0f')} "
              f"{r['public_sockets']:>9} {r['private_sockets']:>10} "
              f"{f(r['marks_fresh_after_drop_s'], '8.2f')} "
              f"{r['refused_sockets']:>8} "
              f"{str(r.get('budgeted_sockets')) + '/' + str(r.get('admitted_sockets')):>9} "
              f"{r.get('uid_limited_rest', '-'):>6} {r['failed_accounts']:>7}")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--accounts", default="1,10,100,500")
    ap.add_argument("--tick", type=float, default=0.25,
                    help="seconds between the exchange's ticker deltas")
    ap.add_argument("--settle", type=float, default=3.0)
    ap.add_argument("--measure", type=float, default=10.0)
    ap.add_argument("--time-scale", type=float, default=30.0,
                    help="the 5-minute connection window is 300 s / this")
    ap.add_argument("--timeout", type=float, default=120.0)
    ap.add_argument("--out", default=str(RESULTS))
    ap.add_argument("--one", type=int, default=None, help=argparse.SUPPRESS)
    ap.add_argument("--json-out", default=None, help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.one is not None:
        logging.basicConfig(level=logging.ERROR)
        result = asyncio.run(one(args.one, args))
        Path(args.json_out).write_text(json.dumps(result))
        return
    rows = run_sizes([int(x) for x in args.accounts.split(",")], args)
    table(rows)
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps({"bench": "accounts", "settings": {
        "tick_interval_s": args.tick, "measure_s": args.measure, "settle_s": args.settle,
        "time_scale": args.time_scale, "symbols": len(SYMBOLS),
        "positions_per_account": PER_ACCOUNT}, "rows": rows}, indent=2))
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
