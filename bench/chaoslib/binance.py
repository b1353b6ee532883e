"""The campaign against the Binance USDⓈ-M personality (``--exchange binanceusdm``):
the binance_usdm feed is the primary, rest_polling on ccxt's binanceusdm the standby
(production) or the validated shadow (parallel), with the same verdicts as the Bybit
campaign (docs/reliability.md).

What differs from the Bybit campaign, and only that, lives here:

* the simulator speaks Binance (``SimConfig.exchange="binanceusdm"``) with lifetimes in
  seconds (listenKey validity, the 24-hour cut, the mark streams' periods);
* the session's roles are explicit (binance_usdm primary, rest_polling standby or
  shadow) and its endpoints are the personality's rest / market_ws / private_ws;
* the trader churns the USDⓈ-M symbols only (the engine's other instruments are not
  Binance's); with ``--hedge`` the account is in hedge mode (dualSidePosition, every
  symbol) and the trader trades each side on its own, as it does Bybit's hedge symbols
  (``hedge_symbols`` and ``inverse_symbols`` are the Bybit campaign's: Binance's
  position mode is account-wide, and inverse contracts are COIN-M's, not USDⓈ-M's);
* the faults are the ones a Binance client meets: socket drops, stalls, delays and
  malformed frames on the market and user streams, duplicated position pushes
  (ACCOUNT_UPDATE; not reordered ones, see ``FAULT_WEIGHTS``), listenKey expiry and
  rejected keepalives (-1125), REST 429s
  and 5xx pages on the ``/fapi`` paths; no WebSocket auth rejection (Binance has none:
  the listenKey is the credential, and its faults are the expiries);
* Binance's position pushes carry no sequence number: the feed stamps a position with
  ``T``, the transaction time, as ``exchange_ms``. The recorder therefore gives each
  lifecycle event the seq of the exchange transition it reports (``assign_seqs``: its
  position's state at its ``exchange_ms``, or its arrival, when it shows that state; a
  few ms of slack for a fill stamped before its transition; else the latest earlier
  state it shows; for a synthetic close, whose time is only a lower bound when the feed
  that closed it knows none, the first close after it and before its arrival), so that
  the analysis maps lifecycles as it does for Bybit. An event
  whose state the exchange never had gets the seq of the state at its time, and the
  phantom check sees the mismatch;
* what "diverged" compares: a Binance position carries no TP/SL (those are separate
  conditional orders on Binance), so the exchange's view has none; entry prices are
  the exchange's as it reports them (8 decimals), compared to 8 significant digits on
  both sides (ccxt's REST rows carry a float's worth).
"""

from __future__ import annotations

import asyncio
import bisect
import logging
import random
import tempfile
import time
from decimal import Decimal
from pathlib import Path
from typing import Any

from feedctl import EventKind, PositionEvent, Session
from feedctl.simulator import SimConfig, SimControl, Simulator
from feedctl.simulator import generated_symbols as _symbols
from feedctl.simulator.binance.rest_account import set_dual
from feedctl.simulator.binance.wire import entry_price

from .config import STANDBY, CampaignConfig
from .flavour import Flavour
from .injector import Injector
from .recorder import Recorder, _ErrorLog, _wall_ns
from .trader import Trader

PRIMARY = "binance_usdm"
#: Relative frequency of each fault kind against the Binance personality. No
#: ``reorder``: Binance guarantees that on one connection the messages of one event type
#: (ACCOUNT_UPDATE, ORDER_TRADE_UPDATE) are strictly ordered by ``T`` and ``E`` (USDⓈ-M
#: user data streams, "Message Ordering Guarantee"), so position pushes reordered on
#: one socket are a fault Binance documents it does not have; the personality keeps the
#: fault, and tests/binance_usdm the feed's defence against it (late lifecycles).
FAULT_WEIGHTS: dict[str, int] = {
    "drop": 10, "stall": 8, "delay": 8, "duplicate": 12, "malformed": 12,
    "listen_key_expiry": 4, "keepalive_reject": 3, "rest_rate_limit": 8, "rest_5xx": 8,
}
#: REST faults hit these path prefixes ("" any): the feed's and the standby's calls.
REST_PATHS = ("", "/fapi/v3/positionRisk", "/fapi/v2/positionRisk", "/fapi/v1/premiumIndex",
              "/fapi/v1/listenKey", "/fapi/v1/time", "/fapi/v1/symbolConfig")
#: The personality's lifetimes, in seconds so that a campaign meets each several times.
SIM_BINANCE: dict[str, Any] = {"mark_interval": 0.75, "mark_fast_interval": 0.25,
                               "listen_key_validity": 30.0, "connection_lifetime": 25.0}
ROLES = {"production": "standby", "parallel": "shadow"}
#: The standby's poll interval. One poll of ccxt's binanceusdm costs the positionRisk
#: and premiumIndex weights of the IP's 2,400 a minute that the primary, on the same IP,
#: shares: every 0.5 s (the Bybit campaign's) the poller alone took ~1,800 and the
#: primary's resyncs waited for the next minute (docs/simulator.md, fault campaign).
STANDBY_INTERVAL = "1s"
#: how much later than an event's time the transition it reports may be stamped
SLACK_MS = 3
SIDES = {"Buy": "long", "Sell": "short"}


def _seconds(value: Any) -> float:
    text = str(value).strip()
    for unit, factor in (("ms", 0.001), ("s", 1.0), ("m", 60.0)):
        if text.endswith(unit):
            return float(text[: -len(unit)]) * factor
    return float(text)


# ---------------------------------------------------------------------- recording
class BinanceRecorder(Recorder):
    """The recorder, with each lifecycle record's ``exchange_ms`` kept and, at the end,
    the seq of the exchange transition it reports (see the module's docstring)."""

    def __init__(self, sim: Simulator) -> None:
        super().__init__()
        self.sim = sim

    def on_event(self, ev: Any) -> None:
        super().on_event(ev)
        if not isinstance(ev, PositionEvent):
            return
        if ev.kind is not EventKind.PRICE:
            # the feed's own seq orders its states ((T, E, arrival)); the exchange
            # transition's seq is assigned at the end
            self.consumer[-1]["seq"] = None
            self.consumer[-1]["exchange_ms"] = ev.position.exchange_ms
        key = (ev.position.symbol, ev.position.position_idx)
        pos = self.view.get(key)
        if pos is not None and pos is ev.position:
            self.view[key] = pos.model_copy(update={"entry_price": sig8(pos.entry_price)})

    def tap(self, feed: str, ev: PositionEvent, active: str) -> None:
        super().tap(feed, ev, active)
        if ev.kind is not EventKind.PRICE:
            self.taps[feed][-1]["seq"] = None
            self.taps[feed][-1]["exchange_ms"] = ev.position.exchange_ms

    def finish(self) -> None:
        super().finish()
        assign_seqs(list(self.sim.account.transitions),
                    [self.consumer, *self.taps.values()])


def sig8(value: Decimal) -> Decimal:
    """``value`` to 8 significant digits (how closely the campaign compares entries)."""
    if not value:
        return Decimal(0)
    return value.quantize(Decimal(1).scaleb(value.adjusted() - 7))


def _shows(t: dict[str, Any], rec: dict[str, Any]) -> bool:
    """Whether transition ``t`` leaves its position in the state record ``rec`` shows."""
    if rec["kind"] == "closed":
        return bool(t["kind"] == "closed")
    return t["kind"] != "closed" and (SIDES.get(t["side"], ""), Decimal(t["size"])) == (
        rec["side"], Decimal(rec["size"]))


def assign_seqs(transitions: list[dict[str, Any]],
                streams: list[list[dict[str, Any]]]) -> int:
    """Give each lifecycle record without a seq the seq of the transition it reports;
    returns how many got one.

    The state at its time (``exchange_ms``, else its arrival) if it shows that state;
    else one shown within ``SLACK_MS`` after (a fill's time - ``T``, a trade's ``time`` -
    can be a millisecond before the transition's); else the latest earlier transition
    with its state (a stale state delivered again); else the state at its time."""
    by_key: dict[tuple[str, int], list[dict[str, Any]]] = {}
    for t in sorted(transitions, key=lambda t: t["id"]):
        by_key.setdefault((t["symbol"], int(t.get("positionIdx", 0))), []).append(t)
    times = {k: [int(t["time"]) for t in v] for k, v in by_key.items()}
    done = 0
    for records in streams:
        for rec in records:
            if rec.get("seq") is not None:
                continue
            key = (rec["symbol"], int(rec["idx"]))
            log, stamps = by_key.get(key, []), times.get(key, [])
            at = int(rec.get("exchange_ms") or rec["t"] // 1_000_000)
            n = bisect.bisect_right(stamps, at)
            soon = log[n:bisect.bisect_right(stamps, at + SLACK_MS)]
            now = log[n - 1] if n else None
            # a close's exchange_ms is a lower bound when a feed knows no time of it (a
            # poller's rows carry none: the router stamps the close with the state
            # consumers held): it reports the first close after that, before it arrived
            until = bisect.bisect_right(stamps, int(rec["t"]) // 1_000_000)
            later = (next((t for t in log[n:until] if _shows(t, rec)), None)
                     if rec["kind"] == "closed" and rec.get("synthetic") else None)
            match = (now if now is not None and _shows(now, rec) else
                     next((t for t in soon if _shows(t, rec)), None) or later
                     or next((t for t in reversed(log[:n]) if _shows(t, rec)), None) or now)
            if match is None:
                continue
            rec["seq"] = int(match["seq"])
            done += 1
    return done


# ---------------------------------------------------------------------- activity
class BinanceTrader(Trader):
    """The campaign's trader on the USDⓈ-M symbols only."""

    def __init__(self, sim: Simulator, ctl: SimControl, rng: random.Random,
                 notional: Decimal) -> None:
        super().__init__(sim, ctl, rng, notional)
        assert sim.binance is not None
        self.symbols = list(sim.binance.symbols)


class BinanceInjector(Injector):
    """Seeded random faults a Binance client meets, each bounded (``FAULT_WEIGHTS``)."""

    def __init__(self, ctl: SimControl, session: Session, rng: random.Random,
                 max_auth_failures: int) -> None:
        super().__init__(ctl, session, rng, max_auth_failures)
        self._kinds = list(FAULT_WEIGHTS)
        self._weights = [FAULT_WEIGHTS[k] for k in self._kinds]

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
        elif kind == "listen_key_expiry":
            params = {"expired": await ctl.expire_listen_keys()}
        elif kind == "keepalive_reject":
            params = {"count": rng.randint(1, 2)}
            await ctl.reject_keepalives(**params)
        elif kind in ("rest_rate_limit", "rest_5xx"):
            mode = "rate_limit" if kind == "rest_rate_limit" else rng.choice(("502", "503"))
            params = {"mode": mode, "count": rng.randint(1, 3), "path": rng.choice(REST_PATHS)}
            await ctl.rest_errors(**params)
        self.injected[kind] += 1
        self.log.append({"t": _wall_ns(), "fault": kind, **params})


def exchange_view(sim: Simulator) -> dict[tuple[str, int], dict[str, Any]]:
    symbols = set(sim.binance.symbols) if sim.binance is not None else set()
    out = {}
    for p in sim.account.open_positions():
        if p.symbol in symbols:
            row = p.summary()
            out[(p.symbol, p.idx)] = row | {
                "entryPrice": str(sig8(Decimal(entry_price(p.entry)))), "takeProfit": "0",
                "stopLoss": "0", "trailingStop": "0"}
    return out


FLAVOUR = Flavour(
    primary=PRIMARY, recorder=BinanceRecorder, trader=BinanceTrader, injector=BinanceInjector,
    exchange_view=exchange_view,
    detect_slack_s=lambda cfg: (_seconds(cfg.binance.get("ping_interval", 20))
                                + _seconds(cfg.binance.get("pong_timeout", 10)) + 0.5))


# ---------------------------------------------------------------------- one mode
def settings_overrides(cfg: CampaignConfig, sim: Simulator, mode: str) -> dict[str, Any]:
    if mode not in ROLES:
        raise ValueError(f"mode {mode!r}: the binanceusdm campaign runs "
                         f"{' and '.join(ROLES)}")
    urls = sim.urls
    return {
        "account": {"exchange": "binanceusdm", "api_key": sim.api_key,
                    "api_secret": sim.api_secret, "name": "chaos"},
        "endpoints": {"rest": urls["rest"], "market_ws": urls["market_ws"],
                      "private_ws": urls["private_ws"]},
        "feeds": {
            PRIMARY: {"kind": PRIMARY, "role": "primary", **cfg.binance},
            STANDBY: {"kind": STANDBY, "role": ROLES[mode], "interval": STANDBY_INTERVAL},
        },
        "router": {"failover_after": cfg.failover_after, "failback_after": cfg.failback_after},
        "validation": {"interval": "1s", "settle": "3s"},
    }


async def run_mode(cfg: CampaignConfig, mode: str, *, echo: Any = None) -> dict[str, Any]:
    """One mode of the campaign against the Binance personality (see runner.run_mode)."""
    from .runner import _campaign

    say = echo or (lambda *_: None)
    rng = random.Random(f"{cfg.seed}:{mode}:binanceusdm")
    errors = _ErrorLog()
    flog = logging.getLogger("feedctl")
    flog.addHandler(errors)
    loop_errors: list[str] = []
    loop = asyncio.get_running_loop()
    previous_handler = loop.get_exception_handler()
    loop.set_exception_handler(lambda _l, c: loop_errors.append(str(c.get("message"))[:300]))
    sim_cfg = SimConfig(symbols=_symbols(cfg.symbols), inverse_symbols=[], seed=cfg.seed,
                        volatility_bps=Decimal(cfg.volatility_bps), tick_interval=0.1,
                        exchange="binanceusdm", binance=SIM_BINANCE)
    started = time.monotonic()
    try:
        with tempfile.TemporaryDirectory(prefix="feedctl-chaos-") as tmp:
            settings = Path(tmp) / "settings.toml"
            settings.write_text("[chaos]\n")
            async with Simulator(sim_cfg) as sim, SimControl(sim.urls["control"]) as ctl:
                if cfg.binance_hedge:  # before any position exists: every symbol, both sides
                    assert sim.binance is not None
                    set_dual(sim.binance.rest.ctx, {"dualSidePosition": "true"})
                session = Session("chaos", settings_path=settings,
                                  overrides=settings_overrides(cfg, sim, mode))
                async with session:
                    out = await _campaign(cfg, mode, rng, sim, ctl, session, errors,
                                          loop_errors, say, started, flavour=FLAVOUR)
                    out |= {"exchange": "binanceusdm", "primary": PRIMARY,
                            "hedge": cfg.binance_hedge,
                            # who spent the IP's request weight (feed and standby share it)
                            "rest_weight_by_path": sim.stats().get("binance", {}).get(
                                "rest_weight_by_path", {})}
                    return out
    finally:
        flog.removeHandler(errors)
        loop.set_exception_handler(previous_handler)


__all__ = ["FAULT_WEIGHTS", "FLAVOUR", "PRIMARY", "BinanceInjector", "BinanceRecorder",
           "BinanceTrader", "assign_seqs", "exchange_view", "run_mode",
           "settings_overrides"]
