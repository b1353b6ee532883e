"""REST over real loopback sockets: envelope, signing, errors, pagination, limits."""

from __future__ import annotations

import time
from urllib.parse import quote

import aiohttp
import orjson
import pytest
import yarl

from feedctl.simulator import SimConfig, Simulator
from feedctl.simulator.signing import signed_headers

pytestmark = pytest.mark.integration


def test_public_market_endpoints(h):
    async def main():
        async with Simulator(SimConfig(symbols=h.symbols)) as sim, aiohttp.ClientSession() as s:
            base = sim.urls["rest"]
            async with s.get(base + "/v5/market/time") as r:
                body = await r.json()
            assert body["retCode"] == 0 and isinstance(body["time"], int)
            assert abs(int(body["result"]["timeSecond"]) - time.time()) < 5
            assert body["retExtInfo"] == {} and body["retMsg"] == "OK"

            async with s.get(base + "/v5/market/instruments-info?category=linear&limit=2") as r:
                page1 = (await r.json())["result"]
            assert [i["symbol"] for i in page1["list"]] == ["BTCUSDT", "ETHUSDT"]
            btc = page1["list"][0]
            assert btc["priceFilter"]["tickSize"] == "0.10"
            assert btc["lotSizeFilter"]["qtyStep"] == "0.001"
            assert btc["contractType"] == "LinearPerpetual" and btc["settleCoin"] == "USDT"
            cursor = page1["nextPageCursor"]
            assert "%3A" in cursor and "%2C" in cursor  # opaque, percent-encoded as Bybit's
            seen = [i["symbol"] for i in page1["list"]]
            while cursor:  # passed back exactly as received (raw in the query string)
                url = f"{base}/v5/market/instruments-info?category=linear&limit=2&cursor={cursor}"
                async with s.get(yarl.URL(url, encoded=True)) as r:
                    page = (await r.json())["result"]
                seen += [i["symbol"] for i in page["list"]]
                cursor = page["nextPageCursor"]
            assert seen == h.symbols
            # a cursor encoded once more (%253A) is decoded once by the server: refused
            again = quote(page1["nextPageCursor"], safe="")
            url = f"{base}/v5/market/instruments-info?category=linear&limit=2&cursor={again}"
            async with s.get(yarl.URL(url, encoded=True)) as r:
                body = await r.json()
            assert body["retCode"] == 10001 and "cursor invalid" in body["retMsg"]
            for query in ("category=linear&status=PreLaunch", "category=spot",
                          "category=option&baseCoin=BTC", "category=inverse&status=PreLaunch"):
                async with s.get(base + "/v5/market/instruments-info?" + query) as r:
                    body = await r.json()
                assert body["retCode"] == 0 and body["result"]["list"] == []

            async with s.get(base + "/v5/market/tickers?category=linear&symbol=ETHUSDT") as r:
                (row,) = (await r.json())["result"]["list"]
            for field in ("markPrice", "indexPrice", "lastPrice", "openInterestValue",
                          "fundingRate", "bid1Price", "ask1Price", "nextFundingTime"):
                assert isinstance(row[field], str) and row[field]
            async with s.get(base + "/v5/market/tickers?category=linear&symbol=NOPE") as r:
                body = await r.json()
            assert body["retCode"] == 10001
            async with s.get(base + "/v5/nope") as r:
                assert r.status == 404
            async with s.get(base + "/v5/market/tickers") as r:
                assert (await r.json())["retCode"] == 10001

    h.run(main())


def test_signature_checks(h):
    async def main():
        async with Simulator(SimConfig(symbols=h.symbols)) as sim, aiohttp.ClientSession() as s:
            path = "/v5/position/list"
            # raw query in an unusual order and with a comma: signed exactly as sent
            status, headers, body = await h.signed_get(
                s, sim, path, "settleCoin=USDT&limit=200&category=linear")
            assert status == 200 and body["retCode"] == 0, body
            for name in ("X-Bapi-Limit", "X-Bapi-Limit-Status", "X-Bapi-Limit-Reset-Timestamp"):
                assert name in headers
            # wrong secret
            hdr = signed_headers(sim.api_key, "wrong", "category=linear&symbol=BTCUSDT",
                                 int(time.time() * 1000))
            async with s.get(sim.urls["rest"] + path + "?category=linear&symbol=BTCUSDT",
                             headers=hdr) as r:
                body = await r.json()
            assert body["retCode"] == 10004
            assert body["retMsg"].startswith("error sign! origin_string[")
            assert "category=linear&symbol=BTCUSDT]" in body["retMsg"]
            # a sorted re-encoding of the query would not match: the server must use raw
            hdr = signed_headers(sim.api_key, sim.api_secret, "category=linear&symbol=BTCUSDT",
                                 int(time.time() * 1000))
            async with s.get(sim.urls["rest"] + path + "?symbol=BTCUSDT&category=linear",
                             headers=hdr) as r:
                assert (await r.json())["retCode"] == 10004
            # wrong key
            hdr = signed_headers("nokey", sim.api_secret, "", int(time.time() * 1000))
            async with s.get(sim.urls["rest"] + "/v5/account/info", headers=hdr) as r:
                body = await r.json()
            assert body["retCode"] == 10003 and body["retMsg"] == "API key is invalid."
            # stale timestamp
            status, _, body = await h.signed_get(s, sim, "/v5/account/info",
                                                 ts_offset_ms=-6000)
            assert body["retCode"] == 10002
            assert body["retMsg"].startswith("invalid request, please check your server "
                                              "timestamp or recv_window param. req_timestamp[")
            assert "recv_window[5000]" in body["retMsg"]
            status, _, body = await h.signed_get(s, sim, "/v5/account/info",
                                                 ts_offset_ms=-6000, recv_window=10000)
            assert body["retCode"] == 0
            status, _, body = await h.signed_get(s, sim, "/v5/account/info", ts_offset_ms=1500)
            assert body["retCode"] == 10002
            # missing headers
            async with s.get(sim.urls["rest"] + "/v5/account/info") as r:
                assert r.status == 401
            # POST: raw body is signed; a bad JSON body is a parameter error
            status, _, body = await h.signed_post(s, sim, "/v5/order/create", "{not json")
            assert body["retCode"] == 10001

    h.run(main())


def test_positions_orders_and_pagination(h):
    async def main():
        cfg = SimConfig(symbols=h.symbols, spread_bps=0)
        async with Simulator(cfg) as sim, aiohttp.ClientSession() as s:
            _, _, body = await h.signed_get(s, sim, "/v5/position/list",
                                            "category=linear&symbol=SOLUSDT")
            (flat,) = body["result"]["list"]
            assert (flat["size"], flat["side"], flat["avgPrice"], flat["seq"]) == (
                "0", "", "0", -1)
            _, _, body = await h.signed_get(s, sim, "/v5/position/list", "category=linear")
            assert body["retCode"] == 10001
            for sym, qty in (("BTCUSDT", "0.01"), ("ETHUSDT", "0.1"), ("SOLUSDT", "1"),
                             ("XRPUSDT", "100")):
                order = orjson.dumps({"category": "linear", "symbol": sym, "side": "Buy",
                                      "orderType": "Market", "qty": qty,
                                      "orderLinkId": f"t-{sym}"}).decode()
                _, _, body = await h.signed_post(s, sim, "/v5/order/create", order)
                assert body["retCode"] == 0, body
                assert body["result"]["orderLinkId"] == f"t-{sym}" and body["result"]["orderId"]
            seen, cursor = [], ""
            while True:
                query = "category=linear&settleCoin=USDT&limit=3" + (
                    f"&cursor={cursor}" if cursor else "")
                _, _, body = await h.signed_get(s, sim, "/v5/position/list", query)
                assert body["retCode"] == 0, body
                seen += [(p["symbol"], p["size"]) for p in body["result"]["list"]]
                for p in body["result"]["list"]:
                    assert "avgPrice" in p and "entryPrice" not in p
                cursor = body["result"]["nextPageCursor"]
                if not cursor:
                    break
            assert seen == [("BTCUSDT", "0.01"), ("ETHUSDT", "0.1"), ("SOLUSDT", "1"),
                            ("XRPUSDT", "100")]
            bad = [{"qty": "0.0001"}, {"qty": "0.0011"}, {"qty": "1000"}, {"qty": "x"},
                   {"orderType": "Limit"}, {"side": "Up"}, {"category": "spot"}]
            for patch in bad:
                order = {"category": "linear", "symbol": "BTCUSDT", "side": "Buy",
                         "orderType": "Market", "qty": "0.01"} | patch
                _, _, body = await h.signed_post(s, sim, "/v5/order/create",
                                                 orjson.dumps(order).decode())
                assert body["retCode"] == 10001, (patch, body)
            lev = orjson.dumps({"category": "linear", "symbol": "BTCUSDT",
                                "buyLeverage": "10", "sellLeverage": "10"}).decode()
            _, _, body = await h.signed_post(s, sim, "/v5/position/set-leverage", lev)
            assert (body["retCode"], body["retMsg"]) == (110043, "leverage not modified")
            stop = orjson.dumps({"category": "linear", "symbol": "BTCUSDT", "positionIdx": 0,
                                 "stopLoss": "100", "tpslMode": "Full"}).decode()
            _, _, body = await h.signed_post(s, sim, "/v5/position/trading-stop", stop)
            assert body["retCode"] == 0, body
            _, _, body = await h.signed_get(s, sim, "/v5/order/history",
                                            "category=linear&symbol=BTCUSDT")
            assert body["result"]["list"][0]["orderStatus"] == "Filled"
            _, _, body = await h.signed_get(s, sim, "/v5/account/wallet-balance",
                                            "accountType=UNIFIED")
            assert body["result"]["list"][0]["coin"][0]["coin"] == "USDT"

    h.run(main())


def test_rate_limit(h):
    async def main():
        cfg = SimConfig(symbols=["BTCUSDT"], rest_rate_limit=3)
        async with Simulator(cfg) as sim, aiohttp.ClientSession() as s:
            codes = []
            for _ in range(10):
                _, headers, body = await h.signed_get(s, sim, "/v5/account/info")
                codes.append((body["retCode"], headers["X-Bapi-Limit-Status"]))
                reset = int(headers["X-Bapi-Limit-Reset-Timestamp"])
                assert headers["X-Bapi-Limit"] == "3" and reset > time.time() * 1000 - 50
            # a window boundary may fall inside the burst: at least one 10006 with status 0
            assert (10006, "0") in codes and codes[0][0] == 0

    h.run(main())
