"""Deterministic reproductions of what the chaos campaign found (docs/reliability.md,
"Findings"). The campaign hits each of them only by chance; here they are pinned down.

Each test pins one finding; every finding listed here is fixed and its test guards the
fix (docs/reliability.md, "Findings").
"""

from __future__ import annotations

import asyncio
from decimal import Decimal

import pytest

from feedctl import (
    EventKind,
    FeedState,
    FeedStatus,
    MarkPrice,
    PositionBook,
    PositionEvent,
    PositionUpdate,
    Role,
    Side,
    StatusEvent,
)
from feedctl.router import Router
from tests.bybit_hybrid.conftest import wait_until
from tests.chaos.conftest import hybrid
from tests.conftest import run_async

D = Decimal


def _open(seq: int, size: str = "0.01", side: Side = Side.LONG, ms: int = 1_000
          ) -> PositionUpdate:
    return PositionUpdate(symbol="BTCUSDT", side=side, size=D(size), entry_price=D("100"),
                          seq=seq, exchange_ms=ms)


# ----------------------------------------------------------------------------- F1
@pytest.mark.unit
def test_book_does_not_reopen_a_position_a_snapshot_closed() -> None:
    events: list[PositionEvent] = []
    book = PositionBook(exchange="bybit", account="a", feed="f", emit=events.append)
    book.apply(_open(5))
    book.reconcile([], as_of_ms=2_000)  # the snapshot no longer lists it: closed
    book.apply(_open(5))  # a late copy of the state the snapshot superseded
    assert [(e.kind.value, e.position.seq) for e in events] == [("opened", 5), ("closed", 5)]


# ----------------------------------------------------------------------------- F2
def _router() -> tuple[Router, dict[str, PositionBook], list[object], list[float]]:
    delivered: list[object] = []
    now = [0.0]
    books: dict[str, PositionBook] = {}
    router = Router({"h": Role.PRIMARY, "r": Role.STANDBY}, books, deliver=delivered.append,
                    failover_after=1.0, failback_after=5.0, clock=lambda: now[0])
    for name in ("h", "r"):
        books[name] = PositionBook(exchange="bybit", account="a", feed=name,
                                   emit=lambda e, n=name: router.on_event(n, e))
    for name in ("h", "r"):
        _report(router, name, FeedState.HEALTHY, now, 0.0)
    return router, books, delivered, now


def _lifecycle(delivered: list[object]) -> list[PositionEvent]:
    """The delivered position events other than prices."""
    return [e for e in delivered if isinstance(e, PositionEvent) and e.kind is not EventKind.PRICE]


def _report(router: Router, feed: str, state: FeedState, now: list[float], at: float) -> None:
    """``feed`` reports ``state``; at time ``at`` the router evaluates its thresholds."""
    router.on_status(StatusEvent(feed=feed, status=FeedStatus(feed=feed, kind="k", state=state)))
    now[0] = at
    router.evaluate()


def _failed_over_after_a_flip() -> tuple[Router, dict[str, PositionBook], list[object]]:
    """Both feeds saw a long; the hybrid then saw it flip to short and went down; the
    router failed over to the poller, which still holds the long."""
    router, books, delivered, now = _router()
    books["h"].apply(_open(5))
    books["r"].apply(_open(5))
    books["h"].apply(_open(9, size="0.02", side=Side.SHORT, ms=2_000))  # a flip, seen live
    _report(router, "h", FeedState.RECONNECTING, now, 1.5)
    assert router.active == "r"
    return router, books, delivered


@pytest.mark.unit
def test_failover_does_not_resurrect_a_position_consumers_saw_closed() -> None:
    router, books, delivered, now = _router()
    books["h"].apply(_open(5))
    books["r"].apply(_open(5))  # the poller saw it open ...
    books["h"].apply(PositionUpdate(symbol="BTCUSDT", side=None, size=D(0), seq=9,
                                    exchange_ms=2_000))  # ... the hybrid sees it close
    # failover to the poller, which has not polled since the close
    _report(router, "h", FeedState.RECONNECTING, now, 1.5)
    assert router.active == "r"
    # the poller's next price for its stale view must not reopen it either
    books["r"].apply_mark(MarkPrice(symbol="BTCUSDT", mark_price=D(101), exchange_ms=3_000))
    kinds = [e.kind.value for e in _lifecycle(delivered)]
    assert kinds == ["opened", "closed"], kinds


# ----------------------------------------------------------------------------- F3
@pytest.mark.integration
def test_gap_replay_after_an_audit_repair_emits_no_phantom_states() -> None:
    """F3: an audit that repaired the book must advance the gap replay's cursor, or the
    next replay applies fills the book already reflects (sizes 0.03 and 0.01 here, which
    the position never had, and a close that turns into a 'changed')."""

    async def main() -> list[tuple[str, str]]:
        # no pings during the test: only the audit can notice the dropped pushes
        async with hybrid(ping_interval=30.0, pong_timeout=10.0, audit_interval=0.5) as h:
            await h.ctl.place_order("BTCUSDT", "Buy", "0.01")
            await wait_until(lambda: h.sizes("BTCUSDT") == [("opened", "0.01")])
            await h.ctl.stall("private", 30)  # pushes are dropped from now on
            await h.ctl.place_order("BTCUSDT", "Buy", "0.01")
            await wait_until(lambda: h.sizes("BTCUSDT")[-1] == ("changed", "0.02"), 5)
            await h.ctl.place_order("BTCUSDT", "Sell", "0.02", reduce_only=True)
            await h.ctl.clear_faults()
            await h.ctl.drop("private")  # a gap: reconnect, resync, replay the fills
            await wait_until(lambda: h.sizes("BTCUSDT")[-1][0] == "closed", 5)
            await h.healthy()
            return h.sizes("BTCUSDT")

    assert run_async(main()) == [("opened", "0.01"), ("changed", "0.02"), ("closed", "0.02")]


# ----------------------------------------------------------------------------- F4
@pytest.mark.integration
def test_a_lifecycle_inside_an_unnoticed_stall_is_recovered() -> None:
    """F4: pushes lost while the socket stays up (a stall shorter than the ping period)
    leave no trace in the positions when a lifecycle began and ended inside the loss;
    the audit must read the fills and replay those the stream never delivered."""

    async def main() -> list[tuple[str, str]]:
        async with hybrid(ping_interval=30.0, pong_timeout=10.0, audit_interval=0.5) as h:
            await h.ctl.stall("private", 1.0)  # shorter than the ping period: unnoticed
            await h.ctl.place_order("BTCUSDT", "Buy", "0.01")
            await h.ctl.place_order("BTCUSDT", "Sell", "0.01", reduce_only=True)
            await asyncio.sleep(1.2)
            audits = h.ctx.counters.get("audits", 0)
            await wait_until(lambda: h.ctx.counters.get("audits", 0) >= audits + 2, 5)
            return h.sizes("BTCUSDT")

    assert run_async(main()) == [("opened", "0.01"), ("closed", "0.01")]


# ----------------------------------------------------------------------------- F5
@pytest.mark.integration
def test_pushes_lost_before_a_late_detected_stall_are_replayed() -> None:
    """A stalled private socket drops pushes; the stall ends, a new push arrives, and only
    then the unanswered ping times out. The gap must start before the loss (the last
    answered ping), not at the last frame (which came after it)."""

    async def main() -> list[tuple[str, str]]:
        async with hybrid(ping_interval=0.5, pong_timeout=3.0) as h:
            await asyncio.sleep(0.6)  # a ping answered: the socket is known good
            await h.ctl.stall("private", 2.0)
            await asyncio.sleep(0.2)
            await h.ctl.place_order("BTCUSDT", "Buy", "0.01")  # both pushes are lost
            await h.ctl.place_order("BTCUSDT", "Sell", "0.01", reduce_only=True)
            await asyncio.sleep(2.0)  # the stall is over; the ping sent in it is lost
            await h.ctl.place_order("ETHUSDT", "Buy", "0.1")  # a frame after the loss
            await wait_until(lambda: h.ctx.counters.get("reconnects", 0) >= 1, 5)
            await wait_until(lambda: h.sizes("ETHUSDT") == [("opened", "0.1")], 5)
            await h.healthy()
            return h.sizes("BTCUSDT")

    assert run_async(main()) == [("opened", "0.01"), ("closed", "0.01")]


# ----------------------------------------------------------------------------- F6
@pytest.mark.integration
def test_an_audit_does_not_overtake_pushes_in_flight() -> None:
    async def main() -> list[tuple[str, str]]:
        async with hybrid(ping_interval=30.0, pong_timeout=10.0, audit_interval=0.3) as h:
            await h.ctl.place_order("BTCUSDT", "Buy", "0.01")
            await wait_until(lambda: h.sizes("BTCUSDT") == [("opened", "0.01")])
            await h.ctl.delay("private", 800, 5)  # pushes take 0.8 s from now on
            await h.ctl.place_order("BTCUSDT", "Sell", "0.01", reduce_only=True)
            await h.ctl.place_order("BTCUSDT", "Buy", "0.02")
            await asyncio.sleep(3.0)  # audits every 0.3 s; the pushes land after 0.8 s
            return h.sizes("BTCUSDT")

    assert run_async(main()) == [("opened", "0.01"), ("closed", "0.01"), ("opened", "0.02")]


# ----------------------------------------------------------------------------- F10
@pytest.mark.integration
def test_an_audit_close_is_not_followed_by_a_phantom_replay() -> None:
    async def main() -> list[tuple[str, str]]:
        async with hybrid(ping_interval=30.0, pong_timeout=10.0, audit_interval=0.4) as h:
            await h.ctl.place_order("BTCUSDT", "Buy", "0.01")
            await wait_until(lambda: h.sizes("BTCUSDT") == [("opened", "0.01")])
            await h.ctl.stall("private", 10)  # the close's pushes are lost
            await h.ctl.place_order("BTCUSDT", "Sell", "0.01", reduce_only=True)
            await wait_until(lambda: h.sizes("BTCUSDT")[-1][0] == "closed", 5)
            await asyncio.sleep(3.0)  # several more audits
            return [(k, s) for k, s in h.sizes("BTCUSDT")]

    events = run_async(main())
    assert events == [("opened", "0.01"), ("closed", "0.01")], events


# ----------------------------------------------------------------------------- F11
@pytest.mark.unit
def test_a_standby_snapshot_does_not_close_what_it_lists() -> None:
    router, books, delivered, now = _router()
    eth = PositionUpdate(symbol="ETHUSDT", side=Side.SHORT, size=D("0.5"),
                         entry_price=D("3000"), seq=20, exchange_ms=1_500)
    books["h"].apply(_open(10, ms=1_000))  # consumers hold BTCUSDT from the hybrid
    books["r"].reconcile([], as_of_ms=500)  # the poller's last snapshot predates it
    # failover: BTCUSDT is a pending orphan (the poller cannot call it)
    _report(router, "h", FeedState.RECONNECTING, now, 1.5)
    assert router.active == "r" and router.pending_orphans
    # the poller's next snapshot lists both; ETHUSDT sorts first and emits first
    books["r"].reconcile([eth, _open(10, ms=1_000).model_copy(update={"symbol": "BTCUSDT"})],
                         as_of_ms=2_000)
    kinds = [(e.kind.value, e.position.symbol) for e in _lifecycle(delivered)]
    assert kinds == [("opened", "BTCUSDT"), ("opened", "ETHUSDT")], kinds


# ----------------------------------------------------------------------------- F2b
@pytest.mark.unit
def test_failover_does_not_take_consumers_back_to_an_older_state() -> None:
    _, books, delivered = _failed_over_after_a_flip()
    books["r"].apply(_open(9, size="0.02", side=Side.SHORT, ms=2_000))  # it catches up
    kinds = [(e.kind.value, e.position.side.value) for e in _lifecycle(delivered)]
    assert kinds == [("opened", "long"), ("closed", "long"), ("opened", "short")], kinds


# ----------------------------------------------------------------------------- F1b
@pytest.mark.unit
def test_a_state_older_than_the_snapshot_that_closed_it_does_not_reopen() -> None:
    events: list[PositionEvent] = []
    book = PositionBook(exchange="bybit", account="a", feed="f", emit=events.append)
    book.apply(_open(5, ms=1_000))
    book.reconcile([], as_of_ms=3_000)  # flat as of 3000 (it closed at, say, 2500)
    book.apply(_open(6, ms=2_000))  # a delayed push from before the close
    assert [(e.kind.value, e.position.seq) for e in events] == [("opened", 5), ("closed", 5)]


# ----------------------------------------------------------------------------- F2c
@pytest.mark.unit
def test_a_lagging_feeds_price_does_not_replace_what_consumers_hold() -> None:
    router, books, delivered = _failed_over_after_a_flip()
    books["r"].apply_mark(MarkPrice(symbol="BTCUSDT", mark_price=D(105), exchange_ms=2_500))
    assert router.delivered[next(iter(router.delivered))].side is Side.SHORT
    books["r"].apply(_open(9, size="0.02", side=Side.SHORT, ms=2_000))  # it catches up
    kinds = [(e.kind.value, e.position.side.value) for e in _lifecycle(delivered)]
    assert kinds == [("opened", "long"), ("closed", "long"), ("opened", "short")], kinds


@pytest.mark.unit
def test_a_lagging_feeds_price_moves_the_mark_of_the_position_consumers_hold() -> None:
    _, books, delivered = _failed_over_after_a_flip()
    books["r"].apply_mark(MarkPrice(symbol="BTCUSDT", mark_price=D(105), exchange_ms=2_500))
    last = delivered[-1]
    assert isinstance(last, PositionEvent)
    assert (last.kind, last.position.side, last.position.size, last.position.mark_price) == (
        EventKind.PRICE, Side.SHORT, D("0.02"), D(105))


@pytest.mark.unit
def test_a_lagging_feeds_change_of_an_older_state_is_not_delivered() -> None:
    _, books, delivered = _failed_over_after_a_flip()
    before = len(delivered)
    books["r"].apply(_open(7, size="0.015", ms=1_500))  # the poller's view, still behind
    assert delivered[before:] == []


# ----------------------------------------------------------------------------- F12
@pytest.mark.integration
def test_a_failed_resync_does_not_hide_a_lifecycle_lost_in_the_gap() -> None:
    """F12: pushes buffered during a resync that then fails must not be applied: they
    move the replay cursor (last seq per key) past the fills made in the gap, and the
    next resync's replay skips a lifecycle that opened and closed while disconnected."""

    async def main() -> list[tuple[str, str]]:
        async with hybrid(ping_interval=30.0, pong_timeout=10.0, rest_attempts=3,
                          backoff_base=0.3, backoff_cap=0.5) as h:
            await h.ctl.stall("private", 1.0)  # these two pushes are lost
            await h.ctl.place_order("ETHUSDT", "Buy", "0.1")
            await h.ctl.place_order("ETHUSDT", "Sell", "0.1", reduce_only=True)
            await asyncio.sleep(1.1)
            await h.ctl.rest_errors("503", count=3, path="/v5/position/list")
            await h.ctl.drop("private")  # a gap; the first resync's snapshot fails
            await wait_until(lambda: h.ctx.state is FeedState.RESYNCING, 5, step=0.005)
            await h.ctl.place_order("ETHUSDT", "Buy", "0.2")  # pushed into the buffer
            await wait_until(lambda: h.ctx.counters.get("resyncs", 0) >= 2, 10)
            await h.healthy()
            return h.sizes("ETHUSDT")

    events = run_async(main())
    assert events == [("opened", "0.1"), ("closed", "0.1"), ("opened", "0.2")], events


@pytest.mark.integration
def test_a_resync_whose_fills_are_unavailable_retries_instead_of_closing_the_gap() -> None:
    """F12b: a resync that got the snapshot but not the fills must not move the fill
    floor past the gap: the lifecycle lost in it would never be replayed."""

    async def main() -> list[tuple[str, str]]:
        async with hybrid(ping_interval=30.0, pong_timeout=10.0, rest_attempts=3) as h:
            await h.ctl.stall("private", 1.0)
            await h.ctl.place_order("ETHUSDT", "Buy", "0.1")
            await h.ctl.place_order("ETHUSDT", "Sell", "0.1", reduce_only=True)
            await asyncio.sleep(1.1)
            await h.ctl.rest_errors("502", count=3, path="/v5/execution/list")
            await h.ctl.drop("private")
            await wait_until(lambda: h.ctx.counters.get("gap_replay_failures", 0) >= 1, 5)
            await wait_until(lambda: h.sizes("ETHUSDT"), 10)
            await h.healthy()
            return h.sizes("ETHUSDT")

    events = run_async(main())
    assert events == [("opened", "0.1"), ("closed", "0.1")], events


# ----------------------------------------------------------------------------- L1
def _lifecycle_after_a_stall_then_a_newer_push(**settings: object) -> list[tuple[str, str]]:
    async def main() -> list[tuple[str, str]]:
        async with hybrid(ping_interval=0.5, pong_timeout=5.0, **settings) as h:
            await asyncio.sleep(0.6)  # a ping answered
            await h.ctl.stall("private", 1.5)
            await h.ctl.place_order("BTCUSDT", "Buy", "0.01")  # both pushes are lost
            await h.ctl.place_order("BTCUSDT", "Sell", "0.01", reduce_only=True)
            await asyncio.sleep(1.6)  # over; the ping sent in it is still unanswered
            await h.ctl.place_order("BTCUSDT", "Buy", "0.02")  # a newer push, same key
            await wait_until(lambda: h.sizes("BTCUSDT")[-1:] == [("opened", "0.02")], 8)
            await asyncio.sleep(0.5)
            return h.sizes("BTCUSDT")

    return run_async(main())


@pytest.mark.integration
def test_a_push_proving_a_pong_was_lost_is_not_applied_before_the_gap_replay() -> None:
    """L1: a stall that ends before its unanswered ping times out lets a newer push of
    the same position through first; applied, it would put the lost lifecycle behind the
    book's version guard for good. A frame created well after an unanswered ping proves
    the pong (and whatever came with it) was lost: the socket is dropped before that
    frame, and the reconnect's replay delivers the lost states in order."""
    events = _lifecycle_after_a_stall_then_a_newer_push(pong_overdue_after=0.3)
    assert events == [("opened", "0.01"), ("closed", "0.01"), ("opened", "0.02")], events


@pytest.mark.integration
def test_without_the_overdue_pong_check_the_lost_lifecycle_stays_lost() -> None:
    """The limitation the check removes (documented as L1 in docs/reliability.md)."""
    events = _lifecycle_after_a_stall_then_a_newer_push(pong_overdue_after=None)
    assert events == [("opened", "0.02")], events


@pytest.mark.integration
def test_a_loss_no_ping_revealed_before_a_newer_push_is_delivered_as_past() -> None:
    """L1: a stall holding no ping, then a newer push of the same position. The lost
    lifecycle cannot be delivered in order; the audit reads the fills, replays them from
    the flat book (the key was never held before) and delivers it as ``past`` history
    instead of skipping it (it used to be reported, skipped)."""

    async def main() -> tuple[list[tuple[str, str, bool]], int, list[object]]:
        # the first audit comes after the newer push (an audit seeing the key flat in
        # between would replay the lost lifecycle: F14)
        async with hybrid(ping_interval=30.0, pong_timeout=10.0, audit_interval=2.0) as h:
            await h.ctl.stall("private", 1.0)  # no ping inside: unnoticed
            await h.ctl.place_order("BTCUSDT", "Buy", "0.01")
            await h.ctl.place_order("BTCUSDT", "Sell", "0.01", reduce_only=True)
            await asyncio.sleep(1.1)
            # arrives, newer; its order-create push carries the flat state (the close's
            # seq) before the fill: only the open state is missing from the book
            await h.ctl.place_order("BTCUSDT", "Buy", "0.02")
            await wait_until(lambda: len(h.lifecycle("BTCUSDT")) == 3, 8)
            opened = (await h.ctl.transitions(symbol="BTCUSDT"))[0]
            events = [(e.kind.value, str(e.position.size), e.past)
                      for e in h.lifecycle("BTCUSDT")]
            past_open = next(e.position.seq for e in h.lifecycle("BTCUSDT") if e.past)
            return events, h.ctx.counters.get("states_unrecoverable", 0), [
                past_open, opened["seq"]]

    events, unrecoverable, (past_open, open_seq) = run_async(main())
    assert events == [("opened", "0.02", False), ("opened", "0.01", True),
                      ("closed", "0.01", True)]
    assert unrecoverable == 0 and past_open == open_seq


@pytest.mark.integration
def test_a_lost_lifecycle_between_two_flat_states_is_delivered_as_past() -> None:
    """L1 recovered: the same loss, but the book saw the key flat before it (a lifecycle
    the stream delivered) and flat after it: the lost fills make a whole lifecycle of
    the past, delivered as ``past`` events instead of being reported skipped."""

    async def main() -> tuple[list[tuple[str, str, bool]], int, int]:
        async with hybrid(ping_interval=30.0, pong_timeout=10.0, audit_interval=2.0) as h:
            await h.ctl.place_order("BTCUSDT", "Buy", "0.01")
            await h.ctl.place_order("BTCUSDT", "Sell", "0.01", reduce_only=True)
            await wait_until(lambda: len(h.kinds("BTCUSDT")) == 2, 5)  # seen, flat
            await h.ctl.stall("private", 1.0)  # no ping inside: unnoticed
            await h.ctl.place_order("BTCUSDT", "Buy", "0.03")
            await h.ctl.place_order("BTCUSDT", "Sell", "0.03", reduce_only=True)
            await asyncio.sleep(1.1)
            await h.ctl.place_order("BTCUSDT", "Buy", "0.02")
            await wait_until(lambda: h.ctx.counters.get("states_recovered_past", 0), 8)
            events = [(e.kind.value, str(e.position.size), e.past) for e in h.events
                      if e.position.symbol == "BTCUSDT" and e.kind.is_lifecycle]
            return (events, h.ctx.counters.get("states_unrecoverable", 0),
                    h.ctx.counters["states_recovered_past"])

    events, unrecoverable, recovered = run_async(main())
    assert ("opened", "0.03", True) in events and ("closed", "0.03", True) in events
    assert [e for e in events if not e[2]] == [
        ("opened", "0.01", False), ("closed", "0.01", False), ("opened", "0.02", False)]
    assert unrecoverable == 0 and recovered >= 1


@pytest.mark.integration
def test_states_the_stream_delivered_are_never_reported_unrecoverable() -> None:
    async def main() -> int:
        async with hybrid(ping_interval=30.0, pong_timeout=10.0, audit_interval=0.3) as h:
            for side, qty in (("Buy", "0.01"), ("Buy", "0.01"), ("Sell", "0.03"),
                              ("Buy", "0.02"), ("Sell", "0.01")):
                await h.ctl.place_order("BTCUSDT", side, qty)
            await h.ctl.drop("private")  # a resync replays from before the gap too
            await h.healthy()
            audits = h.ctx.counters.get("audits", 0)
            await wait_until(lambda: h.ctx.counters.get("audits", 0) >= audits + 3, 8)
            return h.ctx.counters.get("states_unrecoverable", 0)

    assert run_async(main()) == 0


# ----------------------------------------------------------------------------- F2d
@pytest.mark.unit
def test_a_close_at_failback_is_not_undone_by_the_next_failover() -> None:
    """F2d: at failback the router closed a position the standby still held, as of the
    time the primary knew it flat; the next failover must not reopen it from the
    standby's unchanged, older view (it recorded the close at the position's own time)."""
    router, books, delivered, now = _router()
    books["h"].apply(_open(5))
    books["r"].apply(_open(5))
    # failover; the poller holds the position too
    _report(router, "h", FeedState.RECONNECTING, now, 1.5)
    books["h"].apply(PositionUpdate(symbol="BTCUSDT", side=None, size=D(0), seq=9,
                                    exchange_ms=2_000))  # the primary sees the close
    _report(router, "h", FeedState.HEALTHY, now, 2.0)
    now[0] = 8.0
    router.evaluate()  # failback: consumers get the close
    assert router.active == "h"
    # failover again; the poller has not polled since
    _report(router, "h", FeedState.RECONNECTING, now, 10.0)
    assert router.active == "r"
    kinds = [e.kind.value for e in _lifecycle(delivered)]
    assert kinds == ["opened", "closed"], kinds


# ----------------------------------------------------------------------------- F2e
def _failed_over_onto_a_lagging_poller() -> tuple[Router, dict[str, PositionBook],
                                                   list[object], list[float]]:
    """Consumers hold the hybrid's newer lifecycle (seq 9); the poller, now active,
    still holds the older one (seq 5) it never saw close."""
    router, books, delivered, now = _router()
    books["r"].apply(_open(5))
    books["h"].apply(_open(5))
    books["h"].apply(PositionUpdate(symbol="BTCUSDT", side=None, size=D(0), seq=7,
                                    exchange_ms=1_500))
    books["h"].apply(_open(9, size="0.02", ms=2_000))
    _report(router, "h", FeedState.RECONNECTING, now, 1.5)
    assert router.active == "r"
    return router, books, delivered, now


@pytest.mark.unit
def test_a_lagging_feeds_close_closes_what_consumers_hold_once_it_knows_it_flat() -> None:
    """F2e: the poller's close of its older state (seq 5) after a snapshot that is newer
    than what consumers hold closes *their* position, carrying their state (seq 9)."""
    _, books, delivered, _ = _failed_over_onto_a_lagging_poller()
    books["r"].reconcile([], as_of_ms=3_000)
    last = delivered[-1]
    assert isinstance(last, PositionEvent)
    assert (last.kind, last.position.seq, last.position.size) == (
        EventKind.CLOSED, 9, D("0.02"))


@pytest.mark.unit
def test_a_lagging_feeds_close_older_than_what_consumers_hold_waits() -> None:
    """F2e: a snapshot taken before consumers' state (as of 1.8 s < 2 s) cannot close
    it; it stays open until a newer snapshot says flat."""
    router, books, delivered, _ = _failed_over_onto_a_lagging_poller()
    before = len(delivered)
    books["r"].reconcile([], as_of_ms=1_800)
    router.evaluate()
    assert delivered[before:] == [] and router.pending_orphans
    books["r"].reconcile([], as_of_ms=3_000)
    router.evaluate()
    closes = [e for e in delivered[before:] if isinstance(e, PositionEvent)]
    assert [(e.kind, e.position.seq) for e in closes] == [(EventKind.CLOSED, 9)]


# ----------------------------------------------------------------------------- F13
@pytest.mark.integration
def test_a_gap_replay_starts_from_the_last_snapshot_not_just_the_gap() -> None:
    """F13: a close lost in a short stall holding no ping goes unnoticed; a later gap's
    replay that starts only just before the gap builds the gap's fills on the stale
    open state (states the exchange never had). From the fill floor, it replays the
    lost close first."""

    async def main() -> list[tuple[str, str]]:
        async with hybrid(ping_interval=0.5, pong_timeout=1.0) as h:
            await h.ctl.place_order("BTCUSDT", "Buy", "0.01")
            await wait_until(lambda: h.sizes("BTCUSDT") == [("opened", "0.01")], 5)
            conn = h.feed.private.conn
            pong = conn.last_pong
            await wait_until(lambda: conn.last_pong != pong, 5, step=0.002)
            await h.ctl.stall("private", 0.3)  # between two pings: unnoticed
            await h.ctl.place_order("BTCUSDT", "Sell", "0.01", reduce_only=True)
            await asyncio.sleep(2.0)  # answered pings move the known-good point past it
            await h.ctl.stall("private", 3.0)  # a noticed gap (pong timeout)
            await h.ctl.place_order("BTCUSDT", "Sell", "0.02")
            await h.ctl.place_order("BTCUSDT", "Buy", "0.02", reduce_only=True)
            await wait_until(lambda: h.ctx.counters.get("reconnects", 0) >= 1, 5)
            await h.healthy(8)
            await asyncio.sleep(0.3)
            return h.sizes("BTCUSDT")

    events = run_async(main())
    assert events == [("opened", "0.01"), ("closed", "0.01"), ("opened", "0.02"),
                      ("closed", "0.02")], events


# ----------------------------------------------------------------------------- F14
@pytest.mark.integration
def test_an_audit_close_replays_the_keys_fills_up_to_its_snapshot_first() -> None:
    """F14: pushes lost unnoticed; the position flipped and closed less than the settle
    time before an audit's snapshot, which shows it flat. The audit replayed fills only
    up to the settle time, closed the position from the snapshot, and the key's fill
    floor then hid the short lifecycle for good."""

    async def main() -> list[tuple[str, str]]:
        async with hybrid(ping_interval=30.0, pong_timeout=10.0, audit_interval=0.4) as h:
            await h.ctl.place_order("BTCUSDT", "Buy", "0.01")
            await wait_until(lambda: h.sizes("BTCUSDT") == [("opened", "0.01")], 5)
            await h.ctl.stall("private", 10)  # everything from here on is lost
            await h.ctl.place_order("BTCUSDT", "Sell", "0.02")  # a flip to short 0.01
            await h.ctl.place_order("BTCUSDT", "Buy", "0.01", reduce_only=True)
            await wait_until(lambda: h.sizes("BTCUSDT")[-1][0] == "closed", 5)
            await asyncio.sleep(2.5)  # more audits: nothing more may come
            return h.sizes("BTCUSDT")

    events = run_async(main())
    assert events == [("opened", "0.01"), ("closed", "0.01"), ("opened", "0.01"),
                      ("closed", "0.01")], events
