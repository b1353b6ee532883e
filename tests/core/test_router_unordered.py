"""Router: states of two feeds that neither seq nor exchange time orders (a poller
standby whose rows carry neither, beside a stream's recovered states): a price of such
a state only moves the mark; such a state is at the latest as old as its receipt."""

from __future__ import annotations

import time
from decimal import Decimal
from typing import Any

import pytest

from feedctl import (
    Category,
    EventKind,
    FeedState,
    MarkPrice,
    PositionEvent,
    PositionKey,
    PositionUpdate,
    Role,
    Side,
)

from .test_router import _failed_over_on_a_clock, pos_events, setup, status, upd

pytestmark = pytest.mark.unit
D = Decimal


def test_a_price_of_a_standby_state_nothing_orders_only_moves_the_mark() -> None:
    """The standby delivers; the primary recovers a flip (short -> long, with seq and
    exchange time) that the standby's poll, whose rows carry neither, has not seen yet:
    the standby's next price event carries its stale short and must not take consumers
    back to it - only its mark reaches them."""
    router, books, delivered, clock, _ = setup({"h": Role.PRIMARY, "r": Role.STANDBY})
    status(router, "h", FeedState.HEALTHY)
    status(router, "r", FeedState.HEALTHY)
    books["h"].apply(upd("BTCUSDT", "3", 1, Side.SHORT))
    books["r"].apply(PositionUpdate(symbol="BTCUSDT", side=Side.SHORT, size=D("3"),
                                    entry_price=D("100")))
    status(router, "h", FeedState.RECONNECTING)
    clock.t += 2
    router.evaluate()
    assert router.active == "r"
    status(router, "h", FeedState.HEALTHY)  # resynced; failback waits
    books["h"].apply(PositionUpdate(symbol="BTCUSDT", side=Side.LONG, size=D("5"),
                                    entry_price=D("101"), seq=2, exchange_ms=2_000))
    key = PositionKey(Category.LINEAR, "BTCUSDT", 0)
    assert router.delivered[key].side is Side.LONG  # the recovered flip reached consumers
    before = len(delivered)
    books["r"].apply_mark(MarkPrice(symbol="BTCUSDT", mark_price=D("99"),
                                    received_ns=10**19))
    told = router.delivered[key]
    assert (told.side, told.size, told.mark_price) == (Side.LONG, D("5"), D("99"))
    assert [e.kind for e in delivered[before:] if isinstance(e, PositionEvent)] == [
        EventKind.PRICE]


def _a_close_after_a_timeless_standby_row() -> Any:
    """Both feeds healthy; the standby's row (no seq, no time) is received now, then the
    primary opens and closes the position (exchange time ``close_ms``, 50 ms later)."""
    router, books, delivered, clock, _ = setup({"h": Role.PRIMARY, "r": Role.STANDBY})
    status(router, "h", FeedState.HEALTHY)
    status(router, "r", FeedState.HEALTHY)
    stale = PositionUpdate(symbol="BTCUSDT", side=Side.LONG, size=D("2"), entry_price=D("100"))
    books["r"].reconcile([stale])  # received now
    close_ms = stale.received_ns // 1_000_000 + 50
    books["h"].apply(PositionUpdate(symbol="BTCUSDT", side=Side.LONG, size=D("2"),
                                    entry_price=D("100"), seq=1, exchange_ms=close_ms - 10))
    books["h"].apply(PositionUpdate(symbol="BTCUSDT", side=None, size=D(0), seq=2,
                                    exchange_ms=close_ms))
    return router, books, delivered, clock, close_ms


def test_a_timeless_standby_state_from_before_a_close_consumers_hold_is_not_reopened(
        ) -> None:
    """Consumers were told the primary's close (exchange time T); the standby's rows
    carry no time and its row was received before T: at the failover its stale open is
    not delivered. A row received after T counts again."""
    router, books, delivered, clock, close_ms = _a_close_after_a_timeless_standby_row()
    status(router, "h", FeedState.RECONNECTING)
    clock.t += 2
    router.evaluate()
    assert router.active == "r"
    assert pos_events(delivered) == [("opened", "BTCUSDT"), ("closed", "BTCUSDT")]
    books["r"].apply(PositionUpdate(symbol="BTCUSDT", side=Side.LONG, size=D("3"),
                                    entry_price=D("101"),  # a row read after the close
                                    received_ns=(close_ms + 100) * 1_000_000))
    assert pos_events(delivered)[-1] == ("opened", "BTCUSDT")


def test_a_mark_does_not_make_a_timeless_standby_state_newer_than_a_close() -> None:
    """As above, but the standby's book takes a mark after the close (a price event
    refreshes its position's receive time): the row itself was still received before
    the close, so neither the mark's price event nor the failover reopens it."""
    router, books, delivered, clock, close_ms = _a_close_after_a_timeless_standby_row()
    books["r"].apply_mark(MarkPrice(symbol="BTCUSDT", mark_price=D("99"),
                                    received_ns=(close_ms + 100) * 1_000_000))
    status(router, "h", FeedState.RECONNECTING)
    clock.t += 2
    router.evaluate()
    assert router.active == "r"
    books["r"].apply_mark(MarkPrice(symbol="BTCUSDT", mark_price=D("98"),
                                    received_ns=(close_ms + 200) * 1_000_000))
    assert pos_events(delivered) == [("opened", "BTCUSDT"), ("closed", "BTCUSDT")]
    books["r"].apply(PositionUpdate(symbol="BTCUSDT", side=Side.LONG, size=D("3"),
                                    entry_price=D("101"),  # a row read after the close
                                    received_ns=(close_ms + 300) * 1_000_000))
    assert pos_events(delivered)[-1] == ("opened", "BTCUSDT")


def test_a_timeless_standby_change_from_before_what_consumers_hold_is_not_delivered(
        ) -> None:
    """Consumers hold the primary's recovered state (exchange time T) while the standby
    delivers; the standby's rows carry no time and its row was received before T: its
    change (the older state) does not take consumers back."""
    router, books, _delivered, clock, _ = setup({"h": Role.PRIMARY, "r": Role.STANDBY})
    status(router, "h", FeedState.HEALTHY)
    status(router, "r", FeedState.HEALTHY)
    books["r"].reconcile([PositionUpdate(symbol="BTCUSDT", side=Side.LONG, size=D("2"),
                                         entry_price=D("100"))])
    books["h"].apply(PositionUpdate(symbol="BTCUSDT", side=Side.LONG, size=D("2"),
                                    entry_price=D("100"), seq=1, exchange_ms=1))
    status(router, "h", FeedState.RECONNECTING)
    clock.t += 2
    router.evaluate()
    assert router.active == "r"
    t = time.time_ns() // 1_000_000 + 50  # after the standby's row was received
    books["h"].apply(PositionUpdate(symbol="BTCUSDT", side=Side.LONG, size=D("5"),
                                    entry_price=D("101"), seq=2, exchange_ms=t))
    key = PositionKey(Category.LINEAR, "BTCUSDT", 0)
    assert router.delivered[key].size == D("5")
    books["r"].apply(PositionUpdate(symbol="BTCUSDT", side=Side.LONG, size=D("3"),
                                    entry_price=D("100")))  # received before T
    assert router.delivered[key].size == D("5")


def test_failback_does_not_close_a_timeless_standby_open_newer_than_the_primarys_flat(
        ) -> None:
    """Consumers were told the primary's close (exchange time T); the standby then
    delivers a new lifecycle from a row without time, received after T. The primary,
    healthy again, knows the key flat only as of T (it missed the reopen): the failback
    does not close consumers' position; a snapshot of the primary taken after the row
    was received, still without the key, does."""
    router, books, delivered, clock, _ = setup({"h": Role.PRIMARY, "r": Role.STANDBY})
    status(router, "h", FeedState.HEALTHY)
    status(router, "r", FeedState.HEALTHY)
    now_ms = time.time_ns() // 1_000_000
    books["h"].apply(PositionUpdate(symbol="BTCUSDT", side=Side.LONG, size=D("2"),
                                    entry_price=D("100"), seq=1, exchange_ms=now_ms - 100))
    books["h"].apply(PositionUpdate(symbol="BTCUSDT", side=None, size=D(0), seq=2,
                                    exchange_ms=now_ms - 50))
    status(router, "h", FeedState.RECONNECTING)
    clock.t += 2
    router.evaluate()
    assert router.active == "r"
    books["r"].apply(PositionUpdate(symbol="BTCUSDT", side=Side.SHORT, size=D("3"),
                                    entry_price=D("99"), received_ns=now_ms * 1_000_000))
    assert pos_events(delivered) == [("opened", "BTCUSDT"), ("closed", "BTCUSDT"),
                                     ("opened", "BTCUSDT")]
    status(router, "h", FeedState.HEALTHY)
    clock.t += 10
    router.evaluate()
    assert router.active == "h"
    key = PositionKey(Category.LINEAR, "BTCUSDT", 0)
    assert router.delivered[key].side is Side.SHORT  # not closed by the failback
    books["h"].reconcile([], as_of_ms=now_ms + 100)
    router.evaluate()  # the router's tick settles the orphan
    assert pos_events(delivered)[-1] == ("closed", "BTCUSDT")
    assert key not in router.delivered


def test_a_recovered_state_of_the_other_side_does_not_flip_a_timeless_standby_state(
        ) -> None:
    """The standby delivers a flip (short -> long) from a row without time; the
    primary's resync then replays the fills behind it, starting with an older short
    state: it does not take consumers back to short (a split). Its replayed flip and
    close follow and reach consumers as the one lifecycle they hold."""
    router, books, delivered, clock, _ = setup({"h": Role.PRIMARY, "r": Role.STANDBY})
    status(router, "h", FeedState.HEALTHY)
    status(router, "r", FeedState.HEALTHY)
    now_ms = time.time_ns() // 1_000_000  # the flip's receipt; exchange times around it
    books["h"].apply(PositionUpdate(symbol="BTCUSDT", side=Side.SHORT, size=D("1"),
                                    entry_price=D("100"), seq=1, exchange_ms=now_ms - 3000))
    status(router, "h", FeedState.RECONNECTING)
    clock.t += 2
    router.evaluate()
    assert router.active == "r"
    books["r"].apply(PositionUpdate(symbol="BTCUSDT", side=Side.LONG, size=D("1"),
                                    entry_price=D("101"),
                                    received_ns=now_ms * 1_000_000))  # the flip, no time
    key = PositionKey(Category.LINEAR, "BTCUSDT", 0)
    assert router.delivered[key].side is Side.LONG
    before = len(pos_events(delivered))
    books["h"].apply(PositionUpdate(symbol="BTCUSDT", side=Side.SHORT, size=D("2"),
                                    entry_price=D("100"), seq=2, exchange_ms=now_ms - 2000))
    assert router.delivered[key].side is Side.LONG  # not taken back to short
    assert len(pos_events(delivered)) == before
    books["h"].apply(PositionUpdate(symbol="BTCUSDT", side=Side.LONG, size=D("1"),
                                    entry_price=D("101"), seq=3, exchange_ms=now_ms - 50))
    books["h"].apply(PositionUpdate(symbol="BTCUSDT", side=None, size=D(0), seq=4,
                                    exchange_ms=now_ms + 1000))
    assert pos_events(delivered) == [("opened", "BTCUSDT"), ("closed", "BTCUSDT"),
                                     ("opened", "BTCUSDT"), ("closed", "BTCUSDT")]


def test_a_recovered_state_older_than_a_timeless_standby_close_does_not_reopen(
        ) -> None:
    """The standby delivered a lifecycle and its close from rows without time; the
    primary's resync then replays that history (exchange times before the close's
    receipt): it does not reopen the position consumers saw closed. The primary's newer
    state (after that receipt) opens it at the failback."""
    router, books, delivered, clock, _ = setup({"h": Role.PRIMARY, "r": Role.STANDBY})
    status(router, "h", FeedState.HEALTHY)
    status(router, "r", FeedState.HEALTHY)
    now_ms = time.time_ns() // 1_000_000
    status(router, "h", FeedState.RECONNECTING)
    clock.t += 2
    router.evaluate()
    assert router.active == "r"
    books["r"].apply(PositionUpdate(symbol="BTCUSDT", side=Side.LONG, size=D("1"),
                                    entry_price=D("101"),
                                    received_ns=(now_ms - 500) * 1_000_000))
    books["r"].apply(PositionUpdate(symbol="BTCUSDT", side=None, size=D(0),
                                    received_ns=now_ms * 1_000_000))
    assert pos_events(delivered) == [("opened", "BTCUSDT"), ("closed", "BTCUSDT")]
    books["h"].apply(PositionUpdate(symbol="BTCUSDT", side=Side.SHORT, size=D("2"),
                                    entry_price=D("100"), seq=2, exchange_ms=now_ms - 900))
    books["h"].apply(PositionUpdate(symbol="BTCUSDT", side=Side.SHORT, size=D("3"),
                                    entry_price=D("100"), seq=3, exchange_ms=now_ms - 800))
    assert pos_events(delivered) == [("opened", "BTCUSDT"), ("closed", "BTCUSDT")]
    books["h"].apply(PositionUpdate(symbol="BTCUSDT", side=Side.SHORT, size=D("4"),
                                    entry_price=D("100"), seq=9, exchange_ms=now_ms + 100))
    status(router, "h", FeedState.HEALTHY)
    clock.t += 10
    router.evaluate()
    assert router.active == "h"
    assert pos_events(delivered) == [("opened", "BTCUSDT"), ("closed", "BTCUSDT"),
                                     ("opened", "BTCUSDT")]
    key = PositionKey(Category.LINEAR, "BTCUSDT", 0)
    assert router.delivered[key].size == D("4")


def test_a_recovered_lifecycle_of_the_other_side_beside_a_timeless_state_is_past(
        ) -> None:
    """The standby delivers a long position from a row without time; the primary's
    resync recovers a short lifecycle, opened and closed, that nothing orders against
    that row: consumers get it as a past lifecycle and keep their long."""
    router, books, delivered, _ = _failed_over_on_a_clock()
    books["r"].apply(PositionUpdate(symbol="BTCUSDT", side=Side.LONG, size=D("1"),
                                    entry_price=D("101")))
    books["h"].apply(PositionUpdate(symbol="BTCUSDT", side=Side.SHORT, size=D("2"),
                                    entry_price=D("100"), seq=2, exchange_ms=2_000))
    books["h"].apply(PositionUpdate(symbol="BTCUSDT", side=None, size=D(0), seq=3,
                                    exchange_ms=2_001))
    events = [e for e in delivered if isinstance(e, PositionEvent)]
    assert [(e.kind.value, e.past) for e in events] == [
        ("opened", False), ("opened", True), ("closed", True)]
    key = PositionKey(Category.LINEAR, "BTCUSDT", 0)
    assert router.delivered[key].side is Side.LONG


def _a_timeless_lifecycle_the_standby_delivered(
        now_ms: int) -> tuple[dict[str, Any], list[object]]:
    """The standby delivers a short lifecycle from rows without time: opened (received
    at ``now_ms - 1000``) and closed (received at ``now_ms - 200``)."""
    _, books, delivered, _ = _failed_over_on_a_clock()
    books["r"].apply(PositionUpdate(symbol="BTCUSDT", side=Side.SHORT, size=D("2"),
                                    entry_price=D("100"),
                                    received_ns=(now_ms - 1000) * 1_000_000))
    books["r"].apply(PositionUpdate(symbol="BTCUSDT", side=None, size=D(0),
                                    received_ns=(now_ms - 200) * 1_000_000))
    assert pos_events(delivered) == [("opened", "BTCUSDT"), ("closed", "BTCUSDT")]
    return books, delivered


def test_a_recovered_lifecycle_the_timeless_standby_delivered_is_not_delivered_again(
        ) -> None:
    """The primary's resync recovers the lifecycle the standby delivered from rows
    without time (opened before the standby's open was received, closed before its
    close was): it is that one, not a past one - consumers do not get it twice."""
    now_ms = time.time_ns() // 1_000_000
    books, delivered = _a_timeless_lifecycle_the_standby_delivered(now_ms)
    books["h"].apply(PositionUpdate(symbol="BTCUSDT", side=Side.SHORT, size=D("2"),
                                    entry_price=D("100"), seq=2, exchange_ms=now_ms - 1200))
    books["h"].apply(PositionUpdate(symbol="BTCUSDT", side=None, size=D(0), seq=3,
                                    exchange_ms=now_ms - 400))
    assert pos_events(delivered) == [("opened", "BTCUSDT"), ("closed", "BTCUSDT")]


def test_a_recovered_lifecycle_before_the_timeless_standbys_is_still_past() -> None:
    """One the primary recovers that closed before the standby's open was received may
    be another (the poller saw only the later one): it is delivered as past."""
    now_ms = time.time_ns() // 1_000_000
    books, delivered = _a_timeless_lifecycle_the_standby_delivered(now_ms)
    books["h"].apply(PositionUpdate(symbol="BTCUSDT", side=Side.SHORT, size=D("1"),
                                    entry_price=D("100"), seq=2, exchange_ms=now_ms - 3000))
    books["h"].apply(PositionUpdate(symbol="BTCUSDT", side=None, size=D(0), seq=3,
                                    exchange_ms=now_ms - 2900))
    events = [e for e in delivered if isinstance(e, PositionEvent)]
    assert [(e.kind.value, e.past) for e in events] == [
        ("opened", False), ("closed", False), ("opened", True), ("closed", True)]


def test_a_failover_does_not_close_a_position_opened_after_the_timeless_standbys_last_snapshot(
        ) -> None:
    """F53 (Binance short campaign, seed 6008, production): the standby's snapshots tell
    no time (ccxt's binanceusdm rows). Its last one, received at R, lacks the key; the
    primary then delivers an open made after R and fails over before the standby polls
    again. The failover does not close consumers' position (that snapshot cannot know
    it flat); the standby's next snapshot, received after the open, lists it (nothing
    changes) - or lacks it, and closes it."""
    router, books, delivered, clock, _ = setup({"h": Role.PRIMARY, "r": Role.STANDBY})
    status(router, "h", FeedState.HEALTHY)
    status(router, "r", FeedState.HEALTHY)
    books["r"].reconcile([])  # received now, lacking the key; no as-of time
    opened_ms = time.time_ns() // 1_000_000 + 50  # made after that receipt
    books["h"].apply(PositionUpdate(symbol="BTCUSDT", side=Side.LONG, size=D("2"),
                                    entry_price=D("100"), seq=1, exchange_ms=opened_ms))
    status(router, "h", FeedState.RECONNECTING)
    clock.t += 2
    router.evaluate()
    assert router.active == "r"
    key = PositionKey(Category.LINEAR, "BTCUSDT", 0)
    assert key in router.delivered  # not closed by the failover
    assert pos_events(delivered) == [("opened", "BTCUSDT")]
    time.sleep(0.06)
    books["r"].reconcile([PositionUpdate(symbol="BTCUSDT", side=Side.LONG, size=D("2"),
                                         entry_price=D("100"))])
    assert pos_events(delivered) == [("opened", "BTCUSDT")]
    assert router.delivered[key].side is Side.LONG
    books["r"].reconcile([])  # the next poll lacks it: closed
    router.evaluate()
    assert pos_events(delivered) == [("opened", "BTCUSDT"), ("closed", "BTCUSDT")]


def test_a_failover_closes_a_position_the_timeless_standbys_later_snapshot_lacks() -> None:
    """The other side of F53: the standby's snapshot, received after the state
    consumers hold was made and lacking its key, closes it at the failover."""
    router, books, delivered, clock, _ = setup({"h": Role.PRIMARY, "r": Role.STANDBY})
    status(router, "h", FeedState.HEALTHY)
    status(router, "r", FeedState.HEALTHY)
    opened_ms = time.time_ns() // 1_000_000 - 1000
    books["h"].apply(PositionUpdate(symbol="BTCUSDT", side=Side.LONG, size=D("2"),
                                    entry_price=D("100"), seq=1, exchange_ms=opened_ms))
    books["r"].reconcile([])  # received after the open, lacking it
    status(router, "h", FeedState.RECONNECTING)
    clock.t += 2
    router.evaluate()
    assert router.active == "r"
    assert pos_events(delivered) == [("opened", "BTCUSDT"), ("closed", "BTCUSDT")]


def test_a_recovered_change_before_the_timeless_standbys_close_does_not_reopen() -> None:
    """F55 (Binance short campaign, seed 6014, production): consumers hold the primary's
    long; its private stream stalls while the exchange halves it and closes it. The
    standby's snapshot (no time), received after both, lacks the key: the failover
    closes consumers' long. The primary's resync then recovers the half and the close:
    the half is older than that snapshot's receipt, so it is not a reopen - consumers
    get no second lifecycle."""
    router, books, delivered, clock, _ = setup({"h": Role.PRIMARY, "r": Role.STANDBY})
    status(router, "h", FeedState.HEALTHY)
    status(router, "r", FeedState.HEALTHY)
    now_ms = time.time_ns() // 1_000_000
    books["h"].apply(PositionUpdate(symbol="BTCUSDT", side=Side.LONG, size=D("5.2"),
                                    entry_price=D("100"), seq=1, exchange_ms=now_ms - 1500))
    books["r"].reconcile([])  # received after the half and the close below were made
    status(router, "h", FeedState.RECONNECTING)
    clock.t += 2
    router.evaluate()
    assert router.active == "r"
    assert pos_events(delivered) == [("opened", "BTCUSDT"), ("closed", "BTCUSDT")]
    books["h"].apply(PositionUpdate(symbol="BTCUSDT", side=Side.LONG, size=D("2.6"),
                                    entry_price=D("100"), seq=2, exchange_ms=now_ms - 1000))
    books["h"].apply(PositionUpdate(symbol="BTCUSDT", side=None, size=D(0), seq=3,
                                    exchange_ms=now_ms - 300))
    assert pos_events(delivered) == [("opened", "BTCUSDT"), ("closed", "BTCUSDT")]
    assert not router.delivered
