"""Sessions of real feeds against an in-process simulator, over loopback sockets."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

from feedctl import EventKind, PositionEvent, Session
from feedctl.simulator import SimConfig, SimControl, Simulator

#: Fast settings so a test sees failover and failback within seconds.
FAST_HYBRID = {"ping_interval": "1s", "pong_timeout": "1s", "stale_after": "0.6s",
               "backoff_base": "0.05s", "backoff_cap": "0.3s", "audit_interval": "0",
               "request_timeout": "1s"}


def settings_file(folder: Path, text: str = "") -> Path:
    path = folder / "settings.toml"
    path.write_text("[t]\n" + text)
    return path


def overrides(sim: Simulator, *, mode: str, rest_interval: str = "0.5s",
              hybrid: dict[str, Any] | None = None, **extra: Any) -> dict[str, Any]:
    return {
        "mode": mode,
        "account": {"exchange": "bybit", "api_key": sim.api_key, "api_secret": sim.api_secret},
        "endpoints": {"rest": sim.urls["rest"], "public_ws": sim.urls["public_ws"],
                      "private_ws": sim.urls["private_ws"],
                      "public_ws_inverse": sim.urls["public_ws_inverse"]},
        "feeds": {"bybit_hybrid": {"kind": "bybit_hybrid", **FAST_HYBRID, **(hybrid or {})},
                  "rest_polling": {"kind": "rest_polling", "interval": rest_interval}},
        **extra,
    }


@contextlib.asynccontextmanager
async def running(folder: Path, *, symbols: list[str] | None = None, seed: int = 3,
                  demo: bool = False, mode: str = "production", **kw: Any
                  ) -> AsyncIterator[tuple[Simulator, SimControl, Session]]:
    cfg = SimConfig(symbols=symbols or ["BTCUSDT", "ETHUSDT", "SOLUSDT"], seed=seed,
                    demo=demo, demo_interval=0.7)
    async with Simulator(cfg) as sim, SimControl(sim.urls["control"]) as ctl:
        session = Session("t", settings_path=settings_file(folder),
                          overrides=overrides(sim, mode=mode, **kw))
        async with session:
            yield sim, ctl, session


def collector(session: Session) -> tuple[list[Any], asyncio.Task[None]]:
    """Collect every routed event of ``session`` into a list, in a task of its own."""
    out: list[Any] = []
    stream = session.events(name="test")

    async def pump() -> None:
        async for ev in stream:
            out.append(ev)

    return out, asyncio.create_task(pump())


async def wait_for(predicate: Any, timeout: float, step: float = 0.05) -> None:
    async with asyncio.timeout(timeout):
        while not predicate():
            await asyncio.sleep(step)


def lifecycle_is_consistent(events: list[Any]) -> bool:
    """Per position: opened/closed alternate, starting with opened (``past`` events, a
    recovered lifecycle of the past, alternate the same way in a stream of their own)."""
    state: dict[Any, bool] = {}
    for ev in events:
        if not isinstance(ev, PositionEvent) or not ev.kind.is_lifecycle:
            continue
        key = (ev.position.key, ev.past)
        is_open = state.get(key, False)
        if ev.kind is EventKind.OPENED:
            if is_open:
                return False
            state[key] = True
        elif ev.kind is EventKind.CLOSED:
            if not is_open:
                return False
            state[key] = False
        elif not is_open:
            return False
    return True
