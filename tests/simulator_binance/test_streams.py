"""Market and user data streams: routes, method frames, listenKey lifecycle, events."""

from __future__ import annotations

import asyncio
from decimal import Decimal

import aiohttp
import pytest

from .conftest import Rest, connect, make_sim, recv_event, recv_json, run, silent_for

pytestmark = pytest.mark.integration
FAST = {"mark_interval": 0.3, "mark_fast_interval": 0.1}


async def with_sim(fn, **binance):
    async with make_sim(**binance) as sim, aiohttp.ClientSession() as session:
        return await fn(Rest(sim, session), sim)


def test_combined_market_stream_wraps_mark_price_updates_with_their_stream_name():
    async def main(rest: Rest, sim):
        url = f"{sim.urls['market_ws']}/stream?streams=btcusdt@markPrice@1s/!markPrice@arr"
        async with connect(url) as ws:
            one = await recv_event(ws, "markPriceUpdate")
            assert one["stream"] in ("btcusdt@markPrice@1s", "!markPrice@arr")
            if one["stream"] == "btcusdt@markPrice@1s":
                data = one["data"]
                assert data["s"] == "BTCUSDT" and set(data) == {"e", "E", "s", "p", "i", "P",
                                                                "r", "T"}
            every = await recv_event(ws, "markPriceUpdate")
            while every["stream"] != "!markPrice@arr":
                every = await recv_event(ws, "markPriceUpdate")
            assert {d["s"] for d in every["data"]} == set(sim.binance.symbols)

    run(with_sim(main, **FAST))


def test_subscribe_list_and_unsubscribe_method_frames_answer_with_their_id():
    async def main(rest: Rest, sim):
        async with connect(f"{sim.urls['market_ws']}/ws") as ws:
            await ws.send('{"method":"SUBSCRIBE","params":["ethusdt@markPrice@1s"],"id":1}')
            assert await recv_json(ws) == {"result": None, "id": 1}
            raw = await recv_json(ws)
            assert raw["e"] == "markPriceUpdate" and raw["s"] == "ETHUSDT"
            await ws.send('{"method":"LIST_SUBSCRIPTIONS","id":2}')
            answer = await recv_event_or_answer(ws, 2)
            assert answer == {"result": ["ethusdt@markPrice@1s"], "id": 2}
            await ws.send('{"method":"UNSUBSCRIBE","params":["ethusdt@markPrice@1s"],"id":3}')
            assert (await recv_event_or_answer(ws, 3))["result"] is None
            assert [f for f in await silent_for(ws, 0.4) if "e" in f] == []
            await ws.send('{"method":"NOPE","id":4}')
            error = await recv_json(ws)
            assert error["code"] == 2 and error["id"] == 4

    run(with_sim(main, **FAST))


async def recv_event_or_answer(ws, req_id: int) -> dict:
    while True:
        msg = await recv_json(ws)
        if isinstance(msg, dict) and msg.get("id") == req_id:
            return msg


def test_mark_price_on_the_public_route_stays_silent_it_is_a_market_stream():
    async def main(rest: Rest, sim):
        async with connect(f"{sim.urls['public_ws']}/ws/btcusdt@markPrice@1s") as ws:
            assert await silent_for(ws, 0.5) == []

    run(with_sim(main, **FAST))


def test_a_listen_key_on_the_legacy_route_opens_but_only_private_delivers():
    async def main(rest: Rest, sim):
        key = await rest.listen_key()
        base = sim.urls["rest"].replace("http", "ws")
        async with connect(f"{base}/ws/{key}") as legacy, \
                connect(f"{sim.urls['private_ws']}/ws?listenKey={key}") as private:
            await asyncio.sleep(0.1)
            await rest.market_order("BTCUSDT", "BUY", "0.010")
            update = await recv_event(private, "ACCOUNT_UPDATE")
            assert update["a"]["m"] == "ORDER"
            assert await silent_for(legacy, 0.5) == []

    run(with_sim(main))


def test_account_update_carries_only_the_symbols_whose_position_changed():
    async def main(rest: Rest, sim):
        await rest.market_order("ETHUSDT", "BUY", "1.00")
        key = await rest.listen_key()
        async with connect(f"{sim.urls['private_ws']}/ws?listenKey={key}") as ws:
            await asyncio.sleep(0.1)
            await rest.market_order("BTCUSDT", "SELL", "0.010")
            update = await recv_event(ws, "ACCOUNT_UPDATE")
            (pos,) = update["a"]["P"]
            assert (pos["s"], pos["pa"], pos["ps"]) == ("BTCUSDT", "-0.010", "BOTH")
            assert update["a"]["B"][0]["a"] == "USDT"
            assert update["E"] >= update["T"]

    run(with_sim(main))


def test_a_fill_pushes_order_trade_update_new_then_trade():
    async def main(rest: Rest, sim):
        key = await rest.listen_key()
        async with connect(f"{sim.urls['private_ws']}/ws?listenKey={key}") as ws:
            await asyncio.sleep(0.1)
            placed = await rest.market_order("BTCUSDT", "BUY", "0.010",
                                             newClientOrderId="mine-1")
            new = await recv_event(ws, "ORDER_TRADE_UPDATE")
            trade = await recv_event(ws, "ORDER_TRADE_UPDATE")
            assert (new["o"]["x"], new["o"]["X"]) == ("NEW", "NEW")
            assert (trade["o"]["x"], trade["o"]["X"], trade["o"]["z"]) == (
                "TRADE", "FILLED", "0.010")
            assert trade["o"]["i"] == placed["orderId"] and trade["o"]["c"] == "mine-1"

    run(with_sim(main))


def test_funding_pushes_a_balance_only_account_update_for_cross_positions():
    async def main(rest: Rest, sim):
        await rest.market_order("BTCUSDT", "BUY", "0.010")
        key = await rest.listen_key()
        async with connect(f"{sim.urls['private_ws']}/ws?listenKey={key}") as ws:
            await asyncio.sleep(0.1)
            sim.account.settle_funding()
            update = await recv_event(ws, "ACCOUNT_UPDATE")
            assert update["a"]["m"] == "FUNDING_FEE" and update["a"]["P"] == []
            assert update["a"]["B"][0]["a"] == "USDT"

    run(with_sim(main))


def test_a_leverage_change_pushes_account_config_update_and_no_account_update():
    async def main(rest: Rest, sim):
        key = await rest.listen_key()
        async with connect(f"{sim.urls['private_ws']}/ws?listenKey={key}") as ws:
            await asyncio.sleep(0.1)
            await rest.ok("POST", "/fapi/v1/leverage", {"symbol": "BTCUSDT", "leverage": "7"})
            config = await recv_event(ws, "ACCOUNT_CONFIG_UPDATE")
            assert config["ac"] == {"s": "BTCUSDT", "l": 7}
            assert await silent_for(ws, 0.3) == []

    run(with_sim(main))


def test_an_expired_listen_key_sends_listen_key_expired_then_the_socket_stays_silent():
    async def main(rest: Rest, sim):
        key = await rest.listen_key()
        async with connect(f"{sim.urls['private_ws']}/ws?listenKey={key}") as ws:
            expired = await recv_event(ws, "listenKeyExpired", timeout=5)
            assert expired["listenKey"] == key and isinstance(expired["E"], str)
            await rest.market_order("BTCUSDT", "BUY", "0.010")
            assert await silent_for(ws, 0.5) == []
        status, body, _ = await rest.call("PUT", "/fapi/v1/listenKey", {"listenKey": key})
        assert (status, body["code"]) == (400, -1125)
        assert await rest.listen_key() != key

    run(with_sim(main, listen_key_validity=1.0))


def test_keepalive_extends_a_listen_key_and_post_returns_the_active_one():
    async def main(rest: Rest, sim):
        key = await rest.listen_key()
        for _ in range(3):
            await asyncio.sleep(0.5)
            status, body, _ = await rest.call("PUT", "/fapi/v1/listenKey", {"listenKey": key})
            assert status == 200 and body == {"listenKey": key}
        assert await rest.listen_key() == key

    run(with_sim(main, listen_key_validity=1.0))


def test_the_listen_key_expiry_fault_expires_keys_at_once():
    async def main(rest: Rest, sim):
        key = await rest.listen_key()
        async with connect(f"{sim.urls['private_ws']}/ws?listenKey={key}") as ws, \
                await sim.control_client() as ctl:
            await asyncio.sleep(0.1)
            assert await ctl.expire_listen_keys() == 1
            assert (await recv_event(ws, "listenKeyExpired"))["listenKey"] == key

    run(with_sim(main))


def test_connections_are_cut_at_their_lifetime():
    async def main(rest: Rest, sim):
        key = await rest.listen_key()
        async with connect(f"{sim.urls['market_ws']}/ws/btcusdt@markPrice") as market, \
                connect(f"{sim.urls['private_ws']}/ws?listenKey={key}") as user:
            async with asyncio.timeout(5):
                await market.wait_closed()
                await user.wait_closed()
            assert market.close_code == 1000 and user.close_code == 1000
        assert sim.binance.market.cut_for_lifetime == 1
        assert sim.binance.user.cut_for_lifetime == 1

    run(with_sim(main, connection_lifetime=0.5))


def test_a_client_sending_too_many_frames_per_second_is_disconnected():
    async def main(rest: Rest, sim):
        async with connect(f"{sim.urls['market_ws']}/ws") as ws:
            for i in range(15):
                await ws.send(f'{{"method":"LIST_SUBSCRIPTIONS","id":{i}}}')
            async with asyncio.timeout(5):
                await ws.wait_closed()
        assert sim.binance.market.cut_for_rate == 1

    run(with_sim(main))


def test_duplicate_fault_sends_one_account_update_twice():
    async def main(rest: Rest, sim):
        key = await rest.listen_key()
        async with connect(f"{sim.urls['private_ws']}/ws?listenKey={key}") as ws:
            await asyncio.sleep(0.1)
            sim.faults.set_position_fault("duplicate", 1)
            await rest.market_order("BTCUSDT", "BUY", "0.010")
            first = await recv_event(ws, "ACCOUNT_UPDATE")
            second = await recv_event(ws, "ACCOUNT_UPDATE")
            assert first == second

    run(with_sim(main))


def test_a_private_stall_holds_pushes_and_pings():
    async def main(rest: Rest, sim):
        key = await rest.listen_key()
        async with connect(f"{sim.urls['private_ws']}/ws?listenKey={key}") as ws:
            await asyncio.sleep(0.1)
            sim.faults.stall("private", 0.6)
            await rest.market_order("BTCUSDT", "BUY", "0.010")
            assert await silent_for(ws, 0.4) == []

    run(with_sim(main))


def test_the_private_stream_route_wraps_events_and_events_filters_them():
    async def main(rest: Rest, sim):
        key = await rest.listen_key()
        url = f"{sim.urls['private_ws']}/stream?listenKey={key}&events=ACCOUNT_UPDATE"
        async with connect(url) as ws:
            await asyncio.sleep(0.1)
            await rest.market_order("BTCUSDT", "BUY", "0.010")
            frames = await silent_for(ws, 0.5)
            assert [f["data"]["e"] for f in frames] == ["ACCOUNT_UPDATE"]
            assert frames[0]["stream"] == key

    run(with_sim(main))


def test_the_server_pings_and_cuts_a_client_that_never_answers():
    async def main(rest: Rest, sim):
        hub = sim.binance.market
        async with connect(f"{sim.urls['market_ws']}/ws") as answering:
            # a client that answers nothing: aiohttp without autoping
            silent = await rest.session.ws_connect(f"{sim.urls['market_ws']}/ws",
                                                   autoping=False, heartbeat=None)
            async with asyncio.timeout(10):
                msg = await silent.receive()
                assert msg.type == aiohttp.WSMsgType.PING
                while not silent.closed:
                    await silent.receive()
            assert hub.pings_sent >= 2
            await answering.send('{"method":"LIST_SUBSCRIPTIONS","id":1}')
            assert await recv_json(answering) == {"result": [], "id": 1}

    run(with_sim(main, ping_interval=0.2, pong_timeout=1.0), timeout=30)


def test_reorder_fault_delivers_the_held_account_update_after_the_next_one():
    async def main(rest: Rest, sim):
        key = await rest.listen_key()
        async with connect(f"{sim.urls['private_ws']}/ws?listenKey={key}") as ws:
            await asyncio.sleep(0.1)
            sim.faults.set_position_fault("reorder", 1)
            await rest.market_order("BTCUSDT", "BUY", "0.010")
            await rest.market_order("BTCUSDT", "BUY", "0.010")
            first = await recv_event(ws, "ACCOUNT_UPDATE")
            second = await recv_event(ws, "ACCOUNT_UPDATE")
            assert first["a"]["P"][0]["pa"] == "0.020" and second["a"]["P"][0]["pa"] == "0.010"
            assert first["T"] >= second["T"]

    run(with_sim(main))


def test_drop_and_malformed_faults_act_on_the_user_stream():
    async def main(rest: Rest, sim):
        key = await rest.listen_key()
        async with connect(f"{sim.urls['private_ws']}/ws?listenKey={key}") as ws, \
                await sim.control_client() as ctl:
            await asyncio.sleep(0.1)
            assert await ctl.malformed("private") == 1
            async with asyncio.timeout(5):
                text = await ws.recv()
            assert text.startswith('{"e":"markPriceUpdate"') and not text.endswith("}")
            assert await ctl.drop("private", "abort") == 1
            async with asyncio.timeout(5):
                await ws.wait_closed()

    run(with_sim(main))


def test_a_liquidation_is_pushed_as_a_calculated_liquidation_order():
    async def main(rest: Rest, sim):
        await rest.ok("POST", "/fapi/v1/leverage", {"symbol": "BTCUSDT", "leverage": "50"})
        key = await rest.listen_key()
        async with connect(f"{sim.urls['private_ws']}/ws?listenKey={key}") as ws:
            await asyncio.sleep(0.1)
            await rest.market_order("BTCUSDT", "BUY", "0.010")
            liq = sim.account.position("BTCUSDT").liq_price()
            sim.prices.set_price("BTCUSDT", liq - 100)
            while True:
                event = await recv_event(ws, "ORDER_TRADE_UPDATE")
                if event["o"]["o"] == "LIQUIDATION":
                    break
            assert (event["o"]["x"], event["o"]["X"]) == ("CALCULATED", "FILLED")
            assert event["o"]["c"].startswith("autoclose-") and event["o"]["S"] == "SELL"
            update = await recv_event(ws, "ACCOUNT_UPDATE")
            assert update["a"]["P"][0]["pa"] == "0.000"

    run(with_sim(main))


def test_funding_through_the_control_api_books_each_open_position():
    async def main(rest: Rest, sim):
        await rest.market_order("BTCUSDT", "BUY", "0.010")
        sim.prices.set_price("BTCUSDT", "65000")  # held: the mark stays put
        async with await sim.control_client() as ctl:
            (row,) = await ctl.settle_funding("0.0001")
        expected = -(Decimal("65000") * Decimal("0.010") * Decimal("0.0001"))
        assert row["symbol"] == "BTCUSDT" and Decimal(row["amount"]) == expected

    run(with_sim(main))


def test_a_fill_pushes_trade_lite_and_by_default_order_updates_before_the_account_update():
    async def main(rest: Rest, sim):
        key = await rest.listen_key()
        async with connect(f"{sim.urls['private_ws']}/ws?listenKey={key}") as ws:
            await asyncio.sleep(0.1)
            await rest.market_order("BTCUSDT", "BUY", "0.010")
            frames = await silent_for(ws, 0.5)
            kinds = [f["e"] for f in frames]
            assert kinds == ["ORDER_TRADE_UPDATE", "TRADE_LITE", "ORDER_TRADE_UPDATE",
                             "ACCOUNT_UPDATE"]
            lite = frames[1]
            assert (lite["s"], lite["l"], lite["i"]) == ("BTCUSDT", "0.010",
                                                        frames[2]["o"]["i"])

    run(with_sim(main))


def test_account_update_first_pushes_the_account_update_before_the_order_updates():
    async def main(rest: Rest, sim):
        key = await rest.listen_key()
        async with connect(f"{sim.urls['private_ws']}/ws?listenKey={key}") as ws:
            await asyncio.sleep(0.1)
            await rest.market_order("BTCUSDT", "BUY", "0.010")
            frames = await silent_for(ws, 0.5)
            assert [f["e"] for f in frames] == ["ACCOUNT_UPDATE", "ORDER_TRADE_UPDATE",
                                                "TRADE_LITE", "ORDER_TRADE_UPDATE"]
            times = [f["E"] for f in frames]
            assert times == sorted(times)

    run(with_sim(main, account_update_first=True))


def test_deleting_a_listen_key_closes_its_connections_and_invalidates_it():
    async def main(rest: Rest, sim):
        key = await rest.listen_key()
        async with connect(f"{sim.urls['private_ws']}/ws?listenKey={key}") as ws:
            await asyncio.sleep(0.1)
            assert await rest.ok("DELETE", "/fapi/v1/listenKey", {"listenKey": key},
                                 signed=False) == {}
            async with asyncio.timeout(5):
                await ws.wait_closed()
        _status, body, _ = await rest.call("PUT", "/fapi/v1/listenKey", {"listenKey": key})
        assert body["code"] == -1125

    run(with_sim(main))


def test_a_private_connection_can_subscribe_a_listen_key_with_a_method_frame():
    async def main(rest: Rest, sim):
        key = await rest.listen_key()
        async with connect(f"{sim.urls['private_ws']}/ws") as ws:
            await ws.send(f'{{"method":"SUBSCRIBE","params":["{key}"],"id":7}}')
            assert await recv_json(ws) == {"result": None, "id": 7}
            await ws.send('{"method":"LIST_SUBSCRIPTIONS","id":8}')
            assert await recv_json(ws) == {"result": [key], "id": 8}
            await rest.market_order("BTCUSDT", "BUY", "0.010")
            assert (await recv_event(ws, "ACCOUNT_UPDATE"))["a"]["m"] == "ORDER"

    run(with_sim(main))


def test_the_keepalive_rejection_fault_drops_the_key_so_a_new_one_must_be_made():
    async def main(rest: Rest, sim):
        key = await rest.listen_key()
        async with connect(f"{sim.urls['private_ws']}/ws?listenKey={key}") as ws, \
                await sim.control_client() as ctl:
            await asyncio.sleep(0.1)
            assert await ctl.reject_keepalives(1) == 1
            status, body, _ = await rest.call("PUT", "/fapi/v1/listenKey", {"listenKey": key})
            assert (status, body["code"]) == (400, -1125)
            assert (await recv_event(ws, "listenKeyExpired"))["listenKey"] == key
        fresh = await rest.listen_key()
        assert fresh != key
        status, body, _ = await rest.call("PUT", "/fapi/v1/listenKey", {"listenKey": fresh})
        assert status == 200

    run(with_sim(main))


def test_mark_price_streams_keep_their_cadences():
    async def main(rest: Rest, sim):
        url = f"{sim.urls['market_ws']}/stream?streams=btcusdt@markPrice/btcusdt@markPrice@1s"
        async with connect(url) as ws:
            frames = await silent_for(ws, 1.6)
        slow = sum(f["stream"] == "btcusdt@markPrice" for f in frames)
        fast = sum(f["stream"] == "btcusdt@markPrice@1s" for f in frames)
        assert 3 <= slow <= 6 and 11 <= fast <= 17  # every 0.3 s and every 0.1 s (loaded CI)

    run(with_sim(main, mark_interval=0.3, mark_fast_interval=0.1))


def test_clearing_the_faults_ends_pending_keepalive_rejections():
    async def main(rest: Rest, sim):
        key = await rest.listen_key()
        async with await sim.control_client() as ctl:
            await ctl.reject_keepalives(5)
            await ctl.clear_faults()
        status, body, _ = await rest.call("PUT", "/fapi/v1/listenKey", {"listenKey": key})
        assert (status, body) == (200, {"listenKey": key})

    run(with_sim(main))
