"""The dashboard's live stream (/api/events): snapshot first, throttled prices,
failovers and trailing-stop signals, bounded per client."""

from __future__ import annotations

import asyncio
import json
import time
from pathlib import Path
from typing import Any, Literal

import aiohttp
import pytest
from pydantic import BaseModel, ConfigDict

from feedctl.manager import FeedctlPluginManager
from feedctl.monitor.hub import Client
from tests.conftest import run_async
from tests.monitor.conftest import WALK_PROFILE, running, write_settings

pytestmark = pytest.mark.integration


async def read_frames(resp: aiohttp.ClientResponse, seconds: float) -> list[tuple[str, Any]]:
    """SSE frames as (event, data) for ``seconds``."""
    frames: list[tuple[str, Any]] = []
    loop = asyncio.get_running_loop()
    end = loop.time() + seconds
    while (left := end - loop.time()) > 0:
        try:
            raw = await asyncio.wait_for(resp.content.readuntil(b"\n\n"), left)
        except TimeoutError:
            break
        fields = dict(line.split(": ", 1) for line in raw.decode().strip().splitlines()
                      if ": " in line and not line.startswith(":"))
        if "event" in fields:
            frames.append((fields["event"], json.loads(fields["data"])))
    return frames


def test_a_client_gets_a_snapshot_then_prices_throttled_per_position(
    clean_env: Path, mpm: FeedctlPluginManager
) -> None:
    # the feed moves the price every 10 ms; the page gets at most ~4 per second
    path = write_settings(clean_env, WALK_PROFILE.replace("0.05", "0.01"))

    async def main() -> tuple[list[tuple[str, Any]], str]:
        async with running(path, mpm, price_interval=0.25) as (session, monitor), \
                aiohttp.ClientSession(monitor.url) as http:
            await asyncio.sleep(0.2)
            async with http.get("/api/events") as r:
                assert r.headers["Content-Type"] == "text/event-stream"
                frames = await read_frames(r, 1.5)
            assert session.router is not None
            (pos,) = session.router.delivered.values()
            return frames, str(pos.mark_price)

    frames, _ = run_async(main())
    name, snap = frames[0]
    assert name == "snapshot"
    assert [p["symbol"] for p in snap["positions"]] == ["BTCUSDT"]
    assert snap["feeds"][0]["feed"] == "main" and snap["feeds"][0]["state"] == "healthy"
    prices = [d for n, d in frames if n == "position" and d["kind"] == "price"]
    assert 3 <= len(prices) <= 9, len(prices)  # ~150 moves in 1.5 s, throttled to 4/s
    marks = [p["position"]["mark_price"] for p in prices]
    assert len(set(marks)) > 1  # and the page sees them move
    assert any(n == "feeds" for n, _ in frames)  # the once-a-second feed tick


class TrailingStop(BaseModel):
    """The shape of a trailing-stop signal a consumer plugin publishes."""

    model_config = ConfigDict(frozen=True)
    type: Literal["trailing_stop"] = "trailing_stop"
    action: str
    symbol: str
    stop_price: str


FAILOVER_PROFILE = """
[t]
[t.router]
failover_after = "200ms"
[t.feeds.main]
kind = "scripted"
role = "primary"
fail_after = 2
interval = 0.05
[t.feeds.backup]
kind = "walk"
role = "standby"
"""


def test_failovers_and_trailing_stop_signals_reach_the_page_and_its_snapshot(
    clean_env: Path, mpm: FeedctlPluginManager
) -> None:
    path = write_settings(clean_env, FAILOVER_PROFILE)

    async def main() -> tuple[list[tuple[str, Any]], dict[str, Any]]:
        async with running(path, mpm) as (session, monitor), \
                aiohttp.ClientSession(monitor.url) as http:
            async with http.get("/api/events") as r:
                await r.content.readuntil(b"\n\n")  # retry
                await asyncio.sleep(0.1)
                session.publish(TrailingStop(action="activated", symbol="BTCUSDT",
                                             stop_price="64000"))
                frames = await read_frames(r, 1.2)  # the primary fails; the standby takes over
            async with http.get("/api/events") as r:
                later = await read_frames(r, 0.3)
        return frames, later[0][1]

    frames, later_snapshot = run_async(main())
    routes = [d for n, d in frames if n == "route"]
    assert routes and routes[0]["active"] == "backup" and routes[0]["previous"] == "main"
    signals = [d for n, d in frames if n == "signal"]
    assert signals[0]["type"] == "trailing_stop"
    assert signals[0]["text"] == "trailing stop activated BTCUSDT: stop 64000"
    statuses = [d for n, d in frames if n == "status" and d["feed"] == "main"]
    assert any(s["status"]["state"] == "reconnecting" for s in statuses)
    texts = [n["text"] for n in later_snapshot["notable"]]
    assert any(t.startswith("route main -> backup") for t in texts)
    assert "trailing stop activated BTCUSDT: stop 64000" in texts


def test_a_client_that_falls_far_behind_is_disconnected_not_buffered() -> None:
    async def main() -> None:
        client = Client(max_pending=10)
        for i in range(10):
            client.send(b"x%d" % i)
        assert not client.closed
        client.send(b"one too many")
        assert client.closed
        assert await client.next(0.01) == b"x0"  # what it had is still delivered...
        for _ in range(9):
            await client.next(0.01)
        assert await client.next(0.01) is None  # ...then it ends
        idle = Client(max_pending=10)
        t0 = time.monotonic()
        assert await idle.next(0.05) == b""  # silence: a keep-alive is due
        assert time.monotonic() - t0 >= 0.04

    run_async(main())
