"""feedctl feed plugin ``bybit_hybrid``: Bybit V5 private ``position`` stream for the
lifecycle, public ``tickers`` stream for the mark price, REST for snapshots and audits.

Files: ``config`` (settings), ``constants`` (venue facts), ``parse`` (sans-I/O message
parsing), ``signing`` (signatures, server clock), ``rest`` (snapshot client), ``ws``
(one socket), ``private``/``public`` (the two streams), ``audit``, ``feed`` (the
:class:`feedctl.Feed`), ``plugin`` (registration).
"""

from .config import HybridSettings
from .feed import HybridFeed
from .plugin import make_feed

__all__ = ["HybridFeed", "HybridSettings", "make_feed"]
