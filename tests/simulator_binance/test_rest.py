"""Signed REST as Binance documents it: security types, errors, weights, 429 then 418."""

from __future__ import annotations

import time

import aiohttp
import pytest

from .conftest import Rest, make_sim, run

pytestmark = pytest.mark.integration


async def with_rest(fn, **binance):
    async with make_sim(**binance) as sim, aiohttp.ClientSession() as session:
        return await fn(Rest(sim, session), sim)


def test_a_signed_request_with_a_wrong_signature_is_refused_with_1022():
    async def main(rest: Rest, sim):
        status, body, _ = await rest.call("GET", "/fapi/v3/positionRisk", signed=True)
        assert status == 200
        params = {"timestamp": int(time.time() * 1000), "signature": "00" * 32}
        status, body, _ = await rest.call("GET", "/fapi/v3/positionRisk", params)
        assert (status, body["code"]) == (400, -1022)

    run(with_rest(main))


def test_an_old_timestamp_is_refused_with_1021_and_recv_window_widens_it():
    async def main(rest: Rest, sim):
        old = int(time.time() * 1000) - 8000
        status, body, _ = await rest.call("GET", "/fapi/v2/balance", signed=True,
                                          timestamp=old)
        assert (status, body["code"]) == (400, -1021)
        status, body, _ = await rest.call("GET", "/fapi/v2/balance",
                                          {"recvWindow": 10000}, signed=True, timestamp=old)
        assert status == 200 and body[0]["asset"] == "USDT"
        ahead = int(time.time() * 1000) + 5000
        status, body, _ = await rest.call("GET", "/fapi/v2/balance", signed=True,
                                          timestamp=ahead)
        assert body["code"] == -1021 and "ahead" in body["msg"]

    run(with_rest(main))


def test_missing_and_wrong_api_keys_answer_2014_and_2015_with_http_401():
    async def main(rest: Rest, sim):
        status, body, _ = await rest.call("POST", "/fapi/v1/listenKey", key=None)
        assert (status, body["code"]) == (401, -2014)
        status, body, _ = await rest.call("GET", "/fapi/v3/account", signed=True,
                                          key="A" * 64)
        assert (status, body["code"]) == (401, -2015)

    run(with_rest(main))


def test_a_missing_mandatory_parameter_and_an_unknown_symbol_answer_1102_and_1121():
    async def main(rest: Rest, sim):
        status, body, _ = await rest.call("POST", "/fapi/v1/order",
                                          {"symbol": "BTCUSDT", "type": "MARKET",
                                           "quantity": "0.01"}, signed=True)
        assert (status, body["code"]) == (400, -1102) and "'side'" in body["msg"]
        status, body, _ = await rest.call("GET", "/fapi/v1/premiumIndex",
                                          {"symbol": "NOPEUSDT"})
        assert (status, body["code"]) == (400, -1121)

    run(with_rest(main))


def test_used_weight_is_reported_per_minute_and_grows_by_each_endpoints_weight():
    async def main(rest: Rest, sim):
        _, _, h1 = await rest.call("GET", "/fapi/v1/premiumIndex", {"symbol": "BTCUSDT"})
        _, _, h2 = await rest.call("GET", "/fapi/v1/premiumIndex")  # all symbols: 10
        _, _, h3 = await rest.call("GET", "/fapi/v3/positionRisk", signed=True)  # 5
        used = [int(h["X-MBX-USED-WEIGHT-1M"]) for h in (h1, h2, h3)]
        assert used[1] - used[0] == 10 and used[2] - used[1] == 5

    run(with_rest(main))


def test_past_the_weight_limit_answers_429_then_bans_with_418_and_retry_after():
    async def main(rest: Rest, sim):
        statuses = []
        for _ in range(12):
            status, body, headers = await rest.call("GET", "/fapi/v1/premiumIndex")
            statuses.append(status)
        assert statuses[:3] == [200, 200, 200]
        assert 429 in statuses and statuses[-1] == 418
        assert statuses.index(429) < statuses.index(418)
        assert body["code"] == -1003 and int(headers["Retry-After"]) >= 1

    run(with_rest(main, weight_limit=30, ban_after=3))


def test_orders_report_their_counts_and_cost_no_ip_weight():
    async def main(rest: Rest, sim):
        status, body, headers = await rest.call(
            "POST", "/fapi/v1/order", {"symbol": "BTCUSDT", "side": "BUY", "type": "MARKET",
                                       "quantity": "0.010"}, signed=True)
        assert status == 200, body
        assert headers["X-MBX-ORDER-COUNT-10S"] == "1" and headers["X-MBX-ORDER-COUNT-1M"] == "1"
        assert headers["X-MBX-USED-WEIGHT-1M"] == "0"
        assert body["status"] == "NEW" and body["executedQty"] == "0"  # ACK
        row = await rest.ok("GET", "/fapi/v1/order", {"symbol": "BTCUSDT",
                                                      "orderId": body["orderId"]})
        assert row["status"] == "FILLED" and row["executedQty"] == "0.010"

    run(with_rest(main))


def test_position_risk_v3_lists_open_positions_and_v2_every_symbol():
    async def main(rest: Rest, sim):
        assert await rest.ok("GET", "/fapi/v3/positionRisk") == []
        await rest.market_order("ETHUSDT", "SELL", "0.50")
        (row,) = await rest.ok("GET", "/fapi/v3/positionRisk")
        assert (row["symbol"], row["positionSide"], row["positionAmt"]) == (
            "ETHUSDT", "BOTH", "-0.50")
        assert row["marginAsset"] == "USDT" and float(row["markPrice"]) > 0
        every = await rest.ok("GET", "/fapi/v2/positionRisk")
        assert {r["symbol"] for r in every} == set(sim.binance.symbols)
        assert next(r for r in every if r["symbol"] == "BTCUSDT")["positionAmt"] == "0.000"

    run(with_rest(main))


def test_position_mode_is_one_way_and_switching_says_why_it_cannot():
    async def main(rest: Rest, sim):
        assert await rest.ok("GET", "/fapi/v1/positionSide/dual") == {"dualSidePosition": False}
        _status, body, _ = await rest.call("POST", "/fapi/v1/positionSide/dual",
                                          {"dualSidePosition": "false"}, signed=True)
        assert body["code"] == -4059
        _status, body, _ = await rest.call("POST", "/fapi/v1/order", {
            "symbol": "BTCUSDT", "side": "BUY", "type": "MARKET", "quantity": "0.010",
            "positionSide": "LONG"}, signed=True)
        assert body["code"] == -4061

    run(with_rest(main))


def test_rest_faults_answer_as_binance_would():
    async def main(rest: Rest, sim):
        sim.faults.set_rest_error("rate_limit", 1, "/fapi/v3/positionRisk")
        status, body, _ = await rest.call("GET", "/fapi/v3/positionRisk", signed=True)
        assert (status, body["code"]) == (429, -1003)
        sim.faults.set_reject_auth(1)
        status, body, _ = await rest.call("GET", "/fapi/v3/positionRisk", signed=True)
        assert (status, body["code"]) == (401, -2015)
        sim.faults.set_rest_error("503", 1)
        status, body, _ = await rest.call("GET", "/fapi/v1/time")
        assert status == 503 and isinstance(body, str)

    run(with_rest(main))


def test_a_clock_skew_fault_moves_the_time_the_timestamp_check_uses():
    async def main(rest: Rest, sim):
        sim.faults.set_clock_skew(-10_000, 5)
        status, body, _ = await rest.call("GET", "/fapi/v3/account", signed=True)
        assert (status, body["code"]) == (400, -1021) and "ahead" in body["msg"]
        server = (await rest.ok("GET", "/fapi/v1/time", signed=False))["serverTime"]
        status, body, _ = await rest.call("GET", "/fapi/v3/account", signed=True,
                                          timestamp=server)
        assert status == 200 and body["assets"][0]["asset"] == "USDT"

    run(with_rest(main))


def test_user_trades_income_and_symbol_config_tell_what_filled_and_at_what_leverage():
    async def main(rest: Rest, sim):
        before = int(time.time() * 1000) - 1
        await rest.ok("POST", "/fapi/v1/leverage", {"symbol": "ETHUSDT", "leverage": "3"})
        await rest.market_order("ETHUSDT", "BUY", "1.00")
        await rest.market_order("ETHUSDT", "SELL", "1.00", reduceOnly="true")
        trades = await rest.ok("GET", "/fapi/v1/userTrades",
                               {"symbol": "ETHUSDT", "startTime": before, "limit": 1000})
        assert [(t["side"], t["qty"]) for t in trades] == [("BUY", "1.00"), ("SELL", "1.00")]
        assert trades[0]["id"] < trades[1]["id"]
        assert await rest.ok("GET", "/fapi/v1/userTrades", {"symbol": "BTCUSDT"}) == []
        income = await rest.ok("GET", "/fapi/v1/income", {"startTime": before})
        kinds = [(r["symbol"], r["incomeType"]) for r in income]
        assert kinds.count(("ETHUSDT", "COMMISSION")) == 2
        configs = {c["symbol"]: c for c in await rest.ok("GET", "/fapi/v1/symbolConfig")}
        assert configs["ETHUSDT"]["leverage"] == 3 and set(configs) == set(sim.binance.symbols)
        status, body, _ = await rest.call("GET", "/fapi/v1/income", {
            "startTime": before, "endTime": before + 8 * 86_400_000}, signed=True)
        assert (status, body["code"]) == (400, -1127)

    run(with_rest(main))
