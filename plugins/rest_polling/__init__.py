"""Feed plugin ``rest_polling``: positions and mark prices of any ccxt exchange, by polling.

Files: ``config`` (settings), ``constants`` (venue facts), ``parse`` (pure ccxt dict ->
model functions), ``client`` (the ccxt wrapper), ``feed`` (the polling loop),
``plugin`` (the hook). See docs/rest_polling.md.
"""

from .config import RestPollingSettings
from .feed import RestPollingFeed
from .plugin import make_feed

__all__ = ["RestPollingFeed", "RestPollingSettings", "make_feed"]
