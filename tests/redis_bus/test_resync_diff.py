"""A resync (a takeover, Redis back after the lease ran out) publishes the differences
between the account's snapshot and the book: a position that changed sides meanwhile
closed and another opened, so consumers get a closed then an opened, not a change."""

from __future__ import annotations

from decimal import Decimal

import pytest

from feedctl import EventKind, Position, PositionEvent, Side, now_ns
from feedctl.plugins.redis_bus.outbox import AccountOutbox, signature

pytestmark = pytest.mark.unit


def position(side: Side, size: str, entry: str) -> Position:
    return Position(exchange="bybit", account="main", feed="bybit_hybrid", category="linear",
                    symbol="BTCUSDT", side=side, size=Decimal(size),
                    entry_price=Decimal(entry), received_ns=now_ns())


def box_holding(pos: Position) -> AccountOutbox:
    """An outbox whose account's snapshot holds ``pos`` (lifecycle 3, 2 changes)."""
    box = AccountOutbox("bybit", "main", 100)
    key = str(pos.key)
    body = PositionEvent(kind=EventKind.OPENED, feed=pos.feed, position=pos).model_dump_json()
    box.load({f"p:{key}": body, f"lc:{key}": "3", f"n:{key}": "2",
              f"g:{key}": signature(pos)})
    return box


def test_a_position_that_changed_sides_while_unpublished_is_closed_then_opened() -> None:
    held = position(Side.LONG, "0.5", "30000")
    now = position(Side.SHORT, "0.2", "31000")
    box = box_holding(held)
    box.diff({str(now.key): now}, [])
    kinds = [(i.event.kind, i.event.position.side) for i in box.items]
    assert kinds == [(EventKind.CLOSED, Side.LONG), (EventKind.OPENED, Side.SHORT)]
    plans = [p for p in box.plan(list(box.items)) if p is not None]
    # the close ends lifecycle 3 (its third change), the open starts lifecycle 4
    assert [p.after.lc if p.after else None for p in plans] == [3, 4]
    assert all(i.event.synthetic for i in box.items)


def test_a_position_that_grew_on_the_same_side_is_one_change() -> None:
    held = position(Side.LONG, "0.5", "30000")
    now = position(Side.LONG, "0.7", "30100")
    box = box_holding(held)
    box.diff({str(now.key): now}, [])
    assert [i.event.kind for i in box.items] == [EventKind.CHANGED]
    assert set(box.items[0].event.changes) == {"size", "entry_price"}
