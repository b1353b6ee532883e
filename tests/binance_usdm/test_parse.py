"""Parsing of Binance USDⓈ-M payloads (from Binance's docs) into feedctl models."""

from __future__ import annotations

import json
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest

from feedctl import Category, PositionKey, Side
from feedctl.plugins.binance_usdm.parse import (
    SEQ_PER_MS,
    Fill,
    Leverage,
    Problem,
    account_update,
    config_leverage,
    decode,
    expired,
    mark_prices,
    order_fill,
    position_rows,
    push_seq,
    row_seq,
    user_order,
)

pytestmark = pytest.mark.unit
DATA = Path(__file__).parent / "data"


def load(name: str) -> Any:
    return json.loads((DATA / name).read_text())


def test_account_update_maps_position_sides_to_indexes_and_signs_to_sides() -> None:
    updates, problems, reason = account_update(load("account_update.json"), 1, {})
    assert problems == [] and reason == "ORDER"
    by_idx = {u.position_idx: u for u in updates}
    assert by_idx[0].side is None and by_idx[0].size == 0  # BOTH, flat
    assert (by_idx[1].side, by_idx[1].size, by_idx[1].entry_price) == (
        Side.LONG, Decimal("20"), Decimal("6563.66500"))
    assert (by_idx[2].side, by_idx[2].size) == (Side.SHORT, Decimal("10"))


def test_account_update_is_stamped_with_transaction_time_and_a_seq_of_it() -> None:
    updates, _, _ = account_update(load("account_update.json"), 1, {}, arrival=7)
    assert {u.exchange_ms for u in updates} == {1564745798938}
    (seq,) = {u.seq for u in updates}
    assert seq is not None and seq // SEQ_PER_MS == 1564745798938


def test_two_account_updates_of_one_millisecond_are_ordered_by_event_time_then_arrival(
        ) -> None:
    msg = load("account_update.json")
    later_e = {**msg, "E": msg["E"] + 1}
    first, _, _ = account_update(msg, 1, {}, arrival=5)
    by_e, _, _ = account_update(later_e, 1, {}, arrival=1)
    by_arrival, _, _ = account_update(msg, 1, {}, arrival=6)
    assert first[0].seq is not None and by_e[0].seq is not None
    assert by_arrival[0].seq is not None
    assert first[0].seq < by_arrival[0].seq < by_e[0].seq


def test_a_snapshot_row_outranks_the_pushes_of_a_millisecond_over_before_it() -> None:
    push = push_seq(1_000, 1_003, 42)
    assert row_seq(1_000, as_of_ms=1_001) > push  # the row shows the last state of 1000
    assert row_seq(1_000, as_of_ms=1_000) < push  # a push of 1000 may be newer
    assert push_seq(1_001, 1_001, 0) > row_seq(1_000, as_of_ms=1_001)
    assert push_seq(4_102_444_800_000, 4_102_444_800_099, 9_999) < 2**63  # int64 in 2100


def test_one_way_negative_amount_is_short() -> None:
    msg = load("account_update.json")
    msg["a"]["P"] = [{"s": "ETHUSDT", "pa": "-0.5", "ep": "3000.1", "ps": "BOTH"}]
    (u,), _, _ = account_update(msg, 1, {})
    assert (u.key, u.side, u.size) == (PositionKey(Category.LINEAR, "ETHUSDT", 0), Side.SHORT,
                                       Decimal("0.5"))


def test_account_update_carries_the_known_leverage_and_liq_price() -> None:
    msg = load("account_update.json")
    msg["a"]["P"] = [{"s": "ETHUSDT", "pa": "1", "ep": "3000", "ps": "BOTH"}]
    key = PositionKey(Category.LINEAR, "ETHUSDT", 0)
    (u,), _, _ = account_update(msg, 1, {"ETHUSDT": Decimal(20)}, {key: Decimal("2500")})
    assert (u.leverage, u.liq_price) == (Decimal(20), Decimal("2500"))


def test_funding_fee_update_without_positions_gives_no_state() -> None:
    updates, problems, reason = account_update(load("account_update_funding.json"), 1, {})
    assert (updates, problems, reason) == ([], [], "FUNDING_FEE")


@pytest.mark.parametrize("bad", [{"s": "X", "pa": "NaN", "ep": "1", "ps": "BOTH"},
                                 {"s": "X", "pa": "1", "ep": "1", "ps": "SIDEWAYS"},
                                 {"s": "X", "pa": "1e999999", "ep": "1", "ps": "BOTH"}])
def test_a_bad_position_entry_is_a_problem_not_a_state(bad: dict[str, str]) -> None:
    msg = load("account_update.json")
    msg["a"]["P"] = [bad]
    updates, problems, _ = account_update(msg, 1, {})
    assert updates == [] and [p.counter for p in problems] == ["bad_field"]


def test_account_update_without_its_fields_is_malformed() -> None:
    updates, problems, _ = account_update({"e": "ACCOUNT_UPDATE", "E": 1}, 1, {})
    assert updates == [] and problems[0].counter == "malformed"


def test_new_order_is_no_fill_and_a_trade_is_one() -> None:
    msg = load("order_trade_update.json")
    assert order_fill(msg) is None
    msg["o"].update({"x": "TRADE", "X": "FILLED", "l": "0.001"})
    # the documentation's example sells on the LONG side of a hedge-mode account: a reduce
    assert order_fill(msg) == Fill(PositionKey(Category.LINEAR, "BTCUSDT", 1), 1568879465650,
                                   reduced=True, signed_qty=Decimal("-0.001"))


def test_a_one_way_fill_reduces_when_it_realises_a_profit() -> None:
    msg = load("order_trade_update.json")
    msg["o"].update({"x": "TRADE", "X": "FILLED", "l": "0.001", "ps": "BOTH"})
    fill = order_fill(msg)
    assert isinstance(fill, Fill) and not fill.reduced
    msg["o"]["rp"] = "-1.25"
    fill = order_fill(msg)
    assert isinstance(fill, Fill) and fill.reduced


def test_leverage_change_of_account_config_update() -> None:
    assert config_leverage(load("account_config_update.json")) == Leverage("BTCUSDT",
                                                                          Decimal(25))
    assert config_leverage({"e": "ACCOUNT_CONFIG_UPDATE", "E": 1, "T": 1,
                            "ai": {"j": True}}) is None


def test_listen_key_expired_event_time_may_be_a_string() -> None:
    assert expired(load("listen_key_expired.json")).event_ms == 1736996475556


def test_mark_price_update_and_the_all_market_array() -> None:
    one = load("mark_price.json")
    ((mark, event_ms),), problems = mark_prices(one)
    assert problems == [] and event_ms == 1562305380000
    assert (mark.symbol, mark.mark_price, mark.exchange_ms) == (
        "BTCUSDT", Decimal("11794.15000000"), 1562305380000)
    marks, problems = mark_prices([one, {**one, "s": "ETHUSDT", "p": "0"}, 7])
    assert [m.symbol for m, _ in marks] == ["BTCUSDT"]
    assert sorted(p.counter for p in problems) == ["bad_field", "malformed"]


def test_position_risk_one_way_row() -> None:
    rows, problems = position_rows(load("position_risk_oneway.json"), 5, hedge=False,
                                   leverage={"ADAUSDT": Decimal(10)})
    assert problems == []
    (row,) = rows
    assert (row.key.position_idx, row.side, row.size, row.entry_price) == (
        0, Side.LONG, Decimal("30"), Decimal("0.385"))
    assert (row.exchange_ms, row.leverage, row.mark_price) == (1720736417660, Decimal(10),
                                                               Decimal("0.41047590"))
    assert row.liq_price is None  # "0": no liquidation price


def test_position_risk_hedge_rows_keep_their_sides() -> None:
    rows, _ = position_rows(load("position_risk_hedge.json"), 5, hedge=True, leverage={})
    assert [(r.symbol, r.position_idx, r.side, r.size) for r in rows] == [
        ("ADAUSDT", 1, Side.LONG, Decimal("30")), ("COMPUSDT", 2, Side.SHORT, Decimal("1.000"))]
    assert rows[1].liq_price == Decimal("2260.56757210")


def test_position_risk_ignores_the_other_modes_flat_rows() -> None:
    rows = load("position_risk_hedge.json")
    assert position_rows(rows, 5, hedge=False, leverage={})[0] == []  # no BOTH rows
    oneway = load("position_risk_oneway.json")
    assert position_rows(oneway, 5, hedge=True, leverage={})[0] == []


def test_position_risk_that_is_not_a_list_is_malformed() -> None:
    rows, problems = position_rows({"code": -1, "msg": "x"}, 5, hedge=None, leverage={})
    assert rows == [] and problems[0].counter == "malformed"


def test_decode_refuses_what_is_not_a_json_object() -> None:
    assert isinstance(decode(b"{not json"), Problem)
    assert isinstance(decode("[1, 2]"), Problem)
    assert decode('{"a": 1}') == {"a": 1}


def test_user_events_order_by_transaction_then_event_time() -> None:
    events = [{"T": 5, "E": 9}, {"T": 5, "E": 7}, {"T": 3, "E": 10}, {"E": 1}]
    assert sorted(events, key=user_order) == [{"E": 1}, {"T": 3, "E": 10}, {"T": 5, "E": 7},
                                              {"T": 5, "E": 9}]
