"""A test feed kind, ``walk``: one open position whose mark price keeps moving.

Like a real exchange between fills: the position stays open, the price walks.
With ``leak = true`` the feed is careless with the account's secrets — it logs them
and puts them in ``details()`` — so the tests can prove the monitor redacts them.
"""

from __future__ import annotations

import asyncio
import random
from decimal import Decimal
from typing import Any

from feedctl import (
    Feed,
    FeedKind,
    FeedState,
    Instrument,
    MarkPrice,
    PositionUpdate,
    Side,
    StrictModel,
    hookimpl,
    now_ns,
)


class WalkSettings(StrictModel):
    symbol: str = "BTCUSDT"
    interval: float = 0.05
    start: str = "65000"
    step: str = "1.5"
    leak: bool = False
    #: false: the feed never gets its snapshot (a REST that never answers)
    sync: bool = True


class WalkFeed(Feed):
    def __init__(self, ctx: Any, settings: WalkSettings) -> None:
        super().__init__(ctx, settings)
        self.ticks = 0

    async def run(self) -> None:
        s, ctx = self.settings, self.ctx
        if s.leak:
            key = ctx.account.api_key.get_secret_value() if ctx.account.api_key else ""
            ctx.log.warning("careless plugin logs its key %s", key)
        opened = PositionUpdate(symbol=s.symbol, side=Side.LONG, size=Decimal("0.5"),
                                entry_price=Decimal(s.start), seq=1, exchange_ms=1)
        if not s.sync:
            ctx.set_state(FeedState.CONNECTING, "REST snapshot unanswered")
            await asyncio.Event().wait()  # for ever: never synced
        ctx.set_instrument(Instrument(symbol=s.symbol, tick_size=Decimal("0.1"),
                                      qty_step=Decimal("0.001"), settle_coin="USDT"))
        ctx.reconcile([opened], as_of_ms=1)  # the account's snapshot: one position
        ctx.set_state(FeedState.HEALTHY, reason="resync_done")
        price, step = Decimal(s.start), Decimal(s.step)
        rng = random.Random(7)  # the same walk every run; every tick moves the price
        while True:
            self.ticks += 1
            price += step * rng.choice((-2, -1, 1, 2))
            received = now_ns()
            ctx.message_received(received)
            ctx.observe_latency(received // 1_000_000 - 2, received)
            ctx.apply_mark(MarkPrice(symbol=s.symbol, mark_price=price,
                                     exchange_ms=received // 1_000_000))
            await asyncio.sleep(s.interval)

    def details(self) -> dict[str, Any]:
        out: dict[str, Any] = {"subscriptions": [f"tickers.{self.settings.symbol}"],
                               "ticks": self.ticks}
        if self.settings.leak and self.ctx.account.api_secret is not None:
            out["oops"] = self.ctx.account.api_secret.get_secret_value()
        return out


@hookimpl
def feedctl_feed_kinds(register: Any) -> None:
    register(FeedKind(name="walk", factory=WalkFeed, settings_model=WalkSettings,
                      description="one position, a walking mark price (tests)",
                      requires_credentials=False, exchange="scripted"))
