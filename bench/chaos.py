"""Chaos campaign: position churn + random faults against the simulator, then an audit of
what consumers received against what the exchange did.

For each mode (``production``: hybrid delivers, REST polling is the standby;
``parallel``: hybrid delivers, REST polling is a validated shadow) it starts the
embedded simulator and a real :class:`feedctl.Session` on loopback, subscribes one
consumer, and for a seeded, bounded schedule:

* trades — opens, adds, reduces, closes, flips, open-and-close "blips", leverage and
  TP/SL changes on many symbols, through the simulator's control API;
* injects faults through the control API — socket drops, stalls, frame delays,
  duplicated and reordered position pushes, malformed frames, auth rejections, REST rate
  limits and 5xx answers.

Then it clears the faults, lets the system settle, and matches the exchange's
transition log (``/sim/transitions``) with the events the consumer received (the rules
are in docs/reliability.md). It prints a table, writes bench/results/chaos.json and
exits non-zero if any lifecycle was lost, duplicated or split, any position diverged,
or anything crashed.

    python bench/chaos.py                 # the long campaign (thousands of faults)
    python bench/chaos.py --short         # the test-suite version (a few hundred)
    python bench/chaos.py --seed 7 --modes parallel --faults 300
    python bench/chaos.py --short --exchange binanceusdm   # binance_usdm is the primary
    python bench/chaos.py --short --bus   # + worker and redis-server faults (chaoslib/bus.py)

Every loop is bounded in count and time; all traffic is on 127.0.0.1.

The campaign itself is the package ``bench/chaoslib`` (one module per job: config,
recorder, trader, injector, runner, lifecycles and analysis, report); this file is its
command line, and re-exports the names tests use.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import sys
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
BENCH = ROOT / "bench"
for _path in (ROOT, BENCH):  # feedctl's repo, and ``import chaoslib`` however this is run
    if str(_path) not in sys.path:
        sys.path.insert(0, str(_path))

from chaoslib.analysis import (
    F_ORPHAN_CLOSE,
    F_STALE_REOPEN,
    L_REPORTED,
    L_SILENT,
    analyse,
    compare_positions,
    verdict,
)
from chaoslib.config import RESULTS, CampaignConfig
from chaoslib.report import table
from chaoslib.runner import campaign, reanalyse, run_mode

__all__ = [
    "F_ORPHAN_CLOSE", "F_STALE_REOPEN", "L_REPORTED", "L_SILENT", "CampaignConfig",
    "analyse", "campaign", "compare_positions", "main", "reanalyse", "run_mode", "table",
    "verdict",
]


def _setup_logging(path: str | None, level: str = "WARNING") -> None:
    flog = logging.getLogger("feedctl")
    flog.setLevel(min(logging.INFO, logging.getLevelName(level)))
    flog.propagate = False
    if path:
        Path(path).parent.mkdir(parents=True, exist_ok=True)
        handler = logging.FileHandler(path, mode="w")
        handler.setLevel(logging.getLevelName(level))
        handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s %(message)s"))
        flog.addHandler(handler)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--short", action="store_true",
                    help="the test-suite version (a few hundred faults, < 2 minutes)")
    ap.add_argument("--seed", type=int)
    ap.add_argument("--modes", help="comma-separated: production,parallel")
    ap.add_argument("--faults", type=int, help="faults per mode")
    ap.add_argument("--fault-interval", type=float, help="mean seconds between faults")
    ap.add_argument("--max-seconds", type=float, help="cap of the injection phase per mode")
    ap.add_argument("--symbols", type=int)
    ap.add_argument("--exchange", choices=("bybit", "binanceusdm"),
                    help="the simulator's personality (default bybit: bybit_hybrid primary; "
                         "binanceusdm: binance_usdm primary, chaoslib/binance.py)")
    ap.add_argument("--hedge", action="store_true",
                    help="with --exchange binanceusdm: hedge mode (dualSidePosition) on")
    ap.add_argument("--bus", action="store_true",
                    help="the bus campaign: feedctl worker processes, a redis-server and "
                         "a remote consumer, with worker and redis faults (chaoslib/bus.py)")
    ap.add_argument("--accounts", type=int, help="with --bus: accounts the workers share")
    ap.add_argument("--workers", type=int, help="with --bus: feedctl worker processes")
    ap.add_argument("--out", help="default bench/results/chaos.json "
                                  "(chaos-binanceusdm.json with --exchange binanceusdm)")
    ap.add_argument("--dump", help="directory for every raw record of each mode")
    ap.add_argument("--reanalyse", nargs="+", metavar="DUMP",
                    help="recompute the results from --dump files instead of running")
    ap.add_argument("--log", default=str(RESULTS / "chaos.log"),
                    help="log lines of the system under test (WARNING+ unless --log-level)")
    ap.add_argument("--log-level", default="WARNING", choices=("DEBUG", "INFO", "WARNING"),
                    help="the --log file's level (INFO: every socket and resync, to investigate)")
    args = ap.parse_args(argv)
    if args.out is None:
        name = "chaos-binanceusdm.json" if args.exchange == "binanceusdm" else "chaos.json"
        args.out = str(RESULTS / ("chaos-bus.json" if args.bus else name))
    if args.reanalyse:
        report = reanalyse(args.reanalyse)
        Path(args.out).parent.mkdir(parents=True, exist_ok=True)
        Path(args.out).write_text(json.dumps(report, indent=2, default=str))
        print(table(report["results"]))
        return 0 if report["ok"] else 1
    kw: dict[str, Any] = {}
    for name in ("seed", "faults", "fault_interval", "max_seconds", "symbols", "exchange"):
        if getattr(args, name) is not None:
            kw[name] = getattr(args, name)
    if args.hedge:
        kw["binance_hedge"] = True
    if args.modes:
        kw["modes"] = tuple(m.strip() for m in args.modes.split(",") if m.strip())
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    kw["log_path"] = args.log
    kw["dump_dir"] = args.dump
    cfg = CampaignConfig.short(**kw) if args.short else CampaignConfig(**kw)
    _setup_logging(cfg.log_path, args.log_level)
    if args.bus:
        return _bus(args, kw)
    print(f"chaos campaign ({cfg.exchange}): seed {cfg.seed}, modes {','.join(cfg.modes)}, "
          f"{cfg.faults} faults per mode every ~{cfg.fault_interval}s, {cfg.symbols} symbols",
          flush=True)
    report = asyncio.run(campaign(cfg, echo=lambda *a: print(*a, flush=True)))
    Path(args.out).write_text(json.dumps(report, indent=2, default=str))
    print(table(report["results"]))
    print(f"written: {args.out}")
    return 0 if report["ok"] else 1


def _bus(args: argparse.Namespace, kw: dict[str, Any]) -> int:
    from chaoslib.bus import BusConfig, bus_campaign_config, bus_table, run_bus

    cfg = bus_campaign_config(args.short, **kw)
    bus = BusConfig.short() if args.short else BusConfig()
    for name in ("accounts", "workers"):
        if getattr(args, name) is not None:
            setattr(bus, name, getattr(args, name))
    print(f"bus chaos campaign: seed {cfg.seed}, {bus.accounts} accounts, {bus.workers} "
          f"workers, {cfg.faults} exchange faults every ~{cfg.fault_interval}s and "
          f"{bus.process_faults} worker/redis faults", flush=True)
    report = asyncio.run(run_bus(cfg, bus, echo=lambda *a: print(*a, flush=True)))
    Path(args.out).write_text(json.dumps(report, indent=2, default=str))
    print(bus_table(report))
    print(f"written: {args.out}")
    return 0 if report["ok"] else 1


if __name__ == "__main__":
    sys.exit(main())
