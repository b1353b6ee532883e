"""ConsumerQueue: coalescing prices, never dropping or reordering lifecycle events."""

from __future__ import annotations

import tracemalloc
from decimal import Decimal

import pytest

from feedctl import (
    Category,
    ConsumerOverflowError,
    EventKind,
    Position,
    PositionEvent,
    Side,
)
from feedctl.delivery import ConsumerQueue
from tests.conftest import run_async

pytestmark = pytest.mark.unit


def ev(
    kind: EventKind, symbol: str = "BTCUSDT", mark: str = "100", size: str = "1"
) -> PositionEvent:
    pos = Position(exchange="x", account="a", feed="f", category=Category.LINEAR, symbol=symbol,
                   side=Side.LONG, size=Decimal(size), entry_price=Decimal("100"),
                   mark_price=Decimal(mark), received_ns=0)
    return PositionEvent(kind=kind, feed="f", position=pos)


async def drain(q: ConsumerQueue) -> list[PositionEvent]:
    q.close()
    out = []
    while (e := await q.get()) is not None:
        out.append(e)
    return out


def test_prices_of_one_position_coalesce_to_the_latest() -> None:
    q = ConsumerQueue("c")
    for i in range(1000):
        q.put(ev(EventKind.PRICE, mark=str(100 + i)))
    out = run_async(drain(q))
    assert [e.position.mark_price for e in out] == [Decimal(1099)]
    assert q.coalesced == 999


def test_lifecycle_events_are_never_coalesced() -> None:
    q = ConsumerQueue("c")
    for i in range(50):
        q.put(ev(EventKind.CHANGED, size=str(i + 1)))
    out = run_async(drain(q))
    assert [e.position.size for e in out] == [Decimal(i + 1) for i in range(50)]


def test_a_price_never_jumps_ahead_of_a_lifecycle_event() -> None:
    q = ConsumerQueue("c")
    q.put(ev(EventKind.PRICE, mark="101"))
    q.put(ev(EventKind.CHANGED, size="2"))
    q.put(ev(EventKind.PRICE, mark="102", size="2"))
    out = run_async(drain(q))
    assert [(e.kind.value, str(e.position.mark_price)) for e in out] == [
        ("price", "101"), ("changed", "100"), ("price", "102")]


def test_prices_of_different_positions_do_not_coalesce() -> None:
    q = ConsumerQueue("c")
    q.put(ev(EventKind.PRICE, symbol="A"))
    q.put(ev(EventKind.PRICE, symbol="B"))
    assert len(run_async(drain(q))) == 2


def test_overflow_cuts_the_consumer_off_with_a_clear_error() -> None:
    q = ConsumerQueue("slow", max_pending=100)
    for _ in range(101):
        q.put(ev(EventKind.CHANGED))
    with pytest.raises(ConsumerOverflowError, match="'slow' fell more than 100 events behind"):
        run_async(q.get())


def test_memory_stays_flat_for_a_consumer_that_never_reads() -> None:
    """A million price events for 100 positions into a stalled consumer: memory is
    bounded by the number of positions, not by the number of events."""
    q = ConsumerQueue("stalled")
    events = [ev(EventKind.PRICE, symbol=f"S{i}", mark=str(100 + i)) for i in range(100)]
    for e in events:
        q.put(e)
    tracemalloc.start()
    base, _ = tracemalloc.get_traced_memory()
    for _ in range(10_000):
        for e in events:
            q.put(e)
    grown, _ = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    assert len(q) == 100
    assert grown - base < 64 * 1024


def test_lagging_is_reported_when_the_oldest_event_waits_too_long() -> None:
    q = ConsumerQueue("c", lag_threshold=0.0)
    assert not q.lagging
    q.put(ev(EventKind.OPENED))
    assert q.lagging and q.stats()["pending"] == 1
