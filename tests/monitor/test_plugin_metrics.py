"""The ``feedctl_metrics`` hook: a plugin's metric families in the monitor's /metrics."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import aiohttp
import pytest
from prometheus_client.metrics_core import CounterMetricFamily

from feedctl import build_plugin_manager, hookimpl
from tests.conftest import run_async
from tests.core import scripted
from tests.monitor import walkfeed
from tests.monitor.conftest import running, write_settings

pytestmark = pytest.mark.integration


class Counting:
    """A plugin that counts the scrapes it was asked for (its own figure)."""

    def __init__(self) -> None:
        self.scrapes = 0

    @hookimpl
    def feedctl_metrics(self, session: Any) -> Any:
        self.scrapes += 1
        c = CounterMetricFamily("feedctl_counting_scrapes", "Scrapes seen.",
                                labels=["profile"])
        c.add_metric([session.plan.loaded.name], self.scrapes)
        return [c]


class Broken:
    @hookimpl
    def feedctl_metrics(self, session: Any) -> Any:
        raise RuntimeError("no figures today")


def scrape_twice(folder: Path, *plugins: Any) -> list[str]:
    pm = build_plugin_manager([scripted, walkfeed, *plugins], load_entrypoints=False)

    async def main() -> list[str]:
        async with running(write_settings(folder), pm) as (_, monitor), \
                aiohttp.ClientSession(monitor.url) as http:
            out = []
            for _ in range(2):
                async with http.get("/metrics") as r:
                    out.append(await r.text())
            return out

    return run_async(main(), timeout=30)


def test_a_plugins_metric_families_are_in_metrics_read_at_each_scrape(
        clean_env: Path) -> None:
    first, second = scrape_twice(clean_env, Counting())
    assert 'feedctl_counting_scrapes_total{profile="t"} 1.0' in first
    assert 'feedctl_counting_scrapes_total{profile="t"} 2.0' in second


def test_a_plugin_that_raises_is_left_out_and_the_rest_is_served(
        clean_env: Path, caplog: pytest.LogCaptureFixture) -> None:
    _, text = scrape_twice(clean_env, Broken(), Counting())
    assert 'feedctl_counting_scrapes_total{profile="t"} 2.0' in text
    assert "feedctl_feed_up" in text  # the session's own metrics
    assert any("metrics of plugin" in r.getMessage() and "no figures today" in r.getMessage()
               for r in caplog.records)


