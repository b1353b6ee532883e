"""Hedge mode (dualSidePosition) on the Binance personality: the position mode endpoints,
positionSide on orders, per-side positionRisk rows and ``ps`` in the user data events,
mapped onto the shared account engine's hedge positions (index 1 LONG, 2 SHORT).

https://developers.binance.com/docs/derivatives/usds-margined-futures/trade/rest-api/Change-Position-Mode
https://developers.binance.com/docs/derivatives/usds-margined-futures/trade/rest-api/New-Order
"""

from __future__ import annotations

import asyncio

import aiohttp
import pytest

from .conftest import Rest, connect, make_sim, recv_event, run

pytestmark = pytest.mark.integration


async def with_rest(fn, **binance):
    async with make_sim(**binance) as sim, aiohttp.ClientSession() as session:
        return await fn(Rest(sim, session), sim)


async def hedge(rest: Rest) -> None:
    body = await rest.ok("POST", "/fapi/v1/positionSide/dual", {"dualSidePosition": "true"})
    assert body == {"code": 200, "msg": "success"}


def test_switching_to_hedge_mode_answers_success_and_puts_every_symbol_in_hedge_mode():
    async def main(rest: Rest, sim):
        await hedge(rest)
        assert await rest.ok("GET", "/fapi/v1/positionSide/dual") == {"dualSidePosition": True}
        assert all(sim.account.indexes(s) == (1, 2) for s in sim.binance.symbols)
        _status, body, _ = await rest.call("POST", "/fapi/v1/positionSide/dual",
                                          {"dualSidePosition": "true"}, signed=True)
        assert body["code"] == -4059

    run(with_rest(main))


def test_the_position_mode_cannot_change_while_a_position_is_open():
    async def main(rest: Rest, sim):
        await rest.market_order("SOLUSDT", "BUY", "1")
        status, body, _ = await rest.call("POST", "/fapi/v1/positionSide/dual",
                                          {"dualSidePosition": "true"}, signed=True)
        assert (status, body["code"]) == (400, -4068)
        assert await rest.ok("GET", "/fapi/v1/positionSide/dual") == {"dualSidePosition": False}

    run(with_rest(main))


def test_hedge_orders_need_long_or_short_and_both_is_refused_with_4061():
    async def main(rest: Rest, sim):
        await hedge(rest)
        _status, body, _ = await rest.call("POST", "/fapi/v1/order", {
            "symbol": "BTCUSDT", "side": "BUY", "type": "MARKET", "quantity": "0.010"},
            signed=True)
        assert body["code"] == -4061

    run(with_rest(main))


def test_long_and_short_are_held_at_once_and_listed_per_side():
    async def main(rest: Rest, sim):
        await hedge(rest)
        await rest.market_order("BTCUSDT", "BUY", "0.020", positionSide="LONG")
        await rest.market_order("BTCUSDT", "SELL", "0.010", positionSide="SHORT")
        rows = await rest.ok("GET", "/fapi/v3/positionRisk", {"symbol": "BTCUSDT"})
        assert sorted((r["positionSide"], r["positionAmt"]) for r in rows) == [
            ("LONG", "0.020"), ("SHORT", "-0.010")]
        every = await rest.ok("GET", "/fapi/v2/positionRisk", {"symbol": "ETHUSDT"})
        assert sorted(r["positionSide"] for r in every) == ["LONG", "SHORT"]

    run(with_rest(main))


def test_sell_long_closes_the_long_and_never_more_than_is_open():
    async def main(rest: Rest, sim):
        await hedge(rest)
        await rest.market_order("ETHUSDT", "BUY", "1.00", positionSide="LONG")
        _status, body, _ = await rest.call("POST", "/fapi/v1/order", {
            "symbol": "ETHUSDT", "side": "SELL", "type": "MARKET", "quantity": "2.00",
            "positionSide": "LONG"}, signed=True)
        assert body["code"] == -2022
        _status, body, _ = await rest.call("POST", "/fapi/v1/order", {
            "symbol": "ETHUSDT", "side": "SELL", "type": "MARKET", "quantity": "1.00",
            "positionSide": "LONG", "reduceOnly": "true"}, signed=True)
        assert body["code"] == -1106
        await rest.market_order("ETHUSDT", "SELL", "1.00", positionSide="LONG")
        assert await rest.ok("GET", "/fapi/v3/positionRisk") == []

    run(with_rest(main))


def test_user_data_events_carry_the_position_side_that_moved():
    async def main(rest: Rest, sim):
        await hedge(rest)
        await rest.market_order("BTCUSDT", "BUY", "0.010", positionSide="LONG")
        key = await rest.listen_key()
        async with connect(f"{sim.urls['private_ws']}/ws?listenKey={key}") as ws:
            await asyncio.sleep(0.1)
            await rest.market_order("BTCUSDT", "SELL", "0.030", positionSide="SHORT")
            trade = await recv_event(ws, "ORDER_TRADE_UPDATE")
            assert trade["o"]["ps"] == "SHORT"
            update = await recv_event(ws, "ACCOUNT_UPDATE")
            (pos,) = update["a"]["P"]  # the LONG side did not change
            assert (pos["s"], pos["ps"], pos["pa"]) == ("BTCUSDT", "SHORT", "-0.030")

    run(with_rest(main))


def test_switching_back_to_one_way_lists_both_again():
    async def main(rest: Rest, sim):
        await hedge(rest)
        await rest.ok("POST", "/fapi/v1/positionSide/dual", {"dualSidePosition": "false"})
        await rest.market_order("BTCUSDT", "BUY", "0.010")
        (row,) = await rest.ok("GET", "/fapi/v3/positionRisk")
        assert (row["positionSide"], row["positionAmt"]) == ("BOTH", "0.010")

    run(with_rest(main))
