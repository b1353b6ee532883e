"""Fidelity: ccxt and ccxt.pro ``binanceusdm`` against the Binance personality,
unchanged but for their URLs (every ``urls["api"]`` host is the simulator's, so nothing
leaves the machine)."""

from __future__ import annotations

import asyncio
import re
from typing import Any

import ccxt.async_support as ccxt_async
import ccxt.pro as ccxtpro
import pytest

from .conftest import make_sim, run

pytestmark = pytest.mark.integration
HOST = re.compile(r"^(https|wss)://[^/]+")


def loopback(urls: Any, http: str, ws: str) -> Any:
    if isinstance(urls, dict):
        return {k: loopback(v, http, ws) for k, v in urls.items()}
    if isinstance(urls, str):
        return HOST.sub(lambda m: http if m.group(1) == "https" else ws, urls)
    return urls


def point(exchange: Any, sim) -> Any:
    http = sim.urls["rest"]
    exchange.urls["api"] = loopback(exchange.urls["api"], http, http.replace("http", "ws"))
    return exchange


def config(sim) -> dict:
    return {"apiKey": sim.api_key, "secret": sim.api_secret, "enableRateLimit": False}


def test_ccxt_reads_markets_marks_and_positions_and_places_orders():
    async def main():
        async with make_sim() as sim:
            ex = point(ccxt_async.binanceusdm(config(sim)), sim)
            try:
                markets = await ex.load_markets()  # currencies from /sapi too
                assert {"USDT", "BTC"} <= set(ex.currencies)
                btc = markets["BTC/USDT:USDT"]
                assert btc["swap"] and btc["linear"] and btc["precision"]["price"] == 0.1
                mark = await ex.fetch_mark_price("BTC/USDT:USDT")
                assert mark["markPrice"] == float(sim.prices.mark("BTCUSDT"))
                marks = await ex.fetch_mark_prices()
                assert set(marks) == {"BTC/USDT:USDT", "ETH/USDT:USDT", "SOL/USDT:USDT"}
                assert await ex.fetch_positions() == []
                await ex.set_leverage(5, "BTC/USDT:USDT")
                order = await ex.create_order("BTC/USDT:USDT", "market", "buy", 0.01)
                assert order["id"]
                (pos,) = await ex.fetch_positions()
                assert (pos["symbol"], pos["side"], pos["contracts"]) == (
                    "BTC/USDT:USDT", "long", 0.01)
                assert pos["entryPrice"] > 0 and pos["markPrice"] > 0
                await ex.create_order("BTC/USDT:USDT", "market", "sell", 0.01,
                                      params={"reduceOnly": True})
                assert await ex.fetch_positions() == []
                balance = await ex.fetch_balance()
                assert balance["USDT"]["total"] > 0
            finally:
                await ex.close()

    run(main())


def test_ccxt_pro_watches_positions_and_mark_prices():
    async def main():
        async with make_sim(mark_fast_interval=0.2) as sim:
            ex = point(ccxtpro.binanceusdm(config(sim)), sim)
            rest = point(ccxt_async.binanceusdm(config(sim)), sim)
            try:
                mark = await ex.watch_mark_price("ETH/USDT:USDT")
                assert mark["symbol"] == "ETH/USDT:USDT" and mark["markPrice"] > 0
                marks = await ex.watch_mark_prices(["BTC/USDT:USDT", "SOL/USDT:USDT"])
                assert set(marks) <= {"BTC/USDT:USDT", "SOL/USDT:USDT"} and marks
                assert all(m["markPrice"] > 0 for m in marks.values())
                assert await ex.watch_positions() == []  # the REST snapshot
                watcher = asyncio.ensure_future(ex.watch_positions())
                async with asyncio.timeout(10):
                    while not sim.binance.user.conns:  # the listenKey's socket is open
                        await asyncio.sleep(0.05)
                    await rest.create_order("ETH/USDT:USDT", "market", "sell", 0.5)
                    positions = await watcher
                (pos,) = [p for p in positions if p["contracts"]]
                assert (pos["symbol"], pos["side"], pos["contracts"]) == (
                    "ETH/USDT:USDT", "short", 0.5)
                paths = [c.request.path for c in sim.binance.user.conns]
                assert paths == ["/private/ws"]
            finally:
                await ex.close()
                await rest.close()

    run(main())


def test_ccxt_switches_to_hedge_mode_and_fetches_positions_per_side():
    async def main():
        async with make_sim() as sim:
            ex = point(ccxt_async.binanceusdm(config(sim)), sim)
            try:
                await ex.load_markets()
                await ex.set_position_mode(True)
                mode = await ex.fetch_position_mode("BTC/USDT:USDT")
                assert mode["hedged"] is True
                await ex.create_order("BTC/USDT:USDT", "market", "buy", 0.02,
                                      params={"positionSide": "LONG"})
                await ex.create_order("BTC/USDT:USDT", "market", "sell", 0.01,
                                      params={"positionSide": "SHORT"})
                positions = await ex.fetch_positions(["BTC/USDT:USDT"])
                sides = sorted((p["info"]["positionSide"], p["side"], p["contracts"],
                                p["hedged"]) for p in positions)
                assert sides == [("LONG", "long", 0.02, True), ("SHORT", "short", 0.01, True)]
            finally:
                await ex.close()

    run(main())
