"""Prometheus metrics of a session, read from ``Session.status()`` at scrape time.

A custom collector registered in a :class:`~prometheus_client.CollectorRegistry` of
the monitor's own (never the process-global one), so two sessions in one process,
or a test, never collide. Names follow Prometheus conventions: base units in the
name (``_seconds``, ``_ratio``), counters end in ``_total``. docs/monitor.md lists
every metric.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterator
from typing import Any

from prometheus_client import (
    CollectorRegistry,
    PlatformCollector,
    ProcessCollector,
    generate_latest,
)
from prometheus_client.metrics_core import (
    CounterMetricFamily,
    GaugeMetricFamily,
    HistogramMetricFamily,
    Metric,
)
from prometheus_client.registry import Collector

from ..errors import PluginError
from ..manager import call_plain, plugin_callers
from ..models import FeedState, now_ns
from .views import agreement, messages_total

log = logging.getLogger("feedctl.monitor")

#: Feed counters that have a metric of their own (the rest: feedctl_feed_events_total).
_OWN_COUNTERS = {"messages", "reconnects", "resyncs"}


class SessionCollector(Collector):
    """Turns one status reading into metric families."""

    def __init__(self, status: Callable[[], dict[str, Any]],
                 positions: Callable[[], list[dict[str, Any]]], *,
                 accounts: Callable[[], list[tuple[str, dict[str, Any]]]] | None = None
                 ) -> None:
        self._status = status
        self._positions = positions
        #: A session of many accounts: each one's status (feed and router series get an
        #: ``account`` label; positions are counted per account, not listed).
        self._accounts = accounts

    def describe(self) -> list[Metric]:
        return []  # metrics depend on the session; collect() is called per scrape only

    def collect(self) -> Iterator[Metric]:
        status = self._status()
        if self._accounts is not None:
            yield from _info(status)
            yield from _accounts(status.get("accounts") or [])
            each = self._accounts()
            yield from _feeds(status, each)
            yield from _routers(each)
            yield from _consumers(status.get("consumers") or [])
            return
        yield from _info(status)
        yield from _feeds(status)
        yield from _positions(self._positions(), status)
        yield from _router(status.get("router"))
        yield from _consumers(status.get("consumers") or [])
        yield from _validation(status.get("validation"))


class PluginCollector(Collector):
    """The metric families plugins return from ``feedctl_metrics`` at each scrape."""

    def __init__(self, session: Any) -> None:
        self._session = session

    def describe(self) -> list[Metric]:
        return []

    def collect(self) -> Iterator[Metric]:
        for plugin, caller in plugin_callers(self._session.pm, "feedctl_metrics"):
            try:
                results = call_plain(caller, plugin, "feedctl_metrics",
                                     what="feedctl_metrics", session=self._session)
            except PluginError as exc:
                log.warning("metrics of plugin %s left out: %s", plugin, exc,
                            extra={"plugin": plugin})
                continue
            for result in results:
                for metric in result or ():
                    if isinstance(metric, Metric):
                        yield metric


def build_registry(collector: SessionCollector, session: Any = None) -> CollectorRegistry:
    """The monitor's registry: the session's metrics, the plugins' (``feedctl_metrics``,
    when ``session`` is given), the process's."""
    registry = CollectorRegistry(auto_describe=False)
    registry.register(collector)
    if session is not None:
        registry.register(PluginCollector(session))
    ProcessCollector(registry=registry)  # process_cpu_seconds_total, _resident_memory_bytes...
    PlatformCollector(registry=registry)  # python_info
    return registry


def exposition(registry: CollectorRegistry) -> bytes:
    """The Prometheus text exposition format (version 0.0.4)."""
    return generate_latest(registry)


def _gauge(name: str, doc: str, labels: list[str] | None = None) -> GaugeMetricFamily:
    return GaugeMetricFamily(name, doc, labels=labels or [])


def _counter(name: str, doc: str, labels: list[str]) -> CounterMetricFamily:
    return CounterMetricFamily(name, doc, labels=labels)


def _info(status: dict[str, Any]) -> Iterator[Metric]:
    g = _gauge("feedctl_session_info", "The running profile and mode (always 1).",
               ["profile", "mode"])
    g.add_metric([str(status.get("profile")), str(status.get("mode"))], 1)
    yield g


def _feeds(status: dict[str, Any],
           accounts: list[tuple[str, dict[str, Any]]] | None = None) -> Iterator[Metric]:
    """Feed series; with ``accounts``, every account's feeds, labelled ``account``."""
    acc = ["account"] if accounts is not None else []
    every = ([((a,), st.get("feeds") or {}) for a, st in accounts] if accounts is not None
             else [((), status.get("feeds") or {})])
    now = now_ns()
    up = _gauge("feedctl_feed_up", "1 if the feed is healthy, else 0.",
                [*acc, "feed", "kind", "role"])
    state = _gauge("feedctl_feed_state", "1 for the feed's current state, 0 for the others.",
                   [*acc, "feed", "state"])
    state_age = _gauge("feedctl_feed_state_age_seconds", "Seconds since the feed's state "
                       "last changed.", [*acc, "feed"])
    msg = _counter("feedctl_feed_messages", "Messages the feed received (its own count, else "
                   "book updates + mark prices).", [*acc, "feed"])
    rec = _counter("feedctl_feed_reconnects", "Reconnects of the feed.", [*acc, "feed"])
    res = _counter("feedctl_feed_resyncs", "REST resyncs of the feed.", [*acc, "feed"])
    other = _counter("feedctl_feed_events", "The feed's other counters, by name.",
                     [*acc, "feed", "counter"])
    lat = HistogramMetricFamily("feedctl_feed_receive_latency_seconds", "Exchange-to-"
                                "receipt latency of the feed's messages, since start.",
                                labels=[*acc, "feed"])
    age = _gauge("feedctl_feed_last_message_age_seconds", "Seconds since the feed last "
                 "received anything.", [*acc, "feed"])
    stale = _gauge("feedctl_feed_stale_symbols", "Symbols whose price stream is stale.",
                   [*acc, "feed"])
    synced = _gauge("feedctl_feed_synced", "1 once the feed has had a complete snapshot of "
                    "the account; 0 while its positions are unknown.", [*acc, "feed"])
    for lead, feeds in every:
        for name, f in feeds.items():
            _feed_series(lead, name, f, now, up, state, state_age, msg, rec, res, other,
                         lat, age, stale, synced)
    yield from (up, state, state_age, msg, rec, res, other, lat, age, stale, synced)


def _feed_series(lead: tuple[str, ...], name: str, f: dict[str, Any], now: int,
                 *families: Any) -> None:
    up, state, state_age, msg, rec, res, other, lat, age, stale, synced = families
    current = f.get("state")
    up.add_metric([*lead, name, str(f.get("kind")), str(f.get("role"))],
                  1 if current == FeedState.HEALTHY.value else 0)
    for s in FeedState:
        state.add_metric([*lead, name, s.value], 1 if s.value == current else 0)
    if f.get("since_ns"):
        state_age.add_metric([*lead, name], max(0.0, (now - f["since_ns"]) / 1e9))
    msg.add_metric([*lead, name], messages_total(f))
    rec.add_metric([*lead, name], f.get("reconnects", 0))
    res.add_metric([*lead, name], f.get("resyncs", 0))
    for counter, value in sorted((f.get("counters") or {}).items()):
        if counter not in _OWN_COUNTERS:
            other.add_metric([*lead, name, counter], value)
    hist = f.get("latency_histogram")
    if hist:
        buckets = [(_le(ms / 1000), n) for ms, n in zip(hist["le_ms"], hist["counts"],
                                                        strict=False)]
        buckets.append(("+Inf", hist["counts"][-1]))
        lat.add_metric([*lead, name], buckets, sum_value=hist["sum_ms"] / 1000)
    if f.get("last_message_ns"):
        age.add_metric([*lead, name], max(0.0, (now - f["last_message_ns"]) / 1e9))
    stale.add_metric([*lead, name], len(f.get("stale_symbols") or ()))
    synced.add_metric([*lead, name], 0 if f.get("synced_ns") is None else 1)


def _le(seconds: float) -> str:
    return f"{seconds:g}"


def _positions(delivered: list[dict[str, Any]], status: dict[str, Any]) -> Iterator[Metric]:
    now = now_ns()
    n = _gauge("feedctl_positions_open", "Open positions consumers were told about.")
    n.add_metric([], len(delivered))
    # one series per position key: a flip changes the value's sign, not the series
    labels = ["symbol", "category", "position_idx"]
    size = _gauge("feedctl_position_size", "Signed size of each delivered open position "
                  "(negative: short).", labels)
    mark = _gauge("feedctl_position_mark_price", "Mark price of each delivered position.",
                  labels)
    pnl = _gauge("feedctl_position_unrealised_pnl", "Unrealised PnL of each delivered "
                 "position (settlement coin).", labels)
    mage = _gauge("feedctl_position_mark_age_seconds", "Seconds since the mark price of "
                  "each delivered position was received.", labels)
    for p in delivered:
        lv = [p["symbol"], p["category"], str(p.get("position_idx", 0))]
        sign = -1.0 if p.get("side") == "short" else 1.0
        size.add_metric(lv, sign * float(p["size"]))
        if p.get("mark_price") is not None:
            mark.add_metric(lv, float(p["mark_price"]))
        if p.get("unrealised_pnl") is not None:
            pnl.add_metric(lv, float(p["unrealised_pnl"]))
        at = p.get("mark_received_ns") or p.get("received_ns")
        if at:
            mage.add_metric(lv, max(0.0, (now - at) / 1e9))
    yield from (n, size, mark, pnl, mage)


def _accounts(rows: list[dict[str, Any]]) -> Iterator[Metric]:
    """One series per account: its summary row."""
    up = _gauge("feedctl_account_up", "1 if the account's delivering feed is healthy.",
                ["account", "exchange"])
    failed = _gauge("feedctl_account_failed", "1 if every delivering feed of the account "
                    "failed fatally (a rejected key...); the others run on.", ["account"])
    synced = _gauge("feedctl_account_synced", "1 once the account's delivering feed has had "
                    "a complete snapshot.", ["account"])
    n = _gauge("feedctl_account_positions_open", "Open positions consumers were told about, "
               "per account.", ["account"])
    stale = _gauge("feedctl_account_stale_symbols", "Symbols of the account's delivering "
                   "feed whose price stream is stale.", ["account"])
    total = _gauge("feedctl_accounts", "Accounts the session serves.")
    total.add_metric([], len(rows))
    for r in rows:
        name = str(r["account"])
        up.add_metric([name, str(r.get("exchange"))], 1 if r.get("state") == "healthy" else 0)
        failed.add_metric([name], 1 if r.get("failed") else 0)
        synced.add_metric([name], 0 if r.get("synced_ns") is None else 1)
        if r.get("positions") is not None:  # unknown before a snapshot: no sample, not 0
            n.add_metric([name], r["positions"])
        stale.add_metric([name], r.get("stale_symbols", 0))
    yield from (total, up, failed, synced, n, stale)


def _routers(accounts: list[tuple[str, dict[str, Any]]]) -> Iterator[Metric]:
    """Router series of many accounts, labelled ``account``."""
    active = _gauge("feedctl_router_active", "1 for the feed whose events are delivered.",
                    ["account", "feed"])
    families = {key: CounterMetricFamily(
        f"feedctl_router_{key}" if key != "delivered" else "feedctl_router_delivered_events",
        doc, labels=["account"]) for key, doc in _ROUTER_COUNTERS}
    for name, st in accounts:
        router = st.get("router") or {}
        for feed in (router.get("roles") or {}):
            active.add_metric([name, feed], 1 if feed == router.get("active") else 0)
        for key, fam in families.items():
            fam.add_metric([name], (router.get("counters") or {}).get(key, 0))
    yield active
    yield from families.values()


_ROUTER_COUNTERS = (("failovers", "Failovers from the primary to the standby."),
                    ("failbacks", "Failbacks from the standby to the primary."),
                    ("delivered", "Position events the router delivered."))


def _router(router: dict[str, Any] | None) -> Iterator[Metric]:
    if not router:
        return
    counters = router.get("counters") or {}
    active = _gauge("feedctl_router_active", "1 for the feed whose events are delivered.",
                    ["feed"])
    for name in (router.get("roles") or {}):
        active.add_metric([name], 1 if name == router.get("active") else 0)
    yield active
    for key, doc in _ROUTER_COUNTERS:
        c = CounterMetricFamily(f"feedctl_router_{key}" if key != "delivered"
                                else "feedctl_router_delivered_events", doc)
        c.add_metric([], counters.get(key, 0))
        yield c


def _consumers(consumers: list[dict[str, Any]]) -> Iterator[Metric]:
    pending = _gauge("feedctl_consumer_pending_events", "Events waiting for the consumer.",
                     ["consumer"])
    lag = _gauge("feedctl_consumer_lag_seconds", "Age of the consumer's oldest pending "
                 "event.", ["consumer"])
    lagging = _gauge("feedctl_consumer_lagging", "1 if the consumer is lagging or was cut "
                     "off.", ["consumer"])
    delivered = _counter("feedctl_consumer_delivered_events", "Events the consumer took.",
                         ["consumer"])
    coalesced = _counter("feedctl_consumer_coalesced_events", "Price events replaced by a "
                         "newer one while the consumer was behind.", ["consumer"])
    for c in consumers:
        lv = [str(c.get("consumer"))]
        pending.add_metric(lv, c.get("pending", 0))
        lag.add_metric(lv, c.get("lag_seconds", 0.0))
        lagging.add_metric(lv, 1 if c.get("lagging") else 0)
        delivered.add_metric(lv, c.get("delivered", 0))
        coalesced.add_metric(lv, c.get("coalesced", 0))
    yield from (pending, lag, lagging, delivered, coalesced)


def _validation(validation: Any) -> Iterator[Metric]:
    pairs = agreement(validation)
    if not pairs:
        return
    g = _gauge("feedctl_validation_agreement_ratio", "Agreement of a shadow feed with the "
               "primary, 0..1.", ["shadow"])
    for shadow, ratio in pairs:
        g.add_metric([shadow], ratio)
    yield g
