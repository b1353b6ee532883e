"""The trailing-stop state machine, per position lifecycle. Pure: no I/O.

Long: active once ``(mark - entry) / entry >= activation``; then it tracks the best
(highest) mark and triggers when ``mark <= best - distance`` with ``distance = best *
callback``. Short mirrors it. With the instrument's tick (instruments-info) every price
and distance is on the exchange's grid, as Bybit wants them: the distance to the
nearest tick (at least one), the activation price away from the entry (long up, short
down). State is kept per (feed key, lifecycle) and dropped on close, so a reopened
position starts afresh.
"""

from __future__ import annotations

from dataclasses import dataclass
from decimal import ROUND_DOWN, ROUND_HALF_UP, ROUND_UP, Decimal
from typing import Literal

from pydantic import BaseModel, ConfigDict

from feedctl import EventKind, PositionEvent, PositionKey, Side, now_ns

from .config import TrailingStopSettings

_HUNDRED = Decimal(100)


def on_tick(value: Decimal, tick: Decimal | None, rounding: str = ROUND_HALF_UP) -> Decimal:
    """``value`` on the ``tick`` grid (unchanged without a tick)."""
    if tick is None or tick <= 0:
        return value
    return ((value / tick).to_integral_value(rounding=rounding) * tick).quantize(tick)


def trail_distance(best: Decimal, callback_pct: Decimal, tick: Decimal | None) -> Decimal:
    """``best * callback``, on the tick grid: the nearest tick, never less than one."""
    raw = best * callback_pct / _HUNDRED
    if tick is None or tick <= 0:
        return raw
    return max(on_tick(raw, tick), tick.quantize(tick))


class TrailingStopEvent(BaseModel):
    """A trailing stop ``activated`` or ``triggered`` (``type="trailing_stop"``).

    ``price_age_ms`` is the local decision time minus the exchange time of the price
    that decided it. (The true activation delay — from the *first* price past the
    level — is what ``bench/trailing_stop_delay.py`` measures against a scripted path.)
    """

    model_config = ConfigDict(frozen=True)

    type: Literal["trailing_stop"] = "trailing_stop"
    action: Literal["activated", "triggered"]
    #: The account whose position it is ("" when unknown).
    account: str = ""
    feed: str
    symbol: str
    side: Side
    position_idx: int
    lifecycle: int
    entry_price: Decimal
    mark_price: Decimal
    best_price: Decimal
    stop_price: Decimal
    activation_price: Decimal
    #: The trailing distance (``best * callback``), on the tick grid when it is known.
    distance: Decimal | None = None
    #: The instrument's price tick the prices were rounded to; None when unknown.
    tick_size: Decimal | None = None
    exchange_ms: int | None
    decided_ns: int
    price_age_ms: float | None
    dry_run: bool = True


@dataclass
class _State:
    lifecycle: int
    active: bool = False
    best: Decimal = Decimal(0)
    triggered: bool = False


class TrailingStops:
    """Feeds position events in, gets trailing-stop events out."""

    def __init__(self, settings: TrailingStopSettings) -> None:
        self.settings = settings
        self._state: dict[PositionKey, _State] = {}

    def on_event(self, ev: PositionEvent, *, dry_run: bool = True,
                 tick: Decimal | None = None) -> list[TrailingStopEvent]:
        """The stop events ``ev`` causes; ``tick`` is the instrument's price tick."""
        pos = ev.position
        if ev.past:
            return []  # a lifecycle that ended before the current one: nothing to trail
        if ev.kind is EventKind.CLOSED:
            self._state.pop(pos.key, None)
            return []
        if pos.mark_price is None or pos.entry_price <= 0:
            return []
        st = self._state.get(pos.key)
        if st is None or st.lifecycle != pos.lifecycle:
            st = self._state[pos.key] = _State(lifecycle=pos.lifecycle)
        if st.triggered:
            return []
        rule = self.settings.rule(pos.symbol)
        long = pos.side is Side.LONG
        activation = on_tick(
            pos.entry_price * (1 + rule.activation_pct / _HUNDRED if long
                               else 1 - rule.activation_pct / _HUNDRED),
            tick, ROUND_UP if long else ROUND_DOWN)  # never short of the profit asked
        mark = pos.mark_price
        out: list[TrailingStopEvent] = []
        if not st.active:
            if (mark >= activation) if long else (mark <= activation):
                st.active, st.best = True, mark
                out.append(self._event("activated", ev, st, activation, rule.callback_pct,
                                       dry_run, tick))
            else:
                return out
        st.best = max(st.best, mark) if long else min(st.best, mark)
        stop = self._stop(st.best, rule.callback_pct, long, tick)
        if (mark <= stop) if long else (mark >= stop):
            st.triggered = True
            out.append(self._event("triggered", ev, st, activation, rule.callback_pct, dry_run,
                                   tick))
        return out

    @staticmethod
    def _stop(best: Decimal, callback_pct: Decimal, long: bool, tick: Decimal | None
              ) -> Decimal:
        distance = trail_distance(best, callback_pct, tick)
        return best - distance if long else best + distance

    def _event(self, action: Literal["activated", "triggered"], ev: PositionEvent, st: _State,
               activation: Decimal, callback_pct: Decimal, dry_run: bool,
               tick: Decimal | None) -> TrailingStopEvent:
        pos = ev.position
        decided = now_ns()
        exchange_ms = pos.mark_exchange_ms
        return TrailingStopEvent(
            action=action, feed=ev.feed, symbol=pos.symbol, side=pos.side,
            position_idx=pos.position_idx, lifecycle=pos.lifecycle,
            entry_price=pos.entry_price, mark_price=pos.mark_price or Decimal(0),
            best_price=st.best, stop_price=self._stop(st.best, callback_pct,
                                                      pos.side is Side.LONG, tick),
            activation_price=activation, distance=trail_distance(st.best, callback_pct, tick),
            tick_size=tick, exchange_ms=exchange_ms, decided_ns=decided,
            price_age_ms=None if exchange_ms is None else decided / 1e6 - exchange_ms,
            dry_run=dry_run)
