"""The audit's comparison and the gap replay (pure functions)."""

from __future__ import annotations

from decimal import Decimal
from types import SimpleNamespace

import pytest

from feedctl import Category, PositionBook, PositionKey, PositionUpdate, Side
from feedctl.plugins.bybit_hybrid.audit import audit_diff, fill_floor, forced_updates, settled
from feedctl.plugins.bybit_hybrid.gap import Fill, parse_fill, replay
from feedctl.plugins.bybit_hybrid.parse import Problem
from feedctl.plugins.bybit_hybrid.ws import Conn

from .conftest import payload

pytestmark = pytest.mark.unit
D = Decimal
BTC = PositionKey(Category.LINEAR, "BTCUSDT", 0)


def up(symbol: str = "BTCUSDT", side: Side | None = Side.LONG, size: str = "1",
       entry: str = "100", seq: int | None = 1, ms: int | None = 1000) -> PositionUpdate:
    return PositionUpdate(symbol=symbol, side=side if D(size) else None, size=D(size),
                          entry_price=D(entry), seq=seq, exchange_ms=ms)


def book_with(*updates: PositionUpdate) -> PositionBook:
    book = PositionBook(exchange="bybit", account="a", feed="f")
    for u in updates:
        book.apply(u)
    return book


def test_audit_fills_in_a_leverage_the_book_does_not_know() -> None:
    """A state replayed from fills carries no leverage; the snapshot's is taken."""
    book = book_with(up())  # replayed: no leverage
    row = up().model_copy(update={"leverage": D(10)})
    assert "leverage book=unknown exchange=10" in audit_diff(book.positions, [row], 2000)[
        str(BTC)]
    (forced,) = forced_updates({str(BTC)}, book.positions, [row])
    book.apply(forced)
    assert book.positions[BTC].leverage == D(10)
    assert audit_diff(book.positions, [row], 2000) == {}


def test_audit_agrees_and_finds_each_kind_of_mismatch() -> None:
    book = book_with(up(), up("ETHUSDT", Side.SHORT, "2", "10", 5, 1000))
    rows = [up(), up("ETHUSDT", Side.SHORT, "2", "10", 5, 1000)]
    assert audit_diff(book.positions, rows, 2000) == {}
    rows = [up(size="3"), up("SOLUSDT", seq=9)]
    diffs = audit_diff(book.positions, rows, 2000)
    assert set(diffs) == {"linear:BTCUSDT:0", "linear:SOLUSDT:0", "linear:ETHUSDT:0"}
    assert "size book=1 exchange=3" in diffs["linear:BTCUSDT:0"]
    assert "not in the book" in diffs["linear:SOLUSDT:0"]
    assert "flat on the exchange" in diffs["linear:ETHUSDT:0"]


def test_audit_skips_keys_newer_than_the_snapshot() -> None:
    book = book_with(up(ms=5000))
    assert audit_diff(book.positions, [], 2000) == {}  # a push after the snapshot
    assert audit_diff({}, [up()], 2000, {BTC: 3000}) == {}  # closed by a later push
    assert audit_diff({}, [up()], 2000, {BTC: 1500}) != {}


def test_audit_leaves_a_key_of_the_snapshots_own_millisecond_to_the_stream() -> None:
    """Exchange times are whole ms: a state stamped with the snapshot's own time may
    postdate its rows, so it is not a mismatch (a forced repair would close a position
    the exchange holds open)."""
    book = book_with(up(ms=2000))
    assert audit_diff(book.positions, [], 2000) == {}
    assert audit_diff({}, [up()], 2000, {BTC: 2000}) == {}  # closed in that millisecond
    assert audit_diff(book.positions, [], 2001) != {}


def test_audit_leaves_rows_younger_than_the_settle_time_to_the_stream() -> None:
    """F6: a row that changed just before the snapshot has its pushes still in flight; a
    repair would make them arrive stale (a close+reopen would become a 'changed')."""
    book = book_with(up(size="1", seq=3, ms=1000))
    rows = [up(size="2", seq=7, ms=4500), up("ETHUSDT", seq=8, ms=4800),
            up("SOLUSDT", seq=9, ms=3000)]
    kept, young = settled(rows, book.positions, 5000, 1000)
    assert young == {BTC, PositionKey(Category.LINEAR, "ETHUSDT", 0)}
    assert {str(r.key): (r.size, r.seq) for r in kept} == {
        "linear:SOLUSDT:0": (D(1), 9), "linear:BTCUSDT:0": (D(1), 3)}  # the book's own
    diffs = audit_diff(book.positions, kept, 5000)
    assert set(diffs) == {"linear:SOLUSDT:0"}  # only the settled row counts
    book.reconcile(kept, as_of_ms=5000)
    assert book.positions[BTC].size == 1 and book.positions[BTC].seq == 3  # untouched
    book.apply(up(side=None, size="0", seq=5, ms=4400))  # the late pushes still apply
    book.apply(up(size="2", seq=7, ms=4500))
    assert book.positions[BTC].size == 2
    # once settled (the next audit), the row is compared and repaired as usual
    assert settled(rows, book.positions, 6000, 1000) == (rows, set())
    assert settled(rows, book.positions, None, 1000) == (rows, set())


def test_a_gap_starts_at_the_last_answered_ping_not_a_later_frame() -> None:
    """F5: a frame after a stall does not prove nothing was lost before it; the last
    pong (or the opening) does, unless the last frame is older still."""
    def good(frame: int, pong: int | None, opened: int | None) -> int:
        conn = SimpleNamespace(last_frame_ns=frame, last_pong_ns=pong, opened_ns=opened)
        return Conn.known_good_ns(conn)  # type: ignore[arg-type]

    assert good(frame=9_000, pong=5_000, opened=1_000) == 5_000  # frame after the loss
    assert good(frame=9_000, pong=None, opened=1_000) == 1_000  # no pong yet
    assert good(frame=4_000, pong=5_000, opened=1_000) == 4_000  # silent since
    assert good(frame=4_000, pong=None, opened=None) == 4_000  # never opened


def test_forced_updates_beat_the_version_guard() -> None:
    book = book_with(up(size="5", seq=99, ms=9999))  # a bogus state with a high seq
    rows = [up(size="1", seq=3, ms=1000)]
    book.reconcile(rows, as_of_ms=2000)
    assert book.positions[BTC].size == 5  # the guard keeps the bogus state
    for u in forced_updates({"linear:BTCUSDT:0"}, book.positions, rows):
        book.apply(u)
    assert book.positions[BTC].size == 1
    book2 = book_with(up("XRPUSDT", seq=99, ms=9999))
    for u in forced_updates({"linear:XRPUSDT:0"}, book2.positions, []):
        book2.apply(u)
    assert not book2.positions


def fill(side: Side, qty: str, price: str, seq: int, ms: int | None = None,
         symbol: str = "BTCUSDT") -> Fill:
    return Fill(PositionKey(Category.LINEAR, symbol, 0), side, D(qty), D(price), seq,
                ms if ms is not None else seq * 10)


def test_parse_fill_from_recorded_execution() -> None:
    row = payload("execution_push.json")["data"][0]
    f = parse_fill(row)
    assert isinstance(f, Fill)
    assert (f.key, f.side, f.qty, f.price, f.seq) == (BTC, Side.LONG, D("0.01"),
                                                      D("28184.5"), 8327597863)
    assert parse_fill({**row, "execType": "Funding"}) is None
    assert isinstance(parse_fill({**row, "execQty": "x"}), Problem)
    for bad in ("NaN", "1e999999", [1]):  # replay arithmetic on them would overflow
        assert isinstance(parse_fill({**row, "execQty": bad}), Problem)
        assert isinstance(parse_fill({**row, "execPrice": bad}), Problem)
    assert isinstance(parse_fill([1]), Problem)


def test_replay_open_and_close_inside_the_gap() -> None:
    fills = [fill(Side.LONG, "1", "100", 11), fill(Side.SHORT, "1", "110", 12)]
    states = replay(fills, {}, {}, {}, {}, 1)
    assert [(s.side, s.size, s.entry_price, s.seq) for s in states] == [
        (Side.LONG, D(1), D(100), 11), (None, D(0), D(0), 12)]
    events: list[object] = []
    book = PositionBook(exchange="bybit", account="a", feed="f", emit=events.append)
    for s in states:
        book.apply(s)
    book.reconcile([], as_of_ms=10_000)
    assert [e.kind.value for e in events] == ["opened", "closed"]  # type: ignore[attr-defined]


def test_replay_starts_from_the_book_and_skips_known_and_snapshot_states() -> None:
    book = book_with(up(size="1", entry="100", seq=10, ms=100))
    fills = [
        fill(Side.LONG, "1", "100", 10),  # already in the book (seq 10)
        fill(Side.LONG, "1", "120", 11),  # add: entry 110
        fill(Side.SHORT, "3", "130", 12),  # flip to short 1 @ 130
        fill(Side.LONG, "0.5", "90", 13),  # reduce: the snapshot's state (seq 13)
    ]
    states = replay(fills, book.positions, {BTC: 10}, {BTC: 13}, {BTC: D(10)}, 1)
    assert [(s.side, s.size, s.entry_price, s.seq, s.leverage) for s in states] == [
        (Side.LONG, D(2), D(110), 11, D(10)), (Side.SHORT, D(1), D(130), 12, D(10))]


def test_replay_partial_fills_share_a_seq_and_inverse_averages_harmonically() -> None:
    fills = [fill(Side.LONG, "1", "100", 5, 50), fill(Side.LONG, "1", "100", 5, 51)]
    (state,) = replay(fills, {}, {}, {}, {}, 1)
    assert state.size == 2 and state.exchange_ms == 51
    inv = PositionKey(Category.INVERSE, "BTCUSD", 0)
    fills = [Fill(inv, Side.LONG, D(100), D(100), 1, 1), Fill(inv, Side.LONG, D(100), D(200), 2, 2)]
    states = replay(fills, {}, {}, {}, {}, 1)
    assert states[-1].entry_price == D(200) / (D(1) + D("0.5"))


def test_snapshot_scope_leaves_uncovered_positions_alone() -> None:
    from feedctl.plugins.bybit_hybrid.audit import covered

    lin, inv = [Category.LINEAR], [Category.LINEAR, Category.INVERSE]
    assert covered(BTC, lin, ["USDT"])
    assert not covered(PositionKey(Category.INVERSE, "BTCUSD", 0), lin, ["USDT"])
    assert covered(PositionKey(Category.INVERSE, "BTCUSD", 0), inv, ["USDT"])
    assert not covered(PositionKey(Category.LINEAR, "BTCPERP", 0), lin, ["USDT"])
    assert covered(PositionKey(Category.LINEAR, "BTCPERP", 0), lin, ["USDT", "USDC"])
    # the instrument's settle coin, when known, beats the name
    assert not covered(PositionKey(Category.LINEAR, "XUSDT", 0), lin, ["USDT"], "USDC")
    events: list[object] = []
    book = PositionBook(exchange="bybit", account="a", feed="f", emit=events.append)
    book.apply(up())
    book.apply(PositionUpdate(category=Category.INVERSE, symbol="BTCUSD", side=Side.LONG,
                              size=D(100), entry_price=D(30000), seq=4, exchange_ms=10))

    def scope(key: PositionKey) -> bool:
        return covered(key, lin, ["USDT"])

    assert audit_diff(book.positions, [], 2000, covers=scope) == {"linear:BTCUSDT:0": (
        "linear:BTCUSDT:0: in the book (long 1), flat on the exchange")}
    book.reconcile([], as_of_ms=2000, covers=scope)
    assert [e.kind.value for e in events] == ["opened", "opened", "closed"]  # type: ignore[attr-defined]
    assert {p.symbol for p in book.positions.values()} == {"BTCUSD"}


def test_hedge_fills_go_to_the_side_that_moved_by_side_and_closed_size() -> None:
    from feedctl.plugins.bybit_hybrid.gap import hedge_key

    def f(side: Side, qty: str, closed: str, seq: int) -> Fill:
        return Fill(PositionKey(Category.LINEAR, "XRPUSDT", 0), side, D(qty), D("0.6"), seq,
                    seq * 10, D(closed))

    opened_short, closed_short = f(Side.SHORT, "30", "0", 1), f(Side.LONG, "30", "30", 2)
    grown_long, cut_long = f(Side.LONG, "100", "0", 3), f(Side.SHORT, "40", "40", 4)
    assert [hedge_key(x).key.position_idx for x in
            (opened_short, closed_short, grown_long, cut_long)] == [2, 2, 1, 1]
    states = replay([hedge_key(x) for x in (opened_short, closed_short, grown_long, cut_long)],
                    {}, {}, {}, {}, 1)
    assert [(u.position_idx, u.side, str(u.size)) for u in states] == [
        (2, Side.SHORT, "30"), (2, None, "0"), (1, Side.LONG, "100"), (1, Side.LONG, "60")]


def test_parse_fill_reads_closed_size() -> None:
    row = payload("execution_push.json")["data"][0]
    f = parse_fill({**row, "closedSize": "0.004"})
    assert isinstance(f, Fill) and f.closed == D("0.004")
    assert isinstance(parse_fill({**row, "closedSize": "-1"}), Problem)


def test_an_audit_keeps_the_fills_of_a_key_left_to_the_stream_above_the_floor() -> None:
    """F21: the book missed a reduce (seq 755, fill at 8,000 ms); a settings change
    later (9,500 ms, same seq) makes the row young at the audit (as_of 10,000), so the
    book's own state stands in for it. The floor may not pass the book's state of that
    key: else the reduce's fill falls below it for good and the next replay builds the
    close on the wrong size (a phantom, then a lost lifecycle: the 1,500-fault campaign,
    seed 20240601)."""
    book = book_with(up(size="651", seq=754, ms=5_000))
    row = up(size="2", seq=755, ms=9_500)
    rows, unsettled = settled([row], book.positions, 10_000, 1_000)
    assert unsettled == {BTC} and rows[0].seq == 754
    assert fill_floor(9_000, unsettled, book.positions, 4_000) == 4_999
    assert fill_floor(9_000, set(), book.positions, 4_000) == 9_000
    # a key the book lacks: the floor stays where it was
    assert fill_floor(9_000, {PositionKey(Category.LINEAR, "ETHUSDT", 0)}, book.positions,
                      4_000) == 4_000


def test_a_fill_that_closed_something_onto_a_flat_replay_opens_only_its_remainder() -> None:
    """The exchange says the fill closed a position (closedSize) while the replay holds
    the key flat: the start already reflects that close (a snapshot taken after it), so
    replaying it whole would open a position the exchange never had; a flip's remainder
    beyond the close is still opened."""
    close = Fill(BTC, Side.SHORT, D("1"), D("110"), 12, 1_200, closed=D("1"))
    assert [(s.side, s.size) for s in replay([close], {}, {}, {}, {}, 1)] == [(None, D(0))]
    flip = Fill(BTC, Side.SHORT, D("3"), D("110"), 13, 1_300, closed=D("1"))
    assert [(s.side, s.size) for s in replay([flip], {}, {}, {}, {}, 1)] == [
        (Side.SHORT, D(2))]


def test_audit_finds_a_leverage_change_whose_push_was_lost() -> None:
    """A leverage change keeps the position's seq: when its push is lost no later state
    tells, so the snapshot's leverage is compared too (a campaign run ended with BTCUSD
    at 10x in the book and for consumers, 5x on the exchange)."""
    book = book_with(up().model_copy(update={"leverage": D(10)}))
    row = up(ms=1500).model_copy(update={"leverage": D(5)})
    assert "leverage book=10 exchange=5" in audit_diff(book.positions, [row], 2000)[str(BTC)]
    book.apply(row)  # the repair: one seq, a later time
    assert book.positions[BTC].leverage == D(5)
