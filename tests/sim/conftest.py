"""Fixtures for the simulator tests (no pytest-asyncio: plain asyncio.run).

`threaded_sim` runs a Simulator on its own event loop in a background thread, so
blocking clients (pybit) and asyncio clients in the test's own loop (ccxt, aiohttp,
websockets) talk to it over real loopback sockets.
"""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Awaitable, Callable, Iterator
from typing import Any

import aiohttp
import pytest
import yarl

from feedctl.simulator import SimConfig, Simulator
from feedctl.simulator.signing import signed_headers

TEST_SYMBOLS = ["BTCUSDT", "ETHUSDT", "SOLUSDT", "XRPUSDT", "DOGEUSDT"]


def run(coro: Awaitable[Any], timeout: float = 60) -> Any:
    """Run a coroutine to completion in a fresh event loop, with a timeout."""

    async def guarded() -> Any:
        return await asyncio.wait_for(coro, timeout)

    return asyncio.run(guarded())


class ThreadedSim:
    def __init__(self, cfg: SimConfig) -> None:
        self.loop = asyncio.new_event_loop()
        self.sim = Simulator(cfg)
        self._thread = threading.Thread(target=self.loop.run_forever, daemon=True,
                                        name="simulator-loop")
        self._thread.start()
        self.call(self.sim.start())

    def call(self, coro: Awaitable[Any], timeout: float = 30) -> Any:
        return asyncio.run_coroutine_threadsafe(coro, self.loop).result(timeout)  # type: ignore[arg-type]

    def sync(self, fn: Callable[[], Any]) -> Any:
        """Run a plain function on the simulator's loop (engines are not thread-safe)."""

        async def wrapper() -> Any:
            return fn()

        return self.call(wrapper())

    @property
    def urls(self) -> dict[str, str]:
        return self.sim.urls

    def stop(self) -> None:
        try:
            self.call(self.sim.stop())
        finally:
            self.loop.call_soon_threadsafe(self.loop.stop)
            self._thread.join(10)
            self.loop.close()


@pytest.fixture
def sim_config() -> SimConfig:
    return SimConfig(symbols=TEST_SYMBOLS, seed=7, spread_bps=0)


@pytest.fixture
def threaded_sim(sim_config: SimConfig) -> Iterator[ThreadedSim]:
    ts = ThreadedSim(sim_config)
    try:
        yield ts
    finally:
        ts.stop()


async def signed_get(session: aiohttp.ClientSession, sim: Simulator | ThreadedSim, path: str,
                     query: str = "", ts_offset_ms: int = 0, **kw: Any) -> tuple[int, dict, Any]:
    """GET with Bybit headers signed over `query` exactly as written."""
    real = sim.sim if isinstance(sim, ThreadedSim) else sim
    headers = signed_headers(real.api_key, real.api_secret, query,
                             int(time.time() * 1000) + ts_offset_ms, **kw)
    url = yarl.URL(real.urls["rest"] + path + (f"?{query}" if query else ""), encoded=True)
    async with session.get(url, headers=headers) as resp:
        return resp.status, dict(resp.headers), await resp.json(content_type=None)


async def signed_get_text(session: aiohttp.ClientSession, sim: Simulator | ThreadedSim,
                          path: str, query: str = "") -> tuple[int, dict, str]:
    """Like `signed_get`, but the body as text (gateway errors are not JSON)."""
    real = sim.sim if isinstance(sim, ThreadedSim) else sim
    headers = signed_headers(real.api_key, real.api_secret, query, int(time.time() * 1000))
    url = yarl.URL(real.urls["rest"] + path + (f"?{query}" if query else ""), encoded=True)
    async with session.get(url, headers=headers) as resp:
        return resp.status, dict(resp.headers), await resp.text()


async def signed_post(session: aiohttp.ClientSession, sim: Simulator | ThreadedSim, path: str,
                      body: str) -> tuple[int, dict, Any]:
    real = sim.sim if isinstance(sim, ThreadedSim) else sim
    headers = signed_headers(real.api_key, real.api_secret, body, int(time.time() * 1000))
    async with session.post(real.urls["rest"] + path, data=body, headers=headers) as resp:
        return resp.status, dict(resp.headers), await resp.json(content_type=None)


class Helpers:
    """Helper functions, handed to tests as the `h` fixture (works in any import mode)."""

    run = staticmethod(run)
    signed_get = staticmethod(signed_get)
    signed_get_text = staticmethod(signed_get_text)
    signed_post = staticmethod(signed_post)
    ThreadedSim = ThreadedSim
    symbols = TEST_SYMBOLS


@pytest.fixture
def h() -> type[Helpers]:
    return Helpers
