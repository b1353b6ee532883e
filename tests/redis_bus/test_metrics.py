"""The bus's figures over HTTP: ``feedctl worker --metrics-port``, and the monitor's
/metrics of a session that publishes (the ``feedctl_metrics`` hook)."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import aiohttp
import pytest
import redis.asyncio as aioredis

from feedctl.monitor import Monitor
from feedctl.plugins.redis_bus.serve import serve_metrics
from feedctl.settings import MonitorSettings
from tests.conftest import run_async
from tests.redis_bus.conftest import RedisServer, free_port
from tests.redis_bus.helpers import publishing, wait_until_published
from tests.rollout.conftest import wait_for

pytestmark = [pytest.mark.integration, pytest.mark.timeout(120)]


def value(text: str, name: str) -> float:
    for line in text.splitlines():
        if line.startswith(name + " ") or line.startswith(name + "{"):
            return float(line.rsplit(" ", 1)[1])
    raise AssertionError(f"{name} not in the exposition")


async def _one_position_published_with_a_slow_group(url: str, ctl: Any, session: Any) -> None:
    """A consumer group that reads nothing (its lag grows), then one position opened and
    published."""
    r = aioredis.from_url(url)
    await r.xgroup_create("feedctl:events:main", "slow-bot", id="0")
    await r.aclose()
    await ctl.set_position("BTCUSDT", "Buy", "0.1")
    await wait_for(lambda: session.router.delivered, 15)
    await wait_until_published(session)


def test_metrics_show_publish_latency_depth_leases_and_consumer_lag(
        tmp_path: Path, redis_server: RedisServer) -> None:
    async def main() -> str:
        async with publishing(tmp_path, redis_server.url) as (_, ctl, session):
            await _one_position_published_with_a_slow_group(redis_server.url, ctl, session)
            port = free_port()
            runner = await serve_metrics(port)
            try:
                async with aiohttp.ClientSession() as http:
                    async def scrape() -> str:
                        async with http.get(f"http://127.0.0.1:{port}/metrics") as resp:
                            return await resp.text()
                    text = await scrape()
                    for _ in range(40):
                        if 'group="slow-bot"' in text:
                            break
                        await asyncio.sleep(0.1)
                        text = await scrape()
                    return text
            finally:
                await runner.cleanup()

    text = run_async(main(), timeout=90)
    assert value(text, "feedctl_bus_publish_latency_seconds_count") >= 2
    assert value(text, "feedctl_bus_lease_changes_total") >= 1
    assert value(text, "feedctl_bus_outbox_depth") >= 0
    assert value(text, "feedctl_bus_fenced_writes_total") >= 0
    assert value(text, 'feedctl_bus_consumer_lag_entries{account="main",group="slow-bot"}') >= 2


def test_the_monitors_metrics_of_a_publishing_session_carry_the_bus_figures(
        tmp_path: Path, redis_server: RedisServer) -> None:
    async def main() -> str:
        async with publishing(tmp_path, redis_server.url) as (_, ctl, session):
            await _one_position_published_with_a_slow_group(redis_server.url, ctl, session)
            async with Monitor(session, MonitorSettings(enabled=True, port=0)) as monitor, \
                    aiohttp.ClientSession(monitor.url) as http:
                async def scrape() -> str:
                    async with http.get("/metrics") as resp:
                        return await resp.text()
                text = await scrape()
                async with asyncio.timeout(15):  # the publisher reads lag once a second
                    while 'group="slow-bot"' not in text:
                        await asyncio.sleep(0.1)
                        text = await scrape()
                return text

    text = run_async(main(), timeout=90)
    assert "feedctl_feed_up" in text  # the session's own metrics, and beside them the bus's
    assert value(text, "feedctl_bus_publish_latency_seconds_count") >= 2
    assert value(text, "feedctl_bus_lease_changes_total") >= 1
    assert value(text, 'feedctl_bus_outbox_depth{account="main"}') >= 0
    assert "feedctl_bus_fenced_writes_total" in text  # process-wide: other tests add to it
    assert value(text, 'feedctl_bus_consumer_lag_entries{account="main",group="slow-bot"}') >= 2
