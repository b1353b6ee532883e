"""The bus's figures: publish latency, outbox depth, fenced writes, lease changes,
consumer lag — as a Prometheus collector (``feedctl worker --metrics-port`` serves it)."""

from __future__ import annotations

import bisect
from collections import deque
from collections.abc import Iterator
from typing import Any

from prometheus_client.metrics_core import (
    CounterMetricFamily,
    GaugeMetricFamily,
    HistogramMetricFamily,
    Metric,
)
from prometheus_client.registry import Collector

#: Exchange-to-publisher age buckets (s): fine enough to read a p50 and a p99 from.
AGE_BUCKETS = (0.001, 0.002, 0.003, 0.005, 0.0075, 0.01, 0.015, 0.02, 0.03, 0.05, 0.075, 0.1,
               0.15, 0.2, 0.3, 0.5, 0.75, 1.0, 2.0, 5.0, 10.0)
BUCKETS = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)


class BusMetrics:
    """Counters of one process (every session's publisher adds to them)."""

    def __init__(self) -> None:
        self.publish_counts = [0] * (len(BUCKETS) + 1)
        self.publish_sum = 0.0
        #: Age of events (now - their exchange time) when they reach the publisher, an
        #: in-process consumer: what a remote consumer's latency is compared with.
        self.age_counts = [0] * (len(AGE_BUCKETS) + 1)
        self.age_sum = 0.0
        self.events_published = 0
        self.marks_published = 0
        self.fenced_writes = 0
        self.lease_changes = 0
        self.overflows = 0
        self.resyncs = 0
        #: overflowed accounts resynced from their trail, and trails given up
        self.trail_resyncs = 0
        self.trails_dropped = 0
        self.redis_errors = 0
        self.write_seconds: deque[float] = deque(maxlen=1000)
        #: Each publisher's outboxes (account -> outbox), read at scrape time.
        self.outboxes: list[dict[str, Any]] = []
        #: Consumer groups' lag, by (account, group): set by whoever reads it (bus status).
        self.consumer_lag: dict[tuple[str, str], int] = {}

    def observe_publish(self, seconds: float) -> None:
        self.publish_counts[bisect.bisect_left(BUCKETS, seconds)] += 1
        self.publish_sum += seconds

    def observe_age(self, seconds: float) -> None:
        self.age_counts[bisect.bisect_left(AGE_BUCKETS, seconds)] += 1
        self.age_sum += seconds

    def depth(self) -> dict[str, int]:
        out: dict[str, int] = {}
        for boxes in self.outboxes:
            for account, box in boxes.items():
                out[account] = out.get(account, 0) + len(box)
        return out


class BusCollector(Collector):
    def __init__(self, metrics: BusMetrics) -> None:
        self.m = metrics

    def describe(self) -> list[Metric]:
        return []

    def collect(self) -> Iterator[Metric]:
        m = self.m
        yield _histogram("feedctl_bus_publish_latency_seconds", "From an event reaching "
                         "the publisher to Redis acknowledging its entry.", BUCKETS,
                         m.publish_counts, m.publish_sum)
        yield _histogram("feedctl_bus_event_age_seconds", "Exchange time to the event "
                         "reaching the publisher (an in-process consumer).", AGE_BUCKETS,
                         m.age_counts, m.age_sum)
        depth = GaugeMetricFamily("feedctl_bus_outbox_depth", "Events waiting for Redis.",
                                  labels=["account"])
        for account, n in sorted(m.depth().items()):
            depth.add_metric([account], n)
        yield depth
        for name, doc, value in (
                ("events_published", "Lifecycle and status entries written.",
                 m.events_published),
                ("marks_published", "Price entries written.", m.marks_published),
                ("fenced_writes", "Writes refused because the lease had passed to a peer.",
                 m.fenced_writes),
                ("lease_changes", "Leases acquired or lost by this process.",
                 m.lease_changes),
                ("outbox_overflows", "Outboxes that overflowed (account resynced).",
                 m.overflows),
                ("resyncs", "Accounts resynced with Redis.", m.resyncs),
                ("trail_resyncs", "Overflowed accounts resynced from their lifecycles' "
                 "boundaries (nothing lost).", m.trail_resyncs),
                ("trails_dropped", "Overflowed accounts resynced from the book instead "
                 "(lifecycles inside the overflow lost).", m.trails_dropped),
                ("redis_errors", "Failed writes (Redis down or slow).", m.redis_errors)):
            c = CounterMetricFamily(f"feedctl_bus_{name}", doc)
            c.add_metric([], value)
            yield c
        lag = GaugeMetricFamily("feedctl_bus_consumer_lag_entries", "Entries a consumer "
                                "group has not read yet.", labels=["account", "group"])
        for (account, group), n in sorted(m.consumer_lag.items()):
            lag.add_metric([account, group], n)
        yield lag


def _histogram(name: str, doc: str, bounds: tuple[float, ...], counts: list[int],
               total: float) -> HistogramMetricFamily:
    h = HistogramMetricFamily(name, doc)
    running, buckets = 0, []
    for le, n in zip(bounds, counts, strict=False):
        running += n
        buckets.append((f"{le:g}", running))
    buckets.append(("+Inf", running + counts[-1]))
    h.add_metric([], buckets, sum_value=total)
    return h
