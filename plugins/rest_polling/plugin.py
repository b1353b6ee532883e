"""Registers the ``rest_polling`` feed kind (entry point ``feedctl: rest_polling``)."""

from __future__ import annotations

import difflib
import functools
import importlib.util
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING

from feedctl import Endpoints, FeedContext, FeedKind, Rollout, hookimpl

from .config import RestPollingEndpoints, RestPollingSettings
from .constants import BYBIT_LINEAR_SETTLE, DEFAULT_EXCHANGE

if TYPE_CHECKING:
    from .feed import RestPollingFeed


def make_feed(ctx: FeedContext, settings: RestPollingSettings) -> RestPollingFeed:
    """The kind's factory: builds nothing networked; checks run when the feed starts.
    The feed module (and ccxt, slow to import) load here, not at registration."""
    from .feed import RestPollingFeed

    return RestPollingFeed(ctx, settings)


def coverage(settings: RestPollingSettings, exchange: str | None) -> frozenset[str] | None:
    """Bybit: the categories and settle coins of ``settle_coins`` (an inverse contract
    settles in its base coin); elsewhere ccxt's fetch_positions lists the whole account."""
    if (settings.exchange or exchange) != "bybit":
        return None
    return frozenset(f"linear:{coin}" if coin in BYBIT_LINEAR_SETTLE else f"inverse:{coin}"
                     for coin in settings.settle_coins)


@functools.cache
def _ccxt_ids() -> frozenset[str] | None:
    """ccxt's exchange ids, read from its package folder (one module per exchange) without
    importing ccxt, which takes most of a second; None if ccxt is not installed."""
    spec = importlib.util.find_spec("ccxt")
    if spec is None or not spec.submodule_search_locations:
        return None
    folder = Path(next(iter(spec.submodule_search_locations))) / "async_support"
    return frozenset(p.stem for p in folder.glob("*.py") if not p.stem.startswith("_"))


def check(feed: str, settings: RestPollingSettings, exchange: str | None, environment: str,
          endpoints: Endpoints | None) -> list[str]:
    """What the poller refuses when it starts, said by `feedctl check` (and before `run`
    starts): an exchange ccxt does not have, an environment it has no URL for."""
    problems = []
    ex_id = settings.exchange or exchange or DEFAULT_EXCHANGE
    where = f"feeds.{feed}.exchange" if settings.exchange else "account.exchange"
    ids = _ccxt_ids()
    if ids is not None and ex_id not in ids:
        close = difflib.get_close_matches(ex_id, sorted(ids), 1)
        problems.append(f"{ex_id!r} is not a ccxt exchange id ({where})"
                        + (f"; did you mean {close[0]!r}?" if close else ""))
    provided = endpoints is None  # by a service at start: the embedded exchange's
    rest = getattr(endpoints, "rest", None)
    if (not provided and rest is None and settings.urls is None
            and environment not in ("mainnet", "testnet")):
        problems.append(f"rest_polling knows no {environment!r} URL for {ex_id!r}: set "
                        f"endpoints.rest (or feeds.{feed}.urls)")
    return problems


@hookimpl
def feedctl_feed_kinds(register: Callable[[FeedKind], None]) -> None:
    register(
        FeedKind(
            name="rest_polling",
            factory=make_feed,
            settings_model=RestPollingSettings,
            description="Positions and mark prices of any ccxt exchange by REST polling "
            "(the pre-hybrid behaviour; the fallback feed)",
            requires_credentials=True,
            capabilities=frozenset({"resync"}),
            # any exchange ccxt knows (checked by `check` below), as its fallback
            exchange="*",
            rollout=Rollout.FALLBACK,
            endpoints_model=RestPollingEndpoints,
            coverage=coverage,
            check=check,
        )
    )
