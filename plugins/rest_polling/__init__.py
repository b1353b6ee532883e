"""Feed plugin ``rest_polling``: positions and mark prices of any ccxt exchange, by polling.

Files: ``config`` (settings), ``constants`` (venue facts), ``parse`` (pure ccxt dict ->
model functions), ``client`` (the ccxt wrapper), ``feed`` (the polling loop),
``plugin`` (the hook). See docs/rest_polling.md.

ccxt takes most of a second to import: the feed (and ccxt) load when a rest_polling feed
is built, not when the plugin registers its kind, so ``feedctl --version``, ``check`` and
``plugins`` stay fast.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from .config import RestPollingSettings

if TYPE_CHECKING:
    from .feed import RestPollingFeed
    from .plugin import make_feed

__all__ = ["RestPollingFeed", "RestPollingSettings", "make_feed"]


def __getattr__(name: str) -> Any:
    if name == "RestPollingFeed":
        from .feed import RestPollingFeed

        return RestPollingFeed
    if name == "make_feed":
        from .plugin import make_feed

        return make_feed
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
