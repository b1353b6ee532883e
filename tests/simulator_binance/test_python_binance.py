"""Fidelity: python-binance's futures REST client and futures sockets against the
Binance personality, unchanged but for their URLs (AsyncClient.FUTURES_URL and
BinanceSocketManager.FSTREAM_URL)."""

from __future__ import annotations

import asyncio
from decimal import Decimal

import pytest
from binance import AsyncClient, BinanceSocketManager
from binance.exceptions import BinanceAPIException

from .conftest import make_sim, run

pytestmark = pytest.mark.integration


def point(sim) -> AsyncClient:
    client = AsyncClient(sim.api_key, sim.api_secret)
    client.FUTURES_URL = f"{sim.urls['rest']}/fapi"
    return client


def sockets(client: AsyncClient, sim) -> BinanceSocketManager:
    bsm = BinanceSocketManager(client)
    bsm.FSTREAM_URL = sim.urls["rest"].replace("http://", "ws://") + "/"
    return bsm


async def next_event(socket, kind: str, timeout: float = 5.0) -> dict:
    async with asyncio.timeout(timeout):
        while True:
            msg = await socket.recv()
            data = msg.get("data", msg) if isinstance(msg, dict) else msg
            if isinstance(data, dict) and data.get("e") == kind:
                return data


def test_futures_rest_client_reads_markets_marks_and_positions_and_places_orders():
    async def main():
        async with make_sim() as sim:
            client = point(sim)
            try:
                info = await client.futures_exchange_info()
                assert {s["symbol"] for s in info["symbols"]} == set(sim.binance.symbols)
                mark = await client.futures_mark_price(symbol="BTCUSDT")
                assert Decimal(mark["markPrice"]) == sim.prices.mark("BTCUSDT")
                ticker = await client.futures_symbol_ticker(symbol="ETHUSDT")
                assert Decimal(ticker["price"]) > 0
                assert await client.futures_get_position_mode() == {"dualSidePosition": False}
                lev = await client.futures_change_leverage(symbol="BTCUSDT", leverage=5)
                assert lev["leverage"] == 5
                order = await client.futures_create_order(symbol="BTCUSDT", side="BUY",
                                                          type="MARKET", quantity="0.010")
                assert order["symbol"] == "BTCUSDT" and order["orderId"] > 0
                (pos,) = await client.futures_position_information(symbol="BTCUSDT")
                assert (pos["positionAmt"], pos["positionSide"]) == ("0.010", "BOTH")
                account = await client.futures_account()
                assert account["assets"][0]["asset"] == "USDT"
                with pytest.raises(BinanceAPIException) as err:
                    await client.futures_create_order(symbol="NOPEUSDT", side="BUY",
                                                      type="MARKET", quantity="1")
                assert err.value.code == -1121
            finally:
                await client.close_connection()

    run(main())


def test_futures_rest_client_holds_long_and_short_in_hedge_mode():
    async def main():
        async with make_sim() as sim:
            client = point(sim)
            try:
                await client.futures_change_position_mode(dualSidePosition="true")
                assert await client.futures_get_position_mode() == {"dualSidePosition": True}
                await client.futures_create_order(symbol="ETHUSDT", side="BUY", type="MARKET",
                                                  quantity="1.00", positionSide="LONG")
                await client.futures_create_order(symbol="ETHUSDT", side="SELL",
                                                  type="MARKET", quantity="0.50",
                                                  positionSide="SHORT")
                rows = await client.futures_position_information(symbol="ETHUSDT")
                assert sorted((r["positionSide"], r["positionAmt"]) for r in rows) == [
                    ("LONG", "1.00"), ("SHORT", "-0.50")]
                with pytest.raises(BinanceAPIException) as err:
                    await client.futures_change_position_mode(dualSidePosition="false")
                assert err.value.code == -4068
            finally:
                await client.close_connection()

    run(main())


@pytest.mark.slow  # python-binance's socket takes its 10 s read timeout to exit
def test_futures_user_socket_receives_account_and_order_updates():
    async def main():
        async with make_sim() as sim:
            client = point(sim)
            try:
                async with sockets(client, sim).futures_user_socket() as socket:
                    await asyncio.sleep(0.2)
                    await client.futures_create_order(symbol="ETHUSDT", side="SELL",
                                                      type="MARKET", quantity="0.50")
                    new = await next_event(socket, "ORDER_TRADE_UPDATE")
                    trade = await next_event(socket, "ORDER_TRADE_UPDATE")
                    assert (new["o"]["X"], trade["o"]["X"]) == ("NEW", "FILLED")
                    update = await next_event(socket, "ACCOUNT_UPDATE")
                    assert update["a"]["P"][0]["pa"] == "-0.50"
            finally:
                await client.close_connection()

    run(main())


def test_futures_mark_price_sockets_stream_the_engine_mark():
    async def main():
        async with make_sim(mark_fast_interval=0.2) as sim:
            client = point(sim)
            try:
                bsm = sockets(client, sim)
                async with bsm.symbol_mark_price_socket("BTCUSDT") as one:
                    update = await next_event(one, "markPriceUpdate")
                    assert update["s"] == "BTCUSDT" and Decimal(update["p"]) > 0
                async with bsm.all_mark_price_socket() as every:
                    async with asyncio.timeout(5):
                        msg = await every.recv()
                    assert {d["s"] for d in msg["data"]} == set(sim.binance.symbols)
            finally:
                await client.close_connection()

    run(main())


@pytest.mark.slow
def test_a_reconnect_on_an_expired_listen_key_sits_silent():
    """The peer weakness issue 18 names: after its key expired, python-binance's user
    socket reconnects with the same key and gets nothing more (until its keepalive timer
    fetches a new key, five minutes later by default)."""

    async def main():
        async with make_sim() as sim:
            client = point(sim)
            try:
                async with sockets(client, sim).futures_user_socket() as socket:
                    await asyncio.sleep(0.2)
                    sim.binance.user.keys.expire()
                    await next_event(socket, "listenKeyExpired")
                    hub = sim.binance.user
                    (first,) = hub.state.values()
                    await hub.drop_all("abort")
                    async with asyncio.timeout(10):  # python-binance reconnects...
                        while hub.total_accepted < 2 or not hub.state:
                            await asyncio.sleep(0.05)
                    (again,) = hub.state.values()
                    assert again.streams == first.streams  # ...with the expired key
                    await client.futures_create_order(symbol="BTCUSDT", side="BUY",
                                                      type="MARKET", quantity="0.010")
                    with pytest.raises(TimeoutError):
                        await next_event(socket, "ACCOUNT_UPDATE", timeout=1.5)
            finally:
                await client.close_connection()

    run(main())
