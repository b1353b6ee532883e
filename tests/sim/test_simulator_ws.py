"""Public and private WebSocket over real sockets with a plain `websockets` client."""

from __future__ import annotations

import asyncio
import json
import time

import pytest
from websockets.asyncio.client import connect
from websockets.exceptions import ConnectionClosed, InvalidStatus

from feedctl.simulator import SimConfig, Simulator
from feedctl.simulator.prices import SNAPSHOT_ORDER
from feedctl.simulator.signing import ws_signature

pytestmark = pytest.mark.integration


async def recv(ws, wait: float = 3.0) -> dict:
    return json.loads(await asyncio.wait_for(ws.recv(), wait))


async def recv_until(ws, pred, wait: float = 3.0) -> dict:
    deadline = time.monotonic() + wait
    while True:
        msg = await recv(ws, max(0.01, deadline - time.monotonic()))
        if pred(msg):
            return msg


async def auth(ws, sim, expires=None, req_id=None) -> dict:
    expires = expires if expires is not None else int(time.time() * 1000) + 1000
    req = {"op": "auth", "args": [sim.api_key, expires, ws_signature(sim.api_secret, expires)]}
    if req_id is not None:
        req["req_id"] = req_id
    await ws.send(json.dumps(req))
    return await recv(ws)


def test_public_ticker_snapshot_then_deltas(h):
    async def main():
        async with Simulator(SimConfig(symbols=h.symbols)) as sim, \
                connect(sim.urls["public_ws"]) as ws:
            await ws.send(json.dumps({"op": "subscribe", "req_id": 7,
                                      "args": ["tickers.BTCUSDT"]}))
            ack = await recv(ws)
            assert ack == {"success": True, "ret_msg": "", "conn_id": ack["conn_id"],
                           "req_id": 7, "op": "subscribe"}
            snap = await recv(ws)
            assert snap["topic"] == "tickers.BTCUSDT" and snap["type"] == "snapshot"
            assert list(snap["data"]) == list(SNAPSHOT_ORDER)
            assert all(isinstance(v, str) for v in snap["data"].values())
            state = dict(snap["data"])
            last_cs, last_ts = snap["cs"], snap["ts"]
            for _ in range(8):
                delta = await recv(ws, 1.0)
                assert delta["type"] == "delta" and delta["data"]["symbol"] == "BTCUSDT"
                assert delta["cs"] > last_cs and delta["ts"] >= last_ts
                assert abs(delta["ts"] - time.time() * 1000) < 1000
                for key, value in delta["data"].items():
                    if key != "symbol":
                        assert state[key] != value  # only changed fields are sent
                    state[key] = value
                last_cs, last_ts = delta["cs"], delta["ts"]
            await ws.send(json.dumps({"op": "unsubscribe", "req_id": "u",
                                      "args": ["tickers.BTCUSDT"]}))
            await recv_until(ws, lambda m: m.get("op") == "unsubscribe")
            with pytest.raises(TimeoutError):
                await recv(ws, 0.4)

    h.run(main())


def test_public_ping_pong_and_control_frames(h):
    async def main():
        async with Simulator(SimConfig(symbols=["BTCUSDT"])) as sim, \
                connect(sim.urls["public_ws"], ping_interval=None) as ws:
            await ws.send(json.dumps({"op": "ping", "req_id": "abc"}))
            pong = await recv(ws)
            assert pong == {"success": True, "ret_msg": "pong", "conn_id": pong["conn_id"],
                            "req_id": "abc", "op": "ping"}
            await ws.send(json.dumps({"op": "ping"}))
            assert "req_id" not in await recv(ws)
            waiter = await ws.ping(b"hello")
            await asyncio.wait_for(waiter, 2)  # control-frame pong

    h.run(main())


def test_public_bad_input(h):
    async def main():
        async with Simulator(SimConfig(symbols=h.symbols)) as sim, \
                connect(sim.urls["public_ws"]) as ws:
            await ws.send(json.dumps({"op": "subscribe", "req_id": "1",
                                      "args": ["tickers.ETHUSDT", "tickers.NOPE"]}))
            err = await recv(ws)
            assert err["success"] is False and err["req_id"] == "1"
            assert err["ret_msg"] == "error:handler not found,topic:tickers.NOPE"
            with pytest.raises(TimeoutError):  # the whole request failed: no snapshot
                await recv(ws, 0.3)
            await ws.send("{this is not json")
            assert (await recv(ws))["ret_msg"] == "error:invalid op"
            await ws.send(json.dumps({"op": "nope", "req_id": 5}))
            answer = await recv(ws)
            assert (answer["ret_msg"], answer["req_id"]) == ("error:invalid op", 5)
            big = [f"tickers.X{i:05d}USDT" for i in range(1500)]
            await ws.send(json.dumps({"op": "subscribe", "req_id": "big", "args": big}))
            answer = await recv(ws)
            assert answer["success"] is False and "21000" in answer["ret_msg"]
            await ws.send(json.dumps({"op": "subscribe", "args": ["tickers.ETHUSDT"]}))
            assert (await recv(ws))["success"] is True
            await ws.send(json.dumps({"op": "subscribe", "args": ["tickers.ETHUSDT"]}))
            answer = await recv_until(ws, lambda m: "success" in m)
            assert answer["ret_msg"] == "error:already subscribed,topic:tickers.ETHUSDT"
            await ws.send(json.dumps({"op": "ping", "req_id": "still-up"}))
            assert (await recv_until(ws, lambda m: m.get("op") == "ping"))["req_id"] == "still-up"

    h.run(main())


def test_private_auth_answers(h):
    async def main():
        async with Simulator(SimConfig(symbols=["BTCUSDT"])) as sim:
            async with connect(sim.urls["private_ws"]) as ws:
                await ws.send(json.dumps({"op": "subscribe", "req_id": "s",
                                          "args": ["position"]}))
                answer = await recv(ws)
                assert answer["success"] is False and answer["op"] == "subscribe"
                past = int(time.time() * 1000) - 1
                answer = await auth(ws, sim, expires=past, req_id="a1")
                assert answer == {"success": False, "ret_msg": "Params Error", "op": "auth",
                                  "conn_id": answer["conn_id"], "req_id": "a1"}
                bad = {"op": "auth", "args": [sim.api_key, int(time.time() * 1000) + 5000,
                                              "00" * 32]}
                await ws.send(json.dumps(bad))
                answer = await recv(ws)
                assert answer["success"] is False and answer["ret_msg"] == "error:USVC1111"
                answer = await auth(ws, sim)  # int expires, like pybit
                assert answer == {"success": True, "ret_msg": "", "op": "auth",
                                  "conn_id": answer["conn_id"]}
                await ws.send(json.dumps({"req_id": 3, "op": "ping"}))
                pong = await recv(ws)
                assert pong["op"] == "pong" and pong["req_id"] == 3
                assert abs(int(pong["args"][0]) - time.time() * 1000) < 2000
                assert set(pong) == {"req_id", "op", "args", "conn_id"}
            async with connect(sim.urls["private_ws"]) as ws:
                expires = str(int(time.time() * 1000) + 10_000)  # a string, like ccxt
                answer = await auth(ws, sim, expires=expires)
                assert answer["success"] is True
                await ws.send(json.dumps({"op": "subscribe", "args": ["position",
                                                                      "position.linear"]}))
                assert (await recv(ws))["success"] is False
                await ws.send(json.dumps({"op": "subscribe", "args": ["nope"]}))
                assert (await recv(ws))["ret_msg"] == "error:handler not found,topic:nope"

    h.run(main())


def test_private_position_pushed_only_on_change(h):
    async def main():
        cfg = SimConfig(symbols=["BTCUSDT", "ETHUSDT"], spread_bps=0)
        async with Simulator(cfg) as sim, connect(sim.urls["private_ws"]) as ws, \
                connect(sim.urls["private_ws"]) as ws2:
            await auth(ws, sim)
            await auth(ws2, sim)
            await ws.send(json.dumps({"op": "subscribe", "req_id": "p",
                                      "args": ["position", "order", "execution", "wallet"]}))
            assert (await recv(ws))["success"] is True
            await ws2.send(json.dumps({"op": "subscribe", "args": ["position.linear"]}))
            assert (await recv(ws2))["success"] is True
            ctl = await sim.control_client()
            async with ctl:
                await ctl.place_order("BTCUSDT", "Buy", "0.01")
                topics = []
                pushes = []
                while len(pushes) < 2:
                    msg = await recv(ws)
                    topics.append(msg["topic"])
                    assert set(msg) == {"id", "topic", "creationTime", "data"}
                    if msg["topic"] == "position":
                        pushes.append(msg["data"][0])
                assert pushes[0]["size"] == "0" and pushes[0]["seq"] == -1
                assert pushes[1]["size"] == "0.01" and pushes[1]["side"] == "Buy"
                assert pushes[1]["entryPrice"] and pushes[1]["seq"] > 0
                linear = await recv_until(ws2, lambda m: m["data"][0]["size"] == "0.01")
                assert linear["topic"] == "position.linear"
                await recv_until(ws, lambda m: m["topic"] == "wallet")
                # the mark keeps moving, yet nothing is pushed
                with pytest.raises(TimeoutError):
                    await recv(ws, 1.0)
                await ctl.set_trading_stop("BTCUSDT", stopLoss="1000")
                msg = await recv(ws)
                assert msg["topic"] == "position" and msg["data"][0]["stopLoss"] == "1000"
                assert msg["data"][0]["seq"] == pushes[1]["seq"]  # a setting keeps the seq
                await ctl.close_position("BTCUSDT")
                closed = await recv_until(
                    ws, lambda m: m["topic"] == "position" and m["data"][0]["size"] == "0")
                row = closed["data"][0]
                assert (row["side"], row["entryPrice"]) == ("", "0") and row["markPrice"]

    h.run(main())


def test_idle_timeout_and_max_active_time(h):
    async def main():
        cfg = SimConfig(symbols=["BTCUSDT"], idle_timeout=0.6, idle_check_interval=0.1)
        async with Simulator(cfg) as sim:
            async with connect(sim.urls["public_ws"], ping_interval=None) as silent, \
                    connect(sim.urls["private_ws"], ping_interval=None) as chatty:
                for _ in range(8):
                    await chatty.send(json.dumps({"op": "ping"}))
                    await recv(chatty)
                    await asyncio.sleep(0.15)
                with pytest.raises(ConnectionClosed):
                    await asyncio.wait_for(silent.recv(), 1)
                await chatty.send(json.dumps({"op": "ping"}))
                assert (await recv(chatty))["op"] == "pong"
            with pytest.raises(InvalidStatus):
                async with connect(sim.urls["private_ws"] + "?max_active_time=5h"):
                    pass
            async with connect(sim.urls["private_ws"] + "?max_active_time=1m") as ws:
                await ws.send(json.dumps({"op": "ping"}))
                assert (await recv(ws))["op"] == "pong"

    h.run(main())


@pytest.mark.parametrize("compress", [False, True])
def test_compression_optional(h, compress):
    async def main():
        cfg = SimConfig(symbols=["BTCUSDT"], ws_compress=compress)
        async with Simulator(cfg) as sim, connect(sim.urls["public_ws"]) as ws:
            negotiated = ws.response.headers.get("Sec-WebSocket-Extensions", "")
            assert ("permessage-deflate" in negotiated) is compress
            await ws.send(json.dumps({"op": "subscribe", "args": ["tickers.BTCUSDT"]}))
            await recv_until(ws, lambda m: m.get("type") == "delta")

    h.run(main())


def test_inverse_public_socket_and_quiet_symbols(h):
    async def main():
        cfg = SimConfig(symbols=["BTCUSDT", "ETHUSDT"], quiet_symbols=["ETHUSDT"],
                        quiet_interval=2.0)
        async with Simulator(cfg) as sim:
            inv = await connect(sim.urls["public_ws_inverse"], ping_interval=None)
            await inv.send(json.dumps({"op": "subscribe", "args": ["tickers.BTCUSD"]}))
            assert (await recv(inv))["success"] is True
            snap = await recv(inv)
            assert snap["topic"] == "tickers.BTCUSD" and snap["type"] == "snapshot"
            await inv.send(json.dumps({"op": "subscribe", "args": ["tickers.BTCUSDT"]}))
            assert (await recv(inv))["success"] is False  # linear is not on /inverse
            await inv.close()
            pub = await connect(sim.urls["public_ws"], ping_interval=None)
            await pub.send(json.dumps({"op": "subscribe",
                                       "args": ["tickers.BTCUSDT", "tickers.ETHUSDT"]}))
            deltas: dict[str, list[dict]] = {"BTCUSDT": [], "ETHUSDT": []}
            loop = asyncio.get_running_loop()
            until = loop.time() + 3.0
            while loop.time() < until:
                msg = await recv(pub)
                if msg.get("type") == "delta":
                    deltas[msg["data"]["symbol"]].append(msg["data"])
            assert len(deltas["BTCUSDT"]) >= 15
            assert 1 <= len(deltas["ETHUSDT"]) <= 2  # quiet: one move every 2 s
            full = len(SNAPSHOT_ORDER)
            assert any(len(d) < full for d in deltas["BTCUSDT"])  # only changed fields
            await pub.close()

    h.run(main())
