"""feedctl feed plugin ``binance_usdm``: Binance USDⓈ-M futures. The user data stream
(listenKey) for the position lifecycle, the market stream ``<symbol>@markPrice@1s`` for
the mark price, signed REST (positionRisk) for snapshots and audits.

Built as a third party would build it: it imports only the public ``feedctl`` API.
Files: ``config`` (settings, endpoints), ``constants`` (venue facts), ``models``
(pydantic wire formats), ``parse`` (sans-I/O parsing), ``signing`` (HMAC, server
clock), ``rest`` (REST client: weights, 429/418, error codes), ``ws`` (one socket),
``user``/``market`` (the two streams), ``gap`` (fill replay), ``audit``, ``feed``
(the :class:`feedctl.Feed`), ``plugin`` (registration).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from .config import BinanceEndpoints, BinanceSettings

if TYPE_CHECKING:
    from .feed import BinanceFeed
    from .plugin import make_feed

__all__ = ["BinanceEndpoints", "BinanceFeed", "BinanceSettings", "make_feed"]


def __getattr__(name: str) -> Any:
    """The feed (aiohttp, websockets) loads on first use, not when the kind registers."""
    if name == "BinanceFeed":
        from .feed import BinanceFeed

        return BinanceFeed
    if name == "make_feed":
        from .plugin import make_feed

        return make_feed
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
