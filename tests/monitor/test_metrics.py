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
    # latency: a histogram in seconds (the walk feed's messages are 2-3 ms old)
    count = value(found, "feedctl_feed_receive_latency_seconds_count", feed="main")
    assert count > 1
    assert value(found, "feedctl_feed_receive_latency_seconds_bucket", feed="main",
                 le="+Inf") == count
    assert value(found, "feedctl_feed_receive_latency_seconds_bucket", feed="main",
                 le="0.005") == count  # 2-3 ms: under 5 ms, none under 1 ms
    assert value(found, "feedctl_feed_receive_latency_seconds_bucket", feed="main",
                 le="0.001") == 0
    assert 0 < value(found, "feedctl_feed_receive_latency_seconds_sum", feed="main") < count
    assert "# TYPE feedctl_feed_receive_latency_seconds histogram" in text
    assert value(found, "feedctl_positions_open") == 1
    # one series per position key, the signed size its value (a flip keeps the series)
    assert value(found, "feedctl_position_size", symbol="BTCUSDT", position_idx="0") == 0.5
    assert all("side" not in lab for lab, _ in found["feedctl_position_size"])
    assert value(found, "feedctl_position_mark_price", symbol="BTCUSDT") > 60000
    assert value(found, "feedctl_router_active", feed="main") == 1
    assert value(found, "feedctl_router_failovers_total") == 0
    assert value(found, "feedctl_router_failbacks_total") == 0
    assert value(found, "feedctl_consumer_pending_events", consumer="monitor") >= 0
    assert value(found, "feedctl_consumer_lagging", consumer="monitor") == 0
    assert value(found, "feedctl_validation_agreement_ratio", shadow="shadow") == 1.0
    assert value(found, "feedctl_feed_up", feed="shadow", kind="walk", role="shadow") == 1
    assert value(found, "feedctl_session_info", profile="t", mode="production") == 1
    for name in found:  # conventions: a namespace (and the process collector's own)
        assert name.startswith(("feedctl_", "process_", "python_info")), name
    assert value(found, "process_resident_memory_bytes") > 0
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


@pytest.mark.integration
def test_every_metric_the_grafana_dashboard_queries_is_exported(
    clean_env: Path, mpm: FeedctlPluginManager
) -> None:
    import json
    import re

    dashboard = json.loads((Path(__file__).resolve().parents[2] / "deploy"
                            / "grafana-dashboard.json").read_text())
    exprs = [t["expr"] for p in dashboard["panels"] for t in p["targets"]]
    queried = {m for e in exprs for m in re.findall(r"\b((?:feedctl|process)_[a-z_]+)\b", e)}

    async def main() -> str:
        path = write_settings(clean_env, VALIDATED_PROFILE)
        async with running(path, mpm) as (session, monitor), \
                aiohttp.ClientSession(monitor.url) as http:
            await wait_for(lambda: session.feeds["main"].book.counters["marks"] >= 3)
            await wait_for(lambda: session.validator is not None and
                           session.validator.summary()["shadow"]["agreement"] is not None)
            async with http.get("/metrics") as r:
                return await r.text()

    exported = set(samples(run_async(main())))
    assert len(queried) >= 12
    assert queried <= exported, sorted(queried - exported)
