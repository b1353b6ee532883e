"""The bus campaign (``python bench/chaos.py --bus``): the exchange faults of the
campaign plus worker and redis-server faults, against ``feedctl worker`` processes that
share a profile's accounts through Redis, checked from a remote consumer.

It runs, on loopback: the simulator with ``accounts`` accounts (in this process, so
that every account can trade and its transition log can be read), a real redis-server
(append-only file fsynced on every write), ``workers`` processes of ``feedctl worker``
serving one profile of those accounts (hybrid primary, REST polling standby), and one
:class:`feedctl.RemoteSession` reading every account. Every account trades
(:class:`~.trader.Trader` on its own engine); the exchange faults
(:class:`~.bus_faults.ExchangeInjector`) hit every account's sockets; the process
faults (:class:`~.bus_faults.ProcessFaults`: SIGKILL a worker, SIGSTOP one past its
lease then SIGCONT, SIGKILL redis-server and restart it) come one at a time at random
moments among them.

Then, per account, the exchange's transition log is matched with what the remote
consumer received, with the exchange campaign's analysis (:func:`.analysis.analyse`):
no lifecycle lost, duplicated, split, closed early or invented, by lifecycle and by
event id, and the consumer holds what the exchange holds at the end. A lifecycle
boundary that fell while no worker could publish its account (between a process fault
and the account's next holder's resync) is recovered by the next holder (the snapshot
as prior state, and the fills since: docs/redis.md). A loss inside such a span is still
named ``B1`` and counted apart, so that a regression shows as one; the suite's test
holds it to zero; any other failure counts against the verdict.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import random
import shutil
import tempfile
import time
from dataclasses import asdict, dataclass
from decimal import Decimal
from pathlib import Path
from typing import Any

from feedctl import EventKind, PositionEvent, RemoteSession, StatusEvent
from feedctl.simulator import SimConfig, SimControl
from feedctl.simulator import generated_symbols as _symbols
from feedctl.simulator.accounts import MultiAccountSimulator

from .analysis import analyse, compare_positions, verdict
from .bus_faults import (
    EngineControl,
    EngineView,
    ExchangeInjector,
    ProcessFaults,
    Window,
)
from .bus_procs import RedisProc, WorkerProc
from .config import PRIMARY, STANDBY, CampaignConfig
from .recorder import _lifecycle_record, _wall_ns
from .runner import _detect_slack, _seconds
from .trader import Trader

#: A lifecycle boundary while no worker could publish the account (module doc).
B_UNSERVED = "B1 boundary while no worker could publish the account"
PROFILE = "bus"


@dataclass
class BusConfig:
    """What the bus campaign adds to :class:`~.config.CampaignConfig`."""

    accounts: int = 6
    workers: int = 3
    #: process faults, one at a time (each with its recovery), over the injection phase
    process_faults: int = 30
    #: mean seconds between the end of a process fault's recovery and the next one
    process_gap: float = 6.0
    lease_ttl: float = 2.0
    #: mean seconds between two trading actions of one account
    activity_interval: float = 0.8

    @classmethod
    def short(cls) -> BusConfig:
        return cls(accounts=4, workers=3, process_faults=5, process_gap=3.0)


def bus_campaign_config(short: bool, **kw: Any) -> CampaignConfig:
    """The exchange campaign's settings for a bus campaign: fewer symbols (every account
    trades them) and, short, a phase that fits the test suite (< 90 s on 2 cores)."""
    base: dict[str, Any] = {"symbols": 6, "hedge_symbols": 0, "inverse_symbols": ()}
    if short:
        base.update(faults=60, fault_interval=0.4, max_seconds=30.0, settle_seconds=20.0)
    else:
        base.update(faults=2000, fault_interval=0.35, max_seconds=900.0)
    base.update(kw)
    return CampaignConfig(**base)


def settings_text(cfg: CampaignConfig, bus: BusConfig, sim: MultiAccountSimulator,
                  accounts: list[str]) -> str:
    urls = sim.urls
    hybrid = "\n".join(f'{k} = "{v}"' for k, v in cfg.hybrid.items())
    lines = [f"""[{PROFILE}]
mode = "production"
[{PROFILE}.account]
exchange = "bybit"
[{PROFILE}.endpoints]
rest = "{urls['rest']}"
public_ws = "{urls['public_ws']}"
public_ws_inverse = "{urls['public_ws_inverse']}"
private_ws = "{urls['private_ws']}"
[{PROFILE}.feeds.{PRIMARY}]
kind = "{PRIMARY}"
role = "primary"
max_auth_failures = {cfg.max_auth_failures}
{hybrid}
[{PROFILE}.feeds.{STANDBY}]
kind = "{STANDBY}"
interval = "{cfg.rest_interval}"
[{PROFILE}.router]
failover_after = "{cfg.failover_after}"
failback_after = "{cfg.failback_after}"
[{PROFILE}.trailing_stop]
enabled = false
[{PROFILE}.logging]
level = "WARNING"
[{PROFILE}.redis_bus]
lease_ttl = "{bus.lease_ttl}s"
timeout = "0.5s"
"""]
    for a in accounts:
        lines.append(f"[{PROFILE}.accounts.{a}]\n")
    return "".join(lines)


class RemoteRecorder:
    """What the remote consumer received, per account: lifecycle records (as the
    exchange campaign's consumer records them), event ids, the positions it holds."""

    def __init__(self, accounts: list[str]) -> None:
        self.consumer: dict[str, list[dict[str, Any]]] = {a: [] for a in accounts}
        self.ids: dict[str, list[str]] = {a: [] for a in accounts}
        self.view: dict[str, dict[tuple[str, int], Any]] = {a: {} for a in accounts}
        self.gaps: list[dict[str, Any]] = []
        #: when the consumer received each resync of an account (its ``current`` statuses)
        self.resyncs: dict[str, list[int]] = {a: [] for a in accounts}
        self.prices = 0
        #: lifecycle events flagged ``recovered`` (what a next holder recovered)
        self.recovered = 0

    def on_event(self, ev: Any, meta: Any) -> None:
        t = _wall_ns()
        if getattr(ev, "type", "") == "gap":
            self.gaps.append({"t": t, "account": ev.account, "expected": ev.expected,
                              "got": ev.got})
            return
        if isinstance(ev, StatusEvent) and ev.reason == "current" and meta is not None:
            seen = self.resyncs[meta.account]
            if not seen or t - seen[-1] > 200_000_000:  # one per resync (a status per feed)
                seen.append(t)
            return
        if not isinstance(ev, PositionEvent) or meta is None:
            return
        account = meta.account
        if ev.kind is EventKind.PRICE:
            self.prices += 1
            return
        rec = _lifecycle_record(ev, t)
        rec["event_id"] = meta.event_id
        self.recovered += ev.recovered
        self.consumer[account].append(rec)
        if meta.event_id:
            self.ids[account].append(meta.event_id)
        if ev.past:
            return
        key = (ev.position.symbol, ev.position.position_idx)
        if ev.kind is EventKind.CLOSED:
            self.view[account].pop(key, None)
        else:
            self.view[account][key] = ev.position


def _view(engine: Any) -> dict[tuple[str, int], dict[str, Any]]:
    return {(p.symbol, p.idx): p.summary() for p in engine.open_positions()}


def _transitions(engine: Any) -> list[dict[str, Any]]:
    out: list[dict[str, Any]] = []
    after = 0
    for _ in range(10_000):
        page = engine.transitions_after(after, None, 1000)
        if not page:
            break
        out.extend(page)
        after = page[-1]["id"]
    return out


_DETAILS = ("lost_detail", "duplicate_detail", "split_detail", "premature_detail",
            "unmatched_detail", "phantom_detail", "unexplained_detail", "exchange_anomalies")
_COUNTS = ("exchange_lifecycles", "exchange_lifecycles_completed", "consumer_synthetic",
           "lost", "duplicates", "split", "premature_closes",
           "unmatched_consumer_lifecycles", "phantom_states", "unexplained")
_TALLIES = ("exchange_transitions", "consumer_events", "lifecycles", "known_findings",
            "signatures")


def analyse_account(transitions: list[dict[str, Any]], consumer: list[dict[str, Any]],
                    faults: list[dict[str, Any]], detect_slack_s: float) -> dict[str, Any]:
    """:func:`.analysis.analyse` of one account, symbol by symbol (a symbol's lifecycles
    are matched on their own anyway), merged: every failure's detail is kept (the
    analysis keeps the first 20 of each kind, which B1's attribution must all see);
    ``truncated`` if a symbol still had more."""
    out: dict[str, Any] = {k: 0 for k in _COUNTS}
    out.update({k: [] for k in _DETAILS})
    out.update({k: {} for k in _TALLIES})
    out["truncated"] = False
    symbols = sorted({t["symbol"] for t in transitions} | {c["symbol"] for c in consumer})
    for sym in symbols:
        r = analyse(transitions=[t for t in transitions if t["symbol"] == sym],
                    consumer=[c for c in consumer if c["symbol"] == sym], primary_taps=[],
                    primary=PRIMARY, faults=faults, statuses=[],
                    detect_slack_s=detect_slack_s)
        for k in _COUNTS:
            out[k] += r[k]
        for k in _DETAILS:
            out[k].extend(r[k])
        for k in _TALLIES:
            for name, n in r[k].items():
                out[k][name] = out[k].get(name, 0) + n
        if any(r[c] > len(r[d]) for c, d in (
                ("lost", "lost_detail"), ("split", "split_detail"),
                ("unexplained", "unexplained_detail"), ("phantom_states", "phantom_detail"),
                ("duplicates", "duplicate_detail"), ("premature_closes", "premature_detail"),
                ("unmatched_consumer_lifecycles", "unmatched_detail"))):
            out["truncated"] = True
    return out


def repair_horizon(cfg: CampaignConfig) -> float:
    """How long the hybrid may take to deliver, by itself, what an exchange fault made
    it miss: notice it (the detect slack) and repair it at the latest at its next
    audit."""
    return _seconds(cfg.hybrid.get("audit_interval", 0)) + _detect_slack(cfg.hybrid)


def unserved_spans(windows: list[Window], resyncs: dict[str, list[int]], lead_s: float,
                   fallback_s: float = 5.0) -> dict[str, list[dict[str, Any]]]:
    """Per account, the spans (wall ms) in which no worker could publish it: from a
    process fault's start, less ``lead_s`` (what the session it stopped had not
    published yet: what it had received but not written, and what its feed had not
    delivered yet under the exchange faults - a loss the hybrid repairs by itself, at
    the latest by its next audit once it noticed: ``lead_s`` is the audit interval
    plus the exchange campaign's detect slack), to the first resync of the account the
    consumer received after it (the next holder's ``current`` statuses: from then on it
    publishes live). A redis-server
    kill makes a span only for the accounts that were resynced after it (the others
    kept their lease through the outage: their events waited in the outbox). A worker
    fault after which no resync arrived ends ``fallback_s`` after the takeover was seen
    (``resync_seen`` false)."""
    out: dict[str, list[dict[str, Any]]] = {}
    for w in windows:
        for a in w.accounts:
            after = [t for t in resyncs.get(a, []) if t >= w.start_ns]
            if w.fault == "redis_kill":
                after = [t for t in after if t <= w.end_ns + 10_000_000_000]
                if not after:
                    continue
            end, seen = (after[0], True) if after else (
                w.end_ns + int(fallback_s * 1e9), False)
            out.setdefault(a, []).append({
                "fault": w.fault, "from_ms": (w.start_ns - int(lead_s * 1e9)) // 1_000_000,
                "to_ms": end // 1_000_000, "resync_seen": seen,
                "seconds": round((end - w.start_ns) / 1e9, 2)})
    return out


def attribute_unserved(result: dict[str, Any], spans: list[dict[str, Any]]) -> int:
    """Re-attribute the lost lifecycles whose missing boundaries all fell inside one of
    ``spans`` (no worker could publish the account) to :data:`B_UNSERVED`; returns how
    many. Only losses are: a duplicate, a split, an early close or an invented state is
    never explained by a worker or Redis being down."""
    moved = 0
    for it in result["lost_detail"]:
        times = []
        if "open" in it["missing"]:
            times.append(it["open_ms"])
        if "close" in it["missing"] and it["close_ms"] is not None:
            times.append(it["close_ms"])
        if not times or not all(any(s["from_ms"] <= t <= s["to_ms"] for s in spans)
                                for t in times):
            continue
        if it.get("explained_by") is None:
            result["unexplained"] -= 1
            result["unexplained_detail"] = [
                u for u in result["unexplained_detail"]
                if not (u.get("failure") == "lost" and u.get("open_seq") == it["open_seq"]
                        and u.get("symbol") == it["symbol"])]
        else:
            result["known_findings"][it["explained_by"]] -= 1
            if not result["known_findings"][it["explained_by"]]:
                del result["known_findings"][it["explained_by"]]
        it["explained_by"] = B_UNSERVED
        result["known_findings"][B_UNSERVED] = result["known_findings"].get(B_UNSERVED, 0) + 1
        moved += 1
    return moved


def attribute_mislabelled(result: dict[str, Any]) -> int:
    """A lifecycle "missed" only because the consumer's copy of it opened with a wrong
    seq (a phantom state: the state is the exchange's next one, the seq the one before;
    the copy then matches no exchange lifecycle) is the phantom's failure, already
    counted and attributed: give the loss the phantom's explanation. Returns how many."""
    moved = 0
    phantoms = {(p["symbol"], p["seq"]): p.get("explained_by")
                for p in result["phantom_detail"]}
    for it in result["lost_detail"]:
        if it.get("explained_by") is not None or it["kind"] != "missed":
            continue
        for u in result["unmatched_detail"]:
            why = phantoms.get((u["symbol"], u["open_seq"]))
            if u["symbol"] != it["symbol"] or why is None:
                continue
            if u["close_seq"] is not None and u["close_seq"] == it["close_seq"] and \
                    abs(u["open_t"] // 1_000_000 - it["open_ms"]) < 1_000:
                it["explained_by"] = why
                result["unexplained"] -= 1
                result["unexplained_detail"] = [
                    x for x in result["unexplained_detail"]
                    if not (x.get("failure") == "lost" and x.get("symbol") == it["symbol"]
                            and x.get("open_seq") == it["open_seq"])]
                result["known_findings"][why] = result["known_findings"].get(why, 0) + 1
                moved += 1
                break
    return moved


async def run_bus(cfg: CampaignConfig, bus: BusConfig, *, echo: Any = None) -> dict[str, Any]:
    """The bus campaign; returns its result (one per account, and the totals)."""
    say = echo or (lambda *_: None)
    rng = random.Random(f"{cfg.seed}:bus")
    symbols = _symbols(cfg.symbols)
    sim_cfg = SimConfig(symbols=symbols, inverse_symbols=[], seed=cfg.seed,
                        volatility_bps=Decimal(cfg.volatility_bps), tick_interval=0.1)
    names = [f"a{n}" for n in range(bus.accounts)]
    started = time.monotonic()
    with tempfile.TemporaryDirectory(prefix="feedctl-chaos-bus-") as tmp:
        folder = Path(tmp)
        redis = RedisProc(folder)
        await redis.start()
        workers: list[WorkerProc] = []
        try:
            # the per-IP limits scaled out of the way: the campaign drops sockets every
            # second or so, far past Bybit's 500 connections per 5 minutes, and its
            # workers are several processes on one IP, each with its own budget (the
            # budget has tests of its own); refused handshakes would stall every feed
            async with MultiAccountSimulator(sim_cfg, accounts=bus.accounts,
                                             ws_per_window=1_000_000,
                                             rest_per_window=1_000_000) as sim, \
                    SimControl(sim.urls["control"]) as ctl:
                settings = folder / "settings.toml"
                settings.write_text(settings_text(cfg, bus, sim, names))
                env: dict[str, str] = {}
                for name, acct in zip(names, sim.sim_accounts, strict=True):
                    env[f"FEEDCTL_{PROFILE.upper()}__ACCOUNTS__{name.upper()}__API_KEY"] = \
                        acct.api_key
                    env[f"FEEDCTL_{PROFILE.upper()}__ACCOUNTS__{name.upper()}__API_SECRET"] = \
                        acct.api_secret

                async def spawn() -> WorkerProc:
                    w = WorkerProc(f"w{len(workers)}", settings, PROFILE, redis.url, env,
                                   folder)
                    workers.append(w)
                    await w.start()
                    return w

                for _ in range(bus.workers):
                    await spawn()
                return await _campaign(cfg, bus, rng, sim, ctl, redis, workers, spawn,
                                       names, say, started, folder)
        finally:
            for w in workers:
                await w.stop()
            await redis.stop()
            if cfg.dump_dir:  # the workers' logs beside the raw records
                _keep_logs(workers, Path(cfg.dump_dir), cfg.seed)


def _keep_logs(workers: list[WorkerProc], folder: Path, seed: int) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    for w in workers:
        if w.log.exists():
            shutil.copy(w.log, folder / f"chaos-bus-{seed}-{w.name}.log")


async def _campaign(cfg: CampaignConfig, bus: BusConfig, rng: random.Random,
                    sim: MultiAccountSimulator, ctl: SimControl, redis: RedisProc,
                    workers: list[WorkerProc], spawn: Any, names: list[str], say: Any,
                    started: float, folder: Path) -> dict[str, Any]:
    import redis.asyncio as aioredis

    admin = aioredis.from_url(redis.url, decode_responses=True, socket_timeout=1.0)

    async def owners() -> dict[str, str | None]:
        for _ in range(100):
            try:
                out: dict[str, str | None] = {}
                for a in names:
                    v = await admin.get(f"feedctl:lease:{a}")
                    out[a] = v.rpartition(":")[0] if v else None
                return out
            except (OSError, TimeoutError, aioredis.RedisError):
                await asyncio.sleep(0.1)  # Redis restarting
        return dict.fromkeys(names)

    async def published() -> bool:
        o = await owners()
        if None in o.values():
            return False
        return all([await admin.hget(f"feedctl:snap:{a}", "_last") for a in names])

    rec = RemoteRecorder(names)
    rs = RemoteSession(redis.url, accounts=names, block=0.5)
    await rs.start()
    stream = rs.events()

    async def pump() -> None:
        async for ev in stream:
            rec.on_event(ev, stream.meta)

    pumper = asyncio.create_task(pump(), name="chaos-bus-pump")
    tasks: list[asyncio.Task[Any]] = []
    engines = [a.engine for a in sim.sim_accounts]
    try:
        t_start = time.monotonic()
        while not await published():
            if time.monotonic() - t_start > 60:
                raise RuntimeError(f"the workers did not publish every account within 60 s;"
                                   f" see {folder}")
            await asyncio.sleep(0.2)
        start_s = time.monotonic() - t_start
        say(f"[bus] {len(names)} accounts published by {len(workers)} workers "
            f"after {start_s:.1f} s")
        traders = [Trader(EngineView(e, sim.prices), EngineControl(e),  # type: ignore[arg-type]
                          random.Random(rng.random()), Decimal(cfg.unit_notional))
                   for e in engines]
        exch = ExchangeInjector(ctl, random.Random(rng.random()), sim.private,
                                tuple(sim.by_key), cfg.max_auth_failures)
        procs = ProcessFaults(redis, workers, spawn, owners, random.Random(rng.random()),
                              bus.lease_ttl)
        stop = asyncio.Event()

        async def trading(trader: Trader) -> None:
            r = random.Random(rng.random())
            while not stop.is_set():
                await trader.step()
                await asyncio.sleep(min(4.0, r.expovariate(1 / bus.activity_interval)))

        async def process_faults() -> None:
            r = random.Random(rng.random())
            while not stop.is_set() and sum(procs.injected.values()) < bus.process_faults:
                await asyncio.sleep(r.expovariate(1 / bus.process_gap))
                if stop.is_set():
                    return
                await procs.inject(procs.next_kind())

        tasks += [asyncio.create_task(trading(t), name=f"chaos-bus-trader-{i}")
                  for i, t in enumerate(traders)]
        proc_task = asyncio.create_task(process_faults(), name="chaos-bus-process-faults")
        t_inject = time.monotonic()
        r = random.Random(rng.random())
        next_report = t_inject + 10
        while (sum(exch.injected.values()) < cfg.faults or not proc_task.done()) and \
                time.monotonic() - t_inject < cfg.max_seconds:
            await asyncio.sleep(min(3.0, r.expovariate(1 / cfg.fault_interval)))
            if sum(exch.injected.values()) < cfg.faults:
                with contextlib.suppress(Exception):
                    await exch.inject()
            if proc_task.done() and proc_task.exception() is not None:
                raise proc_task.exception()  # type: ignore[misc]
            if time.monotonic() >= next_report:
                next_report += 10
                say(f"[bus] {time.monotonic() - t_inject:5.0f}s  faults "
                    f"{sum(exch.injected.values())} + {dict(procs.injected)}  trades "
                    f"{sum(sum(t.actions.values()) for t in traders)}")
        injection_s = time.monotonic() - t_inject
        stop.set()
        for t in tasks:
            t.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        await proc_task  # the fault in progress ends with its recovery
        await ctl.clear_faults()
        t_settle = time.monotonic()

        def converged() -> bool:
            return all(not compare_positions(_view(e), rec.view[a])
                       for a, e in zip(names, engines, strict=True))

        while time.monotonic() - t_settle < cfg.settle_seconds and not converged():
            await asyncio.sleep(0.2)
        await asyncio.sleep(1.0)  # anything still in flight
        settle_s = time.monotonic() - t_settle
        final_owners = await owners()
    finally:
        for t in tasks:
            t.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        pumper.cancel()
        await asyncio.gather(pumper, return_exceptions=True)
        await rs.stop()
        await admin.aclose()

    spans = unserved_spans(procs.windows, rec.resyncs, repair_horizon(cfg))
    per_account: dict[str, dict[str, Any]] = {}
    dump: dict[str, Any] = {"faults": exch.log, "process_faults": procs.log,
                            "spans": spans, "resyncs": rec.resyncs, "accounts": {}}
    for a, e in zip(names, engines, strict=True):
        transitions = _transitions(e)
        dump["accounts"][a] = {"transitions": transitions, "consumer": rec.consumer[a]}
        result = analyse_account(transitions, rec.consumer[a], exch.log,
                                 _detect_slack(cfg.hybrid))
        unserved = attribute_unserved(result, spans.get(a, []))
        attribute_mislabelled(result)
        ids = rec.ids[a]
        diverged = compare_positions(_view(e), rec.view[a])
        result.update({"account": a, "lost_unserved": unserved,
                       "duplicate_event_ids": len(ids) - len(set(ids)),
                       "diverged": len(diverged), "diverged_detail": diverged[:10]})
        per_account[a] = result
    exits = {w.name: w.proc.returncode if w.proc else None for w in workers}
    crashed = [n for w in workers if not w.killed and exits[(n := w.name)] is not None]
    out: dict[str, Any] = {
        "mode": "bus",
        "primary": PRIMARY,
        "accounts": len(names),
        "workers_started": len(workers),
        "start_seconds": round(start_s, 1),
        "seconds": {"injection": round(injection_s, 1), "settle": round(settle_s, 1),
                    "total": round(time.monotonic() - started, 1)},
        "faults": dict(sorted({**exch.injected, **procs.injected}.items())),
        "faults_total": sum(exch.injected.values()) + sum(procs.injected.values()),
        "faults_skipped": dict(exch.skipped),
        "process_faults": procs.log,
        "process_windows": [asdict(w) for w in procs.windows],
        "unserved_spans": spans,
        "unserved_seconds": sorted(s["seconds"] for v in spans.values() for s in v),
        "trades": sum(sum(t.actions.values()) for t in traders),
        "exchange_lifecycles": sum(r["exchange_lifecycles"] for r in per_account.values()),
        "exchange_lifecycles_completed": sum(r["exchange_lifecycles_completed"]
                                             for r in per_account.values()),
        "gaps": len(rec.gaps),
        "gap_detail": rec.gaps[:10],
        "remote_price_events": rec.prices,
        "remote_recovered_events": rec.recovered,
        "workers_exited_by_themselves": crashed,
        "lease_holders_at_end": final_owners,
        "redis_restarts": redis.kills,
        "worker_log_errors": {w.name: w.log_lines("ERROR", "Traceback") for w in workers},
        "per_account": per_account,
    }
    for key in ("lost", "lost_unserved", "duplicates", "duplicate_event_ids", "split",
                "premature_closes", "unmatched_consumer_lifecycles", "phantom_states",
                "diverged", "unexplained"):
        out[key] = sum(r[key] for r in per_account.values())
    out["delivered"] = sum(r["lifecycles"].get("delivered", 0) for r in per_account.values())
    out["analysis_truncated"] = any(r["truncated"] for r in per_account.values())
    out["known_findings"] = {}
    for r in per_account.values():
        for k, v in r["known_findings"].items():
            out["known_findings"][k] = out["known_findings"].get(k, 0) + v
    out["ok"], out["failures"] = bus_verdict(out)
    if cfg.dump_dir:  # every raw record, for an investigation
        path = Path(cfg.dump_dir) / f"chaos-bus-{cfg.seed}.json"
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps({**dump, "result": out}, default=str))
    return out


def bus_verdict(r: dict[str, Any]) -> tuple[bool, list[str]]:
    """The exchange campaign's verdict over every account, plus the bus's own: no
    duplicate event id, no gap, no worker that exited by itself, every account held at
    the end, and no loss but the named ones (B1, and the exchange campaign's limits)."""
    _, failures = verdict({k: r[k] for k in (
        "duplicates", "split", "diverged", "premature_closes",
        "unmatched_consumer_lifecycles", "phantom_states")})
    if r["unexplained"]:
        failures.append(f"{r['unexplained']} failures no finding explains")
    if r["analysis_truncated"]:
        failures.append("the analysis kept only part of a symbol's failures")
    if r["duplicate_event_ids"]:
        failures.append(f"{r['duplicate_event_ids']} duplicate event ids")
    if r["gaps"]:
        failures.append(f"{r['gaps']} gaps at the remote consumer")
    if r["workers_exited_by_themselves"]:
        failures.append(f"workers exited by themselves: {r['workers_exited_by_themselves']}")
    if None in r["lease_holders_at_end"].values():
        failures.append("accounts without a lease holder at the end")
    return not failures, failures


ROWS: list[tuple[str, Any]] = [
    ("accounts / workers started", lambda r: f"{r['accounts']} / {r['workers_started']}"),
    ("faults injected", lambda r: r["faults_total"]),
    ("  by kind", lambda r: ", ".join(f"{k} {v}" for k, v in r["faults"].items())),
    ("trading actions", lambda r: r["trades"]),
    ("exchange lifecycles (completed)", lambda r: f"{r['exchange_lifecycles']} "
     f"({r['exchange_lifecycles_completed']})"),
    ("  delivered as opened+closed", lambda r: r["delivered"]),
    ("  events flagged recovered", lambda r: r.get("remote_recovered_events", "?")),
    ("  LOST (of them B1: unserved)", lambda r: f"{r['lost']} ({r['lost_unserved']})"),
    ("duplicates (lifecycle / event id)", lambda r: f"{r['duplicates']} / "
     f"{r['duplicate_event_ids']}"),
    ("split by a false close", lambda r: r["split"]),
    ("premature closes", lambda r: r["premature_closes"]),
    ("phantom states delivered", lambda r: r["phantom_states"]),
    ("positions diverged at the end", lambda r: r["diverged"]),
    ("gaps at the remote consumer", lambda r: r["gaps"]),
    ("workers exited by themselves", lambda r: len(r["workers_exited_by_themselves"])),
    ("failures explained by findings", lambda r: ", ".join(
        f"{k} {v}" for k, v in r["known_findings"].items()) or "-"),
    ("UNEXPLAINED failures", lambda r: r["unexplained"]),
    ("seconds (start / inject / settle)", lambda r: f"{r['start_seconds']} / "
     f"{r['seconds']['injection']} / {r['seconds']['settle']}"),
    ("verdict", lambda r: "PASS" if r["ok"] else "FAIL: " + "; ".join(r["failures"])),
]


def bus_table(r: dict[str, Any]) -> str:
    rows = []
    for label, fn in ROWS:
        try:
            rows.append((label, str(fn(r))))
        except Exception as exc:  # a report must not hide the results
            rows.append((label, f"? {exc}"))
    width = max(len(k) for k, _ in rows)
    return "\n".join(f"| {k.ljust(width)} | {v} |" for k, v in rows)
