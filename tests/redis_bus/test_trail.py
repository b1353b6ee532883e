"""An outbox that overflows keeps its lifecycles' boundaries (the trail): every open and
close in order, runs of changes coalesced, bounded; published as they are when Redis
still holds what the outbox last wrote."""

from __future__ import annotations

from decimal import Decimal

import pytest

from feedctl import EventKind, FeedState, FeedStatus, Position, PositionEvent, Side, StatusEvent
from feedctl.plugins.redis_bus.outbox import TRAIL_FACTOR, AccountOutbox

pytestmark = pytest.mark.unit


def event(kind: EventKind, symbol: str, size: str, changes: tuple[str, ...] = ()
          ) -> PositionEvent:
    open_ = kind is not EventKind.CLOSED
    pos = Position(exchange="bybit", account="main", feed="bybit_hybrid", symbol=symbol,
                   category="linear", side=Side.LONG,
                   size=Decimal(size if open_ else "0"), entry_price=Decimal(100),
                   leverage=Decimal(5), seq=1, exchange_ms=1, received_ns=1)
    return PositionEvent(kind=kind, feed="bybit_hybrid", position=pos, changes=changes)


def status() -> StatusEvent:
    return StatusEvent(feed="bybit_hybrid", status=FeedStatus(
        feed="bybit_hybrid", kind="bybit_hybrid", state=FeedState.HEALTHY))


def overflowing(limit: int = 10) -> AccountOutbox:
    box = AccountOutbox("bybit", "main", limit)
    box.load({})
    box.dirty = False  # as after a resync: the outbox knows what Redis holds
    return box


def steps(box: AccountOutbox) -> list[tuple[str, str, str]]:
    return [(i.event.position.symbol, i.event.kind.value, str(i.event.position.size))
            for i in box.items if i.typ != "status"]


def test_an_overflow_keeps_every_open_and_close_and_the_latest_of_each_run_of_changes(
        ) -> None:
    box = overflowing()
    for size in ("1", "2", "3"):  # a lifecycle and two more of the same side
        box.offer(event(EventKind.OPENED, "BTCUSDT", size))
        for more in ("4", "5", "6", "7"):
            box.offer(event(EventKind.CHANGED, "BTCUSDT", more, ("size",)))
        box.offer(event(EventKind.CHANGED, "BTCUSDT", "8", ("take_profit",)))
        box.offer(event(EventKind.CLOSED, "BTCUSDT", "0"))
        box.offer(status())  # statuses are not kept: the resync sends the current ones
    box.offer(event(EventKind.OPENED, "ETHUSDT", "1"))
    assert box.dirty and box.overflows == 1 and not box.items
    box.from_trail([status()])
    lifecycle = [("BTCUSDT", "opened", "1"), ("BTCUSDT", "changed", "8"),
                 ("BTCUSDT", "closed", "0")]
    assert steps(box) == [*lifecycle,
                          ("BTCUSDT", "opened", "2"), *lifecycle[1:],
                          ("BTCUSDT", "opened", "3"), *lifecycle[1:],
                          ("ETHUSDT", "opened", "1")]
    changed = [i.event for i in box.items if i.typ != "status"][1]
    assert changed.changes == ("size", "take_profit")
    assert box.items[-1].typ == "status" and not box.dirty and box.trail is None


def test_a_trail_past_its_bound_is_given_up_for_the_resync_from_the_book() -> None:
    box = overflowing(10)
    for n in range(TRAIL_FACTOR * 10):  # lifecycles: two boundaries each
        box.offer(event(EventKind.OPENED, "BTCUSDT", str(n + 1)))
        box.offer(event(EventKind.CLOSED, "BTCUSDT", "0"))
    assert box.dirty and box.trail is None and box.trails_dropped == 1


def test_what_a_write_has_in_flight_stays_for_its_result_when_the_outbox_overflows(
        ) -> None:
    box = overflowing(10)
    box.offer(event(EventKind.OPENED, "SOLUSDT", "1"))
    box.offer(event(EventKind.CLOSED, "SOLUSDT", "0"))
    box.inflight = 2  # a write of those two is waiting on Redis
    for n in range(10):
        box.offer(event(EventKind.CHANGED if n else EventKind.OPENED, "BTCUSDT", str(n + 1)))
    assert box.dirty and [i.event.kind.value for i in box.items] == ["opened", "closed"]
    box.inflight = 0  # the write failed: what it had goes first, then the trail
    box.from_trail([])
    assert steps(box) == [("SOLUSDT", "opened", "1"), ("SOLUSDT", "closed", "0"),
                          ("BTCUSDT", "opened", "1"), ("BTCUSDT", "changed", "10")]


def test_a_lost_lease_gives_the_trail_up() -> None:
    box = overflowing(10)
    for n in range(11):
        box.offer(event(EventKind.CHANGED, "BTCUSDT", str(n + 1)))
    assert box.trail is not None
    box.make_dirty()  # not an overflow: another writer may take the account
    assert box.trail is None
