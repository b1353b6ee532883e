"""The Redis bus as a feedctl plugin: publishes every routed lifecycle, status and price
event of a session to Redis Streams when ``[<profile>.redis_bus] url`` is set.

Writes are fenced by the account's lease. A ``feedctl worker`` holds its accounts'
leases before it starts their session (:attr:`RedisBus.leases`); a plain ``feedctl run``
takes the lease itself and publishes only while it holds it (the feed and the other
consumers run either way).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from feedctl import hookimpl

from .config import BusSettings

if TYPE_CHECKING:
    import click

    from feedctl import PriorState, Session

    from .lease import Lease
    from .metrics import BusMetrics
    from .publisher import Publisher

log = logging.getLogger("feedctl.redis_bus")


@dataclass
class _PerSession:
    publisher: Publisher
    redis: Any
    own_leases: dict[str, Lease] = field(default_factory=dict)
    tasks: list[asyncio.Task[Any]] = field(default_factory=list)


class RedisBus:
    def __init__(self) -> None:
        self.sessions: dict[int, _PerSession] = {}
        #: Leases a worker holds, by (prefix, account): its sessions publish under them.
        self.leases: dict[tuple[str, str], Lease] = {}
        self._metrics: BusMetrics | None = None
        #: (id(session), account) -> the snapshot its feeds were given as prior state, and
        #: when it was read (wall ms): the publisher starts from it (read once, before
        #: the feeds start) and flags what happened before as recovered
        self.primed: dict[tuple[int, str], tuple[dict[str, str], int | None]] = {}

    @property
    def metrics(self) -> BusMetrics:
        """The bus's figures (made on first use: loading the plugin - every feedctl
        command does - imports neither prometheus_client nor the session machinery)."""
        if self._metrics is None:
            from .metrics import BusMetrics

            self._metrics = BusMetrics()
        return self._metrics

    @hookimpl
    def feedctl_settings_sections(self, register: Any) -> None:
        register("redis_bus", BusSettings)

    @hookimpl
    def feedctl_cli_commands(self, cli: click.Group) -> None:
        from .cli import bus_group, tail_command, worker_command

        cli.add_command(tail_command, name="tail")
        cli.add_command(bus_group, name="bus")
        cli.add_command(worker_command, name="worker")

    @hookimpl
    async def feedctl_prior_state(self, account: str, session: Session) -> PriorState | None:
        """A worker that holds ``account``'s lease: what the account's snapshot tells its
        consumers (the feeds recover from it what happened since, :mod:`.prior`)."""
        settings: BusSettings | None = session.plugin_settings("redis_bus")
        if settings is None or settings.url is None:
            return None
        lease = self.leases.get((settings.prefix, account))
        if lease is None or not lease.held:
            return None
        from feedctl import BusKeys

        from .prior import prior_of
        from .publisher import DOWN

        try:
            at_ms = int(time.time() * 1000)
            async with asyncio.timeout(settings.timeout):
                snapshot = await lease.redis.hgetall(BusKeys(settings.prefix).snapshot(account))
        except DOWN as exc:
            log.warning("snapshot of account %s not read (%s): its feeds start from the "
                        "exchange's state", account, exc, extra={"account": account})
            return None
        # an account never published has nothing to recover: its first events are news
        self.primed[(id(session), account)] = (snapshot, at_ms if snapshot.get("_last")
                                               else None)
        return prior_of(snapshot)

    @hookimpl
    async def feedctl_session_started(self, session: Session) -> None:
        settings: BusSettings | None = session.plugin_settings("redis_bus")
        if settings is None or settings.url is None:
            return
        from feedctl import BusKeys

        from .accounts import session_accounts
        from .connect import client, owner_name
        from .lease import Lease
        from .publisher import Publisher

        redis = client(settings.url.get_secret_value(), timeout=settings.timeout)
        own: dict[str, Lease] = {}
        for account in session_accounts(session):
            if (settings.prefix, account) not in self.leases:
                own[account] = Lease(redis, BusKeys(settings.prefix), account, owner_name(),
                                     settings.lease_ttl, on_change=self._lease_changed)

        def lease_of(account: str) -> Lease | None:
            return self.leases.get((settings.prefix, account)) or own.get(account)

        primed = {a: self.primed.pop((id(session), a)) for a in session_accounts(session)
                  if (id(session), a) in self.primed}
        pub = Publisher(session, redis, settings, lease_of, self.metrics, primed)
        state = self.sessions[id(session)] = _PerSession(pub, redis, own)
        state.tasks.append(asyncio.create_task(pub.run(), name="redis-bus:publish"))
        for lease in own.values():
            state.tasks.append(asyncio.create_task(_hold(lease), name="redis-bus:lease"))

    @hookimpl
    async def feedctl_session_stopping(self, session: Session) -> None:
        state = self.sessions.pop(id(session), None)
        for k in [k for k in self.primed if k[0] == id(session)]:
            del self.primed[k]
        if state is None:
            return
        try:
            await state.publisher.drain(1.0)
            for t in state.tasks:
                t.cancel()
            await asyncio.gather(*state.tasks, return_exceptions=True)
            try:  # a lease not released expires by itself: bounded, all at once
                async with asyncio.timeout(1.0):
                    await asyncio.gather(*(lease.release()
                                           for lease in state.own_leases.values()))
            except TimeoutError:
                log.warning("leases not released within 1 s; they expire by themselves")
        finally:
            self.metrics.outboxes.remove(state.publisher.boxes)
            with contextlib.suppress(Exception):
                await state.redis.aclose()

    @hookimpl
    def feedctl_position_event(self, event: Any, session: Session) -> None:
        state = self.sessions.get(id(session))
        if state is not None:
            state.publisher.offer(event)

    @hookimpl
    def feedctl_status_event(self, event: Any, session: Session) -> None:
        state = self.sessions.get(id(session))
        if state is not None:
            state.publisher.offer(event)

    @hookimpl
    def feedctl_trading_allowed(self, account: str, session: Session) -> bool | None:
        """An account this session publishes is traded only while this process holds its
        lease (a worker's, or the session's own): :attr:`Lease.held` counts down on the
        monotonic clock, so a process that was paused past its lease (SIGSTOP, a long
        pause of its loop) is refused from the moment it runs again, before any renewal
        tells it that a peer took over."""
        settings: BusSettings | None = session.plugin_settings("redis_bus")
        # a worker's lease: held from before the account's session starts until after
        # it stopped
        lease = self.leases.get((settings.prefix if settings else "feedctl", account))
        if lease is not None:
            return lease.held
        if settings is None or settings.url is None:
            return None  # the bus does not publish this session
        # the session's own lease (none before the session started or once it is
        # stopping: no trading then either)
        state = self.sessions.get(id(session))
        own = state.own_leases.get(account) if state is not None else None
        return own is not None and own.held

    @hookimpl
    def feedctl_metrics(self, session: Session) -> Any:
        """The bus's figures in the monitor's /metrics of a session that publishes."""
        if id(session) not in self.sessions:
            return None
        from .metrics import BusCollector

        return list(BusCollector(self.metrics).collect())

    def _lease_changed(self, lease: Lease, held: bool) -> None:
        self.metrics.lease_changes += 1


async def _hold(lease: Lease) -> None:
    """Take the lease when it is free, keep it, and take it again after losing it."""
    from .publisher import DOWN

    told = False
    while True:
        try:
            if await lease.try_acquire():
                told = False
                await lease.keep()
                continue
            if not told:
                told = True
                holder = await lease.redis.get(lease.keys.lease(lease.account))
                log.warning("account %s is served by %s: this session publishes when the "
                            "lease is free", lease.account, holder)
        except DOWN as exc:
            log.debug("lease not taken: %s", exc)
        await asyncio.sleep(lease.ttl_ms / 3000)


plugin = RedisBus()
