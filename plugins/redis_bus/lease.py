"""An account's writer lease: SET NX PX with renewal, and a fencing token.

The lease's value is ``{owner}:{token}``; ``token`` comes from a counter that only
grows, so a writer that was paused past its lease (SIGSTOP, a long GC, a partition)
and resumes holds a value the publish script refuses. Locally a lease counts as held
only until ``ttl`` after the last renewal *was sent*, less a margin for clock drift:
the holder gives up before Redis can hand the account to a peer.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable
from typing import Any

from redis.exceptions import RedisError

from feedctl import BusKeys

from .scripts import ACQUIRE, RELEASE, RENEW

log = logging.getLogger("feedctl.redis_bus")

#: Part of the lease time a holder does not count on (clock drift, the renewal's own trip).
DRIFT = 0.2


class Lease:
    def __init__(self, redis: Any, keys: BusKeys, account: str, owner: str, ttl: float,
                 *, on_change: Callable[[Lease, bool], None] | None = None) -> None:
        self.redis, self.keys, self.account, self.owner = redis, keys, account, owner
        self.ttl_ms = max(1, int(ttl * 1000))
        self.token: int | None = None
        self._deadline = 0.0
        self._on_change = on_change
        self._acquire = redis.register_script(ACQUIRE)
        self._renew = redis.register_script(RENEW)
        self._release = redis.register_script(RELEASE)
        self.changes = 0

    @property
    def value(self) -> str:
        return f"{self.owner}:{self.token}"

    @property
    def held(self) -> bool:
        return self.token is not None and time.monotonic() < self._deadline

    async def try_acquire(self) -> bool:
        sent = time.monotonic()
        token = await self._acquire(keys=[self.keys.lease(self.account),
                                          self.keys.fence(self.account)],
                                    args=[self.owner, self.ttl_ms])
        if token is None:
            return False
        self.token = int(token)
        self._deadline = sent + self.ttl_ms / 1000 * (1 - DRIFT)
        self._changed(True)
        log.info("lease acquired", extra={"account": self.account, "token": self.token})
        return True

    async def renew(self) -> bool:
        """Extend the lease; False (and the lease is lost) if it is no longer ours."""
        if self.token is None:
            return False
        sent = time.monotonic()
        ok = await self._renew(keys=[self.keys.lease(self.account)],
                               args=[self.value, self.ttl_ms])
        if not ok:
            self.lost("taken over")
            return False
        self._deadline = sent + self.ttl_ms / 1000 * (1 - DRIFT)
        return True

    def lost(self, why: str) -> None:
        if self.token is None:
            return
        log.warning("lease lost: %s", why, extra={"account": self.account,
                                                  "token": self.token})
        self.token = None
        self._changed(False)

    async def release(self) -> None:
        if self.token is None:
            return
        value = self.value
        self.token = None
        self._changed(False)
        try:
            await self._release(keys=[self.keys.lease(self.account)], args=[value])
        except (RedisError, OSError, TimeoutError) as exc:  # it expires by itself
            log.warning("lease not released (%s: %s); it expires in %s ms",
                        type(exc).__name__, exc, self.ttl_ms)

    async def keep(self) -> None:
        """Renew every third of the lease time until the lease is lost or cancelled.
        A renewal that fails (Redis down) is retried; past the local deadline the lease
        is given up."""
        while self.token is not None:
            await asyncio.sleep(self.ttl_ms / 3000)
            try:
                async with asyncio.timeout(self.ttl_ms / 3000):
                    await self.renew()
            except (RedisError, OSError, TimeoutError) as exc:
                log.debug("lease renewal failed: %s", exc)
            if self.token is not None and not self.held:
                self.lost("not renewed within the lease time")

    def _changed(self, held: bool) -> None:
        self.changes += 1
        if self._on_change is not None:
            self._on_change(self, held)
