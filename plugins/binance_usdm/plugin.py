"""Registers the ``binance_usdm`` feed kind (entry point ``binance_usdm``).

The kind's exchange, rollout slot and endpoints are declared here, in one place:
``EXCHANGE``, ``ROLLOUT``, ``ENDPOINTS_MODEL`` and ``DEFAULT_ENDPOINTS``: a profile with
``account.exchange = "binanceusdm"`` runs it as the live feed of every rollout mode, with
``rest_polling`` (ccxt's ``binanceusdm``) as the fallback. The plugin ships the profiles
``binance_mainnet`` and ``binance_testnet`` (``profiles.toml``).
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

from feedctl import FeedContext, FeedKind, Rollout, hookimpl

from .config import BinanceEndpoints, BinanceSettings
from .constants import DEFAULT_ENDPOINTS, EXCHANGE_ID

if TYPE_CHECKING:
    from .feed import BinanceFeed

EXCHANGE = EXCHANGE_ID
ROLLOUT = Rollout.LIVE
ENDPOINTS_MODEL = BinanceEndpoints


def make_feed(ctx: FeedContext, settings: BinanceSettings) -> BinanceFeed:
    """The kind's factory (the feed module, with aiohttp and websockets, loads here)."""
    from .feed import BinanceFeed

    return BinanceFeed(ctx, settings)


def _declaration() -> dict[str, Any]:
    """How the kind takes part in a profile (docs/plugins.md, "Exchange, endpoints and
    rollout role")."""
    return {"exchange": EXCHANGE, "rollout": ROLLOUT, "endpoints_model": ENDPOINTS_MODEL,
            "default_endpoints": DEFAULT_ENDPOINTS}


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


@hookimpl
def feedctl_profiles() -> Path:
    """``binance_mainnet`` and ``binance_testnet``, from any directory."""
    return Path(__file__).with_name("profiles.toml")


__all__ = ["DEFAULT_ENDPOINTS", "ENDPOINTS_MODEL", "EXCHANGE", "KIND", "ROLLOUT",
           "feedctl_feed_kinds", "feedctl_profiles", "make_feed"]
