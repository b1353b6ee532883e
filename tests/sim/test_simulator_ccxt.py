"""Fidelity: ccxt (async) and ccxt.pro against the simulator, only `urls` changed."""

from __future__ import annotations

import asyncio

import ccxt.async_support as ccxt_async
import ccxt.pro as ccxtpro
import pytest

from feedctl.simulator import SimConfig, Simulator

pytestmark = pytest.mark.integration
REST_KEYS = ("spot", "futures", "v2", "public", "private")


def point(exchange, sim: Simulator, ws: bool = False):
    for key in REST_KEYS:
        exchange.urls["api"][key] = sim.urls["rest"]
    if ws:
        public = exchange.urls["api"]["ws"]["public"]
        public["linear"] = sim.urls["public_ws"]
        public["inverse"] = sim.urls["public_ws"].replace("/linear", "/inverse")
        private = exchange.urls["api"]["ws"]["private"]
        private["contract"] = sim.urls["private_ws"]
        private["spot"]["unified"] = sim.urls["private_ws"]
    return exchange


def config(sim: Simulator, linear_only: bool) -> dict:
    cfg: dict = {"apiKey": sim.api_key, "secret": sim.api_secret, "enableRateLimit": False}
    if linear_only:
        cfg["options"] = {"fetchMarkets": {"types": ["linear"]}}
    return cfg


@pytest.mark.parametrize("linear_only", [True, False], ids=["linear-only", "default-options"])
def test_ccxt_rest(h, linear_only):
    async def main():
        async with Simulator(SimConfig(symbols=h.symbols, spread_bps=0)) as sim:
            ex = point(ccxt_async.bybit(config(sim, linear_only)), sim)
            try:
                markets = await ex.load_markets()
                assert "BTC/USDT:USDT" in markets
                btc = markets["BTC/USDT:USDT"]
                assert btc["swap"] and btc["linear"] and btc["precision"]["price"] == 0.1
                assert abs(await ex.fetch_time() - sim.clock.now_ms()) < 2000
                tickers = await ex.fetch_tickers(["BTC/USDT:USDT", "ETH/USDT:USDT"])
                assert set(tickers) == {"BTC/USDT:USDT", "ETH/USDT:USDT"}
                ticker = await ex.fetch_ticker("ETH/USDT:USDT")
                assert ticker["markPrice"] and ticker["markPrice"] > 0
                await ex.set_leverage(5, "BTC/USDT:USDT")
                order = await ex.create_order("BTC/USDT:USDT", "market", "buy", 0.01)
                assert order["id"]
                positions = await ex.fetch_positions(None, {"settleCoin": "USDT"})
                (pos,) = positions
                assert (pos["symbol"], pos["side"], pos["contracts"]) == (
                    "BTC/USDT:USDT", "long", 0.01)
                assert pos["entryPrice"] > 0 and pos["leverage"] == 5
                one = await ex.fetch_positions(["BTC/USDT:USDT"])
                assert one[0]["contracts"] == 0.01
                await ex.create_order("BTC/USDT:USDT", "market", "sell", 0.01,
                                      params={"reduceOnly": True})
                assert await ex.fetch_positions(None, {"settleCoin": "USDT"}) == []
                balance = await ex.fetch_balance()
                assert balance["USDT"]["total"] > 0
            finally:
                await ex.close()

    h.run(main())


def test_ccxt_pro_watch_ticker_and_positions(h):
    async def main():
        async with Simulator(SimConfig(symbols=h.symbols, spread_bps=0)) as sim:
            ex = point(ccxtpro.bybit(config(sim, linear_only=True)), sim, ws=True)
            rest = point(ccxt_async.bybit(config(sim, linear_only=True)), sim)
            try:
                first = await ex.watch_ticker("BTC/USDT:USDT")
                assert first["markPrice"] > 0 and first["symbol"] == "BTC/USDT:USDT"
                marks = {first["info"]["markPrice"]}
                for _ in range(5):
                    ticker = await ex.watch_ticker("BTC/USDT:USDT")
                    marks.add(ticker["info"]["markPrice"])
                assert len(marks) > 1
                snapshot = await ex.watch_positions()
                assert snapshot == []
                watcher = asyncio.ensure_future(ex.watch_positions())
                await asyncio.sleep(0.5)  # the second call subscribes `position`
                await rest.create_order("ETH/USDT:USDT", "market", "sell", 0.5)
                seen = []
                while not any(p["contracts"] for p in seen):
                    seen = await asyncio.wait_for(watcher, 5)
                    watcher = asyncio.ensure_future(ex.watch_positions())
                pos = next(p for p in seen if p["contracts"])
                assert (pos["symbol"], pos["side"], pos["contracts"]) == (
                    "ETH/USDT:USDT", "short", 0.5)
                watcher.cancel()
                await asyncio.gather(watcher, return_exceptions=True)
            finally:
                await ex.close()
                await rest.close()

    h.run(main())


def test_ccxt_hedge_mode_and_inverse(h):
    async def main():
        async with Simulator(SimConfig(symbols=h.symbols, spread_bps=0)) as sim:
            ex = point(ccxt_async.bybit(config(sim, linear_only=False)), sim)
            try:
                markets = await ex.load_markets()
                inverse = markets["BTC/USD:BTC"]
                assert inverse["swap"] and inverse["inverse"] and inverse["settle"] == "BTC"
                await ex.set_position_mode(True, "XRP/USDT:USDT")
                await ex.create_order("XRP/USDT:USDT", "market", "buy", 100,
                                      params={"positionIdx": 1})
                await ex.create_order("XRP/USDT:USDT", "market", "sell", 40,
                                      params={"hedged": True})
                both = await ex.fetch_positions(["XRP/USDT:USDT"])
                sides = sorted((p["side"], p["contracts"], p["hedged"]) for p in both)
                assert sides == [("long", 100, True), ("short", 40, True)]
                await ex.create_order("XRP/USDT:USDT", "market", "buy", 40,
                                      params={"hedged": True, "reduceOnly": True})
                left = await ex.fetch_positions(None, {"settleCoin": "USDT"})
                assert [(p["side"], p["contracts"]) for p in left] == [("long", 100)]
                await ex.create_order("BTC/USD:BTC", "market", "buy", 500)
                (pos,) = await ex.fetch_positions(["BTC/USD:BTC"])
                assert (pos["side"], pos["contracts"]) == ("long", 500)
                assert pos["symbol"] == "BTC/USD:BTC" and pos["entryPrice"] > 0
            finally:
                await ex.close()

    h.run(main())
