"""Helpers for the Binance personality's tests: a simulator on loopback, signed REST
calls made the way Binance documents them, and stream clients (the `websockets`
library, a real client). Every test runs its own event loop under a time bound."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable
from typing import Any

import aiohttp
import orjson
import websockets

from feedctl.simulator import SimConfig, Simulator
from feedctl.simulator.binance.signing import signed_query

SYMBOLS = ["BTCUSDT", "ETHUSDT", "SOLUSDT"]


def run(coro: Awaitable[Any], timeout: float = 60) -> Any:
    async def bounded() -> Any:
        async with asyncio.timeout(timeout):
            return await coro

    return asyncio.run(bounded())


def make_sim(**binance: Any) -> Simulator:
    cfg = SimConfig(symbols=SYMBOLS, seed=7, spread_bps=0, exchange="binanceusdm",
                    binance=binance)
    return Simulator(cfg)


class Rest:
    """Signed and unsigned calls to the simulator's /fapi endpoints."""

    def __init__(self, sim: Simulator, session: aiohttp.ClientSession) -> None:
        self.sim = sim
        self.session = session

    async def call(self, method: str, path: str, params: dict | None = None, *,
                   signed: bool = False, key: str | None = "default",
                   timestamp: int | None = None) -> tuple[int, Any, dict[str, str]]:
        params = dict(params or {})
        headers = {}
        if key is not None:
            headers["X-MBX-APIKEY"] = self.sim.api_key if key == "default" else key
        if signed:
            params.setdefault("timestamp", timestamp if timestamp is not None
                              else int(time.time() * 1000))
            query = signed_query(self.sim.api_secret, params)
        else:
            query = "&".join(f"{k}={v}" for k, v in params.items())
        url = f"{self.sim.urls['rest']}{path}" + (f"?{query}" if query else "")
        import yarl

        async with self.session.request(method, yarl.URL(url, encoded=True),
                                        headers=headers) as resp:
            text = await resp.text()
            try:
                body = orjson.loads(text)
            except orjson.JSONDecodeError:
                body = text
            return resp.status, body, dict(resp.headers)

    async def ok(self, method: str, path: str, params: dict | None = None,
                 signed: bool = True) -> Any:
        status, body, _ = await self.call(method, path, params, signed=signed)
        assert status == 200, body
        return body

    async def listen_key(self) -> str:
        status, body, _ = await self.call("POST", "/fapi/v1/listenKey")
        assert status == 200, body
        return str(body["listenKey"])

    async def market_order(self, symbol: str, side: str, quantity: str,
                           **extra: str) -> dict:
        return await self.ok("POST", "/fapi/v1/order", {
            "symbol": symbol, "side": side, "type": "MARKET", "quantity": quantity, **extra})


async def recv_json(ws: Any, timeout: float = 5.0) -> Any:
    async with asyncio.timeout(timeout):
        return orjson.loads(await ws.recv())


async def recv_event(ws: Any, kind: str, timeout: float = 5.0) -> dict:
    """The next frame whose event type (raw or combined ``data``) is `kind`."""
    async with asyncio.timeout(timeout):
        while True:
            msg = orjson.loads(await ws.recv())
            data = msg.get("data", msg) if isinstance(msg, dict) else msg
            if isinstance(data, dict) and data.get("e") == kind:
                return msg
            if isinstance(data, list) and data and data[0].get("e") == kind:
                return msg


async def silent_for(ws: Any, seconds: float) -> list[Any]:
    """Every frame received within `seconds` (an empty list means silence)."""
    frames: list[Any] = []
    try:
        async with asyncio.timeout(seconds):
            while True:
                frames.append(orjson.loads(await ws.recv()))
    except TimeoutError:
        pass
    return frames


def connect(url: str) -> Any:
    return websockets.connect(url, open_timeout=5, close_timeout=1)
