"""/metrics: Prometheus exposition read from Session.status() at scrape time."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import aiohttp
import pytest
from prometheus_client.parser import text_string_to_metric_families

from feedctl.manager import FeedctlPluginManager
from feedctl.monitor import Monitor
from feedctl.monitor.views import agreement
from tests.conftest import run_async
from tests.monitor.conftest import (
    WALK_PROFILE,
    monitor_settings,
    running,
    wait_for,
    write_settings,
)

#: The walk feed twice: a primary and a shadow the validator compares with it.
VALIDATED_PROFILE = WALK_PROFILE + """
[t.feeds.shadow]
kind = "walk"
role = "shadow"
[t.validation]
interval = "50ms"
settle = "200ms"
"""


def samples(text: str) -> dict[str, list[tuple[dict[str, str], float]]]:
    out: dict[str, list[tuple[dict[str, str], float]]] = {}
    for family in text_string_to_metric_families(text):
        for s in family.samples:
            out.setdefault(s.name, []).append((s.labels, s.value))
    return out


def value(found: dict[str, list[tuple[dict[str, str], float]]], name: str, **labels: str) -> float:
    (v,) = [val for lab, val in found[name] if all(lab.get(k) == x for k, x in labels.items())]
    return v


@pytest.mark.integration
def test_metrics_follow_the_session_and_prometheus_naming(
    clean_env: Path, mpm: FeedctlPluginManager
) -> None:
    async def main() -> tuple[str, str, str]:
        path = write_settings(clean_env, VALIDATED_PROFILE)
        async with running(path, mpm) as (session, monitor), \
                aiohttp.ClientSession(monitor.url) as http:
            await wait_for(lambda: session.router is not None and session.router.delivered)
            await wait_for(lambda: session.feeds["main"].book.counters["marks"] >= 3)
            await wait_for(lambda: session.validator is not None and
                           session.validator.summary()["shadow"]["agreement"] is not None)
            async with http.get("/metrics") as r:
                assert r.status == 200
                ctype = r.headers["Content-Type"]
                first = await r.text()
            # a second monitor of the same session has a registry of its own
            async with Monitor(session, monitor_settings()) as other, \
                    aiohttp.ClientSession(other.url) as http2, http2.get("/metrics") as r2:
                second = await r2.text()
            return ctype, first, second

    ctype, text, second = run_async(main())
    assert ctype.startswith("text/plain; version=0.0.4")
    found = samples(text)
    assert value(found, "feedctl_feed_up", feed="main", kind="walk", role="primary") == 1
    assert value(found, "feedctl_feed_state", feed="main", state="healthy") == 1
    assert value(found, "feedctl_feed_state", feed="main", state="reconnecting") == 0
    assert value(found, "feedctl_feed_messages_total", feed="main") > 1
    assert value(found, "feedctl_feed_reconnects_total", feed="main") == 0
    assert value(found, "feedctl_feed_resyncs_total", feed="main") == 0
    assert value(found, "feedctl_feed_events_total", feed="main", counter="marks") > 1
    p50 = value(found, "feedctl_feed_receive_latency_seconds", feed="main", quantile="0.5")
    assert 0 < p50 < 1  # seconds, not milliseconds
    assert value(found, "feedctl_positions_open") == 1
    assert value(found, "feedctl_position_size", symbol="BTCUSDT", side="long") == 0.5
    assert value(found, "feedctl_position_mark_price", symbol="BTCUSDT") > 60000
    assert value(found, "feedctl_router_active", feed="main") == 1
    assert value(found, "feedctl_router_failovers_total") == 0
    assert value(found, "feedctl_router_failbacks_total") == 0
    assert value(found, "feedctl_consumer_pending_events", consumer="monitor") >= 0
    assert value(found, "feedctl_consumer_lagging", consumer="monitor") == 0
    assert value(found, "feedctl_validation_agreement_ratio", shadow="shadow") == 1.0
    assert value(found, "feedctl_feed_up", feed="shadow", kind="walk", role="shadow") == 1
    assert value(found, "feedctl_session_info", profile="t", mode="production") == 1
    for name in found:  # conventions: a namespace, and counters end in _total
        assert name.startswith("feedctl_"), name
    assert "# TYPE feedctl_feed_messages_total counter" in text
    assert "python_gc_objects_collected_total" not in text  # never the global registry
    assert "feedctl_feed_up" in second


@pytest.mark.unit
@pytest.mark.parametrize(("summary", "expected"), [
    (None, []),
    ({"agreement_ratio": 0.5, "shadow": "s"}, [("s", 0.5)]),
    ({"agreement": 1}, [("", 1.0)]),
    ({"rest": {"agreement_ratio": 0.9}, "other": 3}, [("rest", 0.9)]),
    ({"shadows": {"a": {"agreement": 0.25}}}, [("a", 0.25)]),
    ({"agreement_ratio": True}, []),
])
def test_agreement_is_read_from_the_validation_summary_shapes(
    summary: Any, expected: list[tuple[str, float]]
) -> None:
    assert agreement(summary) == expected
