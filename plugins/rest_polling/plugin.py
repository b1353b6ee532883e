"""Registers the ``rest_polling`` feed kind (entry point ``feedctl: rest_polling``)."""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING

from feedctl import FeedContext, FeedKind, Rollout, hookimpl

from .config import RestPollingEndpoints, RestPollingSettings
from .constants import BYBIT_LINEAR_SETTLE

if TYPE_CHECKING:
    from .feed import RestPollingFeed


def make_feed(ctx: FeedContext, settings: RestPollingSettings) -> RestPollingFeed:
    """The kind's factory: builds nothing networked; checks run when the feed starts.
    The feed module (and ccxt, slow to import) load here, not at registration."""
    from .feed import RestPollingFeed

    return RestPollingFeed(ctx, settings)


def coverage(settings: RestPollingSettings, exchange: str | None) -> frozenset[str] | None:
    """Bybit: the categories and settle coins of ``settle_coins`` (an inverse contract
    settles in its base coin); elsewhere ccxt's fetch_positions lists the whole account."""
    if (settings.exchange or exchange) != "bybit":
        return None
    return frozenset(f"linear:{coin}" if coin in BYBIT_LINEAR_SETTLE else f"inverse:{coin}"
                     for coin in settings.settle_coins)


@hookimpl
def feedctl_feed_kinds(register: Callable[[FeedKind], None]) -> None:
    register(
        FeedKind(
            name="rest_polling",
            factory=make_feed,
            settings_model=RestPollingSettings,
            description="Positions and mark prices of any ccxt exchange by REST polling "
            "(the pre-hybrid behaviour; the fallback feed)",
            requires_credentials=True,
            capabilities=frozenset({"resync"}),
            # any exchange ccxt knows (checked when the feed starts), as its fallback
            exchange="*",
            rollout=Rollout.FALLBACK,
            endpoints_model=RestPollingEndpoints,
            coverage=coverage,
        )
    )
