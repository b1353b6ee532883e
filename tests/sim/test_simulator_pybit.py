"""Fidelity: Bybit's official SDK pybit against the simulator, only URLs changed."""

from __future__ import annotations

import queue
import time

import pytest
from pybit import unified_trading
from pybit.exceptions import InvalidRequestError

pytestmark = pytest.mark.integration


def http_session(ts, secret=None):
    session = unified_trading.HTTP(testnet=False, api_key=ts.sim.api_key,
                                   api_secret=secret or ts.sim.api_secret, max_retries=3)
    session.endpoint = ts.urls["rest"]
    return session


def wait_for(q: queue.Queue, pred, timeout: float = 5.0) -> dict:
    deadline = time.monotonic() + timeout
    while True:
        msg = q.get(timeout=max(0.01, deadline - time.monotonic()))
        if pred(msg):
            return msg


def test_pybit_http_orders_and_positions(threaded_sim):
    session = http_session(threaded_sim)
    assert session.get_server_time()["retCode"] == 0
    info = session.get_instruments_info(category="linear")
    assert {i["symbol"] for i in info["result"]["list"]} >= {"BTCUSDT", "ETHUSDT"}
    tick = session.get_tickers(category="linear", symbol="ETHUSDT")["result"]["list"][0]
    assert tick["markPrice"]
    order = session.place_order(category="linear", symbol="BTCUSDT", side="Buy",
                                orderType="Market", qty="0.01", orderLinkId="pybit-1")
    assert order["retCode"] == 0 and order["result"]["orderLinkId"] == "pybit-1"
    (pos,) = session.get_positions(category="linear", symbol="BTCUSDT")["result"]["list"]
    assert (pos["side"], pos["size"]) == ("Buy", "0.01") and float(pos["avgPrice"]) > 0
    listed = session.get_positions(category="linear", settleCoin="USDT")["result"]["list"]
    assert [p["symbol"] for p in listed] == ["BTCUSDT"]
    assert session.set_leverage(category="linear", symbol="BTCUSDT", buyLeverage="20",
                                sellLeverage="20")["retCode"] == 0
    with pytest.raises(InvalidRequestError) as err:
        session.set_leverage(category="linear", symbol="BTCUSDT", buyLeverage="20",
                             sellLeverage="20")
    assert err.value.status_code == 110043
    with pytest.raises(InvalidRequestError) as err:
        session.place_order(category="linear", symbol="BTCUSDT", side="Buy",
                            orderType="Market", qty="0.0001")
    assert err.value.status_code == 10001
    with pytest.raises(InvalidRequestError) as err:
        http_session(threaded_sim, secret="wrong").get_positions(category="linear",
                                                                 symbol="BTCUSDT")
    assert err.value.status_code == 10004
    # pybit retries 10006, honouring X-Bapi-Limit-Reset-Timestamp
    threaded_sim.sync(lambda: threaded_sim.sim.faults.set_rest_error("rate_limit", 1))
    assert session.get_wallet_balance(accountType="UNIFIED")["retCode"] == 0


def test_pybit_private_stream_sees_position_lifecycle(threaded_sim, monkeypatch):
    monkeypatch.setattr(unified_trading, "PRIVATE_WSS", threaded_sim.urls["private_ws"])
    session = http_session(threaded_sim)
    ws = unified_trading.WebSocket(channel_type="private", testnet=False,
                                   api_key=threaded_sim.sim.api_key,
                                   api_secret=threaded_sim.sim.api_secret)
    try:
        got: queue.Queue = queue.Queue()
        ws.position_stream(got.put)
        time.sleep(0.3)  # pybit does not wait for the subscribe ack
        session.place_order(category="linear", symbol="ETHUSDT", side="Sell",
                            orderType="Market", qty="0.5")
        opened = wait_for(got, lambda m: m["data"][0]["size"] == "0.5")
        assert opened["topic"] == "position" and opened["data"][0]["side"] == "Sell"
        session.place_order(category="linear", symbol="ETHUSDT", side="Sell",
                            orderType="Market", qty="0.5")
        changed = wait_for(got, lambda m: m["data"][0]["size"] == "1")
        assert changed["data"][0]["seq"] > opened["data"][0]["seq"]
        session.set_trading_stop(category="linear", symbol="ETHUSDT", positionIdx=0,
                                 takeProfit="1000")
        tpsl = wait_for(got, lambda m: m["data"][0]["takeProfit"] != "0")
        assert tpsl["data"][0]["takeProfit"] == "1000"
        session.place_order(category="linear", symbol="ETHUSDT", side="Buy",
                            orderType="Market", qty="1", reduceOnly=True)
        closed = wait_for(got, lambda m: m["data"][0]["size"] == "0")
        assert (closed["data"][0]["side"], closed["data"][0]["entryPrice"]) == ("", "0")
    finally:
        ws.exit()


def test_pybit_public_ticker_stream(threaded_sim, monkeypatch):
    url = threaded_sim.urls["public_ws"].replace("/linear", "/{CHANNEL_TYPE}")
    monkeypatch.setattr(unified_trading, "PUBLIC_WSS", url)
    ws = unified_trading.WebSocket(channel_type="linear", testnet=False)
    try:
        got: queue.Queue = queue.Queue()
        ws.ticker_stream(symbol="BTCUSDT", callback=got.put)
        first = got.get(timeout=5)
        assert first["topic"] == "tickers.BTCUSDT" and "openInterestValue" in first["data"]
        marks = set()
        for _ in range(10):
            msg = got.get(timeout=2)
            marks.add(msg["data"]["markPrice"])
            assert msg["data"]["symbol"] == "BTCUSDT" and msg["cs"] > first["cs"]
        assert len(marks) > 1  # deltas were merged into the snapshot by pybit
    finally:
        ws.exit()


def test_pybit_hedge_mode_two_positions_per_symbol(threaded_sim, monkeypatch):
    monkeypatch.setattr(unified_trading, "PRIVATE_WSS", threaded_sim.urls["private_ws"])
    session = http_session(threaded_sim)
    assert session.switch_position_mode(category="linear", symbol="XRPUSDT",
                                        mode=3)["retCode"] == 0
    ws = unified_trading.WebSocket(channel_type="private", testnet=False,
                                   api_key=threaded_sim.sim.api_key,
                                   api_secret=threaded_sim.sim.api_secret)
    try:
        got: queue.Queue = queue.Queue()
        ws.position_stream(got.put)
        time.sleep(0.3)
        session.place_order(category="linear", symbol="XRPUSDT", side="Buy",
                            orderType="Market", qty="100", positionIdx=1)
        session.place_order(category="linear", symbol="XRPUSDT", side="Sell",
                            orderType="Market", qty="30", positionIdx=2)
        short = wait_for(got, lambda m: m["data"][0]["size"] == "30")["data"][0]
        assert (short["positionIdx"], short["side"]) == (2, "Sell")
        rows = session.get_positions(category="linear", symbol="XRPUSDT")["result"]["list"]
        assert [(r["positionIdx"], r["side"], r["size"]) for r in rows] == [
            (1, "Buy", "100"), (2, "Sell", "30")]
        session.place_order(category="linear", symbol="XRPUSDT", side="Buy",
                            orderType="Market", qty="30", positionIdx=2, reduceOnly=True)
        closed = wait_for(got, lambda m: m["data"][0]["positionIdx"] == 2
                          and m["data"][0]["size"] == "0")["data"][0]
        assert closed["side"] == ""
        with pytest.raises(InvalidRequestError) as err:  # one-way index in hedge mode
            session.place_order(category="linear", symbol="XRPUSDT", side="Buy",
                                orderType="Market", qty="1", positionIdx=0)
        assert err.value.status_code == 10001
        with pytest.raises(InvalidRequestError) as err:  # a position is open
            session.switch_position_mode(category="linear", symbol="XRPUSDT", mode=0)
        assert err.value.status_code == 110024
    finally:
        ws.exit()


def test_pybit_inverse_positions_and_ticker_stream(threaded_sim, monkeypatch):
    session = http_session(threaded_sim)
    info = session.get_instruments_info(category="inverse")["result"]["list"]
    btc = next(i for i in info if i["symbol"] == "BTCUSD")
    assert (btc["contractType"], btc["settleCoin"]) == ("InversePerpetual", "BTC")
    session.place_order(category="inverse", symbol="BTCUSD", side="Sell", orderType="Market",
                        qty="1000")
    (pos,) = session.get_positions(category="inverse")["result"]["list"]
    assert (pos["symbol"], pos["side"], pos["size"]) == ("BTCUSD", "Sell", "1000")
    # inverse value is in the coin: size / entry
    assert abs(float(pos["positionValue"]) - 1000 / float(pos["avgPrice"])) < 1e-8
    assert session.get_positions(category="linear", settleCoin="USDT")["result"]["list"] == []
    url = threaded_sim.urls["public_ws"].replace("/linear", "/{CHANNEL_TYPE}")
    monkeypatch.setattr(unified_trading, "PUBLIC_WSS", url)
    ws = unified_trading.WebSocket(channel_type="inverse", testnet=False)
    try:
        got: queue.Queue = queue.Queue()
        ws.ticker_stream(symbol="BTCUSD", callback=got.put)
        first = got.get(timeout=5)
        assert first["topic"] == "tickers.BTCUSD" and first["data"]["markPrice"]
    finally:
        ws.exit()
