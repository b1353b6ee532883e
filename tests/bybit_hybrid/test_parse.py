"""Sans-I/O parsing against recorded Bybit payloads (tests/data/bybit/)."""

from __future__ import annotations

import copy
import json
from decimal import Decimal

import orjson
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from feedctl import Category, PositionBook, PositionUpdate, Side
from feedctl.plugins.bybit_hybrid.parse import (
    DECLINED,
    Answer,
    Problem,
    Tick,
    TickerState,
    classify_answer,
    decode,
    position_push,
    position_update,
    push_order,
)

from .conftest import payload

pytestmark = pytest.mark.unit
NS = 1_700_000_000_000_000_000


def test_decode_accepts_bytes_and_text_and_reports_garbage() -> None:
    raw = orjson.dumps(payload("ticker_delta_linear.json"))
    assert decode(raw)["topic"] == "tickers.BTCUSDT"  # type: ignore[index]
    assert decode(raw.decode())["cs"] == 24987956060  # type: ignore[index]
    for bad in (payload("malformed_truncated.txt"), b"\xff\xfe", "[1,2]", "", "null"):
        res = decode(bad)
        assert isinstance(res, Problem) and res.counter == "malformed"


@pytest.mark.parametrize(
    ("name", "op", "success", "req_id"),
    [
        ("pong_public.json", "pong", True, "3"),
        ("pong_private.json", "pong", True, "3"),
        ("pong_spot.json", "pong", True, None),
        ("auth_ok.json", "auth", True, None),
        ("auth_ok_retcode.json", "auth", True, None),
        ("auth_fail.json", "auth", False, None),
        ("auth_fail_params.json", "auth", False, None),
        ("subscribe_ok.json", "subscribe", True, "2"),
        ("subscribe_fail.json", "subscribe", False, "7"),
        ("unsubscribe_ok.json", "unsubscribe", True, "3"),
    ],
)
def test_classify_answers(name: str, op: str, success: bool, req_id: str | None) -> None:
    ans = classify_answer(payload(name))
    assert isinstance(ans, Answer)
    assert (ans.op, ans.success, ans.req_id) == (op, success, req_id)


def test_classify_failures_keep_ret_msg_and_odd_frames_are_problems() -> None:
    ans = classify_answer(payload("subscribe_fail.json"))
    assert isinstance(ans, Answer) and "tickers.NOPE" in ans.ret_msg
    assert isinstance(classify_answer(payload("auth_fail.json")), Answer)
    assert isinstance(classify_answer(payload("invalid_op.json")), Problem)
    assert isinstance(classify_answer({"hello": 1}), Problem)
    assert classify_answer({"req_id": 5, "op": "subscribe", "success": True}).req_id == "5"  # type: ignore[union-attr]


def test_position_push_linear() -> None:
    updates, problems = position_push(payload("position_push_linear.json"), NS)
    assert not problems
    (u,) = updates
    assert u.key == (Category.LINEAR, "BTCUSDT", 0)
    assert u.side is Side.LONG and u.size == Decimal("0.01")
    assert u.entry_price == Decimal("28184.5") and u.mark_price == Decimal("28184.5")
    assert u.leverage == Decimal(10) and u.liq_price == Decimal("25500.1")
    assert u.take_profit is None and u.stop_loss is None and u.trailing_stop is None
    assert u.seq == 8327597863 and u.exchange_ms == 1697682317038
    assert u.received_ns == NS


def test_position_push_closed_inverse_and_hedge() -> None:
    (closed,), _ = position_push(payload("position_push_closed.json"), NS)
    assert closed.side is None and closed.size == 0 and not closed.is_open
    assert closed.liq_price is None and closed.seq == 8327597870
    (inv,), _ = position_push(payload("position_push_inverse.json"), NS)
    assert inv.category is Category.INVERSE and inv.symbol == "BTCUSD"
    assert inv.seq is None and inv.exchange_ms == 1694566055293
    assert inv.entry_price == Decimal("19358.58553268")
    longs, _ = position_push(payload("position_push_hedge.json"), NS)
    assert [(u.position_idx, u.side) for u in longs] == [(1, Side.LONG), (2, Side.SHORT)]
    assert longs[0].take_profit == Decimal(1700) and longs[1].trailing_stop == Decimal("12.5")


def test_rest_rows_use_avg_price() -> None:
    env = payload("rest_position_list_page2.json")
    (row,) = env["result"]["list"]
    u = position_update(row, default_category=Category.LINEAR, received_ns=NS)
    assert isinstance(u, PositionUpdate)
    assert u.category is Category.LINEAR and u.side is Side.SHORT
    assert u.entry_price == Decimal("1600.5") and u.take_profit == Decimal(1500)


@pytest.mark.parametrize(
    ("field", "value"),
    [("size", "abc"), ("size", "-1"), ("side", "Up"), ("symbol", ""), ("seq", "x"),
     ("updatedTime", [1]), ("category", "spot"), ("entryPrice", "NaN"), ("positionIdx", "one"),
     ("leverage", {"x": 1}), ("markPrice", "Infinity")],
)
def test_bad_fields_are_problems_not_exceptions(field: str, value: object) -> None:
    msg = copy.deepcopy(payload("position_push_linear.json"))
    msg["data"][0][field] = value
    updates, problems = position_push(msg, NS)
    assert not updates
    assert [p.counter for p in problems] == ["bad_field"]


def test_push_with_good_and_bad_rows_keeps_the_good() -> None:
    msg = copy.deepcopy(payload("position_push_hedge.json"))
    msg["data"].insert(1, "garbage")
    updates, problems = position_push(msg, NS)
    assert len(updates) == 2 and [p.counter for p in problems] == ["malformed"]
    assert position_push({"topic": "position", "data": {}}, NS)[1][0].counter == "malformed"


def test_no_op_pushes_and_reorders_produce_no_event() -> None:
    """parse keeps seq/updatedTime, so the book can drop no-ops, duplicates, reorders."""
    events: list[object] = []
    book = PositionBook(exchange="bybit", account="a", feed="f", emit=events.append)
    first = payload("position_push_linear.json")
    newer = copy.deepcopy(first)
    newer["data"][0].update(size="0.02", seq=8327597864, updatedTime="1697682317100")
    noop = copy.deepcopy(newer)  # an order create/cancel push: same state, same seq
    for msg in (first, newer, noop, first, newer):
        for u in position_push(msg, NS)[0]:
            book.apply(u)
    assert [e.kind.value for e in events] == ["opened", "changed"]  # type: ignore[attr-defined]
    assert book.counters["stale_dropped"] == 1


def test_push_order_sorts_by_time_then_seq() -> None:
    mk = lambda ms, seq: PositionUpdate(symbol="X", side=None, size=0, exchange_ms=ms, seq=seq)  # noqa: E731
    ups = [mk(5, 3), mk(1, 9), mk(5, 1), mk(None, None)]
    assert [(u.exchange_ms, u.seq) for u in sorted(ups, key=push_order)] == [
        (None, None), (1, 9), (5, 1), (5, 3)]


# ------------------------------------------------------------------- tickers
def _state(*symbols: str) -> TickerState:
    t = TickerState(Category.LINEAR)
    t.symbols.update(symbols)
    return t


def test_ticker_snapshot_then_delta_moves_the_mark() -> None:
    t = _state("BTCUSDT")
    m = t.apply(payload("ticker_snapshot_linear.json"), NS)
    assert m == Tick("BTCUSDT", Decimal("17217.33"), 1673272861686, NS)
    m2 = t.apply(payload("ticker_delta_linear.json"), NS + 1)
    assert isinstance(m2, Tick) and m2.mark == Decimal("17217.92")
    assert t.mark_text("BTCUSDT") == "17217.92"
    assert t.last_seen_ns["BTCUSDT"] == NS + 1


def test_ticker_delta_without_mark_or_with_same_mark_is_no_price() -> None:
    t = _state("AAVEUSDT", "BTCUSDT")
    assert t.apply(payload("ticker_delta_no_mark.json"), NS) is None
    assert t.mark_text("AAVEUSDT") is None and t.last_seen_ns["AAVEUSDT"] == NS
    assert isinstance(t.apply(payload("ticker_snapshot_linear.json"), NS), Tick)
    same = copy.deepcopy(payload("ticker_delta_linear.json"))
    same["data"]["markPrice"] = "17217.33"
    assert t.apply(same, NS) is None
    assert t.mark_text("BTCUSDT") == "17217.33"  # a delta without a new mark keeps it


@pytest.mark.parametrize(
    ("mutate", "counter"),
    [
        (lambda m: m.update(topic="orderbook.1.BTCUSDT"), "unexpected_topic"),
        (lambda m: m.update(topic="tickers.DOGEUSDT"), "unknown_symbol"),
        (lambda m: m.update(data=[1]), "malformed"),
        (lambda m: m.update(type="weird"), "malformed"),
        (lambda m: m["data"].update(markPrice="1e"), "bad_field"),
        (lambda m: m["data"].update(markPrice="-5"), "bad_field"),
        (lambda m: m["data"].update(markPrice="NaN"), "bad_field"),
        (lambda m: m["data"].update(markPrice=[1, 2]), "bad_field"),
        (lambda m: m["data"].update(markPrice={"a": 1}), "bad_field"),
        (lambda m: m["data"].update(markPrice=65000), "bad_field"),
        (lambda m: m["data"].update(markPrice="1e999999"), "bad_field"),
        (lambda m: m["data"].update(markPrice=None), None),
    ],
)
def test_ticker_problems(mutate: object, counter: str | None) -> None:
    msg = copy.deepcopy(payload("ticker_snapshot_linear.json"))
    mutate(msg)  # type: ignore[operator]
    res = _state("BTCUSDT").apply(msg, NS)
    if counter is None:
        assert res is None
    else:
        assert isinstance(res, Problem) and res.counter == counter


def _dict_path(t: TickerState, raw: bytes, ns: int) -> object:
    decoded = decode(raw)
    return decoded if isinstance(decoded, Problem) else t.apply(decoded, ns)


def _raw_then_dict(t: TickerState, raw: bytes, ns: int) -> object:
    """What the public socket does with a frame: the fast path, else the general one."""
    res = t.apply_raw(raw, ns)
    return _dict_path(t, raw, ns) if res is DECLINED else res


def test_ticker_fast_path_takes_pushes_from_the_bytes() -> None:
    t = _state("BTCUSDT")
    raw = orjson.dumps(payload("ticker_snapshot_linear.json"))
    assert t.apply_raw(memoryview(raw), NS) == Tick("BTCUSDT", Decimal("17217.33"),
                                                     1673272861686, NS)
    assert t.apply_raw(raw.decode(), NS + 1) is None  # the same mark: no price
    assert t.last_seen_ns["BTCUSDT"] == NS + 1
    delta = t.apply_raw(orjson.dumps(payload("ticker_delta_linear.json")), NS + 2)
    assert isinstance(delta, Tick) and delta.mark == Decimal("17217.92")
    assert t.mark_text("BTCUSDT") == "17217.92"


@pytest.mark.parametrize("raw", [
    b'{"op":"ping","success":true,"ret_msg":"pong"}', b'{"topic":"tickers.BTC', b"[1]",
    b'{"topic":"tickers.DOGEUSDT","type":"delta","data":{"markPrice":"1"},"ts":1}',
    b'{"topic":"orderbook.1.BTCUSDT","type":"delta","data":{},"ts":1}',
    b'{"topic":"tickers.BTCUSDT","type":"delta","data":{"markPrice":1},"ts":1}',
    b'{"topic":"tickers.BTCUSDT","type":"delta","data":{"markPrice":"1"},"ts":"1"}',
    b'{"topic":"tickers.BTCUSDT","type":"weird","data":{"markPrice":"1"},"ts":1}',
    b'{"topic":"tickers.BTCUSDT","type":"delta","data":[1],"ts":1}',
])
def test_ticker_fast_path_declines_what_it_does_not_take_untouched(raw: bytes) -> None:
    t = _state("BTCUSDT")
    assert t.apply_raw(raw, NS) is DECLINED
    assert t.last_seen_ns == {} and t.mark_text("BTCUSDT") is None


@pytest.mark.parametrize(
    "mutate",
    [
        lambda m: m.update(topic="orderbook.1.BTCUSDT"),
        lambda m: m.update(topic="tickers.DOGEUSDT"),
        lambda m: m.update(data=[1]),
        lambda m: m.update(type="weird"),
        lambda m: m["data"].update(markPrice="1e"),
        lambda m: m["data"].update(markPrice="-5"),
        lambda m: m["data"].update(markPrice="NaN"),
        lambda m: m["data"].update(markPrice=[1, 2]),
        lambda m: m["data"].update(markPrice=65000),
        lambda m: m["data"].update(markPrice="1e999999"),
        lambda m: m["data"].update(markPrice=None),
        lambda m: m.update(ts="1673272861686"),
        lambda m: m.update(ts=None),
        lambda m: m.pop("ts"),
    ],
)
def test_ticker_fast_path_answers_as_the_dict_path(mutate: object) -> None:
    msg = copy.deepcopy(payload("ticker_snapshot_linear.json"))
    mutate(msg)  # type: ignore[operator]
    raw = orjson.dumps(msg)
    assert _raw_then_dict(_state("BTCUSDT"), raw, NS) == _state("BTCUSDT").apply(msg, NS)


def test_ticker_forget_and_string_ts() -> None:
    t = _state("BTCUSDT")
    msg = copy.deepcopy(payload("ticker_snapshot_linear.json"))
    msg["ts"] = "1673272861686"
    m = t.apply(msg, NS)
    assert isinstance(m, Tick) and m.exchange_ms == 1673272861686
    t.forget("BTCUSDT")
    assert t.mark_text("BTCUSDT") is None
    assert t.apply(msg, NS).counter == "unknown_symbol"  # type: ignore[union-attr]


json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=True) | st.text(max_size=8),
    lambda children: st.lists(children, max_size=4)
    | st.dictionaries(st.text(max_size=12), children, max_size=5),
    max_leaves=20,
)
FIELDS = ["symbol", "side", "size", "entryPrice", "avgPrice", "seq", "updatedTime", "category",
          "positionIdx", "markPrice", "leverage", "liqPrice", "takeProfit", "topic", "type",
          "data", "ts"]


@settings(max_examples=300, deadline=None)
@given(st.dictionaries(st.sampled_from(FIELDS), json_values, max_size=10))
def test_parsers_never_raise(row: dict[str, object]) -> None:
    position_update(row, received_ns=NS)
    position_push({"topic": "position", "data": [row]}, NS)
    msg = {"topic": "tickers.BTCUSDT", **row}
    _state("BTCUSDT").apply(msg, NS)
    raw = json.dumps(msg).encode()  # what orjson cannot read (NaN, huge ints) as well
    fast, slow = _state("BTCUSDT"), _state("BTCUSDT")
    assert _raw_then_dict(fast, raw, NS) == _dict_path(slow, raw, NS)  # the fast path agrees
    assert (fast.last_seen_ns, fast.mark_text("BTCUSDT")) == (
        slow.last_seen_ns, slow.mark_text("BTCUSDT"))
    classify_answer(row)
    decode(json.dumps(row) if row else b"{")


@settings(max_examples=200, deadline=None)
@given(st.binary(max_size=64))
def test_decode_never_raises(raw: bytes) -> None:
    decode(raw)


@pytest.mark.parametrize("size", ["1e999999", "1e-999999", "1e31", [1], {"a": 1}, True])
def test_absurd_or_mistyped_sizes_are_bad_fields(size: object) -> None:
    row = {"symbol": "BTCUSDT", "side": "Buy", "size": size, "entryPrice": "1", "seq": 1}
    res = position_update(row, received_ns=NS)
    assert isinstance(res, Problem) and res.counter == "bad_field"


def test_sane_magnitudes_still_parse() -> None:
    row = {"symbol": "BTCUSDT", "side": "Buy", "size": "1e-8", "entryPrice": "1e20", "seq": 1}
    res = position_update(row, received_ns=NS)
    assert isinstance(res, PositionUpdate) and res.size == Decimal("1e-8")


@pytest.mark.parametrize(
    ("change", "drop"),
    [({"size": ""}, None), ({}, "size"), ({"entryPrice": ""}, None), ({}, "entryPrice"),
     ({"entryPrice": "0"}, None)],
    ids=["empty size", "missing size", "empty entry", "missing entry", "zero entry"],
)
def test_a_missing_or_empty_size_or_entry_is_malformed_never_a_close(
        change: dict[str, str], drop: str | None) -> None:
    msg = copy.deepcopy(payload("position_push_linear.json"))
    row = msg["data"][0]
    row.update(change)
    if drop:
        row.pop(drop)
    updates, problems = position_push(msg, NS)
    assert updates == [] and [p.counter for p in problems] == ["malformed"]
    assert row["symbol"] in problems[0].detail


def test_a_flat_row_may_have_an_empty_entry() -> None:
    row = {"symbol": "BTCUSDT", "side": "", "size": "0", "entryPrice": "", "seq": 1}
    res = position_update(row, received_ns=NS)
    assert isinstance(res, PositionUpdate) and res.size == 0
