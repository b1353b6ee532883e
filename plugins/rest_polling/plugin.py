"""Registers the ``rest_polling`` feed kind (entry point ``feedctl: rest_polling``)."""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING

from feedctl import AccountSettings, Endpoints, FeedContext, FeedKind, Rollout, hookimpl

from .config import RestPollingEndpoints, RestPollingSettings
from .constants import BYBIT_LINEAR_SETTLE
from .facts import ccxt_ids, exchange_id, read_facts, refusals, unknown_exchange

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


def check(feed: str, settings: RestPollingSettings, account: AccountSettings,
          environment: str, endpoints: Endpoints | None,
          env_var: Callable[[str], str]) -> list[str]:
    """Everything the poller refuses when it starts, said by `feedctl check` (and before
    `run` starts): an exchange ccxt does not have, one without fetchPositions, a
    credential it requires beyond the key and secret (a passphrase, a uid), a testnet
    ccxt has no sandbox for, an environment it has no URL for, a mark-price source or URL
    key the exchange lacks. The facts are read from ccxt's source, not its import (see
    ``facts``): the same rules the feed applies to the exchange it builds."""
    ex_id, where = exchange_id(feed, settings, account)
    if ccxt_ids() is None:
        return []  # ccxt missing: the feed's import says so, with the package to install
    found = read_facts(ex_id)
    if found is None:
        return [unknown_exchange(ex_id, where)]
    return refusals(found, feed=feed, settings=settings, account=account,
                    environment=environment, endpoints=endpoints, env_var=env_var)


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
