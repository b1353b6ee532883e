"""Trailing-stop state machine: activation, trailing, trigger, per-lifecycle state."""

from __future__ import annotations

from decimal import Decimal

import pytest

from feedctl import Category, EventKind, Position, PositionEvent, Side
from feedctl.plugins.trailing_stop.config import StopRule, TrailingStopSettings
from feedctl.plugins.trailing_stop.engine import TrailingStops

pytestmark = pytest.mark.unit
D = Decimal


def ev(mark: str, side: Side = Side.LONG, kind: EventKind = EventKind.PRICE, lifecycle: int = 1,
       symbol: str = "BTCUSDT", mark_ms: int | None = 1000) -> PositionEvent:
    pos = Position(exchange="bybit", account="a", feed="h", category=Category.LINEAR,
                   symbol=symbol, side=side, size=D("1"), entry_price=D("100"),
                   mark_price=D(mark), received_ns=0, lifecycle=lifecycle,
                   mark_exchange_ms=mark_ms)
    return PositionEvent(kind=kind, feed="h", position=pos)


def actions(
    engine: TrailingStops, marks: list[str], side: Side = Side.LONG
) -> list[tuple[str, str]]:
    out = []
    for m in marks:
        out += [(e.action, str(e.mark_price)) for e in engine.on_event(ev(m, side))]
    return out


def engine(**kw: object) -> TrailingStops:
    return TrailingStops(TrailingStopSettings(activation_pct=D("1"), callback_pct=D("0.5"), **kw))  # type: ignore[arg-type]


def test_long_activates_at_profit_and_triggers_on_callback_from_the_peak() -> None:
    got = actions(engine(), ["100.5", "101", "102", "101.6", "101.48"])
    # activation at 101 (1 %), peak 102, stop 102 * 0.995 = 101.49
    assert got == [("activated", "101"), ("triggered", "101.48")]


def test_short_mirrors_long() -> None:
    got = actions(engine(), ["99.5", "99", "98", "98.4", "98.5"], Side.SHORT)
    assert got == [("activated", "99"), ("triggered", "98.5")]


def test_activation_and_trigger_in_one_price() -> None:
    e = TrailingStops(TrailingStopSettings(activation_pct=D("1"), callback_pct=D("99")))
    assert actions(e, ["101"]) == [("activated", "101")]


def test_state_resets_on_close_and_new_lifecycle() -> None:
    e = engine()
    assert actions(e, ["101", "100"]) == [("activated", "101"), ("triggered", "100")]
    assert e.on_event(ev("102")) == []  # already triggered in this lifecycle
    e.on_event(ev("100", kind=EventKind.CLOSED))
    reopened = e.on_event(ev("101", lifecycle=2))
    assert [x.action for x in reopened] == ["activated"]


def test_per_symbol_rule_overrides_the_default() -> None:
    e = engine(symbols={"ETHUSDT": StopRule(activation_pct=D("5"), callback_pct=D("1"))})
    assert e.on_event(ev("101", symbol="ETHUSDT")) == []
    assert [x.action for x in e.on_event(ev("105", symbol="ETHUSDT"))] == ["activated"]


def test_event_reports_stop_price_and_price_age() -> None:
    (act,) = engine().on_event(ev("101", mark_ms=1000))
    assert act.stop_price == D("101") * D("0.995")
    assert act.dry_run is True and act.price_age_ms is not None and act.price_age_ms > 0


def test_distance_and_prices_are_on_the_tick_long_and_short() -> None:
    """The issue's case: 0.2 % of 6497.28 is 12.99456; BTCUSDT's tick is 0.1."""
    e = TrailingStops(TrailingStopSettings(activation_pct=D("0.5"), callback_pct=D("0.2")))
    tick = D("0.1")

    def at(mark: str, side: Side, entry: str) -> PositionEvent:
        pos = Position(exchange="bybit", account="a", feed="h", category=Category.LINEAR,
                       symbol="BTCUSDT", side=side, size=D("1"), entry_price=D(entry),
                       mark_price=D(mark), received_ns=0, lifecycle=1)
        return PositionEvent(kind=EventKind.PRICE, feed="h", position=pos)

    (long,) = e.on_event(at("6497.28", Side.LONG, "6400.03"), tick=tick)
    assert long.distance == D("13.0") and long.stop_price == D("6484.28")
    assert long.activation_price == D("6432.1")  # 6432.03015 rounded up: never early
    e2 = TrailingStops(TrailingStopSettings(activation_pct=D("0.5"), callback_pct=D("0.2")))
    (short,) = e2.on_event(at("6302.4", Side.SHORT, "6400.03"), tick=tick)
    assert short.distance == D("12.6") and short.stop_price == D("6315.0")
    assert short.activation_price == D("6368.0")  # 6368.02985 rounded down: never early
    for ev_ in (long, short):
        for value in (ev_.distance, ev_.activation_price):
            assert value == value.quantize(tick)
    # without a tick nothing is rounded (the executor then reads the tick itself)
    (raw,) = TrailingStops(TrailingStopSettings(activation_pct=D("0.5"), callback_pct=D(
        "0.2"))).on_event(at("6497.28", Side.LONG, "6400.03"))
    assert raw.distance == D("12.99456") and raw.tick_size is None


def test_a_tiny_distance_is_at_least_one_tick() -> None:
    from feedctl.plugins.trailing_stop.engine import trail_distance

    assert trail_distance(D("0.6123"), D("0.001"), D("0.0001")) == D("0.0001")
