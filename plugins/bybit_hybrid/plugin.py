"""Registers the ``bybit_hybrid`` feed kind (entry point ``bybit_hybrid``)."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING

from feedctl import FeedContext, FeedKind, Rollout, hookimpl

from .config import HybridSettings
from .endpoints import BYBIT_ENDPOINTS, BybitEndpoints

if TYPE_CHECKING:
    from .feed import HybridFeed


def make_feed(ctx: FeedContext, settings: HybridSettings) -> HybridFeed:
    """The kind's factory: one feed for ``ctx``'s account (the feed module, with aiohttp
    and websockets, loads here, not at registration)."""
    from .feed import HybridFeed

    return HybridFeed(ctx, settings)


def coverage(settings: HybridSettings, exchange: str | None) -> frozenset[str]:
    """What the REST snapshot lists: the linear settle coins, inverse whole."""
    cats = {c.value for c in settings.categories}
    out = {f"linear:{coin}" for coin in settings.settle_coins} if "linear" in cats else set()
    return frozenset(out | {f"{c}:*" for c in cats - {"linear"}})


@hookimpl
def feedctl_feed_kinds(register: Callable[[FeedKind], None]) -> None:
    register(
        FeedKind(
            name="bybit_hybrid",
            factory=make_feed,
            settings_model=HybridSettings,
            description=(
                "Bybit V5: position lifecycle from the private WebSocket, mark price from "
                "public tickers (~100 ms), REST resync after every reconnect and a periodic "
                "REST audit"
            ),
            requires_credentials=True,
            capabilities=frozenset({"resync"}),
            exchange="bybit",
            rollout=Rollout.LIVE,
            endpoints_model=BybitEndpoints,
            default_endpoints=BYBIT_ENDPOINTS,
            coverage=coverage,
        )
    )


@hookimpl
def feedctl_profiles() -> Path:
    """``mainnet`` and ``testnet``: Bybit's, from any directory."""
    return Path(__file__).with_name("profiles.toml")
