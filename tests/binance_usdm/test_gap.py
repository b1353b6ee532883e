"""Replaying a gap's fills (pure) and on the simulator's Binance personality: lifecycles
that began and ended while the user stream was down are delivered, in order, before the
snapshot."""

from __future__ import annotations

import asyncio
from decimal import Decimal
from typing import Any

import pytest

from feedctl import Category, FeedState, Position, PositionKey, Side
from feedctl.plugins.binance_usdm.gap import (
    Trade,
    income_symbols,
    lost_lifecycles,
    parse_trades,
    replay,
)
from feedctl.testing import FeedProbe

from .sim_harness import SimBinanceHarness, run
from .test_streams import BTC, ETH

ONE_WAY = PositionKey(Category.LINEAR, "ETHUSDT", 0)
LONG = PositionKey(Category.LINEAR, "ETHUSDT", 1)


def trade(key: PositionKey, qty: str, price: str, ms: int) -> Trade:
    return Trade(key, Decimal(qty), Decimal(price), ms, ms)


def shape(states: list[Any]) -> list[tuple[Any, ...]]:
    return [(u.side, u.size, u.entry_price, u.exchange_ms) for u in states]


@pytest.mark.unit
def test_open_add_close_from_flat() -> None:
    states = replay([trade(ONE_WAY, "1", "100", 10), trade(ONE_WAY, "1", "200", 20),
                     trade(ONE_WAY, "-2", "150", 30)], {}, {}, {}, 1, {})
    assert shape(states) == [(Side.LONG, 1, 100, 10), (Side.LONG, 2, 150, 20),
                             (None, 0, 0, 30)]


@pytest.mark.unit
def test_through_zero_opens_the_other_side_at_the_fill_price() -> None:
    book = {ONE_WAY: Position(exchange="x", account="a", feed="f", category=Category.LINEAR,
                              symbol="ETHUSDT", side=Side.LONG, size=Decimal(1),
                              entry_price=Decimal(100), exchange_ms=5, received_ns=1)}
    states = replay([trade(ONE_WAY, "-3", "90", 10)], book, {ONE_WAY: 5}, {}, 1, {})
    assert shape(states) == [(Side.SHORT, 2, 90, 10)]


@pytest.mark.unit
def test_fills_the_book_reflects_and_states_the_snapshot_outranks_are_left_out() -> None:
    book = {ONE_WAY: Position(exchange="x", account="a", feed="f", category=Category.LINEAR,
                              symbol="ETHUSDT", side=Side.LONG, size=Decimal(1),
                              entry_price=Decimal(100), exchange_ms=10, received_ns=1)}
    trades = [trade(ONE_WAY, "1", "100", 10), trade(ONE_WAY, "-1", "100", 20),
              trade(ONE_WAY, "2", "100", 30)]
    states = replay(trades, book, {ONE_WAY: 10}, {ONE_WAY: 30}, 1, {})
    assert shape(states) == [(None, 0, 0, 20)]  # 10 reflected, 30 the snapshot's


@pytest.mark.unit
def test_one_state_per_millisecond() -> None:
    states = replay([trade(ONE_WAY, "1", "100", 10), trade(ONE_WAY, "1", "100", 10)],
                    {}, {}, {}, 1, {})
    assert shape(states) == [(Side.LONG, 2, 100, 10)]


@pytest.mark.unit
def test_hedge_long_side_reduces_on_sells() -> None:
    states = replay([trade(LONG, "2", "100", 10), trade(LONG, "-2", "110", 20)], {}, {}, {},
                    1, {"ETHUSDT": Decimal(5)})
    assert [(u.position_idx, u.side, u.size, u.leverage) for u in states] == [
        (1, Side.LONG, 2, 5), (1, None, 0, None)]


@pytest.mark.unit
def test_user_trades_rows_and_income_symbols_parse() -> None:
    rows = [{"symbol": "BTCUSDT", "id": 1, "side": "SELL", "positionSide": "BOTH",
             "qty": "0.5", "price": "60000", "time": 7, "realizedPnl": "0"},
            {"symbol": "BTCUSDT", "id": 2, "side": "SELL", "qty": "NaN", "price": "1",
             "time": 8}]
    trades, problems = parse_trades(rows)
    assert [(t.qty, t.time_ms) for t in trades] == [(Decimal("-0.5"), 7)]
    assert [p.counter for p in problems] == ["bad_field"]
    assert income_symbols([{"symbol": "ETHUSDT", "incomeType": "COMMISSION"},
                           {"symbol": "", "incomeType": "TRANSFER"}, 5]) == {"ETHUSDT"}


@pytest.mark.integration
def test_a_lifecycle_inside_an_outage_is_delivered() -> None:
    async def scenario(probe: FeedProbe, h: SimBinanceHarness) -> None:
        await probe.healthy()
        await h.ctl.place_order(BTC, "Buy", Decimal("0.01"))
        await probe.wait_for(lambda: probe.lifecycle(BTC) == ["opened"], "BTC opened")
        # cut off: no handshake, the snapshot fails, the open sockets drop
        await h.ctl.refuse_handshakes("all", 60)
        await h.ctl.rest_errors("503", count=100_000, path="/fapi/v3/positionRisk")
        await h.ctl.drop("all")
        await probe.wait_for(lambda: probe.state is not FeedState.HEALTHY, "the outage seen")
        await h.ctl.place_order(ETH, "Buy", Decimal("1"))     # opened and closed while cut off
        await asyncio.sleep(0.01)  # fills are stamped in ms: one state per ms
        await h.ctl.place_order(ETH, "Sell", Decimal("1"))
        await h.ctl.place_order(BTC, "Sell", Decimal("0.02"))  # BTC flips to short
        await h.ctl.clear_faults()
        await probe.wait_for(lambda: probe.ctx.counters.get("resyncs", 0) >= 2, "a resync")
        await probe.healthy()

    probe = run(scenario)
    assert probe.lifecycle(ETH) == ["opened", "closed"]
    assert probe.lifecycle(BTC) == ["opened", "closed", "opened"]
    btc = probe.position(BTC)
    assert btc is not None and (btc.side, btc.size) == (Side.SHORT, Decimal("0.01"))
    # ETH's two states come from the fills; BTC's flip is the snapshot row's own state
    assert probe.ctx.counters["gap_replayed"] == 2


@pytest.mark.integration
def test_a_lifecycle_inside_lost_pushes_is_delivered() -> None:
    async def scenario(probe: FeedProbe, h: SimBinanceHarness) -> None:
        await probe.healthy()
        await h.ctl.drop_account_updates(2)
        await h.ctl.place_order(ETH, "Sell", Decimal("2"))
        await asyncio.sleep(0.01)
        await h.ctl.place_order(ETH, "Buy", Decimal("2"))
        await probe.wait_for(lambda: probe.lifecycle(ETH) == ["opened", "closed"],
                             "the lifecycle from the fills")

    probe = run(scenario)
    # by the missing push's deadline (a resync and its fill replay) or, when the close's
    # fill realised a profit (the price moved), at once from the fills, as past
    found = [probe.ctx.counters.get(c, 0) for c in ("position_push_missing",
                                                    "unseen_lifecycles")]
    assert sum(found) >= 1, probe.ctx.counters
    assert not probe.book.positions


@pytest.mark.unit
def test_lost_lifecycles_end_at_the_close_or_the_flip_and_leave_the_rest_out() -> None:
    states, amount = lost_lifecycles([trade(ONE_WAY, "1", "100", 10),
                                      trade(ONE_WAY, "1", "200", 20),
                                      trade(ONE_WAY, "-3", "150", 30),
                                      trade(ONE_WAY, "2", "140", 40)], 1, {})
    assert amount == 1
    assert shape(states) == [(Side.LONG, 1, 100, 10), (Side.LONG, 2, 150, 20),
                             (None, 0, 0, 30), (Side.SHORT, 1, 150, 30), (None, 0, 0, 40)]


@pytest.mark.integration
def test_a_lifecycle_whose_pushes_a_stall_dropped_is_recovered_from_a_reducing_fill() -> None:
    """The private socket stalls (its frames are lost, the socket stays up) while ETH is
    bought; after the stall a sell of twice that flips it: the flip's fill realises a
    profit on a key the book held flat, so the lost long lifecycle is recovered from the
    fills and delivered as past."""
    async def scenario(probe: FeedProbe, h: SimBinanceHarness) -> None:
        await probe.healthy()
        # long enough that the buy lands inside it on a loaded machine; no ping inside
        await h.ctl.stall("private", 1.0)
        await h.ctl.place_order(ETH, "Buy", Decimal("1"))
        await asyncio.sleep(1.2)
        await h.ctl.place_order(ETH, "Sell", Decimal("2"))
        await probe.wait_for(lambda: probe.lifecycle(ETH) == ["opened", "opened", "closed"],
                             "the short, then the lost long as past")

    probe = run(scenario, ping_interval=30, pong_timeout=30, fill_confirm_after=5)
    past = [e for e in probe.events if e.past]
    assert [(e.kind.value, e.position.side) for e in past] == [
        ("opened", Side.LONG), ("closed", Side.LONG)]
    assert probe.ctx.counters["unseen_lifecycles"] == 1
