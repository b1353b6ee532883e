"""Test feed kinds for the many-accounts tests: a real pluggy plugin whose feed plays a
short script per account and refuses an account whose key is ``rejected`` the way an
exchange does (a fatal error naming the account), so that isolation can be asserted."""

from __future__ import annotations

import asyncio
from decimal import Decimal
from typing import Any

from feedctl import (
    FatalFeedError,
    Feed,
    FeedContext,
    FeedKind,
    FeedState,
    MarkPrice,
    PositionUpdate,
    Rollout,
    Side,
    StrictModel,
    hookimpl,
)


class AcctSettings(StrictModel):
    symbols: list[str] = ["BTCUSDT"]


class AcctFeed(Feed):
    """Opens a long per symbol, then moves its mark every 20 ms until cancelled."""

    settings: AcctSettings

    async def run(self) -> None:
        ctx: FeedContext = self.ctx
        key = ctx.account.api_key.get_secret_value() if ctx.account.api_key else ""
        if key == "rejected":
            raise FatalFeedError(f"account {ctx.account.name!r}: API key rejected "
                                 "(retCode 10003); fix its key")
        ctx.reconcile([PositionUpdate(symbol=s, side=Side.LONG, size=Decimal("1"),
                                      entry_price=Decimal("100"), seq=1, exchange_ms=1)
                       for s in self.settings.symbols])
        ctx.set_state(FeedState.HEALTHY, reason="resync_done")
        n = 0
        while True:
            n += 1
            for s in self.settings.symbols:
                ctx.apply_mark(MarkPrice(symbol=s, mark_price=Decimal(100 + n),
                                         exchange_ms=1 + n))
            await asyncio.sleep(0.02)


@hookimpl
def feedctl_feed_kinds(register: Any) -> None:
    register(FeedKind(name="acct_live", factory=AcctFeed, settings_model=AcctSettings,
                      exchange="acctx", rollout=Rollout.LIVE, requires_credentials=True))
