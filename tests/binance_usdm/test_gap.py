"""Replaying a gap's fills (pure) and on the simulator's Binance personality: lifecycles
that began and ended while the user stream was down are delivered, in order, before the
snapshot."""

from __future__ import annotations

import asyncio
from decimal import Decimal
from typing import Any

import pytest

from feedctl import Category, FeedState, Position, PositionKey, PositionUpdate, Side
from feedctl.plugins.binance_usdm.gap import (
    Trade,
    income_symbols,
    lost_lifecycles,
    parse_trades,
    replay,
)
from feedctl.plugins.binance_usdm.user import push_of_fill
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
        await h.ctl.set_price(ETH, "3000")  # held: the sell below realises a profit
        # in force from the control call's answer until cleared, however loaded the
        # machine; the feed sends no ping meanwhile (ping_interval below)
        active = await h.ctl.stall("private", 60)
        assert [f["fault"] for f in active["active"]] == ["stall"]
        await h.ctl.place_order(ETH, "Buy", Decimal("1"))
        await h.ctl.clear_faults()
        assert await h.ctl.faults() == []
        await h.ctl.set_price(ETH, "3100")
        await h.ctl.place_order(ETH, "Sell", Decimal("2"))
        await probe.wait_for(lambda: probe.lifecycle(ETH) == ["opened", "opened", "closed"],
                             "the short, then the lost long as past")

    probe = run(scenario, ping_interval=30, pong_timeout=30, fill_confirm_after=5)
    past = [e for e in probe.events if e.past]
    assert [(e.kind.value, e.position.side) for e in past] == [
        ("opened", Side.LONG), ("closed", Side.LONG)]
    assert probe.ctx.counters["unseen_lifecycles"] == 1


@pytest.mark.unit
def test_a_fills_push_is_the_first_at_or_after_its_time_within_the_match_window() -> None:
    def pushed(amount: str, ms: int) -> tuple[PositionUpdate, bool]:
        a = Decimal(amount)
        side = None if a == 0 else (Side.LONG if a > 0 else Side.SHORT)
        return PositionUpdate(category=Category.LINEAR, symbol="ETHUSDT", side=side,
                              size=abs(a), entry_price=Decimal(100) if a else Decimal(0),
                              seq=ms * 1000, exchange_ms=ms), False

    flat, own, later = pushed("0", 900), pushed("-1", 1001), pushed("-3", 1500)
    # the account update stamped a millisecond after the fill is the fill's own
    assert push_of_fill([flat, own, later], 1000) is own[0]
    # the state before the fill is never taken for its push (not arrived yet: None)
    assert push_of_fill([flat], 1000) is None
    assert push_of_fill([flat, pushed("2", 2001)], 1000) is None  # too far


@pytest.mark.unit
def test_a_reducing_fill_onto_a_flat_replay_is_one_the_start_reflects() -> None:
    """A snapshot served after a close (its time earlier: retries, a delay) left the key
    flat: the close's fill, newer than the floor, is not replayed as an open."""
    close = Trade(ONE_WAY, Decimal("1721"), Decimal("0.23"), 10, 10, reduced=True)
    assert replay([close], {}, {}, {}, 1, {}) == []
    reopen = trade(ONE_WAY, "-5", "0.24", 20)
    assert shape(replay([close, reopen], {}, {}, {}, 1, {})) == [
        (Side.SHORT, 5, Decimal("0.24"), 20)]
    # a reducing fill that does apply (the replay holds the other side) is replayed
    opened = trade(ONE_WAY, "-1721", "0.25", 5)
    assert shape(replay([opened, close], {}, {}, {}, 1, {})) == [
        (Side.SHORT, 1721, Decimal("0.25"), 5), (None, 0, 0, 10)]
