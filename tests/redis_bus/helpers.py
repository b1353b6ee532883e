"""Sessions that publish to a test's redis-server, and readers of what they published."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

from feedctl import GapEvent, PositionEvent, RemoteSession, Session
from feedctl.simulator import SimControl, Simulator
from tests.rollout.conftest import running, wait_for

#: A short lease (a takeover within seconds), long enough that a loaded machine's
#: event-loop stalls do not lose it.
FAST_BUS = {"lease_ttl": "3s", "timeout": "0.5s"}


def bus(url: str, **extra: Any) -> dict[str, Any]:
    return {"url": url, **FAST_BUS, **extra}


@contextlib.asynccontextmanager
async def publishing(folder: Path, url: str, **bus_extra: Any
                     ) -> AsyncIterator[tuple[Simulator, SimControl, Session]]:
    async with running(folder, mode="production", redis_bus=bus(url, **bus_extra)) as (
            sim, ctl, session):
        await wait_until_published(session)
        yield sim, ctl, session


def publisher(session: Session) -> Any:
    from feedctl.plugins.redis_bus.plugin import plugin

    return plugin.sessions[id(session)].publisher


async def wait_until_published(session: Session, timeout: float = 10) -> None:
    """Until the session's publisher has resynced its account and has nothing waiting."""
    pub = publisher(session)
    await wait_for(lambda: all(not b.dirty and not b.items for b in pub.boxes.values()),
                   timeout)


class Reader:
    """Collects a remote stream's events (and where each came from) in a task."""

    def __init__(self, rs: RemoteSession) -> None:
        self.stream = rs.events()
        self.events: list[Any] = []
        self.metas: list[Any] = []
        self.task = asyncio.create_task(self._pump())

    async def _pump(self) -> None:
        async for ev in self.stream:
            self.events.append(ev)
            self.metas.append(self.stream.meta)

    async def close(self) -> None:
        self.task.cancel()
        try:
            async with asyncio.timeout(10):
                await asyncio.gather(self.task, return_exceptions=True)
        except TimeoutError:
            raise AssertionError("a remote reader did not stop within 10 s of its "
                                 "cancellation") from None

    def lifecycle(self) -> list[PositionEvent]:
        return [e for e in self.events if isinstance(e, PositionEvent) and e.kind.is_lifecycle]

    def ids(self) -> list[str]:
        return [m.event_id for e, m in zip(self.events, self.metas, strict=True)
                if m.event_id is not None and isinstance(e, PositionEvent)]

    def gaps(self) -> list[GapEvent]:
        return [e for e in self.events if isinstance(e, GapEvent)]


def replay(events: list[Any]) -> dict[tuple[str, Any], str]:
    """Positions by (account, key) after applying ``events`` as a consumer keeping
    positions by key does (a gap resets the account: a fresh snapshot follows)."""
    state: dict[tuple[str, Any], str] = {}
    for ev in events:
        if isinstance(ev, GapEvent):
            for k in [k for k in state if k[0] == ev.account]:
                del state[k]
        if not isinstance(ev, PositionEvent) or not ev.kind.is_lifecycle or ev.past:
            continue
        k = (ev.position.account, ev.position.key)
        if ev.kind.value == "closed":
            state.pop(k, None)
        else:
            state[k] = position_state(ev.position)
    return state


def position_state(pos: Any) -> str:
    from feedctl.plugins.redis_bus.outbox import signature

    return signature(pos)


def book_state(session: Session) -> dict[tuple[str, Any], str]:
    assert session.router is not None
    return {(p.account, k): position_state(p) for k, p in session.router.delivered.items()}


async def trade(ctl: SimControl, rounds: int, pause: float = 0.05) -> None:
    """Open, change and close positions on three symbols, quickly."""
    symbols = ["BTCUSDT", "ETHUSDT", "SOLUSDT"]
    for i in range(rounds):
        sym = symbols[i % 3]
        step = (i // 3) % 3
        if step == 0:
            await ctl.set_position(sym, "Buy", "0.5")
        elif step == 1:
            await ctl.set_position(sym, "Buy", "0.7")
        else:
            await ctl.close_position(sym)
        await asyncio.sleep(pause)
