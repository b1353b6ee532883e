"""Small helpers shared by the streams: throttled problem reports, request batching."""

from __future__ import annotations

import time
from collections.abc import Iterable, Iterator

from feedctl import FeedContext

from .parse import Problem


class Reporter:
    """Counts every problem and logs it, at most once per second per counter, so a
    flood of bad frames cannot flood the log (the suppressed number is logged too)."""

    def __init__(self, ctx: FeedContext, interval: float = 1.0) -> None:
        self._ctx = ctx
        self._interval = interval
        self._last: dict[str, float] = {}
        self._suppressed: dict[str, int] = {}

    def __call__(self, problem: Problem, where: str) -> None:
        self._ctx.count(problem.counter)
        now = time.monotonic()
        key = problem.counter
        if now - self._last.get(key, -1e9) < self._interval:
            self._suppressed[key] = self._suppressed.get(key, 0) + 1
            return
        self._last[key] = now
        suppressed = self._suppressed.pop(key, 0)
        more = f" ({suppressed} more since the last report)" if suppressed else ""
        self._ctx.log.warning(
            "%s: %s%s", where, problem.detail, more,
            extra={"problem": problem.counter, "socket": where},
        )


def batches(
    topics: Iterable[str], per_request: int, max_chars: int | None = None
) -> Iterator[list[str]]:
    """Split topics into requests of at most ``per_request`` args (and, when given,
    ``max_chars`` characters of args per request)."""
    batch: list[str] = []
    chars = 0
    for topic in topics:
        if batch and (
            len(batch) >= per_request or (max_chars is not None and chars + len(topic) > max_chars)
        ):
            yield batch
            batch, chars = [], 0
        batch.append(topic)
        chars += len(topic)
    if batch:
        yield batch
