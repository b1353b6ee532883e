"""feedctl feed plugin ``bybit_hybrid``: Bybit V5 private ``position`` stream for the
lifecycle, public ``tickers`` stream for the mark price, REST for snapshots and audits.

Files: ``config`` (settings), ``constants`` (venue facts), ``parse`` (sans-I/O message
parsing), ``signing`` (signatures, server clock), ``rest`` (snapshot client), ``ws``
(one socket), ``private``/``public`` (the two streams), ``audit``, ``feed`` (the
:class:`feedctl.Feed`), ``plugin`` (registration).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from .config import HybridSettings

if TYPE_CHECKING:
    from .feed import HybridFeed
    from .plugin import make_feed

__all__ = ["HybridFeed", "HybridSettings", "make_feed"]


def __getattr__(name: str) -> Any:
    """The feed (aiohttp, websockets) loads on first use, not when the kind registers."""
    if name == "HybridFeed":
        from .feed import HybridFeed

        return HybridFeed
    if name == "make_feed":
        from .plugin import make_feed

        return make_feed
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
