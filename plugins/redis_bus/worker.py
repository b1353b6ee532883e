"""``feedctl worker``: processes that share a profile's accounts through leases.

Each worker loops over the profile's accounts (the one ``[account]``, or every
``[<profile>.accounts.<name>]``): an account whose lease it takes gets a
:class:`feedctl.Session` of its own (that account alone), publishing under that lease;
when the lease is lost (a renewal refused, or not renewed in time — a paused or
partitioned worker) the session is stopped at once, so its trading consumers (the
trailing stop) act only while the lease is held. A peer takes a dead worker's accounts
once the lease expires; its publisher resyncs each from its book against the Redis
snapshot, so consumers see every lifecycle once, by event id.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable
from typing import Any

from feedctl import BusKeys, ConfigError, FeedctlError, Session

from .accounts import plan_accounts, plan_of_account
from .config import BusSettings
from .connect import client, owner_name, safe_url
from .lease import Lease
from .plugin import plugin
from .publisher import DOWN

log = logging.getLogger("feedctl.redis_bus.worker")


class Worker:
    """Serves its share of the accounts of ``profiles``: with W live workers (each keeps a
    heartbeat key), at most ceil(accounts / W) accounts; past its share (a peer joined)
    it hands the excess back, so accounts spread over the workers."""

    def __init__(self, make_session: Any, profiles: list[str | None], settings: BusSettings,
                 url: str, owner: str | None = None) -> None:
        #: (profile, account=None) -> Session: a fresh (unstarted) session of the
        #: profile, of that one account when given (each leased account runs alone).
        self.make_session = make_session
        self.profiles = profiles
        self.profile_of: dict[str, str | None] = {}
        self.settings = settings
        self.url = url
        self.owner = owner or owner_name()
        self.keys = BusKeys(settings.prefix)
        self.redis: Any = None
        self.leases: dict[str, Lease] = {}
        self.sessions: dict[str, Session] = {}
        self._keepers: dict[str, asyncio.Task[None]] = {}
        self._wake = asyncio.Event()
        #: True once Redis has answered this worker (its heartbeat written)
        self.reached = False

    async def run(self, stop: asyncio.Event) -> None:
        for profile in self.profiles:
            await asyncio.sleep(0)  # validating many profiles takes a while: stay responsive
            if stop.is_set():
                return
            for account in plan_accounts(self.make_session(profile).plan):
                if account in self.profile_of:
                    raise ConfigError(f"account {account!r} is in two profiles "
                                      f"({self.profile_of[account]!r}, {profile!r})")
                self.profile_of[account] = profile
        accounts = list(self.profile_of)
        self.redis = client(self.url, timeout=self.settings.timeout)
        log.info("worker started", extra={"owner": self.owner, "redis": safe_url(self.url),
                                          "accounts": ",".join(accounts)})
        for a in accounts:
            self.leases[a] = Lease(self.redis, self.keys, a, self.owner,
                                   self.settings.lease_ttl, on_change=self._changed)
        try:
            # announce this worker and give peers started with it time to do the same,
            # so that the first one up does not take every account
            await self._share(len(accounts))
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(self.settings.lease_ttl / 3):
                    await stop.wait()
            while not stop.is_set():
                share = await self._share(len(accounts))
                for account in accounts:
                    if stop.is_set():
                        break
                    await self._step(account, share)
                while len(self.sessions) > share:  # a peer joined: hand accounts back
                    await self._stop_session(next(reversed(self.sessions)))
                self._wake.clear()
                with contextlib.suppress(TimeoutError):
                    async with asyncio.timeout(self.settings.lease_ttl / 3):
                        await _first(stop.wait(), self._wake.wait())
        finally:  # every session at once: a worker with many accounts stops quickly
            await asyncio.gather(*(self._stop_session(a) for a in list(self.sessions)))
            for lease in self.leases.values():
                await lease.release()
            with contextlib.suppress(*DOWN):
                await self.redis.delete(f"{self.keys.prefix}:worker:{self.owner}")
            await self.redis.aclose()

    async def _share(self, accounts: int) -> int:
        """How many accounts this worker may serve now (its heartbeat renewed)."""
        key = f"{self.keys.prefix}:worker:{self.owner}"
        try:
            async with asyncio.timeout(self.settings.timeout):
                await self.redis.set(key, "1", px=int(self.settings.lease_ttl * 1000))
                live = [k async for k in self.redis.scan_iter(
                    match=f"{self.keys.prefix}:worker:*", count=1000)]
        except DOWN:
            return len(self.sessions)  # no news: keep what is held, take nothing
        self.reached = True
        return -(-accounts // max(1, len(live)))

    async def _step(self, account: str, share: int) -> None:
        lease = self.leases[account]
        if account in self.sessions and not lease.held:
            await self._stop_session(account)
        if account in self.sessions or len(self.sessions) >= share:
            return
        try:
            if not await lease.try_acquire():
                return
        except DOWN as exc:
            log.debug("lease not taken: %s", exc)
            return
        plugin.leases[(self.settings.prefix, account)] = lease
        self._keepers[account] = asyncio.create_task(lease.keep(), name=f"lease:{account}")
        session = self.make_session(self.profile_of[account], account)
        try:
            await session.start()
        except FeedctlError:
            log.exception("the session of account %s failed to start", account)
            await self._drop_lease(account)
            return
        self.sessions[account] = session
        # a session's first start imports its feeds' libraries and may hold the loop
        # for a while: renew at once (it fails if the lease expired meanwhile)
        with contextlib.suppress(*DOWN):
            await lease.renew()
        if not lease.held:
            log.warning("the session of account %s took longer to start than the lease "
                        "time (redis_bus.lease_ttl = %ss): lease lost", account,
                        self.settings.lease_ttl)
            await self._stop_session(account)
            return
        log.info("serving account", extra={"account": account, "token": lease.token})

    async def _stop_session(self, account: str) -> None:
        session = self.sessions.pop(account, None)
        if session is not None:
            log.warning("stopping the session of account %s (lease %s)", account,
                        "held" if self.leases[account].held else "lost")
            await session.stop()
        await self._drop_lease(account)

    async def _drop_lease(self, account: str) -> None:
        keeper = self._keepers.pop(account, None)
        if keeper is not None:
            keeper.cancel()
            await asyncio.gather(keeper, return_exceptions=True)
        plugin.leases.pop((self.settings.prefix, account), None)
        await self.leases[account].release()

    def _changed(self, lease: Lease, held: bool) -> None:
        plugin.metrics.lease_changes += 1
        self._wake.set()


async def _first(*aws: Any) -> None:
    tasks = [asyncio.ensure_future(a) for a in aws]
    try:
        await asyncio.wait(tasks, return_when=asyncio.FIRST_COMPLETED)
    finally:
        for t in tasks:
            t.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)


def session_factory(settings_path: str | None, overrides: dict[str, Any], pm: Any
                    ) -> Callable[..., Session]:
    """``make_session(profile, account=None)``: a fresh session of ``profile`` (of its
    ``account`` alone, when given). A profile's plan (the validated profile) is built
    once and reused, unless it has services (an embedded exchange is one per session)."""
    plans: dict[str | None, Any] = {}

    def make_session(profile: str | None, account: str | None = None) -> Session:
        plan = plans.get(profile)
        if plan is None:
            plan = Session(profile, settings_path=settings_path, overrides=overrides,
                           plugin_manager=pm).plan
            if not plan.services:
                plans[profile] = plan
        return Session(plan=plan if account is None else plan_of_account(plan, account))

    return make_session


def bus_settings(session: Session, url: str | None) -> tuple[BusSettings, str]:
    """The profile's bus settings and the URL to use (``--redis`` wins)."""
    settings: BusSettings = session.plugin_settings("redis_bus") or BusSettings()
    chosen = url or (settings.url.get_secret_value() if settings.url else None)
    if not chosen:
        raise ConfigError(f"profile {session.plan.loaded.name!r} has no redis_bus.url: pass "
                          "--redis URL or export FEEDCTL_<PROFILE>__REDIS_BUS__URL")
    return settings, chosen
