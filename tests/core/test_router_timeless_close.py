"""Router: what the primary recovers while a poller standby delivers from rows without
exchange time, measured against the last close consumers were told (F50 in
docs/reliability.md): the lifecycle consumers hold from such a row opened after that
close, so a recovered state older than it belongs to an earlier lifecycle."""

from __future__ import annotations

import time
from decimal import Decimal
from typing import Any

import pytest

from feedctl import Category, FeedState, PositionEvent, PositionKey, PositionUpdate, Side

from .test_router import _failed_over_on_a_clock, pos_events, status

pytestmark = pytest.mark.unit
D = Decimal
KEY = PositionKey(Category.LINEAR, "BTCUSDT", 0)


def _standby_lifecycle_then_open(now_ms: int, first: Side, then: Side) -> tuple[
        Any, dict[str, Any], list[object]]:
    """The standby delivers, from rows without time, a lifecycle of ``first`` (open
    received at ``now_ms - 3000``, close at ``now_ms - 2000``), then an open of ``then``
    (received at ``now_ms - 1000``)."""
    router, books, delivered, _ = _failed_over_on_a_clock()
    for side, size, ago in ((first, "2", 3000), (None, "0", 2000), (then, "1", 1000)):
        books["r"].apply(PositionUpdate(symbol="BTCUSDT", side=side, size=D(size),
                                        entry_price=D("100") if side else D(0),
                                        received_ns=(now_ms - ago) * 1_000_000))
    assert pos_events(delivered) == [("opened", "BTCUSDT"), ("closed", "BTCUSDT"),
                                     ("opened", "BTCUSDT")]
    return router, books, delivered


def test_a_recovered_close_older_than_consumers_last_close_does_not_close_the_open_after_it(
        ) -> None:
    """The primary's replay recovers a lifecycle that closed before the close consumers
    were told from the standby's rows: that close is not the close of the position the
    standby opened after it, which consumers keep (before: a false close and a reopen,
    the campaign's "consumer lifecycles matching no exchange one")."""
    now_ms = time.time_ns() // 1_000_000
    router, books, delivered = _standby_lifecycle_then_open(now_ms, Side.LONG, Side.LONG)
    h = books["h"]
    h.apply(PositionUpdate(symbol="BTCUSDT", side=Side.LONG, size=D("2"),
                           entry_price=D("100"), seq=2, exchange_ms=now_ms - 3500))
    h.apply(PositionUpdate(symbol="BTCUSDT", side=None, size=D(0), seq=3,
                           exchange_ms=now_ms - 2500))
    kinds = [e.kind.value for e in delivered if isinstance(e, PositionEvent)
             and e.kind.value != "price"]
    assert "closed" not in kinds[3:], kinds
    assert router.delivered[KEY].side is Side.LONG


def test_a_recovered_lifecycle_older_than_consumers_last_close_is_past_beside_a_timeless_open(
        ) -> None:
    """The standby's rows showed a long lifecycle, its close, then a short open; the
    primary recovers a short lifecycle from before all of them (the poller missed it):
    consumers get it as a past lifecycle, and keep the short position the standby
    opened (before: the recovered open changed consumers' short and its close closed it:
    a lost lifecycle and a false close)."""
    now_ms = time.time_ns() // 1_000_000
    router, books, delivered = _standby_lifecycle_then_open(now_ms, Side.LONG, Side.SHORT)
    h = books["h"]
    h.apply(PositionUpdate(symbol="BTCUSDT", side=Side.SHORT, size=D("3"),
                           entry_price=D("99"), seq=2, exchange_ms=now_ms - 4000))
    h.apply(PositionUpdate(symbol="BTCUSDT", side=None, size=D(0), seq=3,
                           exchange_ms=now_ms - 3900))
    events = [e for e in delivered if isinstance(e, PositionEvent) and e.kind.value != "price"]
    assert [(e.kind.value, e.past) for e in events] == [
        ("opened", False), ("closed", False), ("opened", False),
        ("opened", True), ("closed", True)]
    assert router.delivered[KEY].side is Side.SHORT


def test_failback_does_not_flip_a_timeless_standby_open_back_to_the_primarys_older_side(
        ) -> None:
    """The standby saw a flip (short -> long, a row without time); the primary, healthy
    again but behind, still holds the short from before it. The failback's reconcile
    does not take consumers back to that short (before: a false close of the long and a
    stale reopen of the short, a split)."""
    router, books, delivered, clock = _failed_over_on_a_clock()
    now_ms = time.time_ns() // 1_000_000
    books["h"].apply(PositionUpdate(symbol="BTCUSDT", side=Side.SHORT, size=D("2"),
                                    entry_price=D("100"), seq=2, exchange_ms=now_ms - 3000))
    books["r"].apply(PositionUpdate(symbol="BTCUSDT", side=Side.LONG, size=D("1"),
                                    entry_price=D("101"),
                                    received_ns=(now_ms - 1000) * 1_000_000))
    assert router.delivered[KEY].side is Side.LONG
    before = pos_events(delivered)
    status(router, "h", FeedState.HEALTHY)
    clock.t += 10
    router.evaluate()
    assert router.active == "h"
    assert pos_events(delivered) == before
    assert router.delivered[KEY].side is Side.LONG
