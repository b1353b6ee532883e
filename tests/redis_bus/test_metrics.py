"""The bus's figures over HTTP (``feedctl worker --metrics-port`` serves these)."""

from __future__ import annotations

import asyncio
from pathlib import Path

import aiohttp
import pytest
import redis.asyncio as aioredis

from feedctl.plugins.redis_bus.serve import serve_metrics
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


def test_metrics_show_publish_latency_depth_leases_and_consumer_lag(
        tmp_path: Path, redis_server: RedisServer) -> None:
    async def main() -> str:
        async with publishing(tmp_path, redis_server.url) as (_, ctl, session):
            r = aioredis.from_url(redis_server.url)
            await r.xgroup_create("feedctl:events:main", "slow-bot", id="0")
            await r.aclose()
            await ctl.set_position("BTCUSDT", "Buy", "0.1")
            await wait_for(lambda: session.router.delivered, 15)
            await wait_until_published(session)
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
