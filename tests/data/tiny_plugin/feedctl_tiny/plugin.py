"""A third-party plugin: one feed kind, ``tiny``, that plays a fixed lifecycle.

It imports only feedctl's public API (``feedctl``), as any plugin must.
"""

from __future__ import annotations

import asyncio
from decimal import Decimal
from typing import Any

from feedctl import Feed, FeedKind, FeedState, MarkPrice, PositionUpdate, Side, hookimpl


class TinyFeed(Feed):
    async def run(self) -> None:
        self.ctx.set_state(FeedState.HEALTHY, reason="resync_done")
        self.ctx.apply(PositionUpdate(symbol="TINYUSDT", side=Side.SHORT, size=Decimal("3"),
                                      entry_price=Decimal("2.5"), seq=1))
        for i in range(5):
            await asyncio.sleep(0.05)
            price = Decimal("2.4") - Decimal(i) / 10
            self.ctx.apply_mark(MarkPrice(symbol="TINYUSDT", mark_price=price))
        self.ctx.apply(PositionUpdate(symbol="TINYUSDT", side=None, size=Decimal(0), seq=2))
        await asyncio.Event().wait()


@hookimpl
def feedctl_feed_kinds(register: Any) -> None:
    register(FeedKind(name="tiny", factory=TinyFeed, requires_credentials=False,
                      description="a fixed lifecycle, for tests"))
