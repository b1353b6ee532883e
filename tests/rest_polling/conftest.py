"""Helpers for the rest_polling tests: an event-loop runner, a feed harness, a simulator."""

from __future__ import annotations

import asyncio
import contextlib
import gc
import logging
import time
import warnings
from collections.abc import AsyncIterator, Callable, Coroutine, Iterator
from dataclasses import dataclass, field
from typing import Any, TypeVar

import pytest

from feedctl import (
    AccountSettings,
    Endpoints,
    FeedContext,
    FeedState,
    PositionBook,
    PositionEvent,
    StatusEvent,
)
from feedctl.plugins.rest_polling import RestPollingFeed, RestPollingSettings, make_feed
from tests.conftest import run_async

T = TypeVar("T")


def run(coro: Coroutine[Any, Any, T], timeout: float = 30) -> T:
    """Run ``coro`` in a fresh loop; fail on tasks left pending or ResourceWarnings."""
    return run_async(coro, timeout)


@dataclass
class Harness:
    """A feed driven directly: its book, the events and statuses it produced."""

    feed: RestPollingFeed
    ctx: FeedContext
    book: PositionBook
    events: list[PositionEvent] = field(default_factory=list)
    statuses: list[StatusEvent] = field(default_factory=list)
    task: asyncio.Task[None] | None = None

    def kinds(self, symbol: str | None = None) -> list[str]:
        return [e.kind.value for e in self.events
                if symbol is None or e.position.symbol == symbol]

    def lifecycle(self, symbol: str | None = None) -> list[str]:
        return [k for k in self.kinds(symbol) if k != "price"]

    def states(self) -> list[tuple[str, str]]:
        return [(s.status.state.value, s.reason) for s in self.statuses]

    async def wait_for(self, check: Callable[[], object], within: float = 5.0,
                       what: str = "condition") -> float:
        """Wait until ``check()`` is truthy; return the seconds it took."""
        start = time.monotonic()
        while not check():
            if self.task is not None and self.task.done():
                self.task.result()  # raise what ended the feed
                raise AssertionError(f"feed ended before {what}")
            if time.monotonic() - start > within:
                raise AssertionError(
                    f"timed out after {within}s waiting for {what}; states {self.states()}, "
                    f"counters {self.ctx.counters}")
            await asyncio.sleep(0.02)
        return time.monotonic() - start

    async def healthy(self, within: float = 10.0) -> None:
        await self.wait_for(lambda: self.ctx.state is FeedState.HEALTHY, within, "HEALTHY")

    async def stop(self) -> None:
        if self.task is not None and not self.task.done():
            self.task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self.task


def make_harness(*, api_key: str | None = "key", api_secret: str | None = "secret",
                 rest: str = "http://127.0.0.1:9", name: str = "r",
                 **settings: Any) -> Harness:
    events: list[PositionEvent] = []
    statuses: list[StatusEvent] = []
    book = PositionBook(exchange="bybit", account="main", feed=name, emit=events.append)
    ctx = FeedContext(
        name=name, kind="rest_polling", role=None,
        account=AccountSettings(api_key=api_key, api_secret=api_secret),
        endpoints=Endpoints(rest=rest), book=book, on_status=statuses.append,
    )
    feed = make_feed(ctx, RestPollingSettings(**settings))
    assert isinstance(feed, RestPollingFeed)
    return Harness(feed, ctx, book, events, statuses)


@contextlib.asynccontextmanager
async def running(h: Harness) -> AsyncIterator[Harness]:
    """Run the harness's feed as a task; cancel it (and await the cleanup) on exit."""
    h.task = asyncio.create_task(h.feed.run(), name="rest_polling-under-test")
    try:
        yield h
    finally:
        await h.stop()


class _Collect(logging.Handler):
    def __init__(self) -> None:
        super().__init__(logging.WARNING)
        self.messages: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.messages.append(record.getMessage())


_LEAK_WORDS = ("unclosed", "release all resources", "was destroyed but it is pending",
               "never retrieved", "never awaited")


@pytest.fixture
def no_leak_logs() -> Iterator[None]:
    """Fails the test if an unclosed session/connector/client or a lost task is reported
    (ccxt and asyncio log them; aiohttp also warns with ResourceWarning) — after a GC."""
    handler = _Collect()
    root = logging.getLogger()
    root.addHandler(handler)
    try:
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            yield
            gc.collect()
    finally:
        root.removeHandler(handler)
    found = handler.messages + [str(w.message) for w in caught]
    bad = [m for m in found if any(word in m.lower() for word in _LEAK_WORDS)]
    assert not bad, f"resource leaks reported: {bad}"
