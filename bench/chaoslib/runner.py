"""Running the campaign: one mode against the simulator and a real session, then
the analysis of its records (:mod:`.analysis`); and the whole campaign."""

from __future__ import annotations

import asyncio
import json
import logging
import math
import platform
import random
import tempfile
import time
from dataclasses import asdict
from decimal import Decimal
from pathlib import Path
from typing import Any

from feedctl import FeedState, Position, PositionBook, PositionEvent, Session
from feedctl.simulator import SimConfig, SimControl, SimControlError, Simulator
from feedctl.simulator import generated_symbols as _symbols

from .analysis import analyse, compare_positions, verdict
from .config import PRIMARY, STANDBY, CampaignConfig
from .flavour import Flavour
from .injector import Injector
from .recorder import Recorder, _ErrorLog
from .trader import Trader


def _settings_overrides(cfg: CampaignConfig, sim: Simulator, mode: str) -> dict[str, Any]:
    urls = sim.urls
    return {
        "mode": mode,
        "account": {"exchange": "bybit", "api_key": sim.api_key, "api_secret": sim.api_secret,
                    "name": "chaos"},
        "endpoints": {"rest": urls["rest"], "public_ws": urls["public_ws"],
                      "public_ws_inverse": urls["public_ws_inverse"],
                      "private_ws": urls["private_ws"]},
        "feeds": {
            PRIMARY: {"kind": PRIMARY, "max_auth_failures": cfg.max_auth_failures,
                      "categories": ["linear", "inverse"] if cfg.inverse_symbols
                      else ["linear"], **cfg.hybrid},
            STANDBY: {"kind": STANDBY, "interval": cfg.rest_interval,
                      "settle_coins": ["USDT", *sorted(
                          {sim.account.instrument(s).settle_coin
                           for s in cfg.inverse_symbols})]},
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


def _book_view(book: PositionBook) -> dict[tuple[str, int], Position]:
    return {(k.symbol, k.position_idx): p for k, p in book.positions.items()}


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
    loop.set_exception_handler(lambda _l, c: loop_errors.append(_loop_error(c)))
    symbols = _symbols(cfg.symbols)
    sim_cfg = SimConfig(symbols=symbols, inverse_symbols=list(cfg.inverse_symbols),
                        seed=cfg.seed, volatility_bps=Decimal(cfg.volatility_bps),
                        tick_interval=0.1)
    started = time.monotonic()
    try:
        with tempfile.TemporaryDirectory(prefix="feedctl-chaos-") as tmp:
            settings = Path(tmp) / "settings.toml"
            settings.write_text("[chaos]\n")
            async with Simulator(sim_cfg) as sim, SimControl(sim.urls["control"]) as ctl:
                for name in symbols[:cfg.hedge_symbols]:  # before any position exists
                    await ctl.position_mode(name, 3)
                session = Session("chaos", settings_path=settings,
                                  overrides=_settings_overrides(cfg, sim, mode))
                async with session:
                    return await _campaign(cfg, mode, rng, sim, ctl, session, errors,
                                           loop_errors, say, started)
    finally:
        flog.removeHandler(errors)
        loop.set_exception_handler(previous_handler)


def _loop_error(context: dict[str, Any]) -> str:
    """What the event loop reported, with the exception and the future or task it came
    from (a bare "Future exception was never retrieved" names no culprit)."""
    parts = [str(context.get("message"))]
    exc = context.get("exception")
    if exc is not None:
        parts.append(repr(exc))
    for what in ("future", "task"):
        if context.get(what) is not None:
            parts.append(repr(context[what]))
    return ": ".join(parts)[:600]


def _bybit() -> Flavour:
    return Flavour(primary=PRIMARY, recorder=lambda _sim: Recorder(), trader=Trader,
                   injector=Injector, exchange_view=_exchange_view,
                   detect_slack_s=lambda cfg: _detect_slack(cfg.hybrid))


async def _campaign(cfg: CampaignConfig, mode: str, rng: random.Random, sim: Simulator,
                    ctl: SimControl, session: Session, errors: _ErrorLog,
                    loop_errors: list[str], say: Any, started: float,
                    flavour: Flavour | None = None) -> dict[str, Any]:
    fl = flavour or _bybit()
    # the personality's primary and view, under the names the code below always used
    PRIMARY = fl.primary
    _exchange_view = fl.exchange_view
    rec = fl.recorder(sim)
    rec.trace = bool(cfg.dump_dir)
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
        priced = rt.book.emit_price  # the book's hot path for price events
        if priced is not None and rec.trace:
            def price_tap(ev: PositionEvent, key: Any, _orig: Any = priced,
                          _name: str = name) -> None:
                rec.tap(_name, ev, router.active)
                _orig(ev, key)

            rt.book.emit_price = price_tap
        free = rt.book.on_free_mark
        if free is not None and rec.trace:
            def free_tap(mark: Any, _orig: Any = free, _name: str = name) -> None:
                rec.free_mark(_name, mark)
                _orig(mark)

            rt.book.on_free_mark = free_tap
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

    trader = fl.trader(sim, ctl, random.Random(rng.random()),
                       Decimal(cfg.unit_notional))
    injector = fl.injector(ctl, session, random.Random(rng.random()), cfg.max_auth_failures)
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
            # the primary delivers again, its own book agrees with the exchange (what it
            # recovers after the faults - a late replay, an audit's repair - is in), and
            # so do consumers
            hybrid_ok = primary.ctx.state is FeedState.HEALTHY and router.active == PRIMARY
            exchange = _exchange_view(sim)
            return (hybrid_ok and not compare_positions(exchange, rec.view)
                    and not compare_positions(exchange, _book_view(primary.book))
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
            "diverged_from_exchange": len(compare_positions(final_exchange,
                                                            _book_view(rt.book))),
        }
    stream.close()
    await asyncio.gather(tasks[0], return_exceptions=True)
    validation = session.validator.summary() if session.validator is not None else None
    result = analyse(
        transitions=transitions, consumer=rec.consumer, primary_taps=rec.taps.get(PRIMARY, []),
        primary=PRIMARY, faults=injector.log, statuses=rec.statuses,
        detect_slack_s=fl.detect_slack_s(cfg),
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
        # the shapes beside one-way linear: lifecycles the exchange opened on a hedge
        # side (idx 1/2) and on an inverse contract
        "hedge_lifecycles": sum(1 for t in transitions if t["kind"] == "opened"
                                and t.get("positionIdx", 0) != 0),
        "inverse_lifecycles": sum(1 for t in transitions if t["kind"] == "opened"
                                  and t["symbol"] in cfg.inverse_symbols),
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
                "hybrid": cfg.hybrid, "primary": PRIMARY, "result": out,
                "marks": rec.marks, "stale_episodes": rec.episodes, "t0_ns": rec.t0}
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
        primary = d.get("primary", PRIMARY)
        out.update(analyse(
            transitions=d["transitions"], consumer=d["consumer"],
            primary_taps=d["taps"].get(primary, []), primary=primary, faults=d["faults"],
            statuses=d["statuses"], detect_slack_s=_detect_slack(d.get("hybrid") or
                                                                 CampaignConfig().hybrid),
            reported=out.get("feeds", {}).get(primary, {}).get("unrecoverable")))
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


async def campaign(cfg: CampaignConfig, echo: Any = None) -> dict[str, Any]:
    results: dict[str, Any] = {}
    run = run_mode
    if cfg.exchange == "binanceusdm":
        from .binance import run_mode as run
    elif cfg.exchange != "bybit":
        raise ValueError(f"exchange {cfg.exchange!r}: the campaign runs bybit or binanceusdm")
    for mode in cfg.modes:
        results[mode] = await run(cfg, mode, echo=echo)
    ok = all(r["ok"] for r in results.values())
    return {"config": {k: v for k, v in asdict(cfg).items()}, "ok": ok,
            "python": platform.python_version(), "results": results}
