"""Registers the ``binance_usdm`` feed kind (entry point ``binance_usdm``).

The kind's exchange, rollout slot and endpoints are declared here, in one place:
``EXCHANGE``, ``ROLLOUT``, ``ENDPOINTS_MODEL`` and ``DEFAULT_ENDPOINTS``. The core's
``FeedKind`` takes them as ``exchange=``, ``rollout=``, ``endpoints_model=`` and
``default_endpoints=`` once issue 14 point 2 lands (see ``_declaration``).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from feedctl import FeedContext, FeedKind, hookimpl

from .config import BinanceEndpoints, BinanceSettings
from .constants import DEFAULT_ENDPOINTS, EXCHANGE_ID

if TYPE_CHECKING:
    from .feed import BinanceFeed

EXCHANGE = EXCHANGE_ID
ROLLOUT = "live"
ENDPOINTS_MODEL = BinanceEndpoints


def make_feed(ctx: FeedContext, settings: BinanceSettings) -> BinanceFeed:
    """The kind's factory (the feed module, with aiohttp and websockets, loads here)."""
    from .feed import BinanceFeed

    return BinanceFeed(ctx, settings)


def _declaration() -> dict[str, Any]:
    """How the kind takes part in a profile. Empty until the core's FeedKind has the
    fields: then ``return {"exchange": EXCHANGE, "rollout": ROLLOUT, "endpoints_model":
    ENDPOINTS_MODEL, "default_endpoints": DEFAULT_ENDPOINTS}``."""
    return {}


KIND = FeedKind(
    name="binance_usdm",
    factory=make_feed,
    settings_model=BinanceSettings,
    description=(
        "Binance USDⓈ-M futures: position lifecycle from the user data stream (listenKey), "
        "mark price from <symbol>@markPrice@1s, REST positionRisk resync after every "
        "reconnect and a periodic audit; one-way and hedge mode"
    ),
    requires_credentials=True,
    capabilities=frozenset({"resync"}),
    **_declaration(),
)


@hookimpl
def feedctl_feed_kinds(register: Callable[[FeedKind], None]) -> None:
    register(KIND)


__all__ = ["DEFAULT_ENDPOINTS", "ENDPOINTS_MODEL", "EXCHANGE", "KIND", "ROLLOUT",
           "feedctl_feed_kinds", "make_feed"]
