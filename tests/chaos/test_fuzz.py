"""Fuzzing the parsing layers with hypothesis: arbitrary bytes, arbitrary JSON, and
structurally valid messages whose field values are garbage.

The contract (design.md, "Bad input never crashes a feed"): nothing raises out of a
feed's parsing layer — a bad message becomes a counted :class:`Problem` (bybit_hybrid),
a ``MalformedRow`` the poller counts (rest_polling), or a retryable/fatal feed error
(REST answers); a frame handler never has to catch anything (``handler_errors`` stays 0).

Runs are derandomized (the same examples every run); set ``FEEDCTL_FUZZ_EXAMPLES`` to
a larger number for a longer, randomized hunt.
"""

from __future__ import annotations

import asyncio
import logging
import os
from decimal import Decimal
from typing import Any

import orjson
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from pydantic import SecretStr

from feedctl import (
    AccountSettings,
    Category,
    Endpoints,
    FatalFeedError,
    FeedContext,
    MarkPrice,
    PositionBook,
    PositionUpdate,
    RetryableFeedError,
    Side,
)
from feedctl.plugins.bybit_hybrid import HybridSettings, make_feed
from feedctl.plugins.bybit_hybrid.parse import (
    Answer,
    Problem,
    TickerState,
    classify_answer,
    decode,
    position_push,
    position_update,
)
from feedctl.plugins.bybit_hybrid.public import PublicStream
from feedctl.plugins.bybit_hybrid.rest import RestClient
from feedctl.plugins.bybit_hybrid.signing import ServerClock
from feedctl.plugins.bybit_hybrid.ticks import TickHandler
from feedctl.plugins.bybit_hybrid.ws import Conn
from feedctl.plugins.rest_polling.parse import (
    MalformedRow,
    ParsedRow,
    envelope_list,
    mark_from_ticker,
    position_row,
)

pytestmark = pytest.mark.unit

_RANDOM = os.environ.get("FEEDCTL_FUZZ_EXAMPLES")
FUZZ = settings(max_examples=int(_RANDOM or 150), deadline=None, derandomize=not _RANDOM,
                suppress_health_check=[HealthCheck.too_slow], database=None)

# ------------------------------------------------------------------------ strategies
scalars = (st.none() | st.booleans() | st.integers(min_value=-(2**70), max_value=2**70)
           | st.floats(allow_nan=True, allow_infinity=True) | st.text(max_size=20))
json_values = st.recursive(scalars, lambda c: st.lists(c, max_size=4)
                           | st.dictionaries(st.text(max_size=8), c, max_size=4), max_leaves=12)
#: what a numeric Bybit field may contain when something upstream goes wrong
garbage = st.one_of(
    st.sampled_from(["", "0", "-1", "1e999999", "-0", "NaN", "sNaN", "Infinity", "-Infinity",
                     "0x10", "1_000", " 1 ", "1,5", "١٢٣", "null", "true", "[]", "1e-999999",
                     "99999999999999999999999999999999999999", "0.000000001"]),
    scalars, st.lists(scalars, max_size=2), st.dictionaries(st.text(max_size=4), scalars,
                                                              max_size=2))
SYMBOLS = ["BTCUSDT", "ETHUSDT"]

POSITION_FIELDS = ["symbol", "side", "size", "entryPrice", "avgPrice", "markPrice",
                   "leverage", "liqPrice", "takeProfit", "stopLoss", "trailingStop", "seq",
                   "updatedTime", "positionIdx", "category"]


@st.composite
def position_rows(draw: Any) -> dict[str, Any]:
    """A row with Bybit's keys; each value valid-looking or garbage."""
    valid = {"symbol": draw(st.sampled_from(SYMBOLS)), "side": draw(st.sampled_from(
        ["Buy", "Sell", ""])), "size": "0.01", "entryPrice": "100", "avgPrice": "100",
        "markPrice": "101", "leverage": "10", "liqPrice": "", "takeProfit": "0",
        "stopLoss": "0", "trailingStop": "0", "seq": 7, "updatedTime": "1700000000000",
        "positionIdx": 0, "category": "linear"}
    row = {}
    for name in POSITION_FIELDS:
        choice = draw(st.integers(0, 3))
        if choice == 0:
            continue  # missing
        row[name] = valid[name] if choice == 1 else draw(garbage)
    return row


@st.composite
def ticker_messages(draw: Any, values: Any = garbage) -> dict[str, Any]:
    data = draw(st.dictionaries(st.sampled_from(["symbol", "markPrice", "lastPrice",
                                                 "bid1Price"]), values, max_size=4))
    msg: dict[str, Any] = {"topic": draw(st.sampled_from(
        ["tickers.BTCUSDT", "tickers.ETHUSDT", "tickers.NOPE", "tickers.", "position", ""])),
        "type": draw(st.sampled_from(["snapshot", "delta", "garbage", ""])),
        "data": draw(st.one_of(st.just(data), json_values))}
    if draw(st.booleans()):
        msg["ts"] = draw(garbage)
    if draw(st.booleans()):
        msg["cs"] = draw(garbage)
    return msg


# ------------------------------------------------------------------------ bybit_hybrid parse
@FUZZ
@given(st.binary(max_size=300) | st.text(max_size=300).map(str.encode))
def test_decode_arbitrary_bytes(raw: bytes) -> None:
    out = decode(raw)
    assert isinstance(out, dict | Problem)
    if isinstance(out, Problem):
        assert out.counter == "malformed"


@FUZZ
@given(st.dictionaries(st.sampled_from(["op", "success", "ret_msg", "retMsg", "req_id",
                                        "reqId", "pong", "request", "conn_id", "retCode"]),
                       json_values, max_size=6))
def test_classify_answer_arbitrary_objects(msg: dict[str, Any]) -> None:
    assert isinstance(classify_answer(msg), Answer | Problem)


@FUZZ
@given(json_values | position_rows())
def test_position_rows_never_raise(row: Any) -> None:
    out = position_update(row, received_ns=1)
    assert isinstance(out, PositionUpdate | Problem)
    if isinstance(out, Problem):
        assert out.counter in ("malformed", "bad_field")
    else:  # what passes is sane: a finite, non-negative size and a side iff open
        assert out.size.is_finite() and out.size >= 0
        assert (out.side is None) == (out.size == 0)


@FUZZ
@given(st.fixed_dictionaries({"topic": st.just("position"),
                              "data": st.lists(position_rows() | json_values, max_size=4)
                              | json_values}))
def test_position_pushes_never_raise(msg: dict[str, Any]) -> None:
    updates, problems = position_push(msg, 1)
    assert all(isinstance(u, PositionUpdate) for u in updates)
    assert all(isinstance(p, Problem) for p in problems)


@FUZZ
@given(st.lists(ticker_messages() | st.dictionaries(st.text(max_size=6), json_values,
                                                     max_size=4), max_size=5))
def test_ticker_merge_never_raises(messages: list[dict[str, Any]]) -> None:
    state = TickerState(Category.LINEAR)
    state.symbols.update(SYMBOLS)
    for msg in messages:
        out = state.apply(msg, 1)
        assert out is None or isinstance(out, Problem) or (
            out.mark.is_finite() and out.mark > 0)


# ------------------------------------------------------------------------ whole frames
def _feed() -> Any:
    book = PositionBook(exchange="bybit", account="a", feed="fuzz")
    ctx = FeedContext(name="fuzz", kind="bybit_hybrid", role=None,
                      account=AccountSettings(api_key="k", api_secret="s"),
                      endpoints=Endpoints(rest="http://127.0.0.1:9", public_ws="ws://127.0.0.1:9",
                                          public_ws_inverse="ws://127.0.0.1:9",
                                          private_ws="ws://127.0.0.1:9"), book=book)
    return make_feed(ctx, HybridSettings())


def _frames(raws: list[bytes]) -> dict[str, int]:
    """Feed raw frames to a private and a public connection (never opened); return the
    feed's counters."""

    async def main() -> dict[str, int]:
        feed = _feed()
        stream = PublicStream(feed, Category.LINEAR, "ws://127.0.0.1:9")
        tickers = TickerState(Category.LINEAR)
        tickers.symbols.update(SYMBOLS)
        common = dict(ping_interval=20, pong_timeout=10, request_timeout=10,
                      log=feed.ctx.log, count=feed.ctx.count, report=feed.report)
        private = Conn(name="private", url="ws://x", on_data=feed.private._on_data, **common)
        public = Conn(name="public", url="ws://x", on_data=TickHandler(stream, tickers),
                      **common)
        for raw in raws:
            private._frame(raw, 1)
            public._frame(raw, 1)
        await asyncio.sleep(0)  # the tick handler's batched bookkeeping
        return dict(feed.ctx.counters)

    logging.disable(logging.CRITICAL)
    try:
        return asyncio.run(main())
    finally:
        logging.disable(logging.NOTSET)


def _dump(value: Any) -> bytes:
    try:
        return orjson.dumps(value)
    except TypeError:  # integers beyond 64 bits: orjson refuses them
        return b'{"topic":"position","data":[' + str(value)[:40].encode() + b"]}"


#: ticker field values without the lists and objects that trip F8 (tested apart below)
_F8_FREE = st.one_of(scalars, st.sampled_from(["NaN", "-1", "1e999999", "0x10", ""]))


@FUZZ
@given(st.lists(st.binary(max_size=120) | json_values.map(_dump)
                | ticker_messages(_F8_FREE).map(_dump)
                | st.lists(position_rows(), max_size=3).map(
                    lambda rows: _dump({"topic": "position", "data": rows})), max_size=6))
def test_no_frame_reaches_a_handler_as_an_exception(raws: list[bytes]) -> None:
    counters = _frames(raws)
    assert counters.get("handler_errors", 0) == 0, counters


@pytest.mark.parametrize("mark", [[], [1, 2]])
def test_a_ticker_mark_of_the_wrong_type_is_a_bad_field(mark: Any) -> None:
    snapshot = {"topic": "tickers.BTCUSDT", "type": "snapshot", "ts": 1,
                "data": {"symbol": "BTCUSDT", "markPrice": mark}}
    counters = _frames([orjson.dumps(snapshot)])
    assert counters.get("handler_errors", 0) == 0 and counters.get("bad_field", 0) == 1


def test_an_absurd_magnitude_is_a_bad_field_not_an_overflow() -> None:
    row = {"symbol": "BTCUSDT", "side": "Buy", "size": "1e999999", "entryPrice": "1",
           "seq": 1, "updatedTime": "1"}
    assert isinstance(position_update(row, received_ns=1), Problem)


def test_the_book_survives_an_absurd_size() -> None:
    book = PositionBook(exchange="bybit", account="a", feed="f")
    book.apply(PositionUpdate(symbol="BTCUSDT", side=Side.LONG, size=Decimal("1e999999"),
                              entry_price=Decimal(1), seq=1))
    book.apply_mark(MarkPrice(symbol="BTCUSDT", mark_price=Decimal(65000)))


def test_a_malformed_frame_is_counted_and_the_next_one_applies() -> None:
    good = orjson.dumps({"topic": "position", "data": [{
        "symbol": "BTCUSDT", "side": "Buy", "size": "0.01", "entryPrice": "100",
        "seq": 3, "updatedTime": "1700000000000", "positionIdx": 0}]})
    counters = _frames([b'{"topic":"position","data":[{"symbol":"BTC', good,
                        orjson.dumps({"topic": "position", "data": [{"symbol": "ETHUSDT",
                                                                     "size": "NaN"}]})])
    assert counters["malformed"] >= 2  # the truncated frame, on both connections
    assert counters["bad_field"] >= 1
    assert counters.get("handler_errors", 0) == 0


# ------------------------------------------------------------------------ hybrid REST
class _Resp:
    def __init__(self, status: int, body: bytes, headers: dict[str, str]) -> None:
        self.status, self._body, self.headers = status, body, headers

    async def read(self) -> bytes:
        return self._body

    async def __aenter__(self) -> _Resp:
        return self

    async def __aexit__(self, *exc: object) -> None:
        return None


class _Session:
    """Answers every GET with the same status, body and headers."""

    def __init__(self, status: int, body: bytes, headers: dict[str, str]) -> None:
        self.answer = (status, body, headers)

    def get(self, *_a: Any, **_kw: Any) -> _Resp:
        return _Resp(*self.answer)


def _rest(status: int, body: bytes, headers: dict[str, str] | None = None) -> RestClient:
    s = HybridSettings(rest_attempts=1, backoff_base=0.001, backoff_cap=0.001)
    log = logging.LoggerAdapter(logging.getLogger("feedctl.fuzz"), {})
    return RestClient(_Session(status, body, headers or {}), "http://127.0.0.1:9",  # type: ignore[arg-type]
                      SecretStr("key"), SecretStr("secret"), ServerClock(), s, log,
                      lambda *_: None)


def _call(client: RestClient, what: str) -> None:
    async def main() -> None:
        if what == "positions":
            await client.positions([Category.LINEAR], ["USDT"])
        elif what == "fills":
            await client.fills([Category.LINEAR], 0, max_pages=3)
        else:
            await client.sync_clock()

    logging.getLogger("feedctl").disabled = True
    try:
        asyncio.run(main())
    except (RetryableFeedError, FatalFeedError):
        pass  # a bad answer is a retryable (or, for a bad key, fatal) feed error
    finally:
        logging.getLogger("feedctl").disabled = False


WHAT = st.sampled_from(["positions", "fills", "time"])


@FUZZ
@given(st.sampled_from([200, 401, 403, 404, 429, 500, 502, 503]), st.binary(max_size=200),
       st.dictionaries(st.sampled_from(["X-Bapi-Limit-Reset-Timestamp", "X-Bapi-Limit"]),
                       st.text(max_size=12), max_size=2), WHAT)
def test_rest_arbitrary_answers_are_feed_errors(status: int, body: bytes,
                                               headers: dict[str, str], what: str) -> None:
    _call(_rest(status, body, headers), what)


@FUZZ
@given(st.fixed_dictionaries({"retCode": st.just(0), "time": garbage,
                              "result": json_values | st.fixed_dictionaries({
                                  "list": json_values, "nextPageCursor": json_values,
                                  "timeNano": garbage, "timeSecond": garbage})}), WHAT)
def test_rest_ok_envelopes_with_garbage_results_are_feed_errors(env: dict[str, Any],
                                                                what: str) -> None:
    _call(_rest(200, _dump(env)), what)


@pytest.mark.parametrize(("what", "result"), [("time", [1]), ("time", "x"),
                                              ("positions", {"list": 5}),
                                              ("fills", {"list": 5})])
def test_rest_ok_envelope_of_the_wrong_shape(what: str, result: Any) -> None:
    _call(_rest(200, orjson.dumps({"retCode": 0, "result": result})), what)


def test_rest_ok_envelopes_of_tolerable_shapes() -> None:
    for what in ("positions", "fills"):
        for result in ([1], "x", {"list": "abc"}, {"list": {"a": 1}}, {"list": None}):
            _call(_rest(200, orjson.dumps({"retCode": 0, "result": result})), what)


# ------------------------------------------------------------------------ rest_polling
MARKET = {"id": "BTCUSDT", "symbol": "BTC/USDT:USDT", "linear": True, "inverse": False}


@st.composite
def ccxt_positions(draw: Any) -> dict[str, Any]:
    info = draw(position_rows())
    unified = {k: draw(garbage) for k in draw(st.lists(st.sampled_from(
        ["contracts", "side", "entryPrice", "markPrice", "leverage", "liquidationPrice",
         "takeProfitPrice", "stopLossPrice", "lastUpdateTimestamp", "hedged"]),
        max_size=6, unique=True))}
    return {**unified, "info": info if draw(st.integers(0, 4)) else draw(json_values)}


@FUZZ
@given(ccxt_positions() | json_values, st.sampled_from([MARKET, None]),
       st.sampled_from([Category.LINEAR, None]), st.booleans())
def test_rest_polling_position_rows(pos: Any, market: Any, category: Any,
                                    raw_fields: bool) -> None:
    try:
        out = position_row(pos, market, category=category, raw_fields=raw_fields,
                           received_ns=1)
    except MalformedRow:
        return
    assert isinstance(out, ParsedRow)
    assert out.update.size.is_finite() and out.update.size >= 0
    # and what parses can go through a book without raising
    book = PositionBook(exchange="bybit", account="a", feed="f")
    book.apply(out.update)
    if out.mark is not None and out.mark > 0:
        book.apply_mark(MarkPrice(symbol=out.update.symbol, category=out.update.category,
                                  mark_price=out.mark))


@FUZZ
@given(st.dictionaries(st.sampled_from(["markPrice", "timestamp", "info", "symbol"]),
                       garbage | st.dictionaries(st.just("markPrice"), garbage), max_size=4)
       | json_values)
def test_rest_polling_tickers(ticker: Any) -> None:
    try:
        out = mark_from_ticker(ticker, MARKET, received_ns=1)
    except MalformedRow:
        return
    assert out is None or (isinstance(out, MarkPrice) and out.mark_price > 0)


@FUZZ
@given(st.fixed_dictionaries({"retCode": garbage, "time": garbage, "result": json_values
                              | st.fixed_dictionaries({"list": json_values,
                                                       "nextPageCursor": garbage})})
       | json_values)
def test_rest_polling_envelopes(env: Any) -> None:
    try:
        rows, cursor, server_ms = envelope_list(env)
    except MalformedRow:
        return
    assert isinstance(rows, list) and isinstance(cursor, str)
    assert server_ms is None or isinstance(server_ms, int)


def test_rest_polling_decimal_edge_cases_are_malformed_not_crashes() -> None:
    """Regression (fixed here): '1e999999' is a finite Decimal, so it used to parse, and
    the book's PnL then raised decimal.Overflow on every poll."""
    for bad in ("NaN", "Infinity", "1e999999", "1e-999999", [1], {"a": 1}, True):
        with pytest.raises(MalformedRow):
            position_row({"info": {"symbol": "BTCUSDT", "size": bad, "side": "Buy",
                                   "avgPrice": "1"}}, MARKET)
        with pytest.raises(MalformedRow):
            mark_from_ticker({"info": {"markPrice": bad}}, MARKET)
    assert position_row({"info": {"symbol": "BTCUSDT", "size": "0"}}, MARKET).update.size == 0


@pytest.mark.parametrize("env", [{"retCode": 0, "result": None, "time": 1},
                                 {"retCode": 0, "time": 1},
                                 {"retCode": 0, "result": {}, "time": 1},
                                 {"retCode": 0, "result": {"list": None}, "time": 1}])
def test_an_ok_answer_without_a_list_is_not_an_empty_account(env: dict[str, Any]) -> None:
    async def main() -> None:
        await _rest(200, orjson.dumps(env)).positions([Category.LINEAR], ["USDT"])

    with pytest.raises(RetryableFeedError):
        asyncio.run(main())
