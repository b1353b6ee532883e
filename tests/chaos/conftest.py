"""Helpers for the reliability tests: the campaign and soak modules (bench/ is not a
package), and a single hybrid feed running against an in-process simulator.

pytest-asyncio is not used: tests are sync functions calling ``tests.conftest.run_async``.
"""

from __future__ import annotations

import asyncio
import contextlib
import importlib.util
import sys
import time
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from pathlib import Path
from types import ModuleType
from typing import Any

from framework import (
    AccountSettings,
    Endpoints,
    FeedContext,
    FeedState,
    PositionBook,
    PositionEvent,
    StatusEvent,
)

ROOT = Path(__file__).resolve().parents[2]

#: Short intervals: reconnects and resyncs within a fraction of a second.
FAST_HYBRID: dict[str, Any] = dict(
    ping_interval=1.0, pong_timeout=1.0, stale_after=1.0, audit_interval=0,
    backoff_base=0.02, backoff_cap=0.2, request_timeout=2.0, expires_margin=5,
    max_connection_lifetime=None,
)


def bench_module(name: str) -> ModuleType:
    """``bench/<name>.py`` as a module (registered once, so dataclasses resolve)."""
    key = f"feedctl_bench_{name}"
    if key in sys.modules:
        return sys.modules[key]
    spec = importlib.util.spec_from_file_location(key, ROOT / "bench" / f"{name}.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[key] = module
    spec.loader.exec_module(module)
    return module


async def wait_until(cond: Callable[[], Any], within: float = 10.0, step: float = 0.02) -> Any:
    deadline = time.monotonic() + within
    while True:
        value = cond()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"condition not met within {within}s")
        await asyncio.sleep(step)


@dataclass
class HybridRun:
    sim: Any
    ctl: Any
    feed: Any
    ctx: FeedContext
    book: PositionBook
    events: list[PositionEvent] = field(default_factory=list)
    statuses: list[StatusEvent] = field(default_factory=list)

    def lifecycle(self, symbol: str) -> list[tuple[str, str]]:
        """(kind, size) of every lifecycle event of ``symbol``."""
        return [(e.kind.value, str(e.position.size)) for e in self.events
                if e.kind.is_lifecycle and e.position.symbol == symbol]

    async def healthy(self, within: float = 10.0) -> None:
        await wait_until(lambda: self.ctx.state is FeedState.HEALTHY, within)


@contextlib.asynccontextmanager
async def hybrid(symbols: list[str] | None = None, **settings: Any
                 ) -> AsyncIterator[HybridRun]:
    """A simulator and one running ``bybit_hybrid`` feed writing into a book."""
    from plugins.bybit_hybrid import HybridSettings, make_feed
    from simulator import SimConfig, SimControl, Simulator

    cfg = SimConfig(symbols=symbols or ["BTCUSDT", "ETHUSDT"], seed=5)
    async with Simulator(cfg) as sim, SimControl(sim.urls["control"]) as ctl:
        events: list[PositionEvent] = []
        statuses: list[StatusEvent] = []
        book = PositionBook(exchange="bybit", account="main", feed="h", emit=events.append)
        ctx = FeedContext(
            name="h", kind="bybit_hybrid", role=None,
            account=AccountSettings(api_key=sim.api_key, api_secret=sim.api_secret),
            endpoints=Endpoints(rest=sim.urls["rest"], public_ws=sim.urls["public_ws"],
                                private_ws=sim.urls["private_ws"]),
            book=book, on_status=statuses.append)
        feed = make_feed(ctx, HybridSettings(**{**FAST_HYBRID, **settings}))
        task = asyncio.create_task(feed.run(), name="hybrid-under-test")
        run = HybridRun(sim, ctl, feed, ctx, book, events, statuses)
        try:
            await run.healthy()
            yield run
        finally:
            task.cancel()
            await asyncio.gather(task, return_exceptions=True)
