"""The trailing-stop state machine, per position lifecycle. Pure: no I/O.

Long: active once ``(mark - entry) / entry >= activation``; then it tracks the best
(highest) mark and triggers when ``mark <= best * (1 - callback)``. Short mirrors it.
State is kept per (feed key, lifecycle) and dropped on close, so a reopened position
starts afresh.
"""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal
from typing import Literal

from pydantic import BaseModel, ConfigDict

from feedctl import EventKind, PositionEvent, PositionKey, Side, now_ns

from .config import TrailingStopSettings

_HUNDRED = Decimal(100)


class TrailingStopEvent(BaseModel):
    """A trailing stop ``activated`` or ``triggered`` (``type="trailing_stop"``).

    ``price_age_ms`` is the local decision time minus the exchange time of the price
    that decided it. (The true activation delay — from the *first* price past the
    level — is what ``bench/trailing_stop_delay.py`` measures against a scripted path.)
    """

    model_config = ConfigDict(frozen=True)

    type: Literal["trailing_stop"] = "trailing_stop"
    action: Literal["activated", "triggered"]
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

    def on_event(self, ev: PositionEvent, *, dry_run: bool = True) -> list[TrailingStopEvent]:
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
        activation = pos.entry_price * (1 + rule.activation_pct / _HUNDRED if long
                                        else 1 - rule.activation_pct / _HUNDRED)
        mark = pos.mark_price
        out: list[TrailingStopEvent] = []
        if not st.active:
            if (mark >= activation) if long else (mark <= activation):
                st.active, st.best = True, mark
                out.append(self._event("activated", ev, st, activation, rule.callback_pct,
                                       dry_run))
            else:
                return out
        st.best = max(st.best, mark) if long else min(st.best, mark)
        stop = self._stop(st.best, rule.callback_pct, long)
        if (mark <= stop) if long else (mark >= stop):
            st.triggered = True
            out.append(self._event("triggered", ev, st, activation, rule.callback_pct, dry_run))
        return out

    @staticmethod
    def _stop(best: Decimal, callback_pct: Decimal, long: bool) -> Decimal:
        factor = callback_pct / _HUNDRED
        return best * (1 - factor) if long else best * (1 + factor)

    def _event(self, action: Literal["activated", "triggered"], ev: PositionEvent, st: _State,
               activation: Decimal, callback_pct: Decimal, dry_run: bool) -> TrailingStopEvent:
        pos = ev.position
        decided = now_ns()
        exchange_ms = pos.mark_exchange_ms
        return TrailingStopEvent(
            action=action, feed=ev.feed, symbol=pos.symbol, side=pos.side,
            position_idx=pos.position_idx, lifecycle=pos.lifecycle,
            entry_price=pos.entry_price, mark_price=pos.mark_price or Decimal(0),
            best_price=st.best, stop_price=self._stop(st.best, callback_pct,
                                                      pos.side is Side.LONG),
            activation_price=activation, exchange_ms=exchange_ms, decided_ns=decided,
            price_age_ms=None if exchange_ms is None else decided / 1e6 - exchange_ms,
            dry_run=dry_run)
