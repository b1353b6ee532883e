"""Fixtures of the monitor tests: a session whose position keeps moving, in-process."""

from __future__ import annotations

import asyncio
import contextlib
import os
import socket
import subprocess
import sys
import threading
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import pytest
from pydantic import SecretStr

from feedctl import build_plugin_manager
from feedctl.manager import FeedctlPluginManager
from feedctl.monitor import Monitor
from feedctl.session import Session
from feedctl.settings import MonitorSettings
from tests.core import scripted
from tests.core.conftest import clean_env  # noqa: F401 (a fixture)
from tests.monitor import walkfeed

REPO = Path(__file__).resolve().parents[2]
APP = Path(__file__).with_name("app.py")

WALK_PROFILE = """
[t]
[t.feeds.main]
kind = "walk"
role = "primary"
interval = 0.05
"""


@pytest.fixture
def mpm() -> FeedctlPluginManager:
    """A plugin manager with the scripted and the walk test feed kinds only."""
    return build_plugin_manager([scripted, walkfeed], load_entrypoints=False)


def write_settings(folder: Path, text: str = WALK_PROFILE) -> Path:
    path = folder / "settings.toml"
    path.write_text(text)
    return path


def monitor_settings(token: str | None = None) -> MonitorSettings:
    return MonitorSettings(enabled=True, port=0,
                           token=SecretStr(token) if token is not None else None)


@contextlib.asynccontextmanager
async def running(settings_path: Path, pm: FeedctlPluginManager, *, token: str | None = None,
                  price_interval: float = 0.25) -> AsyncIterator[tuple[Session, Monitor]]:
    """A started session with its monitor, stopped in the order ``feedctl run`` uses."""
    session = Session("t", settings_path=settings_path, plugin_manager=pm)
    await session.start()
    monitor = Monitor(session, monitor_settings(token), price_interval=price_interval)
    try:
        await monitor.start()
        yield session, monitor
    finally:
        await monitor.stop()
        await session.stop()


async def wait_for(predicate: Any, within: float = 5.0) -> None:
    """Poll ``predicate`` (state of a running session) until true; fail after ``within`` s."""
    async with asyncio.timeout(within):
        while not predicate():
            await asyncio.sleep(0.02)


@pytest.fixture
def threaded_monitor(clean_env: Path, mpm: FeedctlPluginManager,  # noqa: F811
                     request: pytest.FixtureRequest) -> Iterator[str]:
    """A session + monitor running in a background thread's event loop; yields its URL.
    For code that must block (click commands, a browser driver)."""
    yield from _threaded(write_settings(clean_env), mpm, getattr(request, "param", None))


@pytest.fixture
def unsynced_monitor(clean_env: Path, mpm: FeedctlPluginManager) -> Iterator[str]:  # noqa: F811
    """Like ``threaded_monitor``, but the feed never gets its snapshot (never synced)."""
    yield from _threaded(write_settings(clean_env, WALK_PROFILE + "sync = false\n"), mpm, None)


@pytest.fixture
def validated_monitor(clean_env: Path, mpm: FeedctlPluginManager) -> Iterator[str]:  # noqa: F811
    """Like ``threaded_monitor``, with a shadow feed the validator compares."""
    yield from _threaded(write_settings(clean_env, WALK_PROFILE + VALIDATED_EXTRA), mpm, None)


#: A shadow walk feed, validated every 50 ms (settled after 200 ms).
VALIDATED_EXTRA = """
[t.feeds.shadow]
kind = "walk"
role = "shadow"
[t.validation]
interval = "50ms"
settle = "200ms"
"""


def _threaded(path: Path, mpm: FeedctlPluginManager, token: str | None) -> Iterator[str]:
    ready: list[str] = []
    started = threading.Event()
    loop = asyncio.new_event_loop()
    stop = asyncio.Event()

    async def serve() -> None:
        async with running(path, mpm, token=token) as (_, monitor):
            ready.append(str(monitor.url))
            started.set()
            await stop.wait()

    thread = threading.Thread(target=lambda: loop.run_until_complete(serve()), daemon=True)
    thread.start()
    assert started.wait(10), "the monitor did not start"
    try:
        yield ready[0]
    finally:
        loop.call_soon_threadsafe(stop.set)
        thread.join(10)
        loop.close()


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def app_env(extra: dict[str, str] | None = None) -> dict[str, str]:
    # COLUMNS/LINES of the test runner (pytest-xdist's workers set 80x24) would override
    # the size of the terminal the app is given
    env = {k: v for k, v in os.environ.items()
           if not k.startswith("FEEDCTL_") and k not in ("COLUMNS", "LINES")}
    env["PYTHONPATH"] = str(REPO)
    env.update(extra or {})
    return env


def start_app(tmp: Path, *args: str, env: dict[str, str] | None = None,
              **popen: Any) -> subprocess.Popen[bytes]:
    return subprocess.Popen([sys.executable, str(APP), "--settings",
                             str(tmp / "settings.toml"), *args], cwd=tmp,
                            env=app_env(env), **popen)
