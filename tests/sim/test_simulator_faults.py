"""Every fault of the control API happens, then clears by itself."""

from __future__ import annotations

import asyncio
import json
import time

import aiohttp
import pytest
from websockets.asyncio.client import connect
from websockets.exceptions import ConnectionClosed

from feedctl.simulator import SimConfig, SimControlError, Simulator
from feedctl.simulator.signing import ws_signature

pytestmark = pytest.mark.integration


async def recv(ws, wait: float = 2.0) -> dict | str:
    raw = await asyncio.wait_for(ws.recv(), wait)
    try:
        return json.loads(raw)
    except ValueError:
        return raw


async def ping(ws, wait: float = 2.0) -> dict:
    await ws.send(json.dumps({"op": "ping"}))
    while True:
        msg = await recv(ws, wait)
        if isinstance(msg, dict) and msg.get("op") in ("ping", "pong"):
            return msg


async def private(sim: Simulator, *topics: str):
    ws = await connect(sim.urls["private_ws"], ping_interval=None)
    expires = int(time.time() * 1000) + 2000
    await ws.send(json.dumps({"op": "auth", "args": [sim.api_key, expires,
                                                     ws_signature(sim.api_secret, expires)]}))
    assert (await recv(ws))["success"] is True
    if topics:
        await ws.send(json.dumps({"op": "subscribe", "args": list(topics)}))
        assert (await recv(ws))["success"] is True
    return ws


async def position_pushes(ws, n: int, wait: float = 3.0) -> list[dict]:
    out = []
    while len(out) < n:
        msg = await recv(ws, wait)
        if msg["topic"] == "position":
            out.append(msg["data"][0])
    return out


def test_drop_by_kind(h):
    async def main():
        async with Simulator(SimConfig(symbols=["BTCUSDT"])) as sim, \
                await sim.control_client() as ctl:
            pub = await connect(sim.urls["public_ws"], ping_interval=None)
            priv = await private(sim)
            assert await ctl.drop("public") == 1
            with pytest.raises(ConnectionClosed):
                await recv(pub)
            assert (await ping(priv))["op"] == "pong"
            pub = await connect(sim.urls["public_ws"], ping_interval=None)
            assert await ctl.drop("all", mode="abort") == 2
            for ws in (pub, priv):
                with pytest.raises(ConnectionClosed):
                    await recv(ws)
            pub = await connect(sim.urls["public_ws"], ping_interval=None)  # clears at once
            assert (await ping(pub))["op"] == "ping"
            await pub.close()

    h.run(main())


def test_stall_then_recover(h):
    async def main():
        async with Simulator(SimConfig(symbols=["BTCUSDT"])) as sim, \
                await sim.control_client() as ctl:
            priv = await private(sim)
            pub = await connect(sim.urls["public_ws"], ping_interval=None)
            await pub.send(json.dumps({"op": "subscribe", "args": ["tickers.BTCUSDT"]}))
            await ctl.stall("private", seconds=1.0)
            assert [f["fault"] for f in await ctl.faults()] == ["stall"]
            with pytest.raises(TimeoutError):
                await ping(priv, 0.4)
            waiter = await priv.ping()
            with pytest.raises(TimeoutError):
                await asyncio.wait_for(waiter, 0.3)  # no control-frame pong either
            assert isinstance(await recv(pub), dict)  # public unaffected
            await asyncio.sleep(0.5)
            assert await ctl.faults() == []
            assert (await ping(priv))["op"] == "pong"
            await priv.close()
            await pub.close()

    h.run(main())


def test_delay_then_recover(h):
    async def main():
        async with Simulator(SimConfig(symbols=["BTCUSDT"])) as sim, \
                await sim.control_client() as ctl:
            pub = await connect(sim.urls["public_ws"], ping_interval=None)
            await ctl.delay("public", ms=300, seconds=0.8)
            started = time.monotonic()
            await ping(pub)
            assert time.monotonic() - started >= 0.28
            await asyncio.sleep(0.9)
            started = time.monotonic()
            await ping(pub)
            assert time.monotonic() - started < 0.2
            assert await ctl.faults() == []
            await pub.close()

    h.run(main())


def test_duplicate_and_reorder_position_pushes(h):
    async def main():
        cfg = SimConfig(symbols=["BTCUSDT"], spread_bps=0)
        async with Simulator(cfg) as sim, await sim.control_client() as ctl:
            ws = await private(sim, "position")
            await ctl.duplicate_positions(1)
            await ctl.set_leverage("BTCUSDT", "5")
            a, b = await position_pushes(ws, 2)
            assert a == b and a["leverage"] == "5"
            await ctl.set_leverage("BTCUSDT", "6")
            (c,) = await position_pushes(ws, 1)
            # a settings change keeps the last fill's seq (-1: never traded); time moves
            assert c["seq"] == a["seq"] == -1 and c["updatedTime"] >= a["updatedTime"]
            with pytest.raises(TimeoutError):
                await recv(ws, 0.3)
            assert await ctl.faults() == []
            await ctl.reorder_positions(1)
            await ctl.place_order("BTCUSDT", "Buy", "0.01")  # two pushes: created, filled
            first, second = await position_pushes(ws, 2)
            assert first["size"] == "0.01" and second["size"] == "0"
            assert first["seq"] > second["seq"]
            await ctl.set_leverage("BTCUSDT", "7")
            (d,) = await position_pushes(ws, 1)
            assert d["seq"] == first["seq"] and d["leverage"] == "7"
            assert await ctl.faults() == []
            await ctl.reorder_positions(1)  # a held push is released by itself
            await ctl.set_leverage("BTCUSDT", "8")
            (e,) = await position_pushes(ws, 1, wait=3)
            assert e["leverage"] == "8"
            await ws.close()

    h.run(main())


def test_malformed_frame(h):
    async def main():
        async with Simulator(SimConfig(symbols=["BTCUSDT"])) as sim, \
                await sim.control_client() as ctl:
            pub = await connect(sim.urls["public_ws"], ping_interval=None)
            priv = await private(sim)
            assert await ctl.malformed("public", count=2) == 1
            for _ in range(2):
                raw = await recv(pub)
                assert isinstance(raw, str)
                with pytest.raises(ValueError):
                    json.loads(raw)
            assert (await ping(pub))["op"] == "ping"
            with pytest.raises(TimeoutError):
                await recv(priv, 0.3)
            await pub.close()
            await priv.close()

    h.run(main())


def test_reject_auth(h):
    async def main():
        async with Simulator(SimConfig(symbols=["BTCUSDT"])) as sim, \
                await sim.control_client() as ctl:
            await ctl.reject_auth(1)
            ws = await connect(sim.urls["private_ws"], ping_interval=None)
            expires = int(time.time() * 1000) + 2000
            req = {"op": "auth", "args": [sim.api_key, expires,
                                          ws_signature(sim.api_secret, expires)]}
            await ws.send(json.dumps(req))
            answer = await recv(ws)
            assert answer["success"] is False and answer["ret_msg"] == "error:USVC1111"
            await ws.send(json.dumps(req))
            assert (await recv(ws))["success"] is True
            assert await ctl.faults() == []
            await ws.close()

    h.run(main())


def test_rest_errors(h):
    async def main():
        async with Simulator(SimConfig(symbols=["BTCUSDT"])) as sim, \
                await sim.control_client() as ctl, aiohttp.ClientSession() as s:
            await ctl.rest_errors("rate_limit", count=2)
            for _ in range(2):
                _, headers, body = await h.signed_get(s, sim, "/v5/account/info")
                assert (body["retCode"], body["retMsg"]) == (10006, "Too many visits!")
                assert headers["X-Bapi-Limit-Status"] == "0"
                assert int(headers["X-Bapi-Limit-Reset-Timestamp"]) > time.time() * 1000 - 50
            _, _, body = await h.signed_get(s, sim, "/v5/account/info")
            assert body["retCode"] == 0
            await ctl.rest_errors("502", count=1, path="/v5/market/time")
            async with s.get(sim.urls["rest"] + "/v5/market/tickers?category=linear") as r:
                assert r.status == 200
            async with s.get(sim.urls["rest"] + "/v5/market/time") as r:
                assert r.status == 502
            await ctl.rest_errors("503", count=1)
            async with s.get(sim.urls["rest"] + "/v5/market/time") as r:
                assert r.status == 503
            async with s.get(sim.urls["rest"] + "/v5/market/time") as r:
                assert r.status == 200
            assert await ctl.faults() == []

    h.run(main())


def test_a_malformed_rest_answer_is_an_ok_envelope_cut_short(h):
    async def main():
        async with Simulator(SimConfig(symbols=["BTCUSDT"])) as sim, \
                await sim.control_client() as ctl, aiohttp.ClientSession() as s:
            await ctl.rest_errors("malformed", count=1)
            async with s.get(sim.urls["rest"] + "/v5/market/time") as r:
                status, text = r.status, await r.text()
            assert status == 200 and text.startswith('{"retCode":0')
            with pytest.raises(json.JSONDecodeError):
                json.loads(text)
            async with s.get(sim.urls["rest"] + "/v5/market/time") as r:
                assert (await r.json())["retCode"] == 0

    h.run(main())


def test_clock_skew(h):
    async def main():
        async with Simulator(SimConfig(symbols=["BTCUSDT"])) as sim, \
                await sim.control_client() as ctl, aiohttp.ClientSession() as s:
            await ctl.clock_skew(ms=60_000, seconds=0.6)
            async with s.get(sim.urls["rest"] + "/v5/market/time") as r:
                body = await r.json()
            assert body["time"] - time.time() * 1000 > 55_000
            _, _, body = await h.signed_get(s, sim, "/v5/account/info")
            assert body["retCode"] == 10002
            await asyncio.sleep(0.7)
            _, _, body = await h.signed_get(s, sim, "/v5/account/info")
            assert body["retCode"] == 0
            assert await ctl.faults() == []

    h.run(main())


def test_faults_are_bounded_and_clearable(h):
    async def main():
        async with Simulator(SimConfig(symbols=["BTCUSDT"])) as sim, \
                await sim.control_client() as ctl:
            calls = (lambda: ctl.stall("public", 0), lambda: ctl.stall("public", 99_999),
                     lambda: ctl.delay("nope", 10, 1), lambda: ctl.reject_auth(0),
                     lambda: ctl.rest_errors("418", 1), lambda: ctl.clock_skew(1000, -1))
            for call in calls:
                with pytest.raises(SimControlError) as err:
                    await call()
                assert err.value.status == 400
            await ctl.stall("all", 30)
            await ctl.delay("public", 100, 30)
            await ctl.duplicate_positions(3)
            await ctl.reject_auth(2)
            await ctl.rest_errors("503", 5)
            await ctl.clock_skew(5000, 30)
            assert len(await ctl.faults()) == 7
            await ctl.clear_faults()
            assert await ctl.faults() == []
            async with aiohttp.ClientSession() as s, \
                    s.get(sim.urls["rest"] + "/v5/market/time") as r:
                body = await r.json()
            assert abs(body["time"] - time.time() * 1000) < 2000

    h.run(main())


def test_late_pongs_come_late_while_data_flows_on_time(h):
    async def main():
        async with Simulator(SimConfig(symbols=["BTCUSDT"])) as sim, \
                await sim.control_client() as ctl:
            pub = await connect(sim.urls["public_ws"], ping_interval=None)
            await pub.send(json.dumps({"op": "subscribe", "args": ["tickers.BTCUSDT"]}))
            await recv(pub)  # the subscribe answer
            await ctl.late_pongs("public", ms=1500, seconds=3)
            started = time.monotonic()
            await pub.send(json.dumps({"op": "ping", "req_id": "late"}))
            tickers_before_pong = 0
            while True:
                msg = await recv(pub, 3)
                if isinstance(msg, dict) and msg.get("req_id") == "late":
                    break
                tickers_before_pong += 1
            assert time.monotonic() - started >= 1.4
            assert tickers_before_pong >= 5  # data kept coming every 100 ms meanwhile
            waiter = await pub.ping()  # control frames too
            started = time.monotonic()
            await asyncio.wait_for(waiter, 3)
            assert time.monotonic() - started >= 1.4
            await asyncio.sleep(1.6)
            assert await ctl.faults() == []
            started = time.monotonic()
            await ping(pub)
            assert time.monotonic() - started < 0.5
            await pub.close()

    h.run(main())


def test_http_403_401_404_as_bybit_sends_them(h):
    async def main():
        async with Simulator(SimConfig(symbols=["BTCUSDT"])) as sim, \
                await sim.control_client() as ctl, aiohttp.ClientSession() as s:
            for mode, kind in (("403", "text/html"), ("401", "text/plain"),
                               ("404", "text/html")):
                await ctl.rest_errors(mode, count=1, path="/v5/position")
                status, headers, text = await h.signed_get_text(
                    s, sim, "/v5/position/list", "category=linear&settleCoin=USDT")
                assert status == int(mode) and headers["Content-Type"].startswith(kind)
                with pytest.raises(json.JSONDecodeError):
                    json.loads(text)  # no Bybit envelope: the gateway answers
            status, _, text = await h.signed_get_text(
                s, sim, "/v5/position/list", "category=linear&settleCoin=USDT")
            assert status == 200 and json.loads(text)["retCode"] == 0

    h.run(main())
