"""The trailing-stop consumer as a feedctl plugin.

Hooks: claims the ``trailing_stop`` and ``trading`` settings sections, watches every
routed position event, publishes ``activated``/``triggered`` events to the other
consumers (``feedctl_signal_event``; they show in ``--output jsonl``), logs them,
and — only when ``trading.enabled`` and the API key may trade — sets a trailing stop
on the exchange when one activates. Dry run is the default.
"""

from __future__ import annotations

import logging
from decimal import Decimal
from typing import TYPE_CHECKING, Any

from feedctl import Category, PositionEvent, Session, hookimpl

from .config import TradingSettings, TrailingStopSettings
from .engine import TrailingStopEvent, TrailingStops, trail_distance

if TYPE_CHECKING:
    from .executor import BybitStopSetter

log = logging.getLogger("feedctl.trailing_stop")


class _PerSession:
    """The trailing-stop state of one session (several may run in one process)."""

    def __init__(self, session: Session, engine: TrailingStops | None) -> None:
        self.session = session
        self.engine = engine
        self.setter: BybitStopSetter | None = None
        self.events: list[TrailingStopEvent] = []


class TrailingStopConsumer:
    """The plugin: one instance per process, its state kept per session."""

    def __init__(self) -> None:
        self.sessions: dict[int, _PerSession] = {}

    @hookimpl
    def feedctl_settings_sections(self, register: Any) -> None:
        register("trailing_stop", TrailingStopSettings)
        register("trading", TradingSettings)

    @hookimpl
    async def feedctl_session_started(self, session: Session) -> None:
        settings: TrailingStopSettings = session.plugin_settings("trailing_stop")
        trading: TradingSettings = session.plugin_settings("trading")
        state = self.sessions[id(session)] = _PerSession(
            session, TrailingStops(settings) if settings.enabled else None)
        if state.engine is None or not trading.enabled:
            return
        try:
            from .executor import BybitStopSetter  # ccxt: slow to import, needed only here

            setter = BybitStopSetter(session.settings.account,
                                     session.settings.endpoints.get("rest"),
                                     session.settings.environment)
            allowed, why = await setter.can_trade()
        except Exception as exc:
            log.error("trading.enabled is true but the account cannot be checked (%s); "
                      "staying in dry run", exc)
            return
        if not allowed:
            log.warning("trading.enabled is true but %s; staying in dry run", why)
            await setter.close()
            return
        state.setter = setter
        log.warning("trading enabled: trailing stops will be set on the exchange")

    @hookimpl
    async def feedctl_session_stopping(self, session: Session) -> None:
        state = self.sessions.pop(id(session), None)
        if state is not None and state.setter is not None:
            await state.setter.close()
            state.setter = None

    @hookimpl
    async def feedctl_position_event(self, event: PositionEvent, session: Session) -> None:
        state = self.sessions.get(id(session))
        if state is None or state.engine is None:
            return
        pos = event.position
        tick = _tick(session, pos.category, pos.symbol)
        for ts in state.engine.on_event(event, dry_run=state.setter is None, tick=tick):
            state.events.append(ts)
            del state.events[:-1000]
            log.info("trailing stop %s", ts.action, extra={
                "symbol": ts.symbol, "side": ts.side.value, "mark": str(ts.mark_price),
                "stop": str(ts.stop_price), "price_age_ms": ts.price_age_ms,
                "dry_run": ts.dry_run})
            state.session.publish(ts)
            if ts.action == "activated" and state.setter is not None:
                await self._place(state, event, ts)

    async def _place(self, state: _PerSession, event: PositionEvent,
                     ts: TrailingStopEvent) -> None:
        assert state.setter is not None and state.engine is not None
        rule = state.engine.settings.rule(ts.symbol)
        pos = event.position
        try:
            # Bybit wants the distance on the price tick: the feed's instruments-info,
            # else the setter reads it
            tick = ts.tick_size or await state.setter.tick_size(pos.category.value,
                                                                 pos.symbol)
            distance = trail_distance(ts.best_price, rule.callback_pct, tick)
            await state.setter.set_trailing_stop(category=pos.category.value,
                                                 symbol=pos.symbol,
                                                 position_idx=pos.position_idx,
                                                 distance=distance)
            log.warning("trailing stop set on the exchange", extra={
                "symbol": pos.symbol, "distance": str(distance)})
        except Exception:
            log.exception("setting the trailing stop on the exchange failed",
                          extra={"symbol": pos.symbol})


def _tick(session: Session, category: Category, symbol: str) -> Decimal | None:
    """The symbol's price tick as a feed of ``session`` read it (instruments-info)."""
    for rt in session.feeds.values():
        inst = rt.ctx.instruments.get((category, symbol))
        if inst is not None:
            return inst.tick_size
    return None


plugin = TrailingStopConsumer()
