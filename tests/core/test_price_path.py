"""The price hot path (issue 16): book -> ``Router.on_price`` -> the session's price
deliverer -> ``ConsumerQueue.put_price`` -> ``EventStream`` (``get_nowait``). Each step
takes the position's key from the one before instead of re-deriving it; what consumers
get - the events, their order, their models - is what the general path gives."""

from __future__ import annotations

import asyncio
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest

from feedctl import (
    Category,
    EventKind,
    MarkPrice,
    Position,
    PositionBook,
    PositionEvent,
    PositionKey,
    PositionUpdate,
    Role,
    Side,
)
from feedctl.delivery import EMPTY, ConsumerQueue
from feedctl.manager import FeedctlPluginManager
from feedctl.router import Router
from feedctl.session import Session
from feedctl.summary import RunSummary
from tests.conftest import run_async
from tests.core.conftest import SCRIPTED_PROFILE

pytestmark = pytest.mark.unit
D = Decimal


def upd(size: str, seq: int, ms: int, side: Side = Side.LONG) -> PositionUpdate:
    return PositionUpdate(symbol="BTCUSDT", side=side if D(size) else None, size=D(size),
                          entry_price=D("100"), seq=seq, exchange_ms=ms)


def mark(price: str, ms: int) -> MarkPrice:
    return MarkPrice(symbol="BTCUSDT", mark_price=D(price), exchange_ms=ms, received_ns=ms)


def script(book: PositionBook) -> None:
    """A lifecycle with prices between its states, a stale and a repeated mark."""
    book.apply(upd("1", 1, 1))
    book.apply_mark(mark("101", 2))
    book.apply_mark(mark("102", 3))
    book.apply_mark(mark("102", 3))  # a repeat: no event
    book.apply(upd("2", 2, 4))
    book.apply_mark(mark("103", 5))
    book.apply_mark(mark("99", 1))  # older than the one held: no event
    book.apply(upd("0", 3, 6))


def routed(with_price_path: bool) -> tuple[list[tuple[str, Any]], list[PositionKey]]:
    """What one consumer is handed, with and without the price path wired."""
    out: list[tuple[str, Any]] = []
    keys: list[PositionKey] = []

    def deliver_price(ev: PositionEvent, key: PositionKey) -> None:
        keys.append(key)
        out.append(("price_path", ev))

    router = Router({"p": Role.PRIMARY}, {}, deliver=lambda e: out.append(("general", e)),
                    deliver_price=deliver_price if with_price_path else None)
    book = PositionBook(exchange="x", account="a", feed="p",
                        emit=lambda e: router.on_event("p", e))
    router.books["p"] = book
    if with_price_path:
        book.emit_price = lambda e, k: router.on_price("p", e, k)
    script(book)
    return out, keys


def test_prices_take_the_price_path_with_their_key_and_keep_their_place() -> None:
    fast, keys = routed(True)
    general, _ = routed(False)
    assert [(e.kind.value, e.position.mark_price, e.position.size) for _, e in fast] == [
        (e.kind.value, e.position.mark_price, e.position.size) for _, e in general]
    assert [e.kind.value for _, e in fast] == [
        "opened", "price", "price", "changed", "price", "closed"]
    assert [path for path, e in fast if e.kind is EventKind.PRICE] == ["price_path"] * 3
    assert [path for path, e in fast if e.kind is not EventKind.PRICE] == ["general"] * 3
    assert keys == [PositionKey(Category.LINEAR, "BTCUSDT", 0)] * 3


def test_a_price_the_hot_path_cannot_take_goes_the_general_way() -> None:
    # a price for a position consumers were never told of (its open was guarded away)
    # is the general path's: it opens the position for them (a synthetic open)
    out: list[Any] = []
    router = Router({"p": Role.PRIMARY}, {}, deliver=out.append,
                    deliver_price=lambda e, k: out.append(("price_path", e)))
    book = PositionBook(exchange="x", account="a", feed="p")
    router.books["p"] = book
    book.apply(upd("1", 1, 1))  # not emitted: the router never saw the open
    book.emit_price = lambda e, k: router.on_price("p", e, k)
    book.apply_mark(mark("101", 2))
    assert [(e.kind.value, e.synthetic) for e in out] == [("opened", True)]
    assert out[0].position.mark_price == D("101")


def pev(kind: EventKind, mark_price: str = "100", size: str = "1") -> PositionEvent:
    pos = Position(exchange="x", account="a", feed="f", category=Category.LINEAR,
                   symbol="BTCUSDT", side=Side.LONG, size=D(size), entry_price=D("100"),
                   mark_price=D(mark_price), received_ns=0)
    return PositionEvent(kind=kind, feed="f", position=pos)


def slot(ev: PositionEvent) -> tuple[str, str, PositionKey]:
    return (ev.feed, ev.position.account, ev.position.key)


def test_put_price_coalesces_as_put_does_and_a_lifecycle_event_seals_its_slot() -> None:
    q = ConsumerQueue("c")
    first, second = pev(EventKind.PRICE, "101"), pev(EventKind.PRICE, "102")
    q.put_price(first, slot(first))
    q.put(second)  # the general way into the same slot
    change = pev(EventKind.CHANGED, "102", size="2")
    q.put(change)
    third = pev(EventKind.PRICE, "103")
    q.put_price(third, slot(third))
    got = [q.get_nowait() for _ in range(3)]
    assert [(e.kind.value, e.position.mark_price) for e in got] == [
        ("price", D("102")), ("changed", D("102")), ("price", D("103"))]
    assert q.coalesced == 1 and q.delivered == 3


def test_get_nowait_says_empty_when_nothing_is_pending_and_get_still_waits() -> None:
    async def main() -> list[Any]:
        q = ConsumerQueue("c")
        assert q.get_nowait() is EMPTY
        waiter = asyncio.ensure_future(q.get())
        await asyncio.sleep(0)
        ev = pev(EventKind.PRICE)
        q.put_price(ev, slot(ev))
        got = await asyncio.wait_for(waiter, 1)
        q.close()
        return [got, q.get_nowait(), await q.get()]

    got, after, end = run_async(main())
    assert got.kind is EventKind.PRICE and after is EMPTY and end is None


def test_get_nowait_leaves_an_overflow_to_get() -> None:
    q = ConsumerQueue("c", max_pending=1)
    q.put(pev(EventKind.CHANGED))
    q.put(pev(EventKind.CHANGED, size="2"))  # over max_pending: cut off
    assert q.get_nowait() is EMPTY
    with pytest.raises(Exception, match="fell more than 1 events behind"):
        run_async(q.get())


def test_observe_price_ages_marks_as_observe_does() -> None:
    class Clock:
        t = 0.0

        def __call__(self) -> float:
            return self.t

    clocks = Clock(), Clock()
    general, fast = (RunSummary("f", {}, clock=c) for c in clocks)
    ev = pev(EventKind.PRICE)
    for t in (1.0, 3.5, 4.0):
        for c in clocks:
            c.t = t
        general.observe(ev)
        fast.observe_price(ev.position.key)
    assert fast.finish() == general.finish()
    assert fast.finish()["longest_stale_price_seconds"] == 2.5


def test_library_consumers_get_the_same_validated_models_through_the_price_path(
    clean_env: Path, pm: FeedctlPluginManager
) -> None:
    """Two library streams (one filtered by account) get every event in order; the
    price events are PositionEvent / Position models like any other: they validate
    back to themselves."""
    path = clean_env / "settings.toml"
    path.write_text(SCRIPTED_PROFILE)

    async def read(stream: Any) -> list[PositionEvent]:
        out = []
        async for ev in stream:
            if isinstance(ev, PositionEvent):
                out.append(ev)
                if ev.kind is EventKind.CLOSED:
                    break
        return out

    async def main() -> tuple[list[PositionEvent], list[PositionEvent], dict[str, int]]:
        async with Session("t", settings_path=path, plugin_manager=pm) as s:
            assert s.feeds["main"].book.emit_price is not None  # the price path is wired
            a = asyncio.ensure_future(read(s.events()))
            b = asyncio.ensure_future(read(s.events(accounts=[s.primary_account.name])))
            got = await asyncio.wait_for(asyncio.gather(a, b), 5)
            assert s.router is not None
            return got[0], got[1], dict(s.router.counters)

    a, b, counters = run_async(main())
    assert [e.kind.value for e in a] == ["opened", "price", "price", "changed", "closed"]
    assert [e.model_dump() for e in a] == [e.model_dump() for e in b]
    for ev in a:
        assert PositionEvent.model_validate(ev.model_dump()) == ev
        assert type(ev.position) is Position
    assert counters["delivered"] == 5
