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

Every loop is bounded in count and time; all traffic is on 127.0.0.1.
"""

from __future__ import annotations

import argparse
import asyncio
import bisect
import json
import logging
import math
import platform
import random
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Iterable
from dataclasses import asdict, dataclass, field
from decimal import ROUND_DOWN, Decimal
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from feedctl import (
    EventKind,
    FeedState,
    PositionEvent,
    RouteEvent,
    Session,
    StatusEvent,
)
from feedctl.simulator import SimConfig, SimControl, SimControlError, Simulator
from feedctl.simulator import generated_symbols as _symbols

RESULTS = ROOT / "bench" / "results"
PRIMARY = "bybit_hybrid"
STANDBY = "rest_polling"
MODES = ("production", "parallel")

#: Relative frequency of each fault kind.
FAULT_WEIGHTS: dict[str, int] = {
    "drop": 10, "stall": 8, "delay": 8, "duplicate": 12, "reorder": 10, "malformed": 12,
    "reject_auth": 4, "rest_rate_limit": 8, "rest_5xx": 8,
}
REST_PATHS = ("", "/v5/position/list", "/v5/execution/list", "/v5/market/tickers",
              "/v5/market/time")


# ======================================================================= configuration
@dataclass
class CampaignConfig:
    seed: int = 20240601
    modes: tuple[str, ...] = MODES
    #: faults to inject per mode (the injection phase ends at this count or max_seconds)
    faults: int = 1500
    #: mean seconds between two faults (exponential inter-arrival times)
    fault_interval: float = 0.35
    #: hard cap of the injection phase per mode
    max_seconds: float = 900.0
    #: mean seconds between two trading actions
    activity_interval: float = 0.15
    symbols: int = 12
    #: USDT notional of one trading unit
    unit_notional: str = "400"
    #: most seconds to wait, after the faults, for the system to converge
    settle_seconds: float = 30.0
    #: the hybrid's consecutive auth failures before it fails for good (its setting);
    #: the campaign injects at most one fewer in a row (see docs/reliability.md)
    max_auth_failures: int = 3
    rest_interval: str = "0.5s"
    failover_after: str = "1s"
    failback_after: str = "2s"
    volatility_bps: str = "5"
    hybrid: dict[str, Any] = field(default_factory=lambda: {
        "ping_interval": "1s", "pong_timeout": "1.5s", "stale_after": "1s",
        "backoff_base": "0.05s", "backoff_cap": "1s", "request_timeout": "2s",
        "audit_interval": "5s", "max_connection_lifetime": "20s",
        "pong_overdue_after": "0.25s",  # loopback: latency and clock error are ~0
    })
    #: seconds between two samples of staleness and health (incommensurate with ticks)
    sample_interval: float = 0.137
    log_path: str | None = None
    #: write every raw record (transitions, consumer and book events, routes, statuses,
    #: faults) of each mode to this directory, for investigations
    dump_dir: str | None = None

    @classmethod
    def short(cls, **kw: Any) -> CampaignConfig:
        """The test-suite version: a few hundred faults, well under two minutes."""
        base: dict[str, Any] = {"faults": 110, "fault_interval": 0.25, "max_seconds": 40.0,
                                "settle_seconds": 25.0}
        base.update(kw)
        return cls(**base)


# ======================================================================= recording
def _wall_ns() -> int:
    return time.time_ns()


def _lifecycle_record(ev: PositionEvent, t: int, active: str | None = None) -> dict[str, Any]:
    p = ev.position
    rec: dict[str, Any] = {
        "t": t, "kind": ev.kind.value, "symbol": p.symbol, "idx": p.position_idx,
        "seq": p.seq, "side": p.side.value, "size": str(p.size), "entry": str(p.entry_price),
        "synthetic": ev.synthetic, "feed": ev.feed, "past": ev.past,
    }
    if active is not None:
        rec["active"] = active
    return rec


class _ErrorLog(logging.Handler):
    """Keeps ERROR records of the feedctl loggers (bounded)."""

    def __init__(self) -> None:
        super().__init__(logging.ERROR)
        self.count = 0
        self.samples: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.count += 1
        if len(self.samples) < 20:
            text = f"{record.name}: {record.getMessage()}"
            if record.exc_info and record.exc_info[1] is not None:
                text += f" [{type(record.exc_info[1]).__name__}: {record.exc_info[1]}]"
            self.samples.append(text[:400])


class Recorder:
    """What the consumer received, what each feed's book emitted, and periodic samples."""

    def __init__(self) -> None:
        self.consumer: list[dict[str, Any]] = []
        self.taps: dict[str, list[dict[str, Any]]] = {}
        self.routes: list[dict[str, Any]] = []
        self.statuses: list[dict[str, Any]] = []
        self.view: dict[tuple[str, int], Any] = {}
        self.counts: Counter[str] = Counter()
        # staleness against the exchange's price history, sampled
        self._cur: dict[str, Any] = {}
        self._replaced: dict[str, dict[Any, float]] = {}
        self._seen_since: dict[tuple[str, int], float] = {}
        self._peak: dict[tuple[str, int], float] = {}
        self.stale_episodes: list[float] = []
        self.stale_worst: dict[str, Any] = {}
        # consumer-perceived time between new marks
        self._last_mark: dict[tuple[str, int], tuple[int, Any]] = {}
        self.mark_gaps: list[float] = []
        self.mark_gap_worst: dict[str, Any] = {}
        # delivering-feed health, sampled
        self.healthy_s = 0.0
        self.sampled_s = 0.0
        self.t0 = _wall_ns()

    # ------------------------------------------------------------------ consumer side
    def on_event(self, ev: Any) -> None:
        t = _wall_ns()
        if isinstance(ev, PositionEvent):
            key = (ev.position.symbol, ev.position.position_idx)
            self.counts[f"{ev.kind.value}{'_synthetic' if ev.synthetic else ''}"] += 1
            if ev.kind is not EventKind.PRICE:
                self.consumer.append(_lifecycle_record(ev, t))
            if ev.past:
                return  # history: the key's current position is untouched
            if ev.kind is EventKind.CLOSED:
                self.view.pop(key, None)
                self._seen_since.pop(key, None)
                self._end_stale(key)
                self._mark_gap(key, t, None, closing=True)
            else:
                self.view[key] = ev.position
                self._seen_since.setdefault(key, time.monotonic())
                self._mark_gap(key, t, ev.position.mark_price,
                               opening=ev.kind is EventKind.OPENED)
        elif isinstance(ev, RouteEvent):
            self.routes.append({"t": ev.at_ns, "active": ev.active, "previous": ev.previous,
                                "reason": ev.reason})
        elif isinstance(ev, StatusEvent) and len(self.statuses) < 500_000:
            self.statuses.append({"t": t, "feed": ev.feed, "state": ev.status.state.value,
                                  "reason": ev.reason})

    def _mark_gap(self, key: tuple[str, int], t: int, mark: Any, *, opening: bool = False,
                  closing: bool = False) -> None:
        last = self._last_mark.get(key)
        if opening or last is None:
            self._last_mark[key] = (t, mark)
            return
        if closing or mark != last[1]:
            gap = (t - last[0]) / 1e9
            self.mark_gaps.append(gap)
            if gap > self.mark_gap_worst.get("seconds", -1):
                self.mark_gap_worst = {"seconds": round(gap, 3), "symbol": key[0],
                                       "at_s": round((t - self.t0) / 1e9, 2)}
            if closing:
                self._last_mark.pop(key, None)
            else:
                self._last_mark[key] = (t, mark)

    def tap(self, feed: str, ev: PositionEvent, active: str) -> None:
        if ev.kind is not EventKind.PRICE:
            self.taps.setdefault(feed, []).append(_lifecycle_record(ev, _wall_ns(), active))

    # ------------------------------------------------------------------ samples
    def watch_prices(self, sim: Simulator) -> None:
        """Record when each exchange mark price was replaced (wraps the price engine's
        step, in-process), so a consumer's price can be aged against the exchange."""
        prices = sim.prices
        self._cur = {s: prices.mark(s) for s in prices.symbols}
        self._replaced = {s: {} for s in prices.symbols}
        original = prices.step

        def step(now_ms: int) -> Any:
            deltas = original(now_ms)
            t = time.monotonic()
            for sym, delta, _cs in deltas:
                if "markPrice" in delta:
                    new, old = prices.mark(sym), self._cur.get(sym)
                    if old is not None and old != new:
                        self._replaced[sym][old] = t
                    self._cur[sym] = new
            return deltas

        prices.step = step  # type: ignore[method-assign]

    def staleness(self, key: tuple[str, int], mark: Any, now: float) -> float:
        """Seconds since the consumer's mark for ``key`` stopped being the exchange's."""
        sym = key[0]
        if mark is not None and mark == self._cur.get(sym):
            return 0.0
        replaced = self._replaced.get(sym, {}).get(mark) if mark is not None else None
        if replaced is None:  # never had a mark: stale since the consumer got the position
            replaced = self._seen_since.get(key, now)
        return max(0.0, now - replaced)

    def sample(self, sim: Simulator, session: Session, dt: float) -> None:
        now = time.monotonic()
        router = session.router
        if router is not None:
            self.sampled_s += dt
            rt = session.feeds.get(router.active)
            if rt is not None and rt.ctx.state is FeedState.HEALTHY:
                self.healthy_s += dt
        for key, pos in list(self.view.items()):
            age = self.staleness(key, pos.mark_price, now)
            if age <= 0:
                self._end_stale(key)
                continue
            if age > self._peak.get(key, 0.0):
                self._peak[key] = age
            if age > self.stale_worst.get("seconds", -1):
                self.stale_worst = {"seconds": round(age, 3), "symbol": key[0],
                                    "at_s": round((_wall_ns() - self.t0) / 1e9, 2)}
        if len(self.stale_episodes) % 500 == 0:  # keep the price history bounded
            horizon = now - 600
            for hist in self._replaced.values():
                if len(hist) > 20_000:
                    for price in [p for p, t in hist.items() if t < horizon]:
                        del hist[price]

    def _end_stale(self, key: tuple[str, int]) -> None:
        peak = self._peak.pop(key, None)
        if peak is not None:
            self.stale_episodes.append(peak)

    def finish(self) -> None:
        for key in list(self._peak):
            self._end_stale(key)
        t = _wall_ns()
        for key in list(self._last_mark):
            self._mark_gap(key, t, None, closing=True)


# ======================================================================= activity
class Trader:
    """Seeded position churn on many symbols through the control API.

    Positions change only the way they change on Bybit: market orders (open, add,
    reduce, close, flip), leverage and TP/SL/trailing-stop changes, and what the
    exchange triggers itself (TP/SL/trailing stops, liquidations). Never the control
    API's ``set_position``, which moves a position without a fill — something no real
    exchange does, and which the hybrid's gap replay (built on fills) cannot see."""

    def __init__(self, sim: Simulator, ctl: SimControl, rng: random.Random,
                 notional: Decimal) -> None:
        self.sim, self.ctl, self.rng = sim, ctl, rng
        self.symbols = list(sim.prices.symbols)
        self.notional = notional
        self.actions: Counter[str] = Counter()
        self.refused: Counter[str] = Counter()

    def unit(self, symbol: str) -> Decimal:
        inst = self.sim.account.instrument(symbol)
        raw = self.notional / self.sim.prices.mark(symbol)
        qty = (raw / inst.qty_step).to_integral_value(ROUND_DOWN) * inst.qty_step
        while qty * self.sim.prices.mark(symbol) < inst.min_notional * 2:
            qty += inst.qty_step
        return max(qty, inst.min_qty)

    async def step(self) -> None:
        rng, ctl = self.rng, self.ctl
        sym = rng.choice(self.symbols)
        pos = self.sim.account.position(sym)  # read only: decide what to do
        unit = self.unit(sym)
        roll = rng.random()
        side = rng.choice(("Buy", "Sell"))
        action = "?"
        try:
            if not pos.is_open:
                if roll < 0.15:
                    action = "blip"  # a lifecycle of a few milliseconds
                    await ctl.place_order(sym, side, unit)
                    await ctl.place_order(sym, _other(side), unit, reduce_only=True)
                else:
                    action = "open"
                    await ctl.place_order(sym, side, unit * rng.randint(1, 2))
                return
            other = _other(pos.side)
            if roll < 0.22 and pos.size + unit <= unit * 4:
                action = "add"
                await ctl.place_order(sym, pos.side, unit * rng.randint(1, 2))
            elif roll < 0.40 and pos.size > unit:
                action = "reduce"
                await ctl.place_order(sym, other, unit, reduce_only=True)
            elif roll < 0.55:
                action = "close"
                await ctl.place_order(sym, other, pos.size, reduce_only=True)
            elif roll < 0.63:
                action = "close_control"
                await ctl.close_position(sym)
            elif roll < 0.78:
                action = "flip"
                await ctl.place_order(sym, other, pos.size + unit * rng.randint(1, 2))
            elif roll < 0.86:
                action = "leverage"
                current = pos.leverage
                await ctl.set_leverage(sym, rng.choice([x for x in ("3", "5", "10")
                                                        if Decimal(x) != current]))
            else:
                action = "tpsl"
                await self._tpsl(sym, pos.side)
        except SimControlError:
            self.refused[action] += 1
        finally:
            self.actions[action] += 1

    async def _tpsl(self, sym: str, side: str) -> None:
        inst = self.sim.account.instrument(sym)
        mark = self.sim.prices.mark(sym)
        far = Decimal(self.rng.choice(("0.04", "0.06", "0.08")))
        long = side == "Buy"
        fields: dict[str, Any] = {}
        if self.rng.random() < 0.7:
            fields["takeProfit"] = inst.round_price(mark * (1 + far if long else 1 - far))
            fields["stopLoss"] = inst.round_price(mark * (1 - far if long else 1 + far))
        else:
            fields["trailingStop"] = inst.round_price(mark * far)
        await self.ctl.set_trading_stop(sym, **fields)


def _other(side: str) -> str:
    return "Sell" if side == "Buy" else "Buy"


# ======================================================================= faults
class Injector:
    """Seeded random faults through the control API, each bounded."""

    def __init__(self, ctl: SimControl, session: Session, rng: random.Random,
                 max_auth_failures: int) -> None:
        self.ctl, self.session, self.rng = ctl, session, rng
        self.max_auth = max(1, max_auth_failures - 1)
        self.injected: Counter[str] = Counter()
        self.log: list[dict[str, Any]] = []
        self.skipped: Counter[str] = Counter()
        kinds = list(FAULT_WEIGHTS)
        self._kinds, self._weights = kinds, [FAULT_WEIGHTS[k] for k in kinds]

    def _private_connected(self) -> bool:
        rt = self.session.feeds.get(PRIMARY)
        if rt is None:
            return False
        try:
            return bool(rt.feed.details()["private"]["connected"])
        except Exception:
            return False

    async def _auth_pending(self) -> bool:
        return any(f.get("fault") == "reject_auth" for f in await self.ctl.faults())

    async def inject(self) -> None:
        rng, ctl = self.rng, self.ctl
        kind = rng.choices(self._kinds, self._weights)[0]
        sock = rng.choice(("public", "private", "all"))
        params: dict[str, Any] = {}
        if kind == "drop":
            params = {"kind": sock, "mode": rng.choice(("close", "abort"))}
            await ctl.drop(**params)
        elif kind == "stall":
            params = {"kind": sock, "seconds": round(rng.uniform(0.3, 2.5), 2)}
            await ctl.stall(**params)
        elif kind == "delay":
            params = {"kind": sock, "ms": rng.randint(20, 600),
                      "seconds": round(rng.uniform(0.5, 2.5), 2)}
            await ctl.delay(**params)
        elif kind == "duplicate":
            params = {"count": rng.randint(1, 5)}
            await ctl.duplicate_positions(**params)
        elif kind == "reorder":
            params = {"count": rng.randint(1, 3)}
            await ctl.reorder_positions(**params)
        elif kind == "malformed":
            params = {"kind": sock, "count": rng.randint(1, 5)}
            await ctl.malformed(**params)
        elif kind == "reject_auth":
            # Bounded below the hybrid's max_auth_failures, and only once the previous
            # rejections were followed by a successful auth: a key rejected that many
            # times in a row is a bad key, which the hybrid treats as fatal (by design).
            if not self._private_connected() or await self._auth_pending():
                self.skipped[kind] += 1
                return
            params = {"count": rng.randint(1, self.max_auth)}
            await ctl.reject_auth(**params)
            await ctl.drop("private", rng.choice(("close", "abort")))
        elif kind in ("rest_rate_limit", "rest_5xx"):
            mode = "rate_limit" if kind == "rest_rate_limit" else rng.choice(("502", "503"))
            params = {"mode": mode, "count": rng.randint(1, 3), "path": rng.choice(REST_PATHS)}
            await ctl.rest_errors(**params)
        self.injected[kind] += 1
        self.log.append({"t": _wall_ns(), "fault": kind, **params})


# ======================================================================= one mode
def _settings_overrides(cfg: CampaignConfig, sim: Simulator, mode: str) -> dict[str, Any]:
    urls = sim.urls
    return {
        "mode": mode,
        "account": {"api_key": sim.api_key, "api_secret": sim.api_secret, "name": "chaos"},
        "endpoints": {"rest": urls["rest"], "public_ws": urls["public_ws"],
                      "public_ws_inverse": urls["public_ws_inverse"],
                      "private_ws": urls["private_ws"]},
        "feeds": {
            PRIMARY: {"kind": PRIMARY, "max_auth_failures": cfg.max_auth_failures,
                      **cfg.hybrid},
            STANDBY: {"kind": STANDBY, "interval": cfg.rest_interval},
        },
        "router": {"failover_after": cfg.failover_after, "failback_after": cfg.failback_after},
        "validation": {"interval": "1s", "settle": "3s"},
    }


async def _wait(predicate: Any, timeout: float, step: float = 0.05) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        await asyncio.sleep(step)
    return bool(predicate())


def _exchange_view(sim: Simulator) -> dict[tuple[str, int], dict[str, Any]]:
    return {(p.symbol, p.idx): p.summary() for p in sim.account.open_positions()}


def compare_positions(exchange: dict[tuple[str, int], dict[str, Any]],
                      consumer: dict[tuple[str, int], Any]) -> list[dict[str, Any]]:
    """Positions whose consumer view differs from the exchange (side, size, entry, leverage,
    TP/SL/trailing; the values the exchange reports, "0" meaning not set)."""
    out = []
    for key in sorted(set(exchange) | set(consumer)):
        ex, pos = exchange.get(key), consumer.get(key)
        if ex is None or pos is None:
            out.append({"symbol": key[0], "exchange": None if ex is None else
                        f"{ex['side']} {ex['size']}", "consumer": None if pos is None else
                        f"{pos.side.value} {pos.size}"})
            continue
        diffs = {}
        side = {"Buy": "long", "Sell": "short"}.get(ex["side"])
        if side != pos.side.value:
            diffs["side"] = (ex["side"], pos.side.value)
        for name, attr in (("size", "size"), ("entryPrice", "entry_price"),
                           ("leverage", "leverage"), ("takeProfit", "take_profit"),
                           ("stopLoss", "stop_loss"), ("trailingStop", "trailing_stop")):
            want = Decimal(ex[name])
            have = getattr(pos, attr) or Decimal(0)
            if want != have:
                diffs[name] = (str(want), str(have))
        if diffs:
            out.append({"symbol": key[0], "diffs": {k: list(v) for k, v in diffs.items()}})
    return out


async def run_mode(cfg: CampaignConfig, mode: str, *, echo: Any = None) -> dict[str, Any]:
    """One mode of the campaign; returns its result (see analyse())."""
    say = echo or (lambda *_: None)
    rng = random.Random(f"{cfg.seed}:{mode}")
    errors = _ErrorLog()
    flog = logging.getLogger("feedctl")
    flog.addHandler(errors)
    loop_errors: list[str] = []
    loop = asyncio.get_running_loop()
    previous_handler = loop.get_exception_handler()
    loop.set_exception_handler(lambda _l, c: loop_errors.append(str(c.get("message"))[:300]))
    symbols = _symbols(cfg.symbols)
    sim_cfg = SimConfig(symbols=symbols, seed=cfg.seed, volatility_bps=Decimal(
        cfg.volatility_bps), tick_interval=0.1)
    started = time.monotonic()
    try:
        with tempfile.TemporaryDirectory(prefix="feedctl-chaos-") as tmp:
            settings = Path(tmp) / "settings.toml"
            settings.write_text("[chaos]\n")
            async with Simulator(sim_cfg) as sim, SimControl(sim.urls["control"]) as ctl:
                session = Session("chaos", settings_path=settings,
                                  overrides=_settings_overrides(cfg, sim, mode))
                async with session:
                    return await _campaign(cfg, mode, rng, sim, ctl, session, errors,
                                           loop_errors, say, started)
    finally:
        flog.removeHandler(errors)
        loop.set_exception_handler(previous_handler)


async def _campaign(cfg: CampaignConfig, mode: str, rng: random.Random, sim: Simulator,
                    ctl: SimControl, session: Session, errors: _ErrorLog,
                    loop_errors: list[str], say: Any, started: float) -> dict[str, Any]:
    rec = Recorder()
    rec.watch_prices(sim)
    router = session.router
    assert router is not None
    for name, rt in session.feeds.items():
        original = rt.book._emit

        def tap(ev: PositionEvent, _orig: Any = original, _name: str = name) -> None:
            rec.tap(_name, ev, router.active)
            if _orig is not None:
                _orig(ev)

        rt.book._emit = tap
    stream = session.events(name="chaos")

    async def pump() -> None:
        async for ev in stream:
            rec.on_event(ev)

    tasks: list[asyncio.Task[Any]] = [asyncio.create_task(pump(), name="chaos-pump")]
    primary = session.feeds[PRIMARY]
    ok = await _wait(lambda: primary.ctx.state is FeedState.HEALTHY and all(
        rt.ctx.state is FeedState.HEALTHY for rt in session.feeds.values()), 30)
    if not ok:
        say(f"[{mode}] warning: feeds not healthy at start: "
            f"{ {n: rt.ctx.state.value for n, rt in session.feeds.items()} }")

    trader = Trader(sim, ctl, random.Random(rng.random()),
                    Decimal(cfg.unit_notional))
    injector = Injector(ctl, session, random.Random(rng.random()), cfg.max_auth_failures)
    stop = asyncio.Event()

    async def trading() -> None:
        r = random.Random(rng.random())
        for _ in range(1_000_000):
            if stop.is_set():
                return
            await trader.step()
            await asyncio.sleep(min(2.0, r.expovariate(1 / cfg.activity_interval)))

    async def sampling() -> None:
        last = time.monotonic()
        for _ in range(10_000_000):
            await asyncio.sleep(cfg.sample_interval)
            now = time.monotonic()
            rec.sample(sim, session, now - last)
            last = now

    tasks += [asyncio.create_task(trading(), name="chaos-trader"),
              asyncio.create_task(sampling(), name="chaos-sampler")]
    t_inject = time.monotonic()
    r = random.Random(rng.random())
    deadline = t_inject + cfg.max_seconds
    next_report = t_inject + 10
    try:
        while sum(injector.injected.values()) < cfg.faults and time.monotonic() < deadline:
            await asyncio.sleep(min(3.0, r.expovariate(1 / cfg.fault_interval)))
            try:
                await injector.inject()
            except SimControlError as exc:
                injector.skipped[f"error:{exc.status}"] += 1
            if time.monotonic() >= next_report:
                next_report += 10
                say(f"[{mode}] {time.monotonic() - t_inject:5.0f}s  faults "
                    f"{sum(injector.injected.values())}/{cfg.faults}  trades "
                    f"{sum(trader.actions.values())}  active {router.active}")
        injection_s = time.monotonic() - t_inject
        # ---------------------------------------------------------------- settle
        stop.set()
        await asyncio.sleep(0.3)  # let the last trade's HTTP answer land
        await ctl.clear_faults()
        t_settle = time.monotonic()

        def converged() -> bool:
            hybrid_ok = primary.ctx.state is FeedState.HEALTHY and router.active == PRIMARY
            return (hybrid_ok and not compare_positions(_exchange_view(sim), rec.view)
                    and all(c["pending"] == 0 for c in session.status()["consumers"]))

        await _wait(converged, cfg.settle_seconds, 0.1)
        await asyncio.sleep(1.0)  # anything still in flight
        settle_s = time.monotonic() - t_settle
    finally:
        stop.set()
        for t in tasks[1:]:
            t.cancel()
        await asyncio.gather(*tasks[1:], return_exceptions=True)
    rec.finish()
    transitions = await _all_transitions(ctl)
    final_exchange = _exchange_view(sim)
    feeds = {}
    for name, rt in session.feeds.items():
        feeds[name] = {
            "state": rt.ctx.state.value,
            "fatal": None if rt.fatal is None else str(rt.fatal)[:300],
            "counters": dict(sorted({**rt.book.counters, **rt.ctx.counters}.items())),
            "unrecoverable": _unrecoverable(rt.feed),
            "diverged_from_exchange": len(compare_positions(
                final_exchange, {(k.symbol, k.position_idx): p
                                 for k, p in rt.book.positions.items()})),
        }
    stream.close()
    await asyncio.gather(tasks[0], return_exceptions=True)
    validation = session.validator.summary() if session.validator is not None else None
    result = analyse(
        transitions=transitions, consumer=rec.consumer, primary_taps=rec.taps.get(PRIMARY, []),
        primary=PRIMARY, faults=injector.log, statuses=rec.statuses,
        detect_slack_s=_detect_slack(cfg.hybrid),
        reported=feeds.get(PRIMARY, {}).get("unrecoverable"))
    diverged = compare_positions(final_exchange, rec.view)
    crashes = sum(rt.ctx.counters.get("crashes", 0) for rt in session.feeds.values())
    handler_errors = sum(rt.ctx.counters.get("handler_errors", 0)
                         for rt in session.feeds.values())
    fatal = [n for n, rt in session.feeds.items() if rt.fatal is not None]
    out: dict[str, Any] = {
        "mode": mode,
        "seconds": {"injection": round(injection_s, 1), "settle": round(settle_s, 1),
                    "total": round(time.monotonic() - started, 1)},
        "faults": dict(sorted(injector.injected.items())),
        "faults_total": sum(injector.injected.values()),
        "faults_skipped": dict(injector.skipped),
        "trades": dict(sorted(trader.actions.items())),
        "trades_refused": dict(trader.refused),
        **result,
        "diverged": len(diverged),
        "diverged_detail": diverged[:20],
        "stale_price_max_s": rec.stale_worst.get("seconds", 0.0),
        "stale_price_worst": rec.stale_worst,
        "stale_price_p99_s": _pct(rec.stale_episodes, 0.99),
        "stale_episodes_over_1s": sum(1 for s in rec.stale_episodes if s > 1.0),
        "mark_gap_max_s": rec.mark_gap_worst.get("seconds", 0.0),
        "mark_gap_p99_s": _pct(rec.mark_gaps, 0.99),
        "delivering_healthy_fraction": round(rec.healthy_s / rec.sampled_s, 5)
        if rec.sampled_s else None,
        "failovers": router.counters["failovers"],
        "failbacks": router.counters["failbacks"],
        "router_guarded": router.counters["guarded"],
        "crashes": crashes,
        "handler_errors": handler_errors,
        "fatal_feeds": fatal,
        "task_exceptions": len(loop_errors),
        "task_exception_samples": loop_errors[:10],
        "error_logs": errors.count,
        "error_log_samples": errors.samples,
        "feeds": feeds,
        "consumer_event_counts": dict(sorted(rec.counts.items())),
        "validation": None if validation is None else {
            k: validation[STANDBY].get(k) for k in (
                "agreement", "side_disagreements", "size_disagreements", "changes_matched",
                "primary_first", "shadow_first")},
        "fault_log_head": injector.log[:5],
    }
    out["ok"], out["failures"] = verdict(out)
    if cfg.dump_dir:
        dump = {"transitions": transitions, "consumer": rec.consumer, "taps": rec.taps,
                "routes": rec.routes, "statuses": rec.statuses, "faults": injector.log,
                "hybrid": cfg.hybrid, "result": out}
        path = Path(cfg.dump_dir) / f"chaos-{mode}-{cfg.seed}.json"
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(dump, default=str))
    return out


async def _all_transitions(ctl: SimControl) -> list[dict[str, Any]]:
    out: list[dict[str, Any]] = []
    after = 0
    for _ in range(10_000):
        page = await ctl.transitions(after=after, limit=1000)
        if not page:
            break
        out.extend(page)
        after = page[-1]["id"]
    return out


def _unrecoverable(feed: Any) -> list[dict[str, Any]]:
    """The hybrid's reports of states lost with the socket up that it could not deliver
    in order (``details()["private"]["unrecoverable"]``); [] for other kinds."""
    try:
        return list(feed.details()["private"]["unrecoverable"])
    except (AttributeError, KeyError, TypeError):
        return []


def _detect_slack(hybrid: dict[str, Any]) -> float:
    """How long after a stall's end the primary may take to notice it."""
    return (_seconds(hybrid.get("ping_interval", 20)) + _seconds(hybrid.get("pong_timeout", 10))
            + 0.5)


def reanalyse(paths: list[str]) -> dict[str, Any]:
    """Results recomputed from ``--dump`` files with this version's analysis (the run's
    own measurements — staleness, health, counters — are kept as recorded)."""
    results: dict[str, Any] = {}
    for path in paths:
        d = json.loads(Path(path).read_text())
        out = dict(d["result"])
        out.update(analyse(
            transitions=d["transitions"], consumer=d["consumer"],
            primary_taps=d["taps"].get(PRIMARY, []), primary=PRIMARY, faults=d["faults"],
            statuses=d["statuses"], detect_slack_s=_detect_slack(d.get("hybrid") or
                                                                 CampaignConfig().hybrid),
            reported=out.get("feeds", {}).get(PRIMARY, {}).get("unrecoverable")))
        out["ok"], out["failures"] = verdict(out)
        results[out["mode"]] = out
    return {"ok": all(r["ok"] for r in results.values()), "results": results,
            "reanalysed_from": paths}


def _seconds(value: Any) -> float:
    text = str(value).strip()
    for unit, factor in (("ms", 0.001), ("s", 1.0), ("m", 60.0)):
        if text.endswith(unit):
            return float(text[: -len(unit)]) * factor
    return float(text)


def _pct(values: list[float], q: float) -> float:
    if not values:
        return 0.0
    ordered = sorted(values)
    return round(ordered[min(len(ordered) - 1, math.ceil(q * len(ordered)) - 1)], 3)


# ======================================================================= analysis
@dataclass
class ExLife:
    """One lifecycle on the exchange: from an ``opened`` to its ``closed`` transition."""

    symbol: str
    open_seq: int
    open_ms: int
    close_seq: int | None = None
    close_ms: int | None = None
    changes: int = 0


@dataclass
class SeenLife:
    """One lifecycle as a consumer (or a feed's book) saw it: ``opened`` .. ``closed``."""

    symbol: str
    open_seq: int | None
    open_t: int
    open_active: str | None = None
    close_seq: int | None = None
    close_t: int | None = None
    close_active: str | None = None
    changes: int = 0
    first: int | None = None  # index of the exchange lifecycle its opened maps to
    last: int | None = None  # index of the exchange lifecycle its closed maps to
    past: bool = False  # delivered after the fact as ``past`` events (history)


def exchange_lifecycles(transitions: Iterable[dict[str, Any]]
                        ) -> tuple[dict[str, list[ExLife]], list[str]]:
    """Per symbol, the exchange's lifecycles in order (from the transition log)."""
    out: dict[str, list[ExLife]] = {}
    anomalies: list[str] = []
    for t in sorted(transitions, key=lambda t: t["id"]):
        lcs = out.setdefault(f"{t['symbol']}:{t.get('positionIdx', 0)}", [])
        is_open = bool(lcs) and lcs[-1].close_seq is None
        if t["kind"] == "opened":
            if is_open:
                anomalies.append(f"exchange opened {t['symbol']} twice (id {t['id']})")
            lcs.append(ExLife(t["symbol"], int(t["seq"]), int(t["time"])))
        elif t["kind"] == "closed":
            if not is_open:
                anomalies.append(f"exchange closed flat {t['symbol']} (id {t['id']})")
                continue
            lcs[-1].close_seq, lcs[-1].close_ms = int(t["seq"]), int(t["time"])
        elif is_open:
            lcs[-1].changes += 1
    return out, anomalies


def seen_lifecycles(events: Iterable[dict[str, Any]]
                    ) -> tuple[dict[str, list[SeenLife]], list[dict[str, Any]]]:
    """Per key, the lifecycles in a stream of lifecycle events, and its duplicates: an
    ``opened`` while open, a ``closed`` while not open, a ``changed`` while not open."""
    out: dict[str, list[SeenLife]] = {}
    dups: list[dict[str, Any]] = []
    # ``past`` events are the pairs of lifecycles recovered after the fact: their own
    # stream per key, beside the current one (they never touch its open lifecycle)
    past: dict[str, list[SeenLife]] = {}
    for ev in events:
        key = f"{ev['symbol']}:{ev['idx']}"
        is_past = bool(ev.get("past"))
        lcs = (past if is_past else out).setdefault(key, [])
        is_open = bool(lcs) and lcs[-1].close_t is None
        kind = ev["kind"]
        if kind == "opened":
            if is_open:
                dups.append({"why": "opened while open", **ev})
                continue
            lcs.append(SeenLife(ev["symbol"], ev["seq"], ev["t"], ev.get("active"),
                                past=is_past))
        elif kind == "closed":
            if not is_open:
                dups.append({"why": "closed while not open", **ev})
                continue
            lcs[-1].close_seq, lcs[-1].close_t = ev["seq"], ev["t"]
            lcs[-1].close_active = ev.get("active")
        elif kind == "changed":
            if not is_open:
                dups.append({"why": "changed while not open", **ev})
                continue
            lcs[-1].changes += 1
    for key, lcs in past.items():
        out.setdefault(key, []).extend(lcs)
    return out, dups


def _locate_open(xl: list[ExLife], seq: int | None) -> int | None:
    """The exchange lifecycle an ``opened`` belongs to: the k with
    ``open_seq(k) <= seq < close_seq(k)`` (a flip's closing and opening transitions share
    one seq, which therefore opens k+1). None if ``seq`` is no open state's."""
    if seq is None:
        return None
    for k, lc in enumerate(xl):
        if lc.open_seq <= seq and (lc.close_seq is None or seq < lc.close_seq):
            return k
    return None


def _locate_close(xl: list[ExLife], seq: int | None, first: int) -> int | None:
    """The exchange lifecycle a ``closed`` ends, for a seen lifecycle opened on ``first``.

    A ``closed`` carries the closing state's seq, the last open state's (a snapshot that
    no longer lists the position), or — when a feed learns of a flip late — the seq of
    the *next* lifecycle's open state. So: the last k >= ``first`` opened at or before
    ``seq``; if ``seq`` is an open state of that k and k > ``first``, the close ends k-1.
    """
    if seq is None:
        return None
    k = None
    for i in range(first, len(xl)):
        if xl[i].open_seq > seq:
            break
        k = i
    if k is None:
        return None
    if k > first and (xl[k].close_seq is None or seq < xl[k].close_seq):
        return k - 1
    return k


def _map(seen: dict[str, list[SeenLife]], ex: dict[str, list[ExLife]]) -> list[SeenLife]:
    """Map each seen lifecycle onto exchange ones. ``past`` lifecycles are mapped first:
    a close that arrived late with the next lifecycle's seq ends the lifecycle before it
    *that consumers did not get as history* (the past one sits between them)."""
    unmatched: list[SeenLife] = []
    for key, lcs in seen.items():
        xl = ex.get(key, [])
        claimed: set[int] = set()
        for lc in sorted(lcs, key=lambda c: not c.past):
            lc.first = _locate_open(xl, lc.open_seq)
            if lc.first is None:
                unmatched.append(lc)
                continue
            if lc.close_t is None:
                lc.last = len(xl) - 1 if xl and xl[-1].close_seq is None else lc.first
            else:
                lc.last = _locate_close(xl, lc.close_seq, lc.first)
                if lc.last is None:
                    unmatched.append(lc)
                    continue
                if lc.past:
                    claimed.update(range(lc.first, lc.last + 1))
                else:
                    while lc.last > lc.first and lc.last in claimed:
                        lc.last -= 1
    return unmatched


def analyse(*, transitions: list[dict[str, Any]], consumer: list[dict[str, Any]],
            primary_taps: list[dict[str, Any]], primary: str = PRIMARY,
            faults: list[dict[str, Any]] | None = None,
            statuses: list[dict[str, Any]] | None = None, detect_slack_s: float = 3.0,
            clock_slack_ms: int = 50,
            reported: list[dict[str, Any]] | None = None) -> dict[str, Any]:
    """Match the exchange's lifecycles with what the consumer received.

    Per exchange lifecycle: ``delivered`` (exactly one consumer lifecycle, opened and
    closed on it), ``missed`` (no consumer lifecycle touches it), ``coalesced`` (one
    consumer lifecycle spans it and a neighbour: a close/reopen the consumer never saw),
    ``split`` (two or more consumer lifecycles on it: a false close and reopen). A missed
    or coalesced one is *lost*, whatever the reason; ``primary_saw`` records whether the
    primary's own book saw the boundaries consumers lack (and while which feed
    delivered), to tell a router fault from a feed's.

    Every failure (lost, split, premature close, unmatched, duplicate) is then attributed
    to a known finding by its signature (see :func:`explain`) or counted *unexplained*;
    a lost lifecycle whose first missing boundary's seq the primary ``reported`` as a
    state it could not deliver in order is the hybrid's own, reported, L1.
    """
    ex, anomalies = exchange_lifecycles(transitions)
    seen, dups = seen_lifecycles(consumer)
    unmatched = _map(seen, ex)
    taps, _ = seen_lifecycles(primary_taps)
    _map(taps, ex)
    ex_counts = Counter(t["kind"] for t in transitions)
    con_counts = Counter(e["kind"] for e in consumer)
    status: Counter[str] = Counter()
    lost: list[dict[str, Any]] = []
    split: list[dict[str, Any]] = []
    premature: list[dict[str, Any]] = []
    for key, xl in ex.items():
        cls = seen.get(key, [])
        tl = taps.get(key, [])
        for k, x in enumerate(xl):
            cover = [c for c in cls if c.first is not None and c.last is not None
                     and c.first <= k <= c.last]
            if len(cover) >= 2:
                status["split"] += 1
                split.append({"symbol": x.symbol, "open_seq": x.open_seq,
                              "open_ms": x.open_ms, "close_ms": x.close_ms,
                              "consumer_lifecycles": len(cover)})
                continue
            missing: list[str] = []
            if not cover:
                missing = ["open", "close"] if x.close_seq is not None else ["open"]
            else:
                c = cover[0]
                if c.first != k:
                    missing.append("open")
                if x.close_seq is not None and (c.last != k or c.close_t is None):
                    missing.append("close")
            if not missing:
                status["delivered"] += 1
                continue
            kind = "missed" if not cover else "coalesced"
            status[kind] += 1
            lost.append({"symbol": x.symbol, "open_seq": x.open_seq, "close_seq": x.close_seq,
                         "open_ms": x.open_ms, "close_ms": x.close_ms, "kind": kind,
                         "missing": missing, "primary_saw": _primary_saw(tl, k, missing,
                                                                         primary)})
    for key, cls in seen.items():
        xl = ex.get(key, [])
        for c in cls:
            if c.close_t is None or c.last is None:
                continue
            x = xl[c.last]
            if x.close_ms is None or x.close_ms > c.close_t // 1_000_000 + clock_slack_ms:
                premature.append({"symbol": c.symbol, "close_seq": c.close_seq,
                                  "consumer_closed_at_ms": c.close_t // 1_000_000,
                                  "exchange_closed_at_ms": x.close_ms})
    completed = sum(1 for xl in ex.values() for x in xl if x.close_seq is not None)
    signs = signatures(consumer, faults or [], statuses or [], primary, detect_slack_s, ex,
                       primary_taps)
    signs[F_CLOSE_REPLAYED] = [(t["symbol"], int(t["seq"]), int(t["seq"]))
                               for t in transitions if t["kind"] == "closed"]
    # the primary's book opening on a close's seq: a close fill replayed onto a flat book;
    # what consumers get from that book in the next seconds inherits the wrong state
    # (from the replayed close to 5 s after: the replay's later states build on it)
    closes = {(t["symbol"], int(t["seq"])): int(t["time"]) for t in transitions
              if t["kind"] == "closed"}
    signs[F_REPLAY_WINDOW] = [
        (p["symbol"], closes[(p["symbol"], p["seq"])], p["t"] // 1_000_000 + 5_000)
        for p in phantom_states(transitions, primary_taps)
        if (p["symbol"], p["seq"]) in closes]
    phantoms = phantom_states(transitions, consumer)
    known: Counter[str] = Counter()
    unexplained: list[dict[str, Any]] = []
    items: list[tuple[str, dict[str, Any], int, int, list[int]]] = []
    for it in lost:
        lo, hi = it["open_ms"], it["close_ms"] or it["open_ms"]
        times = [it["open_ms"]] * ("open" in it["missing"]) + (
            [it["close_ms"]] if "close" in it["missing"] and it["close_ms"] else [])
        items.append(("lost", it, lo, hi, times))
    for it in split:
        items.append(("split", it, it["open_ms"], it["close_ms"] or it["open_ms"], []))
    for it in premature:
        t = it["consumer_closed_at_ms"]
        items.append(("premature", it, t, t, []))
    for u in unmatched:
        items.append(("unmatched", asdict(u), u.open_t // 1_000_000,
                      (u.close_t or u.open_t) // 1_000_000, []))
    for d in dups:
        items.append(("duplicate", d, d["t"] // 1_000_000, d["t"] // 1_000_000, []))
    for ph in phantoms:
        items.append(("phantom", ph, ph["t"] // 1_000_000, ph["t"] // 1_000_000, []))
    told = {(r["symbol"], int(q)) for r in reported or [] for q in r.get("seqs", [])}
    for what, it, lo, hi, times in items:
        why = explain(signs, what, it["symbol"], lo, hi, times, seq=it.get(
            "open_seq" if what == "unmatched" else "seq"))
        # the first boundary consumers lack: a lifecycle they never saw opened was
        # reported if its open state was (its close may have reached the book as the
        # flat state of a later order's create push)
        if what == "lost":
            first = "open" if "open" in it["missing"] else "close"
            if (it["symbol"], it.get(f"{first}_seq")) in told:
                why = L_REPORTED
        if why is None:
            unexplained.append({"failure": what, **it})
        else:
            known[why] += 1
            it["explained_by"] = why
    return {
        "exchange_transitions": {k: ex_counts.get(k, 0) for k in ("opened", "changed",
                                                                   "closed")},
        "exchange_lifecycles": sum(len(xl) for xl in ex.values()),
        "exchange_lifecycles_completed": completed,
        "consumer_events": {k: con_counts.get(k, 0) for k in ("opened", "changed", "closed")},
        "consumer_synthetic": sum(1 for e in consumer if e["synthetic"]),
        "lifecycles": {k: status.get(k, 0) for k in (
            "delivered", "missed", "coalesced", "split")},
        "lost": len(lost),
        "lost_detail": lost[:20],
        "duplicates": len(dups),
        "duplicate_detail": dups[:10],
        "split": len(split),
        "split_detail": split[:10],
        "premature_closes": len(premature),
        "premature_detail": premature[:10],
        "unmatched_consumer_lifecycles": len(unmatched),
        "unmatched_detail": [asdict(u) for u in unmatched[:10]],
        "exchange_anomalies": anomalies[:10],
        "phantom_states": len(phantoms),
        "phantom_detail": phantoms[:10],
        "known_findings": dict(sorted(known.items())),
        "signatures": {k.strip(): len(v) for k, v in signs.items() if k != F_CLOSE_REPLAYED},
        "unexplained": len(unexplained),
        "unexplained_detail": unexplained[:20],
    }


def _primary_saw(taps: list[SeenLife], k: int, missing: list[str], primary: str) -> str:
    """Whether the primary's book saw each boundary of lifecycle ``k`` consumers lack, and
    while which feed delivered: tells a router fault from a feed's."""
    seen: list[str] = []
    for boundary in missing:
        if boundary == "open":
            hit = [t for t in taps if t.first == k]
            active = [t.open_active for t in hit]
        else:
            hit = [t for t in taps if t.last == k and t.close_t is not None]
            active = [t.close_active for t in hit]
        if not hit:
            return f"primary never saw the {boundary}"
        if any(a == primary for a in active):
            return f"primary emitted the {boundary} while delivering"
        seen.append(boundary)
    return f"primary saw the {' and '.join(seen)} while the standby delivered"


#: What a failure can be attributed to (docs/reliability.md, "Findings").
F_STALE_REOPEN = "F2b stale state at a switch"
F_ORPHAN_CLOSE = "F11 false orphan close"
F_SNAPSHOT_REOPEN = "F1b reopened after a snapshot closed it"
F_LAGGING_PRICE = "F2c lagging feed's price replaced consumers' position"
F_OVERTAKEN = "F6 audit overtook delayed pushes"
F_CLOSE_REPLAYED = "F10 close fill replayed onto a flat book"
F_REPLAY_WINDOW = "F10 close fill replayed onto a flat book "  # (its aftermath)
L_SILENT = "L1 loss inside a stall not noticed while it lasted"
L_REPORTED = "L1 loss the hybrid reported (states_unrecoverable)"


def exchange_states(transitions: list[dict[str, Any]]
                    ) -> dict[str, tuple[list[int], list[tuple[str, Decimal]]]]:
    """Per symbol: the seqs of its transitions and the (side, size) after each."""
    out: dict[str, tuple[list[int], list[tuple[str, Decimal]]]] = {}
    for t in sorted(transitions, key=lambda t: t["id"]):
        seqs, states = out.setdefault(t["symbol"], ([], []))
        seqs.append(int(t["seq"]))
        states.append(({"Buy": "long", "Sell": "short"}.get(t["side"], ""), Decimal(t["size"])))
    return out


def phantom_states(transitions: list[dict[str, Any]], events: list[dict[str, Any]]
                   ) -> list[dict[str, Any]]:
    """``opened``/``changed`` events carrying a (side, size) the exchange never had at
    their seq (the state after the last transition with that seq or an older one)."""
    states = exchange_states(transitions)
    out = []
    for ev in events:
        if ev["kind"] == "closed" or ev["seq"] is None:
            continue
        seqs, hist = states.get(ev["symbol"], ([], []))
        i = bisect.bisect_right(seqs, ev["seq"]) - 1
        truth = hist[i] if i >= 0 else ("", Decimal(0))
        if truth != (ev["side"], Decimal(ev["size"])):
            out.append({**ev, "exchange": f"{truth[0]} {truth[1]}" if truth[0] else "flat"})
    return out


def signatures(consumer: list[dict[str, Any]], faults: list[dict[str, Any]],
               statuses: list[dict[str, Any]], primary: str, detect_slack_s: float,
               lifecycles: dict[str, list[ExLife]] | None = None,
               primary_taps: list[dict[str, Any]] | None = None
               ) -> dict[str, list[tuple[str, int, int]]]:
    """Occurrences (symbol or "*", from ms, to ms) of the known findings' signatures.

    * F2b (and the fixed F1/F2): the consumer got an ``opened`` carrying a state that is
      not newer than the ``closed`` it got last for that key (seq lower, or equal with
      the same side and size: not a flip) — taken back to an older state;
    * F1b: in the primary's book, a ``closed`` carrying an open state's seq (a snapshot
      closed it) followed by an ``opened`` of a later state of the *same* exchange
      lifecycle: a delayed push older than the snapshot reopened it (window: 10 s);
    * F2c: a ``closed`` of a side other than the one the consumer's last lifecycle event
      for that key carried (a lagging feed's price event replaced the position);
    * F11: a synthetic ``closed`` followed within 200 ms by an ``opened`` of the same
      key and side (any seq): the router closed a pending orphan the standby's snapshot
      was about to list;
    * F6: an injected private delay (its window plus the delay): pushes in flight that
      an audit can overtake;
    * L1: an injected private stall the primary did not notice while it lasted (no
      ``reconnecting`` between its start and end): pushes were lost with the socket up,
      and newer pushes of the same position may arrive before the loss is noticed (the
      audit's or the reconnect's fill replay then cannot put the lost states back in
      order).
    """
    out: dict[str, list[tuple[str, int, int]]] = {
        F_STALE_REOPEN: [], F_ORPHAN_CLOSE: [], F_SNAPSHOT_REOPEN: [], F_LAGGING_PRICE: [],
        F_OVERTAKEN: [], L_SILENT: []}
    lifecycles, primary_taps = lifecycles or {}, primary_taps or []
    # F1b, in the primary's book: a close carrying an open state's seq (a snapshot closed
    # it) and then a later state of the same exchange lifecycle reopening it; whatever
    # that book delivers on the symbol in the next 10 s builds on the wrong state
    book_closed: dict[str, dict[str, Any]] = {}
    for ev in primary_taps:
        key = f"{ev['symbol']}:{ev['idx']}"
        if ev["kind"] == "closed":
            book_closed[key] = ev
        elif ev["kind"] == "opened" and key in book_closed and ev["seq"] is not None:
            c = book_closed.pop(key)
            xl = lifecycles.get(key, [])
            k = _locate_open(xl, c["seq"]) if c["seq"] is not None else None
            if k is not None and ev["seq"] > c["seq"] and _locate_open(xl, ev["seq"]) == k:
                t = ev["t"] // 1_000_000
                out[F_SNAPSHOT_REOPEN].append((ev["symbol"], t, t + 10_000))
    last_closed: dict[str, dict[str, Any]] = {}
    last_told: dict[str, dict[str, Any]] = {}
    for ev in consumer:
        key = f"{ev['symbol']}:{ev['idx']}"
        if ev["kind"] != "closed":
            last_told[key] = ev
        elif (told := last_told.pop(key, None)) is not None and told["side"] != ev["side"]:
            # a close of a side consumers were never told about in a lifecycle event: a
            # price event had replaced their position with a lagging feed's (F2c)
            t = ev["t"] // 1_000_000
            out[F_LAGGING_PRICE].append((ev["symbol"], t, t))
        if ev["kind"] == "closed":
            last_closed[key] = ev
        elif ev["kind"] == "opened" and key in last_closed and ev["seq"] is not None:
            c = last_closed[key]
            t = ev["t"] // 1_000_000
            if c["synthetic"] and ev["t"] - c["t"] < 200 * 1_000_000 and (
                    ev["side"] == c["side"]):
                # the router closed a pending orphan and the same side reopens at once:
                # the standby's snapshot listed it all along (F11)
                out[F_ORPHAN_CLOSE].append((ev["symbol"], t, t))
            elif c["seq"] is not None and (ev["seq"] < c["seq"] or (
                    ev["seq"] == c["seq"] and ev["side"] == c["side"]
                    and ev["size"] == c["size"])):
                out[F_STALE_REOPEN].append((ev["symbol"], t, t))  # an older state (F1/F2)

    noticed = sorted(s["t"] for s in statuses
                     if s["feed"] == primary and s["state"] == "reconnecting")
    for f in faults:
        if f.get("fault") == "delay" and f.get("kind") in ("private", "all"):
            start = f["t"] // 1_000_000
            out[F_OVERTAKEN].append(("*", start, start + int(float(f["seconds"]) * 1000)
                                     + int(f["ms"])))
        if f.get("fault") != "stall" or f.get("kind") not in ("private", "all"):
            continue
        start = f["t"]
        end = start + int(float(f["seconds"]) * 1e9)
        j = bisect.bisect_left(noticed, start)
        if j >= len(noticed) or noticed[j] > end:  # not noticed while it lasted
            out[L_SILENT].append(("*", start // 1_000_000, end // 1_000_000))
    return out


def explain(signs: dict[str, list[tuple[str, int, int]]], what: str, symbol: str,
            lo_ms: int, hi_ms: int, missing_ms: list[int], before_ms: int = 2_000,
            after_ms: int = 10_000, seq: int | None = None) -> str | None:
    """The finding a failure of kind ``what`` on ``symbol`` around [lo_ms, hi_ms] is
    attributed to, or None (unexplained).

    A lost lifecycle: L1 or F6 when every boundary the consumer lacks (``missing_ms``)
    fell inside such a stall window. A phantom state or a lifecycle opened on one:
    F10 when its seq is that of a close on the exchange (the close fill was replayed
    onto a flat book). Anything: F10 within 5 s after the primary's book opened on a
    close's seq; F11, F2c or F2b when such an event on that
    symbol happened from ``before_ms`` before to ``after_ms`` after."""
    def inside(name: str, t: int) -> bool:
        return any(a - 50 <= t <= b + 50 for _, a, b in signs.get(name, []))

    if what == "lost" and missing_ms:
        for name in (L_SILENT, F_OVERTAKEN):
            if all(inside(name, t) for t in missing_ms):
                return name
    if what in ("phantom", "unmatched") and seq is not None and any(
            sym == symbol and a == seq for sym, a, _ in signs.get(F_CLOSE_REPLAYED, [])):
        return F_CLOSE_REPLAYED
    for sym, a, b in signs.get(F_REPLAY_WINDOW, []):
        if sym == symbol and a <= hi_ms and b >= lo_ms:
            return F_CLOSE_REPLAYED
    for sym, a, b in signs.get(F_SNAPSHOT_REOPEN, []):
        if sym == symbol and a <= hi_ms and b >= lo_ms:
            return F_SNAPSHOT_REOPEN
    for name in (F_ORPHAN_CLOSE, F_LAGGING_PRICE, F_STALE_REOPEN):
        for sym, a, b in signs.get(name, []):
            if sym == symbol and a <= hi_ms + after_ms and b >= lo_ms - before_ms:
                return name
    return None


def verdict(r: dict[str, Any]) -> tuple[bool, list[str]]:
    checks = [
        ("lost", "lifecycles lost"), ("duplicates", "duplicate lifecycle events"),
        ("split", "lifecycles split by a false close"), ("diverged", "positions diverged"),
        ("premature_closes", "closes before the exchange closed"),
        ("unmatched_consumer_lifecycles", "consumer lifecycles matching no exchange one"),
        ("phantom_states", "states delivered that the exchange never had"),
        ("crashes", "feed crashes"), ("handler_errors", "frame handler errors"),
        ("task_exceptions", "task exceptions"),
    ]
    failures = [f"{r[k]} {what}" for k, what in checks if r.get(k)]
    if r.get("fatal_feeds"):
        failures.append(f"feeds failed fatally: {r['fatal_feeds']}")
    if r.get("exchange_anomalies"):
        failures.append("exchange transition log anomalies")
    return not failures, failures


# ======================================================================= reporting
ROWS: list[tuple[str, Any]] = [
    ("faults injected", lambda r: r["faults_total"]),
    ("  by kind", lambda r: ", ".join(f"{k} {v}" for k, v in r["faults"].items())),
    ("trading actions", lambda r: sum(r["trades"].values())),
    ("exchange transitions o/c/c", lambda r: "/".join(
        str(r["exchange_transitions"][k]) for k in ("opened", "changed", "closed"))),
    ("consumer events o/c/c", lambda r: "/".join(
        str(r["consumer_events"][k]) for k in ("opened", "changed", "closed"))
     + f" ({r['consumer_synthetic']} synthetic)"),
    ("exchange lifecycles (completed)", lambda r: f"{r['exchange_lifecycles']} "
     f"({r['exchange_lifecycles_completed']})"),
    ("  delivered as opened+closed", lambda r: r["lifecycles"]["delivered"]),
    ("  LOST (missed / coalesced)", lambda r: f"{r['lost']} ({r['lifecycles']['missed']} / "
     f"{r['lifecycles']['coalesced']})"),
    ("duplicates", lambda r: r["duplicates"]),
    ("split by a false close", lambda r: r["split"]),
    ("premature closes", lambda r: r["premature_closes"]),
    ("phantom states delivered", lambda r: r["phantom_states"]),
    ("positions diverged at the end", lambda r: r["diverged"]),
    ("longest stale price (s)", lambda r: r["stale_price_max_s"]),
    ("stale price p99 (s)", lambda r: r["stale_price_p99_s"]),
    ("longest gap between marks (s)", lambda r: r["mark_gap_max_s"]),
    ("delivering feed healthy", lambda r: f"{100 * (r['delivering_healthy_fraction'] or 0):.2f} %"),
    ("failovers / failbacks", lambda r: f"{r['failovers']} / {r['failbacks']}"),
    ("hybrid reconnects / resyncs", lambda r: "{} / {}".format(
        r["feeds"][PRIMARY]["counters"].get("reconnects", 0),
        r["feeds"][PRIMARY]["counters"].get("resyncs", 0))),
    ("hybrid gap states replayed", lambda r: r["feeds"][PRIMARY]["counters"].get(
        "gap_replayed", 0)),
    ("hybrid audit mismatches", lambda r: r["feeds"][PRIMARY]["counters"].get(
        "audit_mismatches", 0)),
    ("malformed frames counted", lambda r: r["feeds"][PRIMARY]["counters"].get("malformed", 0)),
    ("crashes / task exceptions", lambda r: f"{r['crashes']} / {r['task_exceptions']}"),
    ("failures explained by findings", lambda r: ", ".join(
        f"{k} {v}" for k, v in r["known_findings"].items()) or "-"),
    ("UNEXPLAINED failures", lambda r: r["unexplained"]),
    ("error log lines", lambda r: r["error_logs"]),
    ("seconds (inject + settle)", lambda r: f"{r['seconds']['injection']} + "
     f"{r['seconds']['settle']}"),
    ("verdict", lambda r: "PASS" if r["ok"] else "FAIL: " + "; ".join(r["failures"])),
]


def table(results: dict[str, dict[str, Any]]) -> str:
    modes = list(results)
    rows = [("", *modes)]
    for label, fn in ROWS:
        cells = []
        for m in modes:
            try:
                cells.append(str(fn(results[m])))
            except Exception as exc:  # a report must not hide the results
                cells.append(f"? {exc}")
        rows.append((label, *cells))
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    widths = [min(w, 60) for w in widths]
    lines = []
    for i, r in enumerate(rows):
        lines.append("| " + " | ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)) + " |")
        if i == 0:
            lines.append("|" + "|".join("-" * (w + 2) for w in widths) + "|")
    return "\n".join(lines)


async def campaign(cfg: CampaignConfig, echo: Any = None) -> dict[str, Any]:
    results: dict[str, Any] = {}
    for mode in cfg.modes:
        results[mode] = await run_mode(cfg, mode, echo=echo)
    ok = all(r["ok"] for r in results.values())
    return {"config": {k: v for k, v in asdict(cfg).items()}, "ok": ok,
            "python": platform.python_version(), "results": results}


def _setup_logging(path: str | None) -> None:
    flog = logging.getLogger("feedctl")
    flog.setLevel(logging.INFO)
    flog.propagate = False
    if path:
        Path(path).parent.mkdir(parents=True, exist_ok=True)
        handler = logging.FileHandler(path, mode="w")
        handler.setLevel(logging.WARNING)
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
    ap.add_argument("--out", default=str(RESULTS / "chaos.json"))
    ap.add_argument("--dump", help="directory for every raw record of each mode")
    ap.add_argument("--reanalyse", nargs="+", metavar="DUMP",
                    help="recompute the results from --dump files instead of running")
    ap.add_argument("--log", default=str(RESULTS / "chaos.log"),
                    help="WARNING+ log lines of the system under test")
    args = ap.parse_args(argv)
    if args.reanalyse:
        report = reanalyse(args.reanalyse)
        Path(args.out).parent.mkdir(parents=True, exist_ok=True)
        Path(args.out).write_text(json.dumps(report, indent=2, default=str))
        print(table(report["results"]))
        return 0 if report["ok"] else 1
    kw: dict[str, Any] = {}
    for name in ("seed", "faults", "fault_interval", "max_seconds", "symbols"):
        if getattr(args, name) is not None:
            kw[name] = getattr(args, name)
    if args.modes:
        kw["modes"] = tuple(m.strip() for m in args.modes.split(",") if m.strip())
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    kw["log_path"] = args.log
    kw["dump_dir"] = args.dump
    cfg = CampaignConfig.short(**kw) if args.short else CampaignConfig(**kw)
    _setup_logging(cfg.log_path)
    print(f"chaos campaign: seed {cfg.seed}, modes {','.join(cfg.modes)}, {cfg.faults} "
          f"faults per mode every ~{cfg.fault_interval}s, {cfg.symbols} symbols", flush=True)
    report = asyncio.run(campaign(cfg, echo=lambda *a: print(*a, flush=True)))
    Path(args.out).write_text(json.dumps(report, indent=2, default=str))
    print(table(report["results"]))
    print(f"written: {args.out}")
    return 0 if report["ok"] else 1


if __name__ == "__main__":
    sys.exit(main())
