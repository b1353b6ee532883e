"""Throttled problem reports: every problem is counted, logged at most once per second
per counter (the number suppressed meanwhile is logged with the next one)."""

from __future__ import annotations

import time

from feedctl import FeedContext

from .parse import Problem


class Reporter:
    def __init__(self, ctx: FeedContext, interval: float = 1.0) -> None:
        self._ctx, self._interval = ctx, interval
        self._last: dict[str, float] = {}
        self._suppressed: dict[str, int] = {}

    def __call__(self, problem: Problem, where: str) -> None:
        key = problem.counter
        self._ctx.count(key)
        now = time.monotonic()
        if now - self._last.get(key, -1e9) < self._interval:
            self._suppressed[key] = self._suppressed.get(key, 0) + 1
            return
        self._last[key] = now
        more = self._suppressed.pop(key, 0)
        tail = f" ({more} more since the last report)" if more else ""
        self._ctx.log.warning("%s: %s%s", where, problem.detail, tail,
                              extra={"problem": key, "socket": where})
