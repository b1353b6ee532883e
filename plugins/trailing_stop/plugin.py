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

from feedctl import PositionEvent, Session, hookimpl

from .config import TradingSettings, TrailingStopSettings
from .engine import TrailingStopEvent, TrailingStops

if TYPE_CHECKING:
    from .executor import BybitStopSetter

log = logging.getLogger("feedctl.trailing_stop")
_HUNDRED = Decimal(100)


class TrailingStopConsumer:
    def __init__(self) -> None:
        self.session: Session | None = None
        self.engine: TrailingStops | None = None
        self.setter: BybitStopSetter | None = None
        self.events: list[TrailingStopEvent] = []

    @hookimpl
    def feedctl_settings_sections(self, register: Any) -> None:
        register("trailing_stop", TrailingStopSettings)
        register("trading", TradingSettings)

    @hookimpl
    async def feedctl_session_started(self, session: Session) -> None:
        self.session = session
        settings: TrailingStopSettings = session.plugin_settings("trailing_stop")
        trading: TradingSettings = session.plugin_settings("trading")
        self.engine = TrailingStops(settings) if settings.enabled else None
        self.events = []
        if self.engine is None or not trading.enabled:
            return
        try:
            from .executor import BybitStopSetter  # ccxt: slow to import, needed only here

            setter = BybitStopSetter(session.settings.account, session.settings.endpoints)
            allowed, why = await setter.can_trade()
        except Exception as exc:
            log.error("trading.enabled is true but the account cannot be checked (%s); "
                      "staying in dry run", exc)
            return
        if not allowed:
            log.warning("trading.enabled is true but %s; staying in dry run", why)
            await setter.close()
            return
        self.setter = setter
        log.warning("trading enabled: trailing stops will be set on the exchange")

    @hookimpl
    async def feedctl_session_stopping(self, session: Session) -> None:
        if self.setter is not None:
            await self.setter.close()
            self.setter = None

    @hookimpl
    async def feedctl_position_event(self, event: PositionEvent) -> None:
        if self.engine is None or self.session is None:
            return
        for ts in self.engine.on_event(event, dry_run=self.setter is None):
            self.events.append(ts)
            del self.events[:-1000]
            log.info("trailing stop %s", ts.action, extra={
                "symbol": ts.symbol, "side": ts.side.value, "mark": str(ts.mark_price),
                "stop": str(ts.stop_price), "price_age_ms": ts.price_age_ms,
                "dry_run": ts.dry_run})
            self.session.publish(ts)
            if ts.action == "activated" and self.setter is not None:
                await self._place(event, ts)

    async def _place(self, event: PositionEvent, ts: TrailingStopEvent) -> None:
        assert self.setter is not None and self.engine is not None
        rule = self.engine.settings.rule(ts.symbol)
        distance = ts.best_price * rule.callback_pct / _HUNDRED
        pos = event.position
        try:
            await self.setter.set_trailing_stop(category=pos.category.value, symbol=pos.symbol,
                                                position_idx=pos.position_idx,
                                                distance=distance)
            log.warning("trailing stop set on the exchange", extra={
                "symbol": pos.symbol, "distance": str(distance)})
        except Exception:
            log.exception("setting the trailing stop on the exchange failed",
                          extra={"symbol": pos.symbol})


plugin = TrailingStopConsumer()
