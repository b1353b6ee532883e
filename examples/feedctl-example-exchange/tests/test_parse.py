"""The pure functions of parse.py and the signing helpers, on recorded payloads."""

from __future__ import annotations

from decimal import Decimal

import pytest
from feedctl_example_exchange.client import auth_args, redact, rest_headers, sign
from feedctl_example_exchange.parse import (
    Malformed,
    answer,
    decode,
    envelope,
    mark_prices,
    position_page,
    position_push,
    position_update,
)

from feedctl import Side

PUSH = {
    "id": "5923240c6880ab-c59f-420b-9adb-3639adc9dd90", "topic": "position",
    "creationTime": 1672364174455,
    "data": [{"positionIdx": 0, "symbol": "BTCUSDT", "side": "Buy", "size": "0.010",
              "entryPrice": "16493.50", "leverage": "10", "markPrice": "16500.00",
              "liqPrice": "14890.80", "takeProfit": "0.00", "stopLoss": "0.00",
              "trailingStop": "0.00", "updatedTime": "1672364174449", "seq": 4688002127,
              "category": "linear"}],
}


def test_a_position_push_becomes_an_update_with_decimals() -> None:
    updates, bad = position_push(PUSH, received_ns=1)
    assert bad == []
    (u,) = updates
    assert (u.symbol, u.side, u.size, u.entry_price) == (
        "BTCUSDT", Side.LONG, Decimal("0.010"), Decimal("16493.50"))
    assert u.mark_price == Decimal("16500.00") and u.take_profit is None
    assert (u.seq, u.exchange_ms) == (4688002127, 1672364174449)


def test_a_flat_row_has_no_side_and_a_rest_row_uses_avg_price() -> None:
    flat = position_update({"symbol": "ETHUSDT", "side": "", "size": "0", "avgPrice": "0"},
                           received_ns=1)
    assert flat.side is None and not flat.is_open
    row = position_update({"symbol": "ETHUSDT", "side": "Sell", "size": "2",
                           "avgPrice": "3000.5"}, received_ns=1)
    assert row.side is Side.SHORT and row.entry_price == Decimal("3000.5")


@pytest.mark.parametrize("row", [
    {"side": "Buy", "size": "1"},
    {"symbol": "X", "side": "Buy", "size": "abc"},
    {"symbol": "X", "side": "Buy", "size": "NaN"},
    {"symbol": "X", "side": "Up", "size": "1"},
    "not a row",
])
def test_bad_rows_are_malformed(row: object) -> None:
    updates, bad = position_push({"topic": "position", "data": [row]}, received_ns=1)
    assert updates == [] and len(bad) == 1 and isinstance(bad[0], Malformed)


def test_frames_answers_and_pongs() -> None:
    with pytest.raises(Malformed, match="not JSON"):
        decode(b'{"topic":"tickers.BTCUSDT","data":{"symbol":"BTC')
    with pytest.raises(Malformed, match="not a JSON object"):
        decode("[1, 2]")
    assert answer({"op": "auth", "success": True, "ret_msg": ""}).success
    assert answer({"op": "pong", "args": ["1"]}).op == "pong"
    with pytest.raises(Malformed):
        answer({"hello": 1})


def test_rest_pages_and_mark_prices() -> None:
    env = envelope({"retCode": 0, "retMsg": "OK", "time": 5, "result": {
        "list": [{"symbol": "BTCUSDT", "side": "Buy", "size": "1", "avgPrice": "100"}],
        "nextPageCursor": "page2"}})
    rows, cursor = position_page(env.result, received_ns=1)
    assert (len(rows), cursor, env.time_ms) == (1, "page2", 5)
    marks, bad = mark_prices({"list": [{"symbol": "BTCUSDT", "markPrice": "101.5"},
                                       {"symbol": "ETHUSDT", "markPrice": "x"},
                                       {"symbol": "SOLUSDT", "markPrice": "20"}]},
                             {"BTCUSDT", "ETHUSDT"}, exchange_ms=5, received_ns=1)
    assert [(m.symbol, m.mark_price) for m in marks] == [("BTCUSDT", Decimal("101.5"))]
    assert len(bad) == 1
    with pytest.raises(Malformed, match="without retCode"):
        envelope({"result": {}})


def test_signatures_and_redaction() -> None:
    assert sign("secret", "message") == (
        "8b5f48702995c1598c573db1e21866a9b825d4a794d169d7060a03605796360b")
    headers = rest_headers("key", "secret", 1000, 5000, "a=1")
    assert headers["X-BAPI-SIGN"] == sign("secret", "1000key5000a=1")
    key, expires, signature = auth_args("key", "secret", 1_000)
    assert (key, expires, signature) == ("key", 11_000, sign("secret", "GET/realtime11000"))
    assert redact("bad key abcd in abcd", "abcd") == "bad key *** in ***"
