"""PositionBook: merge, dedup, stale drops, lifecycle events, PnL."""

from __future__ import annotations

from decimal import Decimal

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from feedctl import (
    Category,
    EventKind,
    MarkPrice,
    PositionBook,
    PositionEvent,
    PositionUpdate,
    Side,
    unrealised_pnl,
)

pytestmark = pytest.mark.unit
D = Decimal


def book() -> tuple[PositionBook, list[PositionEvent]]:
    events: list[PositionEvent] = []
    return PositionBook(exchange="bybit", account="main", feed="f", emit=events.append), events


def upd(size: str, side: Side | None = Side.LONG, seq: int | None = None,
        entry: str = "100", ms: int | None = None, **kw: object) -> PositionUpdate:
    return PositionUpdate(symbol="BTCUSDT", side=side if D(size) > 0 else None, size=D(size),
                          entry_price=D(entry), seq=seq, exchange_ms=ms, **kw)  # type: ignore[arg-type]


def kinds(events: list[PositionEvent]) -> list[str]:
    return [e.kind.value for e in events]


def test_open_add_reduce_close_emit_one_event_each() -> None:
    b, ev = book()
    b.apply(upd("1", seq=1))
    b.apply(upd("2", seq=2, entry="101"))
    b.apply(upd("1.5", seq=3, entry="101"))
    b.apply(upd("0", seq=4))
    assert kinds(ev) == ["opened", "changed", "changed", "closed"]
    assert ev[1].changes == ("size", "entry_price")
    assert ev[2].changes == ("size",)
    assert ev[3].position.size == D("1.5")  # closed carries the last open state
    assert b.positions == {}


def test_flip_is_closed_then_opened_with_new_lifecycle() -> None:
    b, ev = book()
    b.apply(upd("1", seq=1))
    b.apply(upd("2", side=Side.SHORT, seq=2, entry="99"))
    assert kinds(ev) == ["opened", "closed", "opened"]
    assert ev[2].position.side is Side.SHORT and ev[2].position.lifecycle == 2
    assert ev[1].position.side is Side.LONG


def test_noop_push_with_same_content_emits_nothing() -> None:
    b, ev = book()
    b.apply(upd("1", seq=5))
    b.apply(upd("1", seq=6))  # an order create pushes the unchanged position
    b.apply(upd("1", seq=6))
    assert kinds(ev) == ["opened"]
    assert b.counters["duplicates_dropped"] == 2


def test_stale_update_by_seq_is_dropped() -> None:
    b, ev = book()
    b.apply(upd("2", seq=10))
    b.apply(upd("1", seq=9))
    assert kinds(ev) == ["opened"]
    assert b.positions[upd("1").key].size == D("2")
    assert b.counters["stale_dropped"] == 1


def test_stale_update_by_time_when_no_seq() -> None:
    b, ev = book()
    b.apply(upd("2", ms=2000))
    b.apply(upd("0", ms=1000))
    assert kinds(ev) == ["opened"]


def test_replay_of_a_closed_lifecycle_does_not_reopen() -> None:
    b, ev = book()
    b.apply(upd("1", seq=1))
    b.apply(upd("0", seq=2))
    b.apply(upd("1", seq=1))  # duplicate delivered late
    assert kinds(ev) == ["opened", "closed"]


def test_price_event_recomputes_linear_pnl() -> None:
    b, ev = book()
    b.apply(upd("0.5", seq=1, entry="100"))
    b.apply_mark(MarkPrice(symbol="BTCUSDT", mark_price=D("103.25"), exchange_ms=1))
    assert ev[-1].kind is EventKind.PRICE
    assert ev[-1].position.unrealised_pnl == D("1.625")


def test_short_pnl_is_sign_flipped() -> None:
    assert unrealised_pnl(Category.LINEAR, Side.SHORT, D("2"), D("100"), D("90")) == D("20")


def test_inverse_pnl_is_in_base_coin() -> None:
    pnl = unrealised_pnl(Category.INVERSE, Side.LONG, D("1000"), D("20000"), D("25000"))
    assert pnl == D("1000") * (D(1) / D("20000") - D(1) / D("25000"))


def test_older_mark_is_ignored_and_same_mark_emits_nothing() -> None:
    b, ev = book()
    b.apply(upd("1", seq=1))
    b.apply_mark(MarkPrice(symbol="BTCUSDT", mark_price=D("101"), exchange_ms=10))
    b.apply_mark(MarkPrice(symbol="BTCUSDT", mark_price=D("99"), exchange_ms=9))
    b.apply_mark(MarkPrice(symbol="BTCUSDT", mark_price=D("101"), exchange_ms=11))
    assert kinds(ev) == ["opened", "price"]


def test_open_uses_known_mark_price() -> None:
    b, ev = book()
    b.apply_mark(MarkPrice(symbol="BTCUSDT", mark_price=D("105"), exchange_ms=10))
    b.apply(upd("1", seq=1, ms=5))
    assert ev[0].position.mark_price == D("105")
    assert ev[0].position.unrealised_pnl == D("5")


def test_reconcile_closes_missing_and_opens_new() -> None:
    b, ev = book()
    b.apply(upd("1", seq=1, ms=100))
    eth = PositionUpdate(symbol="ETHUSDT", side=Side.SHORT, size=D("3"), entry_price=D("10"),
                         seq=1, exchange_ms=150)
    b.reconcile([eth], as_of_ms=200)
    assert kinds(ev) == ["opened", "opened", "closed"]
    assert {e.position.symbol for e in ev[1:]} == {"ETHUSDT", "BTCUSDT"}


def test_reconcile_keeps_positions_newer_than_the_snapshot() -> None:
    b, ev = book()
    b.apply(upd("1", seq=7, ms=300))  # pushed after the snapshot was taken
    b.reconcile([], as_of_ms=200)
    assert kinds(ev) == ["opened"]


def test_reconcile_keeps_a_position_of_the_snapshots_own_millisecond() -> None:
    """Exchange times are whole milliseconds: a fill applied just after the snapshot's
    rows were read can carry the snapshot's own time. Such a state cannot be ordered
    against the snapshot, so the snapshot's not listing it does not close it (closing
    would end a lifecycle the exchange keeps open, and the next state would split it)."""
    b, ev = book()
    b.apply(upd("1", seq=7, ms=200))
    b.reconcile([], as_of_ms=200)
    assert kinds(ev) == ["opened"]
    b.reconcile([], as_of_ms=201)  # a snapshot one millisecond later does close it
    assert kinds(ev) == ["opened", "closed"]


def test_a_key_a_later_listing_lacks_closes_at_that_listings_time() -> None:
    """A snapshot read in two listings (linear at 200, inverse at 260): a position the
    inverse listing lacks was flat at 260, so its close says 260, and the book knows the
    key flat from then; a state of 230 is older than that listing and is closed."""
    b, ev = book()
    b.apply(upd("1", seq=7, ms=230))
    b.reconcile([], as_of_ms=200, listed_at=lambda key: 260)
    assert kinds(ev) == ["opened", "closed"]
    assert ev[-1].position.exchange_ms == 260
    assert b.known_flat_as_of(ev[-1].position.key) == 260


def test_a_listing_time_before_the_snapshots_first_answer_is_not_taken() -> None:
    b, ev = book()
    b.apply(upd("1", seq=7, ms=150))
    b.reconcile([], as_of_ms=200, listed_at=lambda key: 100)
    assert ev[-1].kind.value == "closed" and ev[-1].position.exchange_ms == 200


def test_a_scoped_snapshot_closes_only_what_it_covers() -> None:
    b, ev = book()
    b.apply(upd("1", seq=1, ms=100))  # linear BTCUSDT
    inverse = PositionUpdate(category=Category.INVERSE, symbol="BTCUSD", side=Side.SHORT,
                             size=D("300"), entry_price=D("27000"), seq=1, exchange_ms=100)
    b.apply(inverse)
    b.reconcile([], as_of_ms=200, covers=lambda k: k.category is Category.LINEAR)
    assert kinds(ev) == ["opened", "opened", "closed"]
    assert ev[-1].position.symbol == "BTCUSDT"
    assert inverse.key in b.positions  # outside the scope: left alone
    # a key outside the scope is not known flat from such a snapshot: a router taking
    # over with this book must not close it for consumers
    fresh, _ = book()
    fresh.reconcile([], as_of_ms=300, covers=lambda k: k.category is Category.LINEAR)
    assert fresh.known_flat_as_of(inverse.key) is None
    assert fresh.known_flat_as_of(upd("1").key) == 300


def test_event_seq_strictly_increases() -> None:
    b, ev = book()
    for i in range(1, 6):
        b.apply(upd(str(i), seq=i))
    assert [e.seq for e in ev] == sorted({e.seq for e in ev})


# ---------------------------------------------------------------- properties

sizes = st.sampled_from(["0", "1", "2", "3"])
sides = st.sampled_from([Side.LONG, Side.SHORT])


@st.composite
def histories(draw: st.DrawFn) -> list[PositionUpdate]:
    n = draw(st.integers(1, 25))
    out = []
    for seq in range(1, n + 1):
        size = draw(sizes)
        out.append(upd(size, side=draw(sides), seq=seq, ms=seq * 10))
    return out


@settings(max_examples=200, deadline=None)
@given(histories(), st.randoms(use_true_random=False), st.integers(0, 10))
def test_any_delivery_order_with_duplicates_converges_without_duplicate_lifecycles(
    history: list[PositionUpdate], rnd: object, dupes: int
) -> None:
    """Shuffled and duplicated delivery ends in the final state; the events form valid
    lifecycles (opened ... closed, never two opens or two closes in a row)."""
    delivered = list(history) + [rnd.choice(history) for _ in range(dupes)]  # type: ignore[attr-defined]
    rnd.shuffle(delivered)  # type: ignore[attr-defined]
    b, ev = book()
    for u in delivered:
        b.apply(u)
    final = history[-1]
    pos = b.positions.get(final.key)
    if final.is_open:
        assert pos is not None and pos.size == final.size and pos.side is final.side
    else:
        assert pos is None
    open_ = False
    for e in ev:
        if e.kind is EventKind.OPENED:
            assert not open_
            open_ = True
        elif e.kind is EventKind.CLOSED:
            assert open_
            open_ = False
        else:
            assert open_
    assert open_ == final.is_open


@settings(max_examples=100, deadline=None)
@given(histories())
def test_in_order_delivery_emits_an_event_for_every_real_change(
    history: list[PositionUpdate],
) -> None:
    b, ev = book()
    for u in history:
        b.apply(u)
    expected_lifecycles = 0
    prev: PositionUpdate | None = None
    for u in history:
        was_open = prev is not None and prev.is_open
        if u.is_open and (not was_open or (prev is not None and prev.side is not u.side)):
            expected_lifecycles += 1
        prev = u
    assert sum(e.kind is EventKind.OPENED for e in ev) == expected_lifecycles


def test_a_late_copy_of_a_state_a_snapshot_closed_does_not_reopen() -> None:
    """Bybit's pre-order push of the closing order can arrive after the snapshot that
    already shows the position flat: it carries the old seq and must not reopen."""
    b, ev = book()
    b.apply(upd("1", seq=5, ms=1000))
    b.reconcile([], as_of_ms=2000)
    b.apply(upd("1", seq=5, ms=1000))
    assert kinds(ev) == ["opened", "closed"]


def test_a_later_state_of_the_closed_seq_reopens_a_position_closed_by_mistake() -> None:
    """Bybit keeps a position's seq through a settings change: a snapshot row with the
    seq of the state the book closed, updated after that close, proves the close wrong -
    the book reopens it. A late copy of the old state (same seq, same time) does not."""
    events: list[PositionEvent] = []
    book = PositionBook(exchange="bybit", account="a", feed="h", emit=events.append)
    opened = PositionUpdate(symbol="ETHUSDT", position_idx=2, side=Side.SHORT,
                            size=Decimal("0.12"), entry_price=Decimal("3182.71"), seq=857,
                            exchange_ms=1_000)
    book.apply(opened)
    book.apply(PositionUpdate(symbol="ETHUSDT", position_idx=2, side=None, size=Decimal(0),
                              exchange_ms=1_009))  # a wrong close (no seq)
    book.apply(opened)  # a late copy: not a reopen
    assert [e.kind.value for e in events] == ["opened", "closed"]
    book.apply(opened.model_copy(update={"exchange_ms": 17_000}))  # a snapshot row, later
    assert [e.kind.value for e in events] == ["opened", "closed", "opened"]
    assert book.positions[opened.key].seq == 857


def test_a_state_of_the_same_seq_but_older_is_stale() -> None:
    """An exchange keeps the seq through a settings change: of two states with one seq,
    the one with the older time is from before it and never undoes it (a snapshot row
    read before a leverage change the book has from a push)."""
    b, ev = book()
    b.apply(upd("1", seq=5, ms=100).model_copy(update={"leverage": D(10)}))
    b.apply(upd("1", seq=5, ms=200).model_copy(update={"leverage": D(5)}))  # the change
    b.apply(upd("1", seq=5, ms=150).model_copy(update={"leverage": D(10)}))  # older row
    assert kinds(ev) == ["opened", "changed"]
    assert b.positions[upd("1").key].leverage == D(5)
