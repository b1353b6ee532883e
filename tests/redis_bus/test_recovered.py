"""A takeover's outbox flags what the feeds recovered: lifecycle events that happened on
the exchange before the snapshot was read go out ``recovered``; later ones, and every
event of an account never published before, as they are."""

from __future__ import annotations

from decimal import Decimal

import pytest

from feedctl import EventKind, Position, PositionEvent, Side
from feedctl.plugins.redis_bus.outbox import AccountOutbox

pytestmark = pytest.mark.unit

TAKEOVER_MS = 1_700_000_010_000


def event(kind: EventKind, ms: int, *, past: bool = False) -> PositionEvent:
    pos = Position(exchange="bybit", account="main", feed="bybit_hybrid", symbol="BTCUSDT",
                   category="linear", side=Side.LONG, size=Decimal("0.2"),
                   entry_price=Decimal(100), leverage=Decimal(5), seq=3, exchange_ms=ms,
                   received_ns=1)
    return PositionEvent(kind=kind, feed="bybit_hybrid", position=pos, past=past)


def flags(box: AccountOutbox) -> list[tuple[str, bool]]:
    return [(i.event.kind.value, i.event.recovered) for i in box.items]


def test_events_older_than_the_takeover_are_recovered_and_later_ones_are_not() -> None:
    box = AccountOutbox("bybit", "main", 100)
    box.prime({"_last": "1700000005000-0"}, TAKEOVER_MS)
    box.offer(event(EventKind.OPENED, TAKEOVER_MS - 3000))
    box.offer(event(EventKind.CLOSED, TAKEOVER_MS - 1))
    box.offer(event(EventKind.OPENED, TAKEOVER_MS + 5))
    assert flags(box) == [("opened", True), ("closed", True), ("opened", False)]


def test_a_past_lifecycle_keeps_its_flags_and_prices_are_never_flagged() -> None:
    box = AccountOutbox("bybit", "main", 100)
    box.prime({"_last": "1700000005000-0"}, TAKEOVER_MS)
    box.offer(event(EventKind.OPENED, TAKEOVER_MS - 3000, past=True))
    box.offer(event(EventKind.PRICE, TAKEOVER_MS - 2000))
    assert [(i.typ, i.event.recovered, i.event.past) for i in box.items] == [
        ("past", True, True)]
    assert not box.marks[next(iter(box.marks))][0].recovered


def test_an_account_without_a_takeover_flags_nothing() -> None:
    box = AccountOutbox("bybit", "main", 100)
    box.prime({}, None)  # never published: the plugin gives no takeover time
    box.offer(event(EventKind.OPENED, TAKEOVER_MS - 3000))
    assert flags(box) == [("opened", False)]
