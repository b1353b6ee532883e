"""parse.py: ccxt position/ticker dicts -> framework models (pure, no network)."""

from __future__ import annotations

from decimal import Decimal

import ccxt.async_support as ccxt_async
import pytest

from feedctl import Category, Side
from feedctl.plugins.rest_polling.parse import (
    MalformedRow,
    envelope_list,
    mark_from_ticker,
    position_row,
    to_decimal,
)

pytestmark = pytest.mark.unit

#: A /v5/position/list row as Bybit sends it (entry price is avgPrice on REST).
REST_ROW = {
    "positionIdx": 0, "tradeMode": 0, "riskId": 1, "riskLimitValue": "2000000",
    "symbol": "BTCUSDT", "side": "Buy", "size": "0.01", "avgPrice": "28184.5",
    "positionValue": "281.845", "leverage": "10", "markPrice": "28190.1",
    "liqPrice": "25500.1", "bustPrice": "", "takeProfit": "0", "stopLoss": "27000",
    "trailingStop": "0", "unrealisedPnl": "0.056", "cumRealisedPnl": "-25.06579337",
    "createdTime": "1694402496913", "updatedTime": "1697682317038", "tpslMode": "Full",
    "positionStatus": "Normal", "seq": 8327597863, "isReduceOnly": False,
}
LINEAR = {"id": "BTCUSDT", "symbol": "BTC/USDT:USDT", "linear": True, "inverse": False}
INVERSE = {"id": "BTCUSD", "symbol": "BTC/USD:BTC", "linear": False, "inverse": True}


def ccxt_row(raw: dict, market: dict | None = None) -> dict:
    """The row as ccxt's bybit parser turns it into a unified position (no network)."""
    return ccxt_async.bybit().parse_position(dict(raw), market)


def test_bybit_rest_row_keeps_exact_strings() -> None:
    parsed = position_row(ccxt_row(REST_ROW), LINEAR, received_ns=5)
    u = parsed.update
    assert u.key == (Category.LINEAR, "BTCUSDT", 0)
    assert u.side is Side.LONG
    assert u.size == Decimal("0.01") and str(u.size) == "0.01"
    assert u.entry_price == Decimal("28184.5")
    assert u.leverage == Decimal("10") and u.liq_price == Decimal("25500.1")
    assert u.take_profit is None and u.trailing_stop is None  # Bybit's "0" = not set
    assert u.stop_loss == Decimal("27000")
    assert u.seq == 8327597863 and u.exchange_ms == 1697682317038
    assert u.mark_price is None and parsed.mark == Decimal("28190.1")
    assert u.received_ns == 5


def test_short_and_flat_rows() -> None:
    short = position_row(ccxt_row({**REST_ROW, "side": "Sell"}), LINEAR)
    assert short.update.side is Side.SHORT
    flat = position_row(ccxt_row({**REST_ROW, "side": "", "size": "0", "avgPrice": "0"}),
                        LINEAR)
    assert flat.update.side is None and flat.update.size == 0 and not flat.update.is_open
    assert flat.update.entry_price == 0


def test_unknown_market_uses_request_category_and_raw_symbol() -> None:
    u = position_row(ccxt_row({**REST_ROW, "symbol": "NEWUSDT"}), None,
                     category=Category.LINEAR).update
    assert u.key == (Category.LINEAR, "NEWUSDT", 0)
    with pytest.raises(MalformedRow, match="linear or inverse"):
        position_row(ccxt_row({**REST_ROW, "symbol": "NEWUSDT"}), None)


def test_inverse_and_hedge_index() -> None:
    raw = {**REST_ROW, "symbol": "BTCUSD", "positionIdx": 2, "side": "Sell", "size": "100"}
    u = position_row(ccxt_row(raw, INVERSE), INVERSE).update
    assert u.key == (Category.INVERSE, "BTCUSD", 2) and u.side is Side.SHORT


def test_generic_unified_position_uses_str_of_floats_and_hedged_index() -> None:
    pos = {"symbol": "ETH/USDT:USDT", "contracts": 0.3, "side": "short", "entryPrice": 1800.1,
           "markPrice": 1790.7, "leverage": 5.0, "liquidationPrice": 0, "hedged": True,
           "lastUpdateTimestamp": 1700000000000, "info": {"size": "999", "seq": 4}}
    market = {"id": "ETH-USDT-SWAP", "linear": True}
    row = position_row(pos, market, raw_fields=False)
    u = row.update
    assert u.symbol == "ETH-USDT-SWAP" and u.position_idx == 2
    assert u.size == Decimal("0.3") and u.entry_price == Decimal("1800.1")
    assert u.liq_price is None and u.seq is None and u.exchange_ms == 1700000000000
    assert row.mark == Decimal("1790.7")


@pytest.mark.parametrize("change, match", [
    ({"size": None}, "without a size"),
    ({"size": "abc"}, "not a number"),
    ({"avgPrice": "0"}, "entry price"),
    ({"avgPrice": ""}, "entry price"),
    ({"side": "Up"}, "neither long nor short"),
    ({"seq": "x"}, "not an integer"),
    ({"markPrice": "NaN"}, "finite"),
])
def test_partial_or_malformed_rows_raise(change: dict, match: str) -> None:
    raw = {**REST_ROW, **change}
    pos = {"info": raw, "symbol": "BTC/USDT:USDT", "side": None}
    with pytest.raises(MalformedRow, match=match):
        position_row(pos, LINEAR)


def test_not_objects_raise() -> None:
    with pytest.raises(MalformedRow):
        position_row(["x"], LINEAR)  # type: ignore[arg-type]
    with pytest.raises(MalformedRow):
        position_row({"info": "x"}, LINEAR)
    with pytest.raises(MalformedRow):
        to_decimal(True, "size")


def test_envelope() -> None:
    rows, cursor, t = envelope_list(
        {"retCode": 0, "result": {"list": [1], "nextPageCursor": "c1"}, "time": 17})
    assert (rows, cursor, t) == ([1], "c1", 17)
    for bad in ("<html>", None, {"retCode": 10016}, {"retCode": 0, "result": {}},
                {"retCode": 0, "result": {"list": {}}},
                {"retCode": 0, "result": {"list": [], "nextPageCursor": 3}}):
        with pytest.raises(MalformedRow):
            envelope_list(bad)


def test_mark_from_ticker() -> None:
    m = mark_from_ticker({"markPrice": 100.5, "info": {"markPrice": "100.55"}, "timestamp": 9},
                         LINEAR, received_ns=1)
    assert m is not None and m.mark_price == Decimal("100.55") and m.exchange_ms == 9
    assert m.symbol == "BTCUSDT" and m.category is Category.LINEAR
    assert mark_from_ticker({"markPrice": None, "info": {}}, LINEAR) is None
    assert mark_from_ticker({"info": {"markPrice": "0"}}, LINEAR) is None
