"""Start-up time of the quick commands: ``feedctl --version``, ``feedctl check --profile
sim`` and ``feedctl plugins``, beside two references run in the same rounds.

    python bench/startup.py              # 7 rounds
    python bench/startup.py --rounds 15

Each round runs every command once, as a fresh process, in turn (so that a change in
the machine's load hits every command alike): the bare interpreter (``python -c pass``),
the libraries ``check`` cannot do without (click, pluggy, pydantic, dynaconf and
importlib.metadata, imported and nothing else), then the three commands. Per command:
the median and the minimum of the wall time (``time.perf_counter`` around
``subprocess.run``), the median CPU time of the child (user + system, from
``getrusage``), and the median's ratio to the libraries' line. The load average before
and after is printed: on a shared machine, read the minimums and the ratios. Prints a
table and writes bench/results/startup.json.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
REPO = HERE.parent
RESULTS = HERE / "results" / "startup.json"
LIBRARIES = ("import click, pluggy, pydantic, dynaconf, importlib.metadata; "
             "from pydantic import BaseModel; from dynaconf import Dynaconf")


def commands() -> dict[str, list[str]]:
    exe = shutil.which("feedctl")
    if exe is None:
        sys.exit("feedctl is not on PATH: `pip install -e .` in this environment first")
    settings = str(REPO / "settings.toml")
    return {
        "python -c pass": [sys.executable, "-c", "pass"],
        "libraries (floor)": [sys.executable, "-c", LIBRARIES],
        "feedctl --version": [exe, "--version"],
        "feedctl check --profile sim": [exe, "check", "--settings", settings,
                                        "--profile", "sim"],
        "feedctl plugins": [exe, "plugins"],
    }


def run_once(argv: list[str], cwd: str, env: dict[str, str]) -> tuple[float, float]:
    """(wall seconds, child CPU seconds) of one run; exits if the command fails."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    start = time.perf_counter()
    out = subprocess.run(argv, cwd=cwd, env=env, capture_output=True, text=True, timeout=60)
    wall = time.perf_counter() - start
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    if out.returncode != 0:
        sys.exit(f"{' '.join(argv)} exited {out.returncode}: {out.stderr[-500:]}")
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    return wall, cpu


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--rounds", type=int, default=7)
    args = ap.parse_args()
    cmds = commands()
    env = {k: v for k, v in os.environ.items() if not k.startswith("FEEDCTL_")}
    walls: dict[str, list[float]] = {k: [] for k in cmds}
    cpus: dict[str, list[float]] = {k: [] for k in cmds}
    load_before = os.getloadavg()[0]
    with tempfile.TemporaryDirectory() as cwd:  # no settings.toml of the caller's
        for argv in cmds.values():  # warm the file cache and the bytecode once
            run_once(argv, cwd, env)
        for _ in range(args.rounds):
            for name, argv in cmds.items():
                wall, cpu = run_once(argv, cwd, env)
                walls[name].append(wall)
                cpus[name].append(cpu)
    load_after = os.getloadavg()[0]
    floor = statistics.median(walls["libraries (floor)"])
    rows = []
    for name in cmds:
        med = statistics.median(walls[name])
        rows.append({"command": name, "wall_median_s": round(med, 4),
                     "wall_min_s": round(min(walls[name]), 4),
                     "cpu_median_s": round(statistics.median(cpus[name]), 4),
                     "ratio_to_floor": round(med / floor, 2), "walls_s": walls[name]})
    print(f"start-up, {args.rounds} rounds, {os.cpu_count()} CPUs, load average "
          f"{load_before:.2f} before, {load_after:.2f} after")
    print(f"{'command':<30} {'wall median':>12} {'wall min':>9} {'cpu median':>11} "
          f"{'x floor':>8}")
    for r in rows:
        print(f"{r['command']:<30} {r['wall_median_s']:>11.3f}s {r['wall_min_s']:>8.3f}s "
              f"{r['cpu_median_s']:>10.3f}s {r['ratio_to_floor']:>8.2f}")
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text(json.dumps({"rounds": args.rounds, "cpus": os.cpu_count(),
                                   "load_before": load_before, "load_after": load_after,
                                   "python": sys.version.split()[0], "rows": rows}, indent=2))
    print(f"wrote {RESULTS}")


if __name__ == "__main__":
    main()
