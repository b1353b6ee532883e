"""What the feed's parts need from the feed: narrow interfaces, nothing else.

A leaf module (at run time it imports only ``feedctl``): the streams and the fill
replay are written against these Protocols, never against ``HybridFeed``, so each can
be read, tested and changed without the parent class. ``HybridFeed`` satisfies all
of them (mypy checks it where it hands itself over).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Protocol

from feedctl import FeedContext, PositionKey, RollingBudget

if TYPE_CHECKING:
    from .config import HybridSettings
    from .parse import Problem
    from .recovery import FillReplay
    from .rest import RestClient
    from .signing import ServerClock


class StreamHost(Protocol):
    """Common to both streams: the context, the settings, the server clock and the
    problem reporter (counts and throttled logs)."""

    @property
    def ctx(self) -> FeedContext: ...

    @property
    def settings(self) -> HybridSettings: ...

    @property
    def clock(self) -> ServerClock: ...

    @property
    def report(self) -> Callable[[Problem, str], None]: ...


class PublicHost(StreamHost, Protocol):
    """What a public stream tells its feed (its health changed) and draws from (the
    process's per-IP budget of new sockets; None: unbudgeted)."""

    @property
    def connects(self) -> RollingBudget | None: ...

    def public_changed(self, reason: str) -> None: ...


class PrivateHost(StreamHost, Protocol):
    """What the private stream needs: REST (snapshots), the fill replay and loss ledger
    (shared with the audit), the snapshot's scope, the process's per-IP budget of new
    sockets (None: unlimited), and where to report its phases."""

    @property
    def rest(self) -> RestClient: ...

    @property
    def recovery(self) -> FillReplay: ...

    @property
    def connects(self) -> RollingBudget | None:
        """The process's budget of new sockets to the exchange host, shared by every
        account (None: unbudgeted)."""
        ...

    def covers(self, key: PositionKey) -> bool: ...

    def sync_subscriptions(self) -> None: ...

    def private_trouble(self, detail: str, reason: str = "reconnect") -> None: ...

    def private_lost(self, reason: str, count: bool = True) -> None: ...

    def private_resyncing(self) -> None: ...

    def private_synced(self) -> None: ...


class TickSource(Protocol):
    """What the ticker callback (ticks.py) needs from its public stream: the context, the
    stale symbols, a way to wake the stream's supervisor (a stale symbol spoke again) and
    the problem reporter."""

    @property
    def ctx(self) -> FeedContext: ...

    @property
    def stale(self) -> frozenset[str]: ...

    def wake(self) -> None: ...

    def problem(self, problem: Problem) -> None: ...
