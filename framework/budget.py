"""Budgets one process shares across its accounts: new connections per IP, REST requests
per IP and per account. Exchange-neutral: a feed kind gives the numbers (its exchange's
limits) and shares one budget per IP through ``ctx.shared``::

    budget = ctx.shared(("mykind.connects", host),
                        lambda: RollingBudget(400, 300.0, spacing=0.02))
    await budget.acquire()          # before every new connection

:class:`RollingBudget` admits at most ``limit`` acquisitions in any rolling ``window``
(what exchanges state: "no more than 500 connections within 5 minutes"); a token bucket
of the same rate would let up to twice its capacity through in one window. ``spacing``
staggers the admissions (a mass reconnect of 500 accounts becomes a stream, not a
burst). Planned work (a connection replaced at the end of its lifetime) asks with
``acquire(planned=True)``: it waits until the window holds less than ``limit -
reserve``, so that planned reconnects never use the share unplanned ones (a dropped
socket) need. Many feeds sharing one budget may give different numbers: ``tighten``
keeps the strictest of them, whichever asked first. :func:`jitter` spreads periodic
work of many accounts (audits) over its period; :func:`staggered` spreads connection
lifetimes the same way.
"""

from __future__ import annotations

import asyncio
import random
import time
import zlib
from collections import deque
from collections.abc import Callable


class RollingBudget:
    """At most ``limit`` acquisitions in any rolling ``window`` seconds, at least
    ``spacing`` seconds apart once ``burst`` of them fall in the window; ``acquire``
    waits (in order of arrival) for its turn."""

    def __init__(self, limit: int, window: float, *, spacing: float = 0.0, burst: int = 0,
                 reserve: int | None = None,
                 clock: Callable[[], float] = time.monotonic) -> None:
        if limit < 1 or window <= 0 or spacing < 0 or burst < 0:
            raise ValueError("a budget needs limit >= 1, window > 0, spacing >= 0 and "
                             "burst >= 0")
        self.limit, self.window, self.spacing = limit, window, spacing
        #: Acquisitions within the window kept for unplanned work (default: half).
        self.reserve = limit // 2 if reserve is None else min(max(0, reserve), limit - 1)
        self._fixed_reserve = reserve
        #: Acquisitions within the window that are not spaced (a quiet process's requests
        #: go at once; a busy one's are spread).
        self.burst = burst
        self._clock = clock
        self._times: deque[float] = deque()
        self._lock = asyncio.Lock()
        self.acquired = 0
        #: Planned acquisitions (they wait for room beyond the reserve).
        self.planned = 0
        #: Total seconds acquirers waited (a sign the budget, not the exchange, paces).
        self.waited = 0.0
        self.max_wait = 0.0

    def _delay(self, now: float) -> float:
        times = self._times
        while times and now - times[0] >= self.window:
            times.popleft()
        delay = 0.0
        if len(times) >= self.limit:
            delay = times[0] + self.window - now
        if times and self.spacing and len(times) >= self.burst:
            delay = max(delay, times[-1] + self.spacing - now)
        return max(0.0, delay)

    def tighten(self, limit: int, window: float, spacing: float = 0.0) -> None:
        """Another user of this budget states its numbers: keep the strictest (the
        lowest limit, the longest window and spacing), so that the result does not
        depend on which user made the budget."""
        self.limit = min(self.limit, limit)
        self.window = max(self.window, window)
        self.spacing = max(self.spacing, spacing)
        self.burst = min(self.burst, self.limit)
        fixed = self._fixed_reserve
        self.reserve = self.limit // 2 if fixed is None else min(fixed, self.limit - 1)

    def _headroom_delay(self, now: float) -> float:
        """Seconds until the window holds fewer than ``limit - reserve``."""
        self._delay(now)  # prunes
        keep = self.limit - self.reserve
        times = self._times
        if len(times) < keep:
            return 0.0
        return max(0.0, times[len(times) - keep] + self.window - now)

    async def acquire(self, *, planned: bool = False) -> float:
        """Wait for a turn; the seconds waited. ``planned``: first wait, outside the
        queue (an unplanned acquirer never waits behind a planned one), until the
        window has room beyond the reserve."""
        started = self._clock()
        if planned:
            while True:  # the wait is known: no event to wait for
                delay = self._headroom_delay(self._clock())
                if delay <= 0:
                    break
                await asyncio.sleep(delay)
            self.planned += 1
        async with self._lock:  # first come, first served
            while True:  # the wait is known: no event to wait for
                delay = self._delay(self._clock())
                if delay <= 0:
                    break
                await asyncio.sleep(delay)
            self._times.append(self._clock())
        self.acquired += 1
        waited = self._clock() - started
        self.waited += waited
        self.max_wait = max(self.max_wait, waited)
        return waited

    def used(self) -> int:
        """Acquisitions within the current window."""
        self._delay(self._clock())
        return len(self._times)

    def snapshot(self) -> dict[str, float | int]:
        return {"limit": self.limit, "window_s": self.window, "used": self.used(),
                "acquired": self.acquired, "planned": self.planned,
                "waited_s": round(self.waited, 3),
                "max_wait_s": round(self.max_wait, 3)}


def jitter(key: str, period: float, rng: random.Random | None = None) -> float:
    """A first delay in ``[0, period)`` for periodic work keyed by ``key`` (an account's
    name): stable per key, so that many accounts' audits spread over the period instead
    of firing together. With ``rng``: random instead of stable."""
    if period <= 0:
        return 0.0
    if rng is not None:
        return rng.uniform(0, period)
    return (zlib.crc32(key.encode()) % 10_000) / 10_000 * period


def staggered(lifetime: float, key: str, spread: float = 0.25) -> float:
    """A connection lifetime for ``key`` in ``(lifetime * (1 - spread), lifetime]``:
    stable per key, so that the planned reconnects of many accounts that connected
    together are spread over the last ``spread`` of the lifetime instead of falling due
    at once."""
    if lifetime <= 0 or spread <= 0:
        return lifetime
    return lifetime - jitter(key, lifetime * min(spread, 0.9))
