"""Helpers for the bybit_hybrid tests: payload loading and a simulator harness.

pytest-asyncio is not used: tests are sync functions calling ``asyncio.run``.
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
import json
import logging
import time
import warnings
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest

from feedctl import (
    AccountSettings,
    Endpoints,
    EventKind,
    FeedContext,
    FeedState,
    PositionBook,
    PositionEvent,
    Side,
    StatusEvent,
)
from feedctl.plugins.bybit_hybrid import HybridFeed, HybridSettings, make_feed

DATA = Path(__file__).resolve().parents[1] / "data" / "bybit"

#: Short intervals so the whole suite stays fast.
FAST = dict(
    ping_interval=0.5, pong_timeout=0.5, stale_after=0.4, audit_interval=0,
    backoff_base=0.02, backoff_cap=0.2, request_timeout=1.0, expires_margin=5,
    max_connection_lifetime=None, mark_linger=0,
)


def payload(name: str) -> Any:
    path = DATA / name
    text = path.read_text()
    return json.loads(text) if path.suffix == ".json" else text


def run(coro: Any, timeout: float = 30.0) -> Any:
    """Run ``coro`` in a fresh loop with a hard timeout; fail on tasks left pending, on
    anything reported to the loop's exception handler (e.g. aiohttp's "Unclosed client
    session") and on ResourceWarnings."""
    reported: list[dict[str, Any]] = []

    async def main() -> Any:
        asyncio.get_running_loop().set_exception_handler(lambda _l, c: reported.append(c))
        result = await asyncio.wait_for(coro, timeout)
        current = asyncio.current_task()
        left = [t for t in asyncio.all_tasks() if t is not current and not t.done()]
        assert not left, f"tasks left pending: {left}"
        return result

    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always", ResourceWarning)
        result = asyncio.run(main())
        gc.collect()
    resource = [w for w in caught if issubclass(w.category, ResourceWarning)]
    assert not resource, [str(w.message) for w in resource]
    assert not reported, [c.get("message") for c in reported]
    return result


async def wait_until(cond: Callable[[], Any], within: float = 5.0, step: float = 0.01) -> Any:
    deadline = time.monotonic() + within
    while True:
        value = cond()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"condition not met within {within}s")
        await asyncio.sleep(step)


@dataclass
class Harness:
    sim: Any
    ctl: Any
    feed: HybridFeed
    ctx: FeedContext
    book: PositionBook
    task: asyncio.Task[None]
    events: list[PositionEvent] = field(default_factory=list)
    statuses: list[StatusEvent] = field(default_factory=list)

    def lifecycle(self, symbol: str | None = None) -> list[PositionEvent]:
        return [e for e in self.events if e.kind.is_lifecycle
                and (symbol is None or e.position.symbol == symbol)]

    def sizes(self, symbol: str | None = None) -> list[tuple[str, str]]:
        """(kind, size) of every lifecycle event."""
        return [(e.kind.value, str(e.position.size)) for e in self.lifecycle(symbol)]

    def kinds(self, symbol: str | None = None) -> list[str]:
        return [e.kind.value for e in self.lifecycle(symbol)]

    def prices(self, symbol: str) -> list[PositionEvent]:
        return [e for e in self.events if e.kind is EventKind.PRICE
                and e.position.symbol == symbol]

    def states(self) -> list[tuple[str, str]]:
        return [(s.status.state.value, s.reason) for s in self.statuses]

    async def healthy(self, within: float = 5.0) -> None:
        await wait_until(lambda: self.ctx.state is FeedState.HEALTHY, within)

    async def settle(self, within: float = 5.0) -> None:
        """Wait until the book matches the simulator's open positions."""

        async def matches() -> bool:
            sim_rows = await self.ctl.positions()
            want = {(r["symbol"], r["side"], Decimal(r["size"])) for r in sim_rows}
            have = {(p.symbol, "Buy" if p.side is Side.LONG else "Sell", p.size)
                    for p in self.book.positions.values()}
            return want == have

        deadline = time.monotonic() + within
        while not await matches():
            if time.monotonic() > deadline:
                raise AssertionError(
                    f"book {self.book.positions} != sim {await self.ctl.positions()}")
            await asyncio.sleep(0.02)


@contextlib.asynccontextmanager
async def harness(
    symbols: list[str] | None = None, *, sim_kwargs: dict[str, Any] | None = None,
    start: bool = True, prepare: Callable[[Any], Awaitable[Any]] | None = None,
    endpoints: dict[str, str] | None = None, **settings: Any,
) -> AsyncIterator[Harness]:
    """A simulator, a book and a running feed; everything is torn down afterwards and
    the test fails if the feed left a task behind."""
    from feedctl.simulator import SimConfig, SimControl, Simulator

    before = set(asyncio.all_tasks())
    cfg = SimConfig(port=0, symbols=symbols or ["BTCUSDT", "ETHUSDT"], seed=1,
                    **(sim_kwargs or {}))
    async with Simulator(cfg) as sim, SimControl(sim.urls["control"]) as ctl:
        sim_tasks = set(asyncio.all_tasks()) - before
        events: list[PositionEvent] = []
        statuses: list[StatusEvent] = []
        book = PositionBook(exchange="bybit", account="main", feed="h", emit=events.append)
        ctx = FeedContext(
            name="h", kind="bybit_hybrid", role=None,
            account=AccountSettings(api_key=settings.pop("api_key", sim.api_key),
                                    api_secret=settings.pop("api_secret", sim.api_secret)),
            endpoints=Endpoints(**{"rest": sim.urls["rest"], "public_ws": sim.urls["public_ws"],
                                   "private_ws": sim.urls["private_ws"],
                                   "public_ws_inverse": sim.urls["public_ws_inverse"],
                                   **(endpoints or {})}),
            book=book, on_status=statuses.append,
        )
        feed = make_feed(ctx, HybridSettings(**{**FAST, **settings}))
        if prepare is not None:
            await prepare(ctl)
        task = asyncio.create_task(feed.run())
        h = Harness(sim, ctl, feed, ctx, book, task, events, statuses)
        try:
            if start:
                await h.healthy()
            yield h
        finally:
            task.cancel()
            done, _ = await asyncio.wait({task}, timeout=5)
            assert done, "the feed did not stop within 5 s of being cancelled"
            if not task.cancelled():
                task.exception()  # retrieved: a fatal error the test already checked
            await asyncio.sleep(0)
            left = [t for t in asyncio.all_tasks() - before - sim_tasks
                    if t is not asyncio.current_task() and not t.done()
                    and not t.get_name().startswith("simulator")]
            # the simulator's server-side request handlers belong to aiohttp.web
            left = [t for t in left
                    if "aiohttp" not in getattr(getattr(t.get_coro(), "cr_code", None),
                                                "co_filename", "")]
            assert not left, f"tasks left behind by the feed: {left}"


class CaptureAll(logging.Handler):
    """Keeps every record at every level, formatted with its extra fields."""

    def __init__(self) -> None:
        super().__init__(logging.DEBUG)
        self.records: list[logging.LogRecord] = []
        self.texts: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.records.append(record)
        text = record.getMessage()
        if record.exc_info:
            text += logging.Formatter().formatException(record.exc_info)
        self.texts.append(f"{text} {record.__dict__!r}")


@pytest.fixture
def capture_all() -> Any:
    root = logging.getLogger()
    handler = CaptureAll()
    old = root.level
    root.addHandler(handler)
    root.setLevel(logging.DEBUG)
    try:
        yield handler
    finally:
        root.removeHandler(handler)
        root.setLevel(old)
