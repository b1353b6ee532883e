"""What a plugin author hands the conformance kit: a :class:`FeedHarness`.

The kit knows nothing about any exchange. The harness tells it which feed kind to
build with which settings, starts (and stops) a test exchange, says which account and
endpoints the feed must use, and carries out actions on the exchange side: open, add
to and close a position, set a mark price and — optionally — cut the feed off from
the exchange for a while (an outage) or send it malformed input.

Every action is an ``async`` method called from the kit's event loop, the same loop
the feed runs in, so a harness may run its exchange in-process (as feedctl's own
harnesses run the embedded simulator).
"""

from __future__ import annotations

import abc
from collections.abc import Mapping
from dataclasses import dataclass, field
from decimal import Decimal
from types import MappingProxyType
from typing import Any, ClassVar

from ..feed import FeedKind
from ..models import Side
from ..settings import AccountSettings, Endpoints

#: The optional actions; a harness "supports" one when its class overrides it.
OPTIONAL_ACTIONS = ("begin_outage", "end_outage", "send_malformed")


@dataclass(frozen=True)
class ExchangeAccess:
    """Where the feed under test connects, with which account: what :meth:`FeedHarness.start`
    returns once the test exchange is up (its ports are usually ephemeral)."""

    account: AccountSettings
    endpoints: Endpoints = field(default_factory=Endpoints)


class FeedHarness(abc.ABC):
    """Drives one feed kind for the conformance kit (see docs/plugins.md).

    Subclass it, set :attr:`kind`, implement the abstract actions and return an instance
    from a ``feedctl_harness`` fixture. One instance serves one test: the kit calls
    :meth:`start` and :meth:`stop` around every test, inside that test's event loop.
    """

    #: The feed kind under test, exactly as the plugin registers it.
    kind: ClassVar[FeedKind]
    #: The kind's own settings (the ``[<profile>.feeds.<name>]`` table, without ``kind``
    #: and ``role``); validated with ``kind.settings_model``. Make intervals short.
    settings: ClassVar[Mapping[str, Any]] = MappingProxyType({})
    #: Two symbols the kit may trade; the second is used only by the resync test.
    symbols: ClassVar[tuple[str, str]] = ("BTCUSDT", "ETHUSDT")
    #: The size of one step: the kit opens ``size``, then adds ``size``.
    size: ClassVar[Decimal] = Decimal("0.01")
    #: Two distinct valid mark prices for ``symbols[0]``, set one after the other.
    mark_prices: ClassVar[tuple[Decimal, Decimal]] = (Decimal("60000"), Decimal("60125.5"))
    #: Longest wait, in seconds, for one exchange-side change to show in the feed
    #: (a polling feed: a few intervals). ``--feedctl-timeout-scale`` multiplies it.
    timeout: ClassVar[float] = 10.0
    #: Quiet time, in seconds, the kit waits before it concludes that no duplicate or
    #: late event will come (a polling feed: at least two intervals).
    settle: ClassVar[float] = 1.0
    #: Shortest time, in seconds, an outage lasts once the feed has reported it (a
    #: polling feed that reconnects after N failed polls needs about N intervals).
    outage_hold: ClassVar[float] = 0.5
    #: Logger name prefixes of the test exchange: their records are not the feed's and
    #: are left out of the secrets check.
    exchange_loggers: ClassVar[tuple[str, ...]] = ()

    # ---------------------------------------------------------------- the exchange
    @abc.abstractmethod
    async def start(self) -> ExchangeAccess:
        """Start the test exchange (or connect to one) with no open position; return the
        account and endpoints the feed must use."""

    @abc.abstractmethod
    async def stop(self) -> None:
        """Stop the test exchange and release everything :meth:`start` opened."""

    # ---------------------------------------------------------------- actions
    @abc.abstractmethod
    async def open_position(self, symbol: str, side: Side, size: Decimal) -> None:
        """Open a position of ``size`` on ``side`` (the symbol is flat before)."""

    @abc.abstractmethod
    async def increase_position(self, symbol: str, size: Decimal) -> None:
        """Add ``size`` to the open position of ``symbol``, on its side."""

    @abc.abstractmethod
    async def close_position(self, symbol: str) -> None:
        """Close the position of ``symbol`` completely."""

    @abc.abstractmethod
    async def set_mark_price(self, symbol: str, price: Decimal) -> None:
        """Make ``price`` the exchange's mark price of ``symbol`` and keep it there."""

    # ---------------------------------------------------------------- optional
    async def begin_outage(self) -> None:
        """Cut the feed off: drop its connections and keep new ones from working (or
        make every request fail) until :meth:`end_outage`. Exchange-side actions must
        keep working meanwhile. Needed by the outage test and by the ``resync``
        capability; without it those tests are skipped (or fail, for ``resync``)."""
        raise NotImplementedError

    async def end_outage(self) -> None:
        """Let the feed reach the exchange again."""
        raise NotImplementedError

    async def send_malformed(self) -> None:
        """Send the feed input it cannot parse (a truncated frame, a bad row...).
        Optional: without it the malformed-input test is skipped."""
        raise NotImplementedError

    # ---------------------------------------------------------------- helpers
    def supports(self, action: str) -> bool:
        """Whether this harness implements the optional ``action``."""
        if action not in OPTIONAL_ACTIONS:
            raise ValueError(f"{action!r} is not an optional harness action")
        return getattr(type(self), action) is not getattr(FeedHarness, action)

    def __repr__(self) -> str:
        kind = getattr(type(self), "kind", None)
        return f"<{type(self).__name__} kind={getattr(kind, 'name', None)!r}>"
