"""Registers the ``example_exchange`` feed kind (entry point ``feedctl: example_exchange``).

A plugin reaches feedctl only through ``feedctl``'s public names. The hook runs once,
when feedctl builds its plugin manager; it must be a plain (not ``async``) function.
"""

from __future__ import annotations

from collections.abc import Callable

from feedctl import FeedContext, FeedKind, hookimpl

from .config import EXAMPLE_ENDPOINTS, ExampleEndpoints, ExampleSettings
from .feed import ExampleFeed


def make_feed(ctx: FeedContext, settings: ExampleSettings) -> ExampleFeed:
    """The kind's factory: build, do not connect (``run()`` connects)."""
    return ExampleFeed(ctx, settings)


KIND = FeedKind(
    name="example_exchange",
    factory=make_feed,
    settings_model=ExampleSettings,
    description="Example exchange: private WebSocket lifecycle, REST snapshot after every "
    "reconnect, REST mark prices (a template for new exchanges)",
    requires_credentials=True,
    capabilities=frozenset({"resync"}),
    # the exchange id a profile names in account.exchange; with rollout=Rollout.LIVE the
    # modes would run this kind as the exchange's live feed and rest_polling (ccxt's
    # "example", if ccxt had it) as its fallback
    exchange="example",
    endpoints_model=ExampleEndpoints,
    default_endpoints=EXAMPLE_ENDPOINTS,
)


@hookimpl
def feedctl_feed_kinds(register: Callable[[FeedKind], None]) -> None:
    register(KIND)
