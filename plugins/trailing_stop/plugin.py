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

from feedctl import hookimpl

from .config import TradingSettings, TrailingStopSettings

# The engine, the session and the executor load when a session starts: `feedctl check`
# and `feedctl plugins` load this module only to read its settings sections.
if TYPE_CHECKING:
    from feedctl import Category, PositionEvent, Session

    from .engine import TrailingStopEvent, TrailingStops
    from .executor import BybitStopSetter

log = logging.getLogger("feedctl.trailing_stop")


class _PerAccount:
    """The trailing stops of one account: its own engine (positions of two accounts on one
    symbol are two positions) and, when it may trade, its own order setter (its key)."""

    def __init__(self, engine: TrailingStops) -> None:
        self.engine = engine
        self.setter: BybitStopSetter | None = None


class _PerSession:
    """The trailing-stop state of one session (several may run in one process), per
    account of the session."""

    def __init__(self, session: Session, settings: TrailingStopSettings) -> None:
        self.session = session
        self.settings = settings
        self.accounts: dict[str, _PerAccount] = {}
        self.events: list[TrailingStopEvent] = []

    def account(self, name: str) -> _PerAccount:
        acc = self.accounts.get(name)
        if acc is None:
            from .engine import TrailingStops

            acc = self.accounts[name] = _PerAccount(TrailingStops(self.settings))
        return acc


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
        if not settings.enabled:
            return
        state = self.sessions[id(session)] = _PerSession(session, settings)
        for plan in session.plan.accounts:  # every account of the session, each its own
            acc = state.account(plan.name)
            if trading.enabled:
                acc.setter = await self._setter(plan.name, plan.settings)

    async def _setter(self, account: str, profile: Any) -> BybitStopSetter | None:
        """The account's order setter, if its key may trade (else None: dry run)."""
        try:
            from .executor import BybitStopSetter  # ccxt: slow to import, needed only here

            setter = BybitStopSetter(profile.account, profile.endpoints.get("rest"),
                                     profile.environment)
            allowed, why = await setter.can_trade()
        except Exception as exc:
            log.error("trading.enabled is true but account %r cannot be checked (%s); "
                      "staying in dry run for it", account, exc, extra={"account": account})
            return None
        if not allowed:
            log.warning("trading.enabled is true but for account %r %s; staying in dry run "
                        "for it", account, why, extra={"account": account})
            await setter.close()
            return None
        log.warning("trading enabled: trailing stops of account %r will be set on the "
                    "exchange", account, extra={"account": account})
        return setter

    @hookimpl
    async def feedctl_session_stopping(self, session: Session) -> None:
        state = self.sessions.pop(id(session), None)
        for acc in state.accounts.values() if state is not None else ():
            if acc.setter is not None:
                await acc.setter.close()
                acc.setter = None

    @hookimpl
    async def feedctl_position_event(self, event: PositionEvent, session: Session) -> None:
        state = self.sessions.get(id(session))
        if state is None:
            return
        acc = state.account(event.position.account)
        pos = event.position
        tick = _tick(session, pos.category, pos.symbol)
        for found in acc.engine.on_event(event, dry_run=acc.setter is None, tick=tick):
            ts = found.model_copy(update={"account": pos.account})
            state.events.append(ts)
            del state.events[:-1000]
            log.info("trailing stop %s", ts.action, extra={
                "account": ts.account, "symbol": ts.symbol, "side": ts.side.value,
                "mark": str(ts.mark_price),
                "stop": str(ts.stop_price), "price_age_ms": ts.price_age_ms,
                "dry_run": ts.dry_run})
            state.session.publish(ts)
            if ts.action == "activated" and acc.setter is not None:
                await self._place(state.session, acc, event, ts)

    async def _place(self, session: Session, acc: _PerAccount, event: PositionEvent,
                     ts: TrailingStopEvent) -> None:
        from .engine import trail_distance

        assert acc.setter is not None
        rule = acc.engine.settings.rule(ts.symbol)
        pos = event.position
        try:
            # Bybit wants the distance on the price tick: the feed's instruments-info,
            # else the setter reads it
            tick = ts.tick_size or await acc.setter.tick_size(pos.category.value,
                                                               pos.symbol)
            distance = trail_distance(ts.best_price, rule.callback_pct, tick)
            # asked right before the order (the tick's request may have taken a while):
            # e.g. a worker that lost the account's lease does not trade it any more
            if not session.trading_allowed(pos.account):
                log.warning("trailing stop not set on the exchange: this process may not "
                            "trade account %r now (another process holds its lease)",
                            pos.account, extra={"account": pos.account,
                                                "symbol": pos.symbol})
                return
            await acc.setter.set_trailing_stop(category=pos.category.value,
                                                 symbol=pos.symbol,
                                                 position_idx=pos.position_idx,
                                                 distance=distance)
            log.warning("trailing stop set on the exchange", extra={
                "account": pos.account, "symbol": pos.symbol, "distance": str(distance)})
        except Exception:
            log.exception("setting the trailing stop on the exchange failed",
                          extra={"account": pos.account, "symbol": pos.symbol})


def _tick(session: Session, category: Category, symbol: str) -> Decimal | None:
    """The symbol's price tick as a feed of ``session`` read it (instruments-info)."""
    for rt in session.feeds.values():
        inst = rt.ctx.instruments.get((category, symbol))
        if inst is not None:
            return inst.tick_size
    return None


plugin = TrailingStopConsumer()
