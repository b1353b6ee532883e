"""Router: roles, failover and failback, no duplicate lifecycle events across switches."""

from __future__ import annotations

from decimal import Decimal

import pytest

from feedctl import (
    Category,
    EventKind,
    FeedState,
    FeedStatus,
    MarkPrice,
    PositionBook,
    PositionEvent,
    PositionKey,
    PositionUpdate,
    Role,
    RouteEvent,
    Side,
    StatusEvent,
)
from feedctl.router import Router

pytestmark = pytest.mark.unit
D = Decimal


class Clock:
    def __init__(self) -> None:
        self.t = 0.0

    def __call__(self) -> float:
        return self.t


def setup(roles: dict[str, Role]) -> tuple[Router, dict[str, PositionBook], list[object], Clock,
                                           list[tuple[str, PositionEvent]]]:
    delivered: list[object] = []
    shadow: list[tuple[str, PositionEvent]] = []
    clock = Clock()
    books: dict[str, PositionBook] = {}
    router = Router(roles, books, deliver=delivered.append,
                    on_shadow=lambda f, e: shadow.append((f, e)),
                    failover_after=1.0, failback_after=5.0, clock=clock)
    for name in roles:
        books[name] = PositionBook(exchange="x", account="a", feed=name,
                                   emit=lambda e, n=name: router.on_event(n, e))
    return router, books, delivered, clock, shadow


def status(router: Router, feed: str, state: FeedState) -> None:
    router.on_status(StatusEvent(feed=feed, status=FeedStatus(feed=feed, kind="k", state=state)))


def upd(symbol: str, size: str, seq: int, side: Side = Side.LONG) -> PositionUpdate:
    return PositionUpdate(symbol=symbol, side=side if D(size) else None, size=D(size),
                          entry_price=D("100"), seq=seq)


def pos_events(delivered: list[object]) -> list[tuple[str, str]]:
    return [(e.kind.value, e.position.symbol) for e in delivered if isinstance(e, PositionEvent)]


def test_only_the_primary_is_delivered_and_shadows_go_to_validation() -> None:
    _, books, delivered, _, shadow = setup({"h": Role.PRIMARY, "r": Role.SHADOW})
    books["h"].apply(upd("BTCUSDT", "1", 1))
    books["r"].apply(upd("BTCUSDT", "1", 1))
    assert pos_events(delivered) == [("opened", "BTCUSDT")]
    assert [(f, e.kind.value) for f, e in shadow] == [("r", "opened")]


def test_failover_after_threshold_then_failback_without_duplicate_lifecycles() -> None:
    router, books, delivered, clock, _ = setup({"h": Role.PRIMARY, "r": Role.STANDBY})
    status(router, "h", FeedState.HEALTHY)
    status(router, "r", FeedState.HEALTHY)
    for b in books.values():
        b.apply(upd("BTCUSDT", "1", 1))
        b.apply(upd("ETHUSDT", "2", 1))
    status(router, "h", FeedState.RECONNECTING)
    clock.t = 0.9
    router.evaluate()
    assert router.active == "h"
    # while the primary is down the position changes and another closes
    books["r"].apply(upd("BTCUSDT", "3", 2))
    books["r"].apply(upd("ETHUSDT", "0", 2))
    clock.t = 1.1
    router.evaluate()
    assert router.active == "r"
    route = [e for e in delivered if isinstance(e, RouteEvent)]
    assert route[0].previous == "h" and "failover" in route[0].reason
    # the primary comes back, resynced to the same truth
    books["h"].apply(upd("BTCUSDT", "3", 2))
    books["h"].apply(upd("ETHUSDT", "0", 2))
    status(router, "h", FeedState.HEALTHY)
    clock.t = 4.0
    router.evaluate()
    assert router.active == "r"
    clock.t = 6.2
    router.evaluate()
    assert router.active == "h"
    assert pos_events(delivered) == [
        ("opened", "BTCUSDT"), ("opened", "ETHUSDT"),  # from h
        ("closed", "ETHUSDT"), ("changed", "BTCUSDT"),  # reconciled at failover
    ]
    # the primary's resync (the same truth) adds nothing: its close of ETHUSDT, which
    # consumers already saw closed, is guarded
    assert router.counters == {"failovers": 1, "failbacks": 1, "delivered": 4, "guarded": 1,
                               "recovered": 0, "marks_superseded": 0,
                               "past_lifecycles": 0, "merged_split": 0, "merged_past": 0,
                               "free_marks": 0}


def test_no_failover_to_an_unhealthy_standby() -> None:
    router, _, _, clock, _ = setup({"h": Role.PRIMARY, "r": Role.STANDBY})
    status(router, "h", FeedState.FAILED)
    status(router, "r", FeedState.DEGRADED)
    clock.t = 10
    router.evaluate()
    assert router.active == "h"
    status(router, "r", FeedState.HEALTHY)
    assert router.active == "r"


def test_reconcile_opens_positions_the_consumers_never_saw() -> None:
    router, books, delivered, clock, _ = setup({"h": Role.PRIMARY, "r": Role.STANDBY})
    status(router, "r", FeedState.HEALTHY)
    books["r"].apply(upd("SOLUSDT", "5", 1, Side.SHORT))
    books["r"].apply_mark(MarkPrice(symbol="SOLUSDT", mark_price=D("90")))
    clock.t = 2
    router.evaluate()
    opened = [e for e in delivered if isinstance(e, PositionEvent)]
    assert [(e.kind, e.synthetic) for e in opened] == [(EventKind.OPENED, True)]
    assert opened[0].position.unrealised_pnl == D("50")


def test_a_standby_whose_snapshot_predates_a_position_does_not_close_it() -> None:
    """The hybrid saw an open at t=2000 ms; the REST standby's last snapshot is from
    t=1000 ms. Failing over must not close the position; the standby's next snapshot
    (which has it) must not open it a second time."""
    router, books, delivered, clock, _ = setup({"h": Role.PRIMARY, "r": Role.STANDBY})
    status(router, "h", FeedState.HEALTHY)
    status(router, "r", FeedState.HEALTHY)
    books["r"].reconcile([], as_of_ms=1000)
    books["h"].apply(PositionUpdate(symbol="BTCUSDT", side=Side.LONG, size=D("1"),
                                    entry_price=D("100"), seq=1, exchange_ms=2000))
    status(router, "h", FeedState.RECONNECTING)
    clock.t = 2
    router.evaluate()
    assert router.active == "r" and router.pending_orphans
    assert pos_events(delivered) == [("opened", "BTCUSDT")]
    books["r"].reconcile([PositionUpdate(symbol="BTCUSDT", side=Side.LONG, size=D("1"),
                                         entry_price=D("100"), seq=1, exchange_ms=2000)],
                         as_of_ms=3000)
    assert pos_events(delivered) == [("opened", "BTCUSDT")]
    assert not router.pending_orphans and router.counters["guarded"] == 1


def test_a_standby_snapshot_of_the_opens_own_millisecond_does_not_close_it() -> None:
    """The primary saw an open stamped 2000 ms; the standby's snapshot is stamped 2000 ms
    too and does not list it (read a moment before the fill). Failing over keeps the
    position for consumers until a later snapshot proves it flat."""
    router, books, delivered, clock, _ = setup({"h": Role.PRIMARY, "r": Role.STANDBY})
    status(router, "h", FeedState.HEALTHY)
    status(router, "r", FeedState.HEALTHY)
    books["h"].apply(PositionUpdate(symbol="BTCUSDT", side=Side.LONG, size=D("1"),
                                    entry_price=D("100"), seq=1, exchange_ms=2000))
    books["r"].reconcile([], as_of_ms=2000)
    status(router, "h", FeedState.RECONNECTING)
    clock.t = 2
    router.evaluate()
    assert router.active == "r" and router.pending_orphans
    assert pos_events(delivered) == [("opened", "BTCUSDT")]
    books["r"].reconcile([], as_of_ms=2001)  # the next poll, later: flat for sure
    router.evaluate()
    assert pos_events(delivered) == [("opened", "BTCUSDT"), ("closed", "BTCUSDT")]


def test_a_pending_orphan_closes_once_the_standby_knows_it_is_flat() -> None:
    router, books, delivered, clock, _ = setup({"h": Role.PRIMARY, "r": Role.STANDBY})
    status(router, "r", FeedState.HEALTHY)
    books["r"].reconcile([], as_of_ms=1000)
    books["h"].apply(PositionUpdate(symbol="BTCUSDT", side=Side.LONG, size=D("1"),
                                    entry_price=D("100"), seq=1, exchange_ms=2000))
    clock.t = 2
    router.evaluate()
    assert router.active == "r" and router.pending_orphans
    books["r"].reconcile([], as_of_ms=4000)  # the next poll: still flat, and newer
    router.evaluate()
    assert pos_events(delivered) == [("opened", "BTCUSDT"), ("closed", "BTCUSDT")]
    assert not router.pending_orphans


def test_a_standby_whose_snapshots_never_cover_a_position_never_closes_it() -> None:
    """The hybrid holds an inverse BTCUSD; the standby polls linear USDT only. After a
    failover its snapshots, however new, do not make consumers see BTCUSD closed."""
    router, books, delivered, clock, _ = setup({"h": Role.PRIMARY, "r": Role.STANDBY})
    status(router, "r", FeedState.HEALTHY)

    def linear_only(key: PositionKey) -> bool:
        return key.category is Category.LINEAR

    books["r"].reconcile([], as_of_ms=1000, covers=linear_only)
    books["h"].apply(PositionUpdate(category=Category.INVERSE, symbol="BTCUSD",
                                    side=Side.SHORT, size=D("300"), entry_price=D("27000"),
                                    seq=1, exchange_ms=500))
    clock.t = 2
    router.evaluate()
    assert router.active == "r" and router.pending_orphans
    books["r"].reconcile([], as_of_ms=4000, covers=linear_only)
    router.evaluate()
    assert pos_events(delivered) == [("opened", "BTCUSD")]  # no close


def test_guard_drops_a_close_for_a_position_consumers_never_saw() -> None:
    router, books, delivered, _, _ = setup({"h": Role.PRIMARY})
    books["h"].apply(upd("BTCUSDT", "1", 1))
    router.delivered.clear()  # as if consumers had been told it closed
    books["h"].apply(upd("BTCUSDT", "0", 2))
    assert pos_events(delivered) == [("opened", "BTCUSDT")]


def test_a_stale_standby_does_not_reopen_a_position_consumers_saw_closed() -> None:
    router, books, delivered, clock, _ = setup({"h": Role.PRIMARY, "r": Role.STANDBY})
    status(router, "h", FeedState.HEALTHY)
    status(router, "r", FeedState.HEALTHY)
    opened = PositionUpdate(symbol="BTCUSDT", side=Side.LONG, size=D("1"),
                            entry_price=D("100"), seq=5, exchange_ms=1000)
    books["h"].apply(opened)
    books["r"].apply(opened)  # the poller saw it open, then does not poll again
    books["h"].apply(PositionUpdate(symbol="BTCUSDT", side=None, size=D(0), seq=9,
                                    exchange_ms=2000))
    status(router, "h", FeedState.RECONNECTING)
    clock.t = 1.5
    router.evaluate()
    assert router.active == "r"
    books["r"].apply_mark(MarkPrice(symbol="BTCUSDT", mark_price=D("101"), exchange_ms=3000))
    assert pos_events(delivered) == [("opened", "BTCUSDT"), ("closed", "BTCUSDT")]


def test_a_flip_after_a_close_at_the_same_exchange_time_is_delivered() -> None:
    _, books, delivered, _, _ = setup({"h": Role.PRIMARY})
    books["h"].apply(PositionUpdate(symbol="BTCUSDT", side=Side.LONG, size=D("1"),
                                    entry_price=D("100"), seq=1, exchange_ms=1000))
    books["h"].apply(PositionUpdate(symbol="BTCUSDT", side=Side.SHORT, size=D("1"),
                                    entry_price=D("99"), seq=2, exchange_ms=2000))
    assert pos_events(delivered) == [("opened", "BTCUSDT"), ("closed", "BTCUSDT"),
                                     ("opened", "BTCUSDT")]


def test_router_requires_exactly_one_primary() -> None:
    with pytest.raises(ValueError, match="exactly one primary"):
        Router({"a": Role.STANDBY}, {}, deliver=lambda e: None)


def _flap(router: Router, clock: Clock) -> None:
    """The primary fails (failover after 1 s), then is healthy again."""
    status(router, "p", FeedState.RECONNECTING)
    clock.t += 1.5
    router.evaluate()
    assert router.active == "s"
    status(router, "p", FeedState.HEALTHY)


def test_failback_waits_longer_for_each_flap_and_is_capped() -> None:
    router, _books, _delivered, clock, _ = setup({"p": Role.PRIMARY, "s": Role.STANDBY})
    router.failback_max = 12.0
    status(router, "p", FeedState.HEALTHY)
    status(router, "s", FeedState.HEALTHY)
    waits = []
    for _ in range(4):
        _flap(router, clock)
        start = clock.t
        while router.active != "p":
            clock.t += 0.25
            router.evaluate()
        waits.append(clock.t - start)
    assert waits == [5.0, 10.0, 12.0, 12.0]


def test_a_primary_that_delivers_steadily_gets_the_short_failback_back() -> None:
    router, _books, _delivered, clock, _ = setup({"p": Role.PRIMARY, "s": Role.STANDBY})
    status(router, "p", FeedState.HEALTHY)
    status(router, "s", FeedState.HEALTHY)
    _flap(router, clock)
    clock.t += 5.0
    router.evaluate()
    _flap(router, clock)  # a flap within the window: the wait doubled
    assert router.failback_wait == 10.0
    clock.t += 10.0
    router.evaluate()
    assert router.active == "p"
    clock.t += router.flap_window
    router.evaluate()
    assert router.failback_wait == 5.0


def mark(symbol: str, price: str, ms: int) -> MarkPrice:
    return MarkPrice(symbol=symbol, mark_price=D(price), exchange_ms=ms)


def test_the_inactive_primarys_fresher_marks_reach_consumers_after_a_failover() -> None:
    """A private-socket outage must not take away the public socket's marks."""
    router, books, delivered, clock, _ = setup({"h": Role.PRIMARY, "r": Role.STANDBY})
    status(router, "h", FeedState.HEALTHY)
    status(router, "r", FeedState.HEALTHY)
    for b in books.values():
        b.apply(upd("BTCUSDT", "1", 1))
    status(router, "h", FeedState.RECONNECTING)
    clock.t = 1.5
    router.evaluate()
    assert router.active == "r"
    books["r"].apply_mark(mark("BTCUSDT", "101", 1_000))
    books["h"].apply_mark(mark("BTCUSDT", "102", 1_100))  # newer: delivered
    books["h"].apply_mark(mark("BTCUSDT", "103", 1_200))
    books["r"].apply_mark(mark("BTCUSDT", "99", 1_150))   # the poller's older mark: not
    prices = [e.position.mark_price for e in delivered
              if isinstance(e, PositionEvent) and e.kind is EventKind.PRICE]
    assert prices == [D("101"), D("102"), D("103")]
    assert router.delivered[next(iter(router.delivered))].mark_price == D("103")


def test_a_lifecycle_the_primary_recovers_while_the_standby_delivers_reaches_consumers() -> None:
    router, books, delivered = _failed_over()
    # opened and closed between two polls of the standby; the primary's replay has it
    opened = upd("XRPUSDT", "5", 1).model_copy(update={"exchange_ms": 1_000})
    closed = upd("XRPUSDT", "0", 2).model_copy(update={"exchange_ms": 2_000})
    books["h"].apply(opened)
    books["h"].apply(closed)
    recovered = [(e.kind.value, e.recovered) for e in delivered if isinstance(e, PositionEvent)]
    assert recovered == [("opened", True), ("closed", True)]
    assert router.counters["recovered"] == 2
    # the standby catching up later adds no duplicate
    books["r"].apply(opened)
    books["r"].apply(closed)
    assert len([e for e in delivered if isinstance(e, PositionEvent)]) == 2


def _failed_over() -> tuple[Router, dict[str, PositionBook], list[object]]:
    router, books, delivered, _ = _failed_over_on_a_clock()
    return router, books, delivered


def _failed_over_on_a_clock() -> tuple[Router, dict[str, PositionBook], list[object], Clock]:
    """Primary h unhealthy for 1.5 s: the standby r delivers."""
    router, books, delivered, clock, _ = setup({"h": Role.PRIMARY, "r": Role.STANDBY})
    status(router, "h", FeedState.HEALTHY)
    status(router, "r", FeedState.HEALTHY)
    status(router, "h", FeedState.RECONNECTING)
    clock.t = 1.5
    router.evaluate()
    assert router.active == "r"
    return router, books, delivered, clock


def at(u: PositionUpdate, ms: int) -> PositionUpdate:
    return u.model_copy(update={"exchange_ms": ms})


def lifecycle(delivered: list[object]) -> list[tuple[str, str, bool]]:
    return [(e.kind.value, e.position.side.value, e.past) for e in delivered
            if isinstance(e, PositionEvent) and e.kind is not EventKind.PRICE]


def test_a_past_lifecycle_before_a_close_consumers_got_is_delivered_as_past() -> None:
    router, books, delivered = _failed_over()
    books["h"].apply(at(upd("SOLUSDT", "5", 1), 1_000))
    books["r"].apply(at(upd("SOLUSDT", "5", 1), 1_000))
    # the standby polls flat at 4 s; a short lifecycle (2 s .. 3 s) passed between polls
    books["r"].reconcile([], as_of_ms=4_000)
    books["h"].apply(at(upd("SOLUSDT", "2", 2, Side.SHORT), 2_000))  # the replay: flip
    books["h"].apply(at(upd("SOLUSDT", "0", 3), 3_000))
    assert lifecycle(delivered) == [("opened", "long", False), ("closed", "long", False),
                                    ("opened", "short", True), ("closed", "short", True)]
    assert all(e.recovered for e in delivered[-2:] if isinstance(e, PositionEvent))
    assert router.delivered == {}
    assert router.counters["past_lifecycles"] == 1


def test_a_past_lifecycle_before_the_one_consumers_hold_leaves_it_open() -> None:
    router, books, delivered = _failed_over()
    # the standby sees only the later lifecycle (opened at 5 s)
    books["r"].apply(at(upd("BTCUSDT", "2", 9), 5_000))
    books["h"].apply(at(upd("BTCUSDT", "1", 4), 1_000))  # the primary's replay
    books["h"].apply(at(upd("BTCUSDT", "0", 5), 2_000))
    books["h"].apply(at(upd("BTCUSDT", "2", 9), 5_000))
    assert lifecycle(delivered) == [("opened", "long", False), ("opened", "long", True),
                                    ("closed", "long", True)]
    held = router.delivered[next(iter(router.delivered))]
    assert held.size == D("2")


def test_a_lifecycle_the_standby_delivered_is_not_delivered_again_as_past() -> None:
    router, books, delivered = _failed_over()
    books["r"].apply(at(upd("ETHUSDT", "1", 4), 1_500))
    books["r"].reconcile([], as_of_ms=4_000)
    # the primary's replay of the same lifecycle (its open older than the close)
    books["h"].apply(at(upd("ETHUSDT", "1", 4), 1_000))
    books["h"].apply(at(upd("ETHUSDT", "0", 5), 3_000))
    assert lifecycle(delivered) == [("opened", "long", False), ("closed", "long", False)]
    assert router.counters["past_lifecycles"] == 0


def test_a_lifecycle_inside_one_the_standby_merged_and_closed_is_delivered_as_past() -> None:
    """F15: the standby saw a close and reopen between two polls as a change, then the
    close; the primary's replay, later, knows both lifecycles: the later one reaches
    consumers as ``past`` (their merged one stands for the first)."""
    router, books, delivered = _failed_over()
    books["r"].apply(at(upd("BNBUSDT", "3", 5), 1_000))
    books["r"].apply(at(upd("BNBUSDT", "2", 9), 3_000))  # the reopen, seen as a change
    books["r"].reconcile([], as_of_ms=5_000)  # and its close
    books["h"].apply(at(upd("BNBUSDT", "3", 5), 1_000))  # the primary's replay, later
    books["h"].apply(at(upd("BNBUSDT", "0", 7), 2_000))
    books["h"].apply(at(upd("BNBUSDT", "2", 9), 2_500))
    books["h"].apply(at(upd("BNBUSDT", "0", 11), 4_000))
    assert lifecycle(delivered) == [("opened", "long", False), ("changed", "long", False),
                                    ("closed", "long", False),
                                    ("opened", "long", True), ("closed", "long", True)]
    past = [e for e in delivered if isinstance(e, PositionEvent) and e.past]
    assert [e.position.exchange_ms for e in past] == [2_500, 4_000]
    assert all(e.recovered for e in past) and past[0].position.size == D("2")
    assert router.counters["merged_past"] == 1 and router.delivered == {}


def test_a_lifecycle_consumers_were_told_from_its_open_seq_is_not_delivered_again_as_past(
) -> None:
    """The standby delivered a lifecycle from a flip (seq 146, its row stamped 344 ms) to
    its close; the primary's replay, later, has the flip's fill a millisecond later (345:
    two exchange clocks), so its own close of the short side lies between consumers'
    first state and its open. The open's seq names the lifecycle: consumers were told
    it, so it is not delivered again as past (the 1,500-fault campaign's split)."""
    router, books, delivered = _failed_over()
    books["r"].apply(at(upd("SYMUSDT", "57", 145, Side.SHORT), 100))
    books["r"].apply(at(upd("SYMUSDT", "57", 146), 344))  # the flip, seen by the poller
    books["r"].apply(at(upd("SYMUSDT", "115", 147, Side.SHORT), 3_180))  # flips back
    books["h"].apply(at(upd("SYMUSDT", "57", 145, Side.SHORT), 100))  # the primary's replay
    books["h"].apply(at(upd("SYMUSDT", "57", 146), 345))
    books["h"].apply(at(upd("SYMUSDT", "115", 147, Side.SHORT), 3_054))
    longs = [e for e in lifecycle(delivered) if e[1] == "long"]
    assert longs == [("opened", "long", False), ("closed", "long", False)]
    assert router.counters["past_lifecycles"] == 0


def test_a_past_lifecycle_from_the_open_consumers_still_hold_splits_their_merged_one() -> None:
    """F46: the standby delivered an open (seq 993); the primary, whose stream lost that
    open and its close (994), failed back holding the reopen (995), so the reconcile took
    consumers from 993 to 995 as a change. The primary's replay, later, recovers 993-994
    as past: consumers' lifecycle was two, and they get the first's close and the
    second's open, not nothing (the 1,500-fault campaign's two lost on 08532b6)."""
    router, books, delivered, clock = _failed_over_on_a_clock()
    books["r"].apply(at(upd("BTCUSDT", "1", 993), 1_000))
    books["h"].apply(at(upd("BTCUSDT", "2", 995), 1_149))
    status(router, "h", FeedState.HEALTHY)
    clock.t = 10.0
    router.evaluate()
    assert router.active == "h"
    books["h"].past_lifecycles([at(upd("BTCUSDT", "1", 993), 1_000),
                                at(upd("BTCUSDT", "0", 994), 1_105)])
    books["h"].apply(at(upd("BTCUSDT", "0", 997), 3_137))
    events = [e for e in delivered if isinstance(e, PositionEvent)
              and e.kind is not EventKind.PRICE]
    assert [(e.kind.value, e.position.seq, e.past) for e in events] == [
        ("opened", 993, False), ("changed", 995, False), ("closed", 994, False),
        ("opened", 995, False), ("closed", 997, False)]
    assert events[2].recovered and events[2].position.exchange_ms == 1_105
    assert events[3].position.size == D("2")
    assert router.counters["merged_split"] == 1 and router.delivered == {}


def test_a_lagging_primarys_state_older_than_the_standby_listing_that_closed_it_stays_closed(
) -> None:
    """F48: the poller's snapshot read linear at 1,010 and inverse at 1,100; an inverse
    position it lacked closed at 1,090. The primary's lagging push of a state of 1,050
    (before that close) must not reopen it: the close says 1,100, the inverse listing's
    time, not 1,010, the first answer's (the 1,500-fault campaign's split on 304e145)."""
    router, books, delivered = _failed_over()
    inverse = PositionUpdate(category=Category.INVERSE, symbol="ETHUSD", side=Side.SHORT,
                             size=D("400"), entry_price=D("100"), seq=167, exchange_ms=1_000)
    books["h"].apply(inverse)
    books["r"].apply(inverse)
    books["r"].reconcile([], as_of_ms=1_010, listed_at=lambda key: 1_100)
    books["h"].apply(inverse.model_copy(update={"size": D("1200"), "seq": 168,
                                                "exchange_ms": 1_050}))
    assert [(k, side) for k, side, _ in lifecycle(delivered)] == [("opened", "short"),
                                                                 ("closed", "short")]
    assert router.delivered == {}


def test_a_merged_lifecycle_the_feed_recovers_after_its_close_reaches_consumers_as_past(
) -> None:
    """F49: the primary delivered 865 (open), 868 and 870 (flat) as one lifecycle; its
    fill replay, later, finds that 867 closed it and 868 reopened it. It delivers all of
    it as past: the first part is the lifecycle consumers were told (its opening seq), and
    its lost close is a moment the key was flat, so the second reaches them as past."""
    router, books, delivered, _, _ = setup({"h": Role.PRIMARY, "r": Role.STANDBY})
    books["h"].apply(at(upd("BTCUSDT", "1", 865), 1_000))
    books["h"].apply(at(upd("BTCUSDT", "3", 868), 1_300))  # seen as a change
    books["h"].apply(at(upd("BTCUSDT", "0", 870), 1_500))
    books["h"].past_lifecycles([at(upd("BTCUSDT", "1", 865), 1_000),
                                at(upd("BTCUSDT", "0", 867), 1_200),
                                at(upd("BTCUSDT", "2", 868), 1_300),
                                at(upd("BTCUSDT", "0", 870), 1_500)])
    events = [e for e in delivered if isinstance(e, PositionEvent)
              and e.kind is not EventKind.PRICE]
    assert [(e.kind.value, e.position.seq, e.past) for e in events] == [
        ("opened", 865, False), ("changed", 868, False), ("closed", 870, False),
        ("opened", 868, True), ("closed", 870, True)]
    assert router.counters["merged_past"] == 1 and router.counters["past_lifecycles"] == 1


def test_a_past_lifecycle_of_the_other_side_is_delivered_whatever_the_clocks_say() -> None:
    """A short lifecycle the standby never saw, ended by a flip to the long one consumers
    hold: the long one's first state may read a millisecond before the short's close (two
    exchange clocks); it is not the short one, so the short one reaches consumers."""
    router, books, delivered = _failed_over()
    books["r"].apply(at(upd("SUIUSDT", "3438", 551), 299))
    books["h"].apply(at(upd("SUIUSDT", "1720", 550, Side.SHORT), 0))
    books["h"].apply(at(upd("SUIUSDT", "3438", 551), 300))  # the flip
    assert lifecycle(delivered) == [("opened", "long", False), ("opened", "short", True),
                                    ("closed", "short", True)]
    assert router.counters["past_lifecycles"] == 1


def test_a_past_lifecycle_whose_close_comes_after_the_failback_is_delivered() -> None:
    """The primary's replay opened a lifecycle that lies before what consumers hold; its
    close came only after the router failed back (an audit repaired it): delivered."""
    router, books, delivered, clock = _failed_over_on_a_clock()
    books["r"].apply(at(upd("APTUSDT", "800", 782), 2_371))
    books["h"].apply(at(upd("APTUSDT", "400", 781, Side.SHORT), 207))  # the replay
    status(router, "h", FeedState.HEALTHY)
    clock.t = 10.0
    router.evaluate()
    assert router.active == "h"
    books["h"].apply(upd("APTUSDT", "800", 782).model_copy(update={"seq": None}))  # repair
    assert lifecycle(delivered) == [("opened", "long", False), ("opened", "short", True),
                                    ("closed", "short", True)]


def test_a_lifecycle_the_primary_first_saw_at_a_later_state_is_not_delivered_again(
) -> None:
    """The standby delivered a lifecycle from its open and closed it; the primary, back,
    first saw it at a later state (a settings change kept its seq), then its close: the
    same lifecycle, not one inside a merged one (no close lies between)."""
    router, books, delivered = _failed_over()
    books["r"].apply(at(upd("XRPUSDT", "672", 606, Side.SHORT), 0))
    books["r"].apply(at(upd("XRPUSDT", "672", 606, Side.SHORT).model_copy(
        update={"leverage": D(5)}), 995))
    books["r"].reconcile([], as_of_ms=4_000)
    books["h"].apply(at(upd("XRPUSDT", "672", 606, Side.SHORT), 995))
    books["h"].apply(at(upd("XRPUSDT", "0", 607), 3_511))
    assert lifecycle(delivered) == [("opened", "short", False), ("changed", "short", False),
                                    ("closed", "short", False)]
    assert router.counters["past_lifecycles"] == 0


def test_an_older_open_of_the_lifecycle_consumers_hold_then_its_close_closes_it() -> None:
    router, books, delivered = _failed_over()
    books["r"].apply(at(upd("ADAUSDT", "1", 6), 2_500))  # polled mid-lifecycle
    books["h"].apply(at(upd("ADAUSDT", "1", 4), 1_000))  # the primary saw it open earlier
    books["h"].apply(at(upd("ADAUSDT", "0", 8), 3_000))
    assert lifecycle(delivered) == [("opened", "long", False), ("closed", "long", False)]
    assert router.delivered == {}


def test_a_flip_the_standby_saw_as_a_change_reaches_consumers_as_close_and_open() -> None:
    _, books, delivered = _failed_over()
    books["r"].apply(at(upd("DOTUSDT", "3", 5, Side.SHORT), 1_000))
    books["h"].apply(at(upd("DOTUSDT", "3", 5, Side.SHORT), 1_000))
    books["h"].apply(at(upd("DOTUSDT", "2", 7), 2_000))  # flip: delivered, recovered
    # a poller's own book that missed the long lifecycle: short 3 -> short 1 is a change
    books["r"].apply(at(upd("DOTUSDT", "1", 9, Side.SHORT), 3_000))
    assert lifecycle(delivered) == [("opened", "short", False), ("closed", "short", False),
                                    ("opened", "long", False), ("closed", "long", False),
                                    ("opened", "short", False)]


def test_a_close_between_the_states_of_one_delivered_lifecycle_splits_it() -> None:
    router, books, delivered = _failed_over()
    books["r"].apply(at(upd("LTCUSDT", "3", 5, Side.SHORT), 1_000))
    # the standby's next poll sees a later lifecycle as a change of the first
    books["r"].apply(at(upd("LTCUSDT", "2", 9, Side.SHORT), 3_000))
    # the primary knows the first closed at 2 s and the second opened then
    books["h"].apply(at(upd("LTCUSDT", "3", 5, Side.SHORT), 1_000))
    books["h"].apply(at(upd("LTCUSDT", "0", 7), 2_000))
    books["h"].apply(at(upd("LTCUSDT", "2", 9, Side.SHORT), 3_000))
    assert lifecycle(delivered) == [("opened", "short", False), ("changed", "short", False),
                                    ("closed", "short", False), ("opened", "short", False)]
    assert router.counters["merged_split"] == 1
    closes = [e for e in delivered if isinstance(e, PositionEvent)
              and e.kind is EventKind.CLOSED]
    assert closes[0].position.exchange_ms == 2_000 and closes[0].recovered


def test_two_lifecycles_a_poller_merged_reach_consumers_as_the_primary_saw_them() -> None:
    router, books, delivered = _failed_over()
    books["r"].apply(at(upd("SOLUSDT", "3", 5, Side.SHORT), 1_000))
    # short -> long -> short between two polls: the poller sees a change
    books["r"].apply(at(upd("SOLUSDT", "2", 9, Side.SHORT), 3_000))
    books["h"].apply(at(upd("SOLUSDT", "3", 5, Side.SHORT), 1_000))
    books["h"].apply(at(upd("SOLUSDT", "1", 7), 2_000))  # flip to long at 2 s
    books["h"].apply(at(upd("SOLUSDT", "2", 9, Side.SHORT), 2_500))  # flip back at 2.5 s
    assert lifecycle(delivered) == [
        ("opened", "short", False), ("changed", "short", False),  # the poller's view
        ("closed", "short", False),  # split at 2 s, then the primary's own history:
        ("opened", "long", False), ("closed", "long", False), ("opened", "short", False)]
    assert router.counters["merged_split"] == 1


def test_a_split_lifecycle_whose_later_part_never_comes_is_reopened_as_consumers_held_it(
) -> None:
    router, books, delivered, clock = _failed_over_on_a_clock()
    books["r"].apply(at(upd("LTCUSDT", "3", 5, Side.SHORT), 1_000))
    books["r"].apply(at(upd("LTCUSDT", "2", 9, Side.SHORT), 3_000))
    books["h"].apply(at(upd("LTCUSDT", "3", 5, Side.SHORT), 1_000))
    books["h"].apply(at(upd("LTCUSDT", "0", 7), 2_000))  # and nothing after it
    assert [k for k, _, _ in lifecycle(delivered)][-1] == "closed"
    clock.t = 2.0
    router.evaluate()
    assert not router.delivered  # still waiting for the primary's own open
    clock.t = 2.6
    router.evaluate()
    assert lifecycle(delivered)[-1] == ("opened", "short", False)
    (pos,) = router.delivered.values()
    assert pos.size == D("2")


def test_a_past_lifecycle_the_primary_recovers_itself_is_delivered_once() -> None:
    router, books, delivered, _, _ = setup({"h": Role.PRIMARY, "r": Role.STANDBY})
    books["h"].apply(at(upd("XRPUSDT", "3", 30), 9_000))  # the newer state came first
    past = [at(upd("XRPUSDT", "1", 10), 1_000), at(upd("XRPUSDT", "2", 11), 1_500),
            at(upd("XRPUSDT", "0", 12), 2_000)]
    events = books["h"].past_lifecycles(past)
    assert [e.kind.value for e in events] == ["opened", "changed", "closed"]
    assert all(e.past for e in events)
    assert books["h"].positions[next(iter(books["h"].positions))].size == D("3")  # untouched
    assert lifecycle(delivered) == [("opened", "long", False), ("opened", "long", True),
                                    ("changed", "long", True), ("closed", "long", True)]
    assert all(e.recovered for e in delivered[-3:] if isinstance(e, PositionEvent))
    books["h"].past_lifecycles(past)  # told again (a second audit): not delivered twice
    assert len([e for e in delivered if isinstance(e, PositionEvent)]) == 4
    assert router.counters["past_lifecycles"] == 1


def test_a_split_of_the_delivering_feeds_position_reaches_consumers_as_close_and_open(
) -> None:
    """The primary's book learnt that the lifecycle it delivered was two (a close and a
    reopen lost with the socket up): consumers get the close as of the lost close, then
    the reopen - once each."""
    router, books, delivered, _, _ = setup({"h": Role.PRIMARY, "r": Role.STANDBY})
    books["h"].apply(at(upd("ETHUSDT", "1", 10), 100))
    books["h"].apply(at(upd("ETHUSDT", "3", 13), 130))
    key = next(iter(books["h"].positions))
    books["h"].split(key, at(upd("ETHUSDT", "0", 11), 110), at(upd("ETHUSDT", "2", 12), 120))
    assert lifecycle(delivered) == [("opened", "long", False), ("changed", "long", False),
                                    ("closed", "long", False), ("opened", "long", False)]
    closed = [e for e in delivered if isinstance(e, PositionEvent)
              and e.kind is EventKind.CLOSED]
    assert [(e.position.seq, e.position.exchange_ms) for e in closed] == [(11, 110)]
    assert router.delivered[key].size == D("3")


def test_a_position_opened_with_an_old_mark_reaches_consumers_at_the_freshest_one() -> None:
    """The primary's resync opens a position with the mark its book had seconds ago (it
    did not watch the symbol); the standby's book holds a newer one: consumers get the
    position at the newer mark."""
    _, books, delivered, _, _ = setup({"h": Role.PRIMARY, "r": Role.STANDBY})
    books["h"].apply_mark(MarkPrice(symbol="SOLUSDT", mark_price=D("90"), exchange_ms=1_000))
    books["r"].apply_mark(MarkPrice(symbol="SOLUSDT", mark_price=D("97"), exchange_ms=9_000))
    books["h"].apply(at(upd("SOLUSDT", "2", 5), 8_900))
    (opened,) = [e for e in delivered if isinstance(e, PositionEvent)]
    assert (opened.kind, opened.position.mark_price) == (EventKind.OPENED, D("97"))
    assert opened.position.mark_exchange_ms == 9_000
    assert opened.position.unrealised_pnl == D("-6")  # long 2 from 100 at 97


def test_a_state_change_with_an_older_mark_reaches_consumers_at_the_mark_they_hold() -> None:
    """The standby delivers; the primary's public socket moves consumers' mark (a symbol
    its book holds nothing of). The standby's next state change carries the mark of its
    last poll, seconds older: consumers get the change at the newer mark they hold, so a
    price never goes back in time."""
    router, books, delivered, _ = _failed_over_on_a_clock()
    books["h"].on_free_mark = lambda mark: router.on_free_mark("h", mark)  # as the session
    books["r"].apply_mark(MarkPrice(symbol="SOLUSDT", mark_price=D("90"), exchange_ms=1_000))
    books["r"].apply(upd("SOLUSDT", "2", 1))
    books["h"].apply_mark(MarkPrice(symbol="SOLUSDT", mark_price=D("97"), exchange_ms=9_000))
    books["r"].apply(upd("SOLUSDT", "3", 2))
    events = [e for e in delivered if isinstance(e, PositionEvent)]
    assert [(e.kind, e.position.mark_price) for e in events] == [
        (EventKind.OPENED, D("90")), (EventKind.PRICE, D("97")), (EventKind.CHANGED, D("97"))]
    changed = events[-1].position
    assert (changed.size, changed.mark_exchange_ms) == (D("3"), 9_000)
    assert changed.unrealised_pnl == D("-9")  # long 3 from 100 at 97


@pytest.mark.parametrize("standby_mark", [True, False])
def test_a_side_the_standby_saw_flip_gets_the_marks_of_the_side_the_primary_still_holds(
        standby_mark: bool) -> None:
    """A two-sided account: the standby delivers and sees ETHUSDT's short side close and
    the long side open; the primary's book (its private socket down) still holds the
    short side and streams its marks. They move the long side consumers hold: a mark
    is the symbol's (and any mark is newer than none: the standby may have had none)."""
    router, books, delivered, clock, _ = setup({"h": Role.PRIMARY, "r": Role.STANDBY})
    status(router, "h", FeedState.HEALTHY)
    status(router, "r", FeedState.HEALTHY)
    short = PositionUpdate(symbol="ETHUSDT", side=Side.SHORT, size=D("1"),
                           entry_price=D("100"), seq=1, position_idx=2)
    for b in books.values():
        b.apply(short)
    status(router, "h", FeedState.RECONNECTING)
    clock.t = 1.1
    router.evaluate()
    assert router.active == "r"
    if standby_mark:
        books["r"].apply_mark(MarkPrice(symbol="ETHUSDT", mark_price=D("90"),
                                        exchange_ms=1_000))
    books["r"].apply(short.model_copy(update={"side": None, "size": D("0"), "seq": 2}))
    books["r"].apply(PositionUpdate(symbol="ETHUSDT", side=Side.LONG, size=D("2"),
                                    entry_price=D("100"), seq=3, position_idx=1))
    books["h"].apply_mark(MarkPrice(symbol="ETHUSDT", mark_price=D("97"), exchange_ms=9_000))
    long_key = PositionKey(Category.LINEAR, "ETHUSDT", 1)
    assert set(router.delivered) == {long_key}
    told = router.delivered[long_key]
    assert (told.mark_price, told.mark_exchange_ms) == (D("97"), 9_000)
    assert told.unrealised_pnl == D("-6")  # long 2 from 100 at 97
    assert delivered and isinstance(delivered[-1], PositionEvent)
    assert delivered[-1].kind is EventKind.PRICE


def test_a_failover_keeps_the_newer_mark_consumers_hold() -> None:
    """At a failover consumers are reconciled to the standby's book: the same position,
    but at the mark of its last poll, seconds older than the primary's last one that
    consumers hold. No price event takes their mark back."""
    router, books, delivered, clock, _ = setup({"h": Role.PRIMARY, "r": Role.STANDBY})
    status(router, "h", FeedState.HEALTHY)
    status(router, "r", FeedState.HEALTHY)
    books["r"].apply_mark(MarkPrice(symbol="SOLUSDT", mark_price=D("90"), exchange_ms=1_000))
    for b in books.values():
        b.apply(at(upd("SOLUSDT", "2", 5), 500))
    books["h"].apply_mark(MarkPrice(symbol="SOLUSDT", mark_price=D("97"), exchange_ms=9_000))
    status(router, "h", FeedState.RECONNECTING)
    clock.t = 1.1
    router.evaluate()
    assert router.active == "r"
    events = [(e.kind, e.position.mark_price) for e in delivered
              if isinstance(e, PositionEvent)]
    # the switch's price event hands consumers the standby's state, at their own mark
    assert events == [(EventKind.OPENED, None), (EventKind.PRICE, D("97")),
                      (EventKind.PRICE, D("97"))], events
    assert delivered[-1].position.feed == "r"
    (told,) = router.delivered.values()
    assert (told.mark_price, told.mark_exchange_ms) == (D("97"), 9_000)
