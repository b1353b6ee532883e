"""A test feed kind contributed by a real pluggy plugin: plays a script of updates.

It talks to nothing; it exists to exercise the core (book, router, delivery, CLI).
"""

from __future__ import annotations

import asyncio
from decimal import Decimal
from typing import Any

from feedctl import (
    Endpoints,
    Feed,
    FeedKind,
    FeedState,
    HttpEndpoint,
    MarkPrice,
    PositionUpdate,
    Rollout,
    Side,
    StrictModel,
    WsEndpoint,
    hookimpl,
)


class ScriptedEndpoints(Endpoints):
    """URLs the scripted kinds declare (they connect to none): for the endpoint rules."""

    rest: HttpEndpoint
    private_ws: WsEndpoint


SCRIPTED_ENDPOINTS = {"mainnet": {"rest": "https://api.scripted.example",
                                  "private_ws": "wss://stream.scripted.example/private"}}


class ScriptedSettings(StrictModel):
    symbol: str = "BTCUSDT"
    interval: float = 0.01
    fail_after: int | None = None


class ScriptedFeed(Feed):
    """Opens a long, moves its price a few ticks, adds, closes; then idles."""

    def __init__(self, ctx: Any, settings: ScriptedSettings) -> None:
        super().__init__(ctx, settings)
        self.steps: list[Any] = [
            PositionUpdate(symbol=settings.symbol, side=Side.LONG, size=Decimal("1"),
                           entry_price=Decimal("100"), seq=1, exchange_ms=1),
            MarkPrice(symbol=settings.symbol, mark_price=Decimal("101"), exchange_ms=2),
            MarkPrice(symbol=settings.symbol, mark_price=Decimal("102"), exchange_ms=3),
            PositionUpdate(symbol=settings.symbol, side=Side.LONG, size=Decimal("2"),
                           entry_price=Decimal("101"), seq=2, exchange_ms=4),
            PositionUpdate(symbol=settings.symbol, side=None, size=Decimal("0"), seq=3,
                           exchange_ms=5),
        ]

    async def run(self) -> None:
        self.ctx.set_state(FeedState.HEALTHY, reason="resync_done")
        for i, step in enumerate(self.steps):
            if self.settings.fail_after is not None and i >= self.settings.fail_after:
                self.ctx.set_state(FeedState.RECONNECTING, "scripted outage", reason="reconnect")
                await asyncio.Event().wait()
            if isinstance(step, MarkPrice):
                self.ctx.apply_mark(step)
            else:
                self.ctx.apply(step)
            await asyncio.sleep(self.settings.interval)
        await asyncio.Event().wait()


@hookimpl
def feedctl_feed_kinds(register: Any) -> None:
    common: dict[str, Any] = {
        "factory": ScriptedFeed, "settings_model": ScriptedSettings,
        "requires_credentials": False, "endpoints_model": ScriptedEndpoints,
        "default_endpoints": SCRIPTED_ENDPOINTS}
    register(FeedKind(name="scripted", description="plays a fixed script (tests)",
                      exchange="scripted", **common))
    # the two rollout slots of exchange "scripted", for the mode presets
    register(FeedKind(name="scripted_live", description="the scripted exchange's live feed",
                      exchange="scripted", rollout=Rollout.LIVE, **common))
    register(FeedKind(name="scripted_poll", description="a poller of any exchange (tests)",
                      exchange="*", rollout=Rollout.FALLBACK, **common))
