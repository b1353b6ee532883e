"""Soak: a long, bounded run of a production session, watching for anything that grows.

The simulator runs as a separate process (so its memory is not counted) with N symbols
ticking every 100 ms; this process runs a :class:`feedctl.Session` in ``production``
mode (hybrid delivering, REST polling as standby) with one consumer, opens a position
on every symbol (so the hybrid subscribes every ticker: N x 10 messages/s), churns
positions (adds, reduces, flips, closes and reopens) and drops a socket now and then
(reconnects and resyncs are where resources leak). Every ``--sample`` seconds it
records this process's RSS, open file descriptors, asyncio task count and event-loop
lag (how late a 50 ms sleep wakes up).

The run fails if anything grows without bound. Criterion, over the second half of the
samples (the first half is warm-up): the least-squares slope times the second half's
duration — the growth the trend implies — must stay within

* RSS: max(3 MB, 1 MB per minute of the second half);
* open file descriptors: 3;
* asyncio tasks: 10;
* event-loop lag p99 (per sample window): 50 ms.

    python bench/soak.py                       # 10 minutes, 100 symbols
    python bench/soak.py --minutes 1 --symbols 50

Prints a table (one row per minute, or per sample when shorter) and writes
bench/results/soak.json. Exit status 1 if a criterion failed. All traffic is loopback.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import logging
import math
import os
import platform
import random
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import asdict, dataclass, field
from decimal import ROUND_DOWN, Decimal
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

import aiohttp
import psutil

from feedctl import FeedState, PositionEvent, Session
from feedctl.simulator import SimControl, SimControlError

RESULTS = ROOT / "bench" / "results"

#: metric -> (fixed allowance, allowance per minute of the second half)
LIMITS: dict[str, tuple[float, float]] = {
    "rss_mb": (3.0, 1.0),
    "fds": (3.0, 0.0),
    "tasks": (10.0, 0.0),
    "lag_p99_ms": (50.0, 0.0),
}


@dataclass
class SoakConfig:
    minutes: float = 10.0
    symbols: int = 100
    seed: int = 11
    #: seconds between two samples
    sample: float = 5.0
    #: mean seconds between two trading actions
    churn_interval: float = 0.5
    #: seconds between two dropped sockets (0: none)
    drop_every: float = 60.0
    rest_interval: str = "2s"
    hybrid: dict[str, Any] = field(default_factory=lambda: {
        "max_connection_lifetime": "120s", "audit_interval": "30s"})


@dataclass
class Sample:
    t: float
    rss_mb: float
    fds: int
    tasks: int
    lag_p99_ms: float
    lag_max_ms: float
    events: int
    messages: int
    state: str


# ======================================================================= simulator process
class SimProcess:
    """``python -m simulator`` as a child process; its first stdout line has the URLs."""

    def __init__(self, symbols: int, seed: int) -> None:
        self.symbols, self.seed = symbols, seed
        self.proc: subprocess.Popen[str] | None = None
        self.info: dict[str, Any] = {}

    def __enter__(self) -> SimProcess:
        env = {**os.environ, "PYTHONPATH": str(ROOT)}
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "simulator", "--port", "0", "--symbols", str(self.symbols),
             "--seed", str(self.seed), "--log-level", "WARNING"],
            cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
        assert self.proc.stdout is not None
        line = self.proc.stdout.readline()
        if not line:
            self.__exit__()
            raise RuntimeError("the simulator did not start")
        self.info = json.loads(line)
        return self

    def __exit__(self, *exc: object) -> None:
        if self.proc is None:
            return
        self.proc.terminate()
        try:
            self.proc.wait(10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait(5)
        if self.proc.stdout is not None:
            self.proc.stdout.close()
        self.proc = None


# ======================================================================= the run
class LagProbe:
    """How late a 50 ms sleep wakes up: the event loop's responsiveness."""

    def __init__(self) -> None:
        self.window: list[float] = []

    async def run(self) -> None:
        loop = asyncio.get_running_loop()
        for _ in range(100_000_000):
            t0 = loop.time()
            await asyncio.sleep(0.05)
            self.window.append(max(0.0, loop.time() - t0 - 0.05) * 1000)

    def take(self) -> tuple[float, float]:
        values, self.window = sorted(self.window), []
        if not values:
            return 0.0, 0.0
        return values[min(len(values) - 1, math.ceil(0.99 * len(values)) - 1)], values[-1]


async def _trade(ctl: SimControl, rng: random.Random, symbols: list[str],
                 units: dict[str, Decimal], state: dict[str, tuple[str, Decimal]]) -> str:
    sym = rng.choice(symbols)
    side, size = state.get(sym, ("", Decimal(0)))
    unit = units[sym]
    other = "Sell" if side == "Buy" else "Buy"
    roll = rng.random()
    if not side:
        new_side = rng.choice(("Buy", "Sell"))
        await ctl.place_order(sym, new_side, unit)
        state[sym] = (new_side, unit)
        return "open"
    if roll < 0.3 and size < unit * 4:
        await ctl.place_order(sym, side, unit)
        state[sym] = (side, size + unit)
        return "add"
    if roll < 0.55 and size > unit:
        await ctl.place_order(sym, other, unit, reduce_only=True)
        state[sym] = (side, size - unit)
        return "reduce"
    if roll < 0.8:
        await ctl.place_order(sym, other, size + unit)
        state[sym] = (other, unit)
        return "flip"
    await ctl.place_order(sym, other, size, reduce_only=True)  # closed; reopened later
    state[sym] = ("", Decimal(0))
    return "close"


async def soak(cfg: SoakConfig, echo: Any = None) -> dict[str, Any]:
    say = echo or (lambda *_: None)
    proc = psutil.Process()
    rng = random.Random(cfg.seed)
    with SimProcess(cfg.symbols, cfg.seed) as sim, tempfile.TemporaryDirectory() as tmp:
        settings = Path(tmp) / "settings.toml"
        settings.write_text("[soak]\n")
        info = sim.info
        overrides = {
            "mode": "production",
            "account": {"exchange": "bybit", "api_key": info["api_key"],
                        "api_secret": info["api_secret"]},
            "endpoints": {"rest": info["rest"], "public_ws": info["public_ws"],
                          "public_ws_inverse": info["public_ws_inverse"],
                          "private_ws": info["private_ws"]},
            "feeds": {"bybit_hybrid": {"kind": "bybit_hybrid", **cfg.hybrid},
                      "rest_polling": {"kind": "rest_polling", "interval": cfg.rest_interval}},
        }
        async with SimControl(info["control"]) as ctl, Session(
                "soak", settings_path=settings, overrides=overrides) as session:
            return await _run(cfg, session, ctl, proc, rng, say)


async def _run(cfg: SoakConfig, session: Session, ctl: SimControl, proc: psutil.Process,
               rng: random.Random, say: Any) -> dict[str, Any]:
    hybrid = session.feeds["bybit_hybrid"]
    counts = {"events": 0, "trades": 0, "refused": 0, "drops": 0}
    stream = session.events(name="soak")

    async def pump() -> None:
        async for ev in stream:
            if isinstance(ev, PositionEvent):
                counts["events"] += 1

    probe = LagProbe()
    tasks = [asyncio.create_task(pump(), name="soak-pump"),
             asyncio.create_task(probe.run(), name="soak-lag")]
    try:
        deadline = time.monotonic() + 60
        while hybrid.ctx.state is not FeedState.HEALTHY and time.monotonic() < deadline:
            await asyncio.sleep(0.1)
        prices = {p["symbol"]: Decimal(p["markPrice"]) for p in await ctl.prices()}
        units = await _units(session.settings.endpoints["rest"], prices)
        state: dict[str, tuple[str, Decimal]] = {}
        symbols = sorted(units)  # the linear ones (the simulator also lists inverse)
        for sym in symbols:  # a position on every symbol: every ticker is subscribed
            side = rng.choice(("Buy", "Sell"))
            with contextlib.suppress(SimControlError):
                await _order_unit(ctl, sym, side, prices[sym], state, units)
        say(f"soak: {len(state)} positions open, running {cfg.minutes:g} min")

        async def churn() -> None:
            for _ in range(100_000_000):
                await asyncio.sleep(rng.expovariate(1 / cfg.churn_interval))
                try:
                    await _trade(ctl, rng, symbols, units, state)
                    counts["trades"] += 1
                except SimControlError:
                    counts["refused"] += 1

        async def drops() -> None:
            kinds = ["private", "public"]
            for i in range(100_000_000):
                await asyncio.sleep(cfg.drop_every)
                await ctl.drop(kinds[i % 2], "abort" if i % 4 >= 2 else "close")
                counts["drops"] += 1

        health = {"up": 0.0, "total": 0.0, "outages": 0}

        async def uptime() -> None:
            """Time the delivering feed is healthy (what consumers can trust)."""
            loop = asyncio.get_running_loop()
            last, was_up = loop.time(), True
            for _ in range(100_000_000):
                await asyncio.sleep(0.1)
                now = loop.time()
                router = session.router
                rt = session.feeds.get(router.active) if router is not None else None
                up = rt is not None and rt.ctx.state is FeedState.HEALTHY
                health["total"] += now - last
                health["up"] += (now - last) if up else 0.0
                health["outages"] += int(was_up and not up)
                last, was_up = now, up

        tasks.append(asyncio.create_task(churn(), name="soak-churn"))
        tasks.append(asyncio.create_task(uptime(), name="soak-uptime"))
        if cfg.drop_every > 0:
            tasks.append(asyncio.create_task(drops(), name="soak-drops"))
        samples: list[Sample] = []
        t0 = time.monotonic()
        end = t0 + cfg.minutes * 60
        next_echo = t0 + 60
        while time.monotonic() < end:
            await asyncio.sleep(min(cfg.sample, max(0.0, end - time.monotonic())))
            p99, worst = probe.take()
            samples.append(Sample(
                t=round(time.monotonic() - t0, 2), rss_mb=proc.memory_info().rss / 2**20,
                fds=proc.num_fds(), tasks=len(asyncio.all_tasks()), lag_p99_ms=round(p99, 2),
                lag_max_ms=round(worst, 2), events=counts["events"],
                messages=hybrid.ctx.counters.get("messages", 0),
                state=hybrid.ctx.state.value))
            if time.monotonic() >= next_echo:
                next_echo += 60
                s = samples[-1]
                say(f"soak: {s.t:5.0f}s rss {s.rss_mb:.1f} MB fds {s.fds} tasks {s.tasks} "
                    f"lag p99 {s.lag_p99_ms:.1f} ms events {s.events}")
    finally:
        for t in tasks:
            t.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        stream.close()
    verdicts = judge(samples)
    counters = {k: v for k, v in hybrid.ctx.counters.items()
                if k in ("messages", "reconnects", "resyncs", "planned_reconnects", "audits",
                         "audit_mismatches", "crashes")}
    up = {"delivering_healthy_fraction": round(health["up"] / health["total"], 5)
          if health["total"] else None, "downtime_s": round(health["total"] - health["up"], 2),
          "outages": health["outages"]}
    return {"config": asdict(cfg), "python": platform.python_version(), "uptime": up,
            "samples": [asdict(s) for s in samples], "verdicts": verdicts,
            "ok": all(v["ok"] for v in verdicts.values()), "counts": counts,
            "hybrid": counters, "router": session.router.counters if session.router else None,
            "crashes": sum(rt.ctx.counters.get("crashes", 0) for rt in session.feeds.values())}


async def _units(rest: str, prices: dict[str, Decimal]) -> dict[str, Decimal]:
    """About 200 USDT of each symbol, on its lot grid (from instruments-info)."""
    async with aiohttp.ClientSession() as http, http.get(
            f"{rest}/v5/market/instruments-info",
            params={"category": "linear", "limit": "1000"}) as resp:
        rows = (await resp.json())["result"]["list"]
    units: dict[str, Decimal] = {}
    for row in rows:
        sym, lot = row["symbol"], row["lotSizeFilter"]
        step, least = Decimal(lot["qtyStep"]), Decimal(lot["minOrderQty"])
        mark = prices[sym]
        qty = (Decimal(200) / mark / step).to_integral_value(ROUND_DOWN) * step
        while qty * mark < Decimal(10):
            qty += step
        units[sym] = max(qty, least)
    return units


async def _order_unit(ctl: SimControl, sym: str, side: str, mark: Decimal,
                      state: dict[str, tuple[str, Decimal]], units: dict[str, Decimal]) -> None:
    await ctl.place_order(sym, side, units[sym])
    state[sym] = (side, units[sym])


# ======================================================================= the criterion
def slope(xs: list[float], ys: list[float]) -> float:
    """Least-squares slope of ys over xs (0 for fewer than two points)."""
    if len(xs) < 2:
        return 0.0
    mx, my = statistics.fmean(xs), statistics.fmean(ys)
    den = sum((x - mx) ** 2 for x in xs)
    return 0.0 if den == 0 else sum((x - mx) * (y - my) for x, y in zip(xs, ys, strict=True)) / den


def judge(samples: list[Sample]) -> dict[str, dict[str, Any]]:
    """Per metric: the growth the second half's trend implies, against its allowance."""
    half = samples[len(samples) // 2:]
    out: dict[str, dict[str, Any]] = {}
    if len(half) < 3:
        return {m: {"ok": False, "why": "too few samples"} for m in LIMITS}
    xs = [s.t for s in half]
    span_min = (xs[-1] - xs[0]) / 60
    for metric, (fixed, per_min) in LIMITS.items():
        ys = [float(getattr(s, metric)) for s in half]
        growth = slope(xs, ys) * (xs[-1] - xs[0])
        allowed = max(fixed, per_min * span_min)
        out[metric] = {"first": round(float(getattr(samples[0], metric)), 2),
                       "second_half_start": round(ys[0], 2), "last": round(ys[-1], 2),
                       "trend_growth": round(growth, 3), "allowed": round(allowed, 3),
                       "ok": growth <= allowed}
    return out


def table(report: dict[str, Any]) -> str:
    samples = [Sample(**s) for s in report["samples"]]
    if not samples:
        return "(no samples)"
    step = 60.0 if samples[-1].t >= 180 else 0.0
    rows, last = [], -1e9
    for s in samples:
        if s.t - last >= step or s is samples[-1]:
            rows.append(s)
            last = s.t
    lines = ["| t (s) | RSS MB | fds | tasks | loop lag p99 / max ms | position events | "
             "ticker msgs | hybrid |", "|---|---|---|---|---|---|---|---|"]
    for s in rows:
        lines.append(f"| {s.t:.0f} | {s.rss_mb:.1f} | {s.fds} | {s.tasks} | "
                     f"{s.lag_p99_ms:.1f} / {s.lag_max_ms:.1f} | {s.events} | {s.messages} | "
                     f"{s.state} |")
    lines += ["", "| metric | start | 2nd half start | end | trend growth (2nd half) | "
              "allowed | ok |", "|---|---|---|---|---|---|---|"]
    for metric, v in report["verdicts"].items():
        lines.append(f"| {metric} | {v.get('first')} | {v.get('second_half_start')} | "
                     f"{v.get('last')} | {v.get('trend_growth')} | {v.get('allowed')} | "
                     f"{'yes' if v.get('ok') else 'NO'} |")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--minutes", type=float, default=10.0)
    ap.add_argument("--symbols", type=int, default=100)
    ap.add_argument("--sample", type=float, help="seconds between samples")
    ap.add_argument("--drop-every", type=float, default=60.0,
                    help="seconds between dropped sockets, 0 for none")
    ap.add_argument("--seed", type=int, default=11)
    ap.add_argument("--out", default=str(RESULTS / "soak.json"))
    args = ap.parse_args(argv)
    sample = args.sample or (5.0 if args.minutes >= 5 else 2.0)
    cfg = SoakConfig(minutes=args.minutes, symbols=args.symbols, seed=args.seed,
                     sample=sample, drop_every=args.drop_every)
    logging.getLogger("feedctl").setLevel(logging.ERROR)
    report = asyncio.run(soak(cfg, echo=lambda *a: print(*a, flush=True)))
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(report, indent=2))
    print(table(report))
    up = report["uptime"]
    print(f"delivering feed healthy {100 * (up['delivering_healthy_fraction'] or 0):.3f} % "
          f"({up['downtime_s']} s down in {up['outages']} outages; {report['counts']['drops']} "
          f"sockets dropped on purpose)")
    print(f"{'PASS' if report['ok'] else 'FAIL'}; written: {args.out}")
    return 0 if report["ok"] else 1


if __name__ == "__main__":
    sys.exit(main())
