"""RunSummary: the figures a run ends with, from the events it delivered."""

from __future__ import annotations

from decimal import Decimal

import pytest

from feedctl import (
    Category,
    EventKind,
    FeedState,
    FeedStatus,
    Position,
    PositionEvent,
    RouteEvent,
    Side,
    StatusEvent,
)
from feedctl.summary import RunSummary, format_summary

pytestmark = pytest.mark.unit


class Clock:
    t = 0.0

    def __call__(self) -> float:
        return self.t


def st(feed: str, state: FeedState) -> StatusEvent:
    return StatusEvent(feed=feed, status=FeedStatus(feed=feed, kind="k", state=state))


def pev(kind: EventKind, mark: str = "100") -> PositionEvent:
    pos = Position(exchange="x", account="a", category=Category.LINEAR, symbol="BTCUSDT",
                   side=Side.LONG, received_ns=1,
                   size=Decimal("1"), entry_price=Decimal("100"), mark_price=Decimal(mark),
                   feed="p")
    return PositionEvent(kind=kind, feed="p", position=pos)


def test_a_run_whose_delivering_feed_never_became_healthy_says_so() -> None:
    clock = Clock()
    s = RunSummary("p", {"p": FeedState.STARTING, "s": FeedState.STARTING}, clock=clock)
    s.observe(st("s", FeedState.HEALTHY))  # only the standby, never switched to
    clock.t = 10.0
    figures = s.finish()
    assert figures["ever_delivering_healthy"] is False
    assert figures["healthy_seconds"] == {"p": 0.0, "s": 10.0}


def test_healthy_time_follows_the_route_to_the_feed_that_delivers() -> None:
    clock = Clock()
    s = RunSummary("p", {"p": FeedState.HEALTHY, "s": FeedState.HEALTHY}, clock=clock)
    clock.t = 2.0
    s.observe(st("p", FeedState.RECONNECTING))
    clock.t = 3.0
    s.observe(RouteEvent(active="s", previous="p", reason="failover"))
    clock.t = 8.0
    figures = s.finish()
    assert figures["ever_delivering_healthy"] is True
    assert figures["delivering_healthy_seconds"] == 7.0  # 0-2 on p, 3-8 on s
    assert figures["switches"] == 1


def test_the_longest_gap_between_marks_of_an_open_position_is_kept() -> None:
    clock = Clock()
    s = RunSummary("p", {"p": FeedState.HEALTHY}, clock=clock)
    s.observe(pev(EventKind.OPENED))
    clock.t = 0.5
    s.observe(pev(EventKind.PRICE, "101"))
    clock.t = 3.5
    s.observe(pev(EventKind.PRICE, "102"))
    clock.t = 4.0
    s.observe(pev(EventKind.CLOSED))
    clock.t = 100.0  # no open position: no gap grows
    figures = s.finish()
    assert figures["longest_stale_price_seconds"] == 3.0
    assert figures["lifecycles_delivered"] == {"opened": 1, "changed": 0, "closed": 1}
    assert "longest without a new mark: 3.0s" in format_summary(figures)
