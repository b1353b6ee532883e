"""feedctl feed plugin ``example_exchange`` — a template for a new exchange.

The exchange speaks a Bybit-V5-style API (so it runs against feedctl's embedded
simulator): a private WebSocket pushes position states, a signed REST API lists
positions (the snapshot taken after every (re)connect) and tickers (mark prices).

Files, the same shape as feedctl's built-in plugins: ``config`` (settings model),
``constants`` (venue facts as data), ``parse`` (pure functions: JSON in, models out),
``client`` (signed REST), ``ws`` (one private socket), ``feed`` (the
:class:`feedctl.Feed`), ``plugin`` (the hook), ``testing`` (the conformance-kit
harness).
"""

from .config import ExampleSettings
from .feed import ExampleFeed
from .plugin import KIND, make_feed

__all__ = ["KIND", "ExampleFeed", "ExampleSettings", "make_feed"]
