"""What states lost with the socket up mean for lifecycles (lost.py, pure)."""

from __future__ import annotations

from decimal import Decimal

import pytest

from feedctl import Category, EventKind, PositionBook, PositionKey, PositionUpdate, Side
from feedctl.plugins.bybit_hybrid.ledger import LossLedger, State
from feedctl.plugins.bybit_hybrid.lost import lost_boundaries

pytestmark = pytest.mark.unit
D = Decimal
LONG, SHORT = Side.LONG, Side.SHORT


def st(seq: int, size: str, side: Side | None = LONG) -> PositionUpdate:
    return PositionUpdate(symbol="BTCUSDT", side=side if D(size) else None, size=D(size),
                          entry_price=D("100") if D(size) else D(0), seq=seq,
                          exchange_ms=seq * 10)


def shape(states: list[PositionUpdate]) -> list[tuple[int, str]]:
    return [(u.seq or 0, str(u.size)) for u in states]


A_LONG = State(LONG, D("1"), D("100"))
A_FLAT = State(None, D(0), D(0))


def test_lost_changes_inside_one_lifecycle_lose_nothing() -> None:
    found = lost_boundaries(A_LONG, [st(11, "2"), st(12, "3")])
    assert found.past == [] and found.split is None


def test_a_lifecycle_opened_and_closed_between_two_flat_states_is_past() -> None:
    found = lost_boundaries(A_FLAT, [st(11, "1"), st(12, "2"), st(13, "0")])
    assert [shape(p) for p in found.past] == [[(11, "1"), (12, "2"), (13, "0")]]
    assert found.split is None


def test_a_lost_close_and_reopen_on_the_same_side_split_the_merged_lifecycle() -> None:
    found = lost_boundaries(A_LONG, [st(11, "0"), st(12, "2"), st(13, "3")])
    assert found.past == []
    assert found.split is not None
    close, opened = found.split
    assert (close.seq, close.size, opened.seq, opened.size) == (11, D(0), 12, D("2"))


def test_whole_lifecycles_inside_the_split_are_past_too() -> None:
    found = lost_boundaries(A_LONG, [st(11, "0"), st(12, "1", SHORT), st(13, "0"),
                                     st(14, "2"), st(15, "2")])
    assert [shape(p) for p in found.past] == [[(12, "1"), (13, "0")]]
    assert found.split is not None and found.split[0].seq == 11 and found.split[1].seq == 14


def test_a_lifecycle_the_book_closed_late_is_not_split_but_what_it_hid_is_past() -> None:
    """a long, then (lost) a close and a reopen, then b flat: the book closed a's
    lifecycle at b (late, not lost); the reopened one is past, its close being b."""
    found = lost_boundaries(A_LONG, [st(11, "0"), st(12, "2"), st(13, "0")])
    assert found.split is None
    assert [shape(p) for p in found.past] == [[(12, "2"), (13, "0")]]


def test_a_flip_closes_one_lifecycle_and_opens_the_next() -> None:
    """a long; (lost) a flip to short and a flip back to long; b long: the short one is
    past (closed as of the flip back), and a's lifecycle is split from b's."""
    found = lost_boundaries(A_LONG, [st(11, "1", SHORT), st(12, "1"), st(13, "2")])
    assert [shape(p) for p in found.past] == [[(11, "1"), (12, "0")]]
    assert found.split is not None
    assert (found.split[0].seq, found.split[0].size, found.split[1].seq) == (11, D(0), 12)


def test_the_book_splits_its_position_into_the_close_and_the_reopen() -> None:
    events = []
    book = PositionBook(exchange="bybit", account="a", feed="h", emit=events.append)
    book.apply(st(10, "1"))
    book.apply(st(13, "3"))  # seen as a change: the close at 11 and reopen at 12 lost
    out = book.split(next(iter(book.positions)),
                     st(11, "0"), st(12, "2"))
    assert [(e.kind, e.position.seq) for e in out] == [(EventKind.CLOSED, 11),
                                                       (EventKind.OPENED, 13)]
    assert events[-2:] == out and not any(e.past for e in out)
    (pos,) = book.positions.values()
    assert (pos.size, pos.seq) == (D("3"), 13)
    assert book.split(pos.key, st(14, "0"), st(14, "1")) == []  # not older than the book


def test_a_run_with_no_state_before_it_starts_flat_unless_older_states_were_dropped(
) -> None:
    """The book never held the key before the lost run (a snapshot listing it would have
    left its row in the ledger): the replay starts flat, and the lifecycle whose open was
    lost (its close pushed) is past. A key whose oldest states the ledger dropped is not
    assumed flat."""
    ledger = LossLedger()
    key = PositionKey(Category.LINEAR, "ETHUSDT", 0)
    ledger.note(st(941, "0").model_copy(update={"symbol": "ETHUSDT"}))
    assert ledger.brackets(key, [940]) == [(None, 941, [940])]
    start = ledger.state_at(key, None)
    assert start is not None and start.size == 0
    found = lost_boundaries(start, [st(940, "0.1"), st(941, "0")])
    assert [shape(p) for p in found.past] == [[(940, "0.1"), (941, "0")]]
    ledger.trimmed.add(key)
    assert ledger.brackets(key, [940]) == []


def test_a_snapshot_keeps_a_listed_keys_row_as_the_start_of_a_later_replay() -> None:
    ledger = LossLedger()
    key = PositionKey(Category.LINEAR, "BTCUSDT", 0)
    ledger.note_snapshot([st(10, "1")], floor_ms=5_000)  # the row's state is at 100 ms
    ledger.note(st(13, "3"))
    assert ledger.brackets(key, [11, 12]) == [(10, 13, [11, 12])]
    start = ledger.state_at(key, 10)
    assert start is not None and (start.side, start.size) == (LONG, D("1"))


def test_a_state_that_arrives_after_a_newer_one_is_not_taken_for_seen() -> None:
    """The book keeps its newer state and never reflects a late one (a reordered frame:
    the close's order-create push, carrying the flip the stall dropped, behind the
    close's own push). Taken for seen it would hide the flip's lifecycle from the fill
    replay for good (the 1,500-fault campaign, seed 777123: a lost long, 221 to 222)."""
    ledger = LossLedger()
    key = PositionKey(Category.LINEAR, "BTCUSDT", 0)
    assert ledger.admit(st(220, "3", SHORT))
    assert ledger.admit(st(222, "0"))  # the close's push, first
    assert ledger.admit(st(221, "1"))  # the flip, late: the book drops it as stale
    assert ledger.lost_states([(key, 221, 2_210)]) == {key: {221: 2_210}}
    assert ledger.brackets(key, [221]) == [(220, 222, [221])]
    start = ledger.state_at(key, 220)
    assert start is not None and start.side is SHORT
    found = lost_boundaries(start, [st(221, "1"), st(222, "0")])
    assert [shape(p) for p in found.past] == [[(221, "1"), (222, "0")]]
