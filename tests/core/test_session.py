"""Session: routed events to library and plugin consumers, failures contained, clean stop."""

from __future__ import annotations

import asyncio
import logging
from pathlib import Path
from typing import Any

import pytest

from feedctl import (
    EventKind,
    FatalFeedError,
    Feed,
    FeedKind,
    PositionEvent,
    StatusEvent,
    hookimpl,
)
from feedctl.manager import FeedctlPluginManager
from feedctl.session import Session
from tests.conftest import run_async
from tests.core.conftest import SCRIPTED_PROFILE

pytestmark = pytest.mark.unit


def settings(folder: Path, extra: str = "") -> Path:
    path = folder / "settings.toml"
    path.write_text(SCRIPTED_PROFILE + extra)
    return path


async def collect_until_closed(session: Session) -> list[Any]:
    out: list[Any] = []
    async for ev in session.events():
        out.append(ev)
        if isinstance(ev, PositionEvent) and ev.kind is EventKind.CLOSED:
            return out
    return out


def test_library_iterator_gets_the_routed_lifecycle(
    clean_env: Path, pm: FeedctlPluginManager
) -> None:
    async def main() -> list[Any]:
        async with Session("t", settings_path=settings(clean_env), plugin_manager=pm) as s:
            return await asyncio.wait_for(collect_until_closed(s), 5)

    events = run_async(main())
    kinds = [e.kind.value for e in events if isinstance(e, PositionEvent)]
    assert kinds == ["opened", "price", "price", "changed", "closed"]
    assert any(isinstance(e, StatusEvent) and e.status.state == "healthy" for e in events)


class Recorder:
    """A consumer plugin: records events; optionally slow or failing."""

    def __init__(self, delay: float = 0.0, fail: bool = False) -> None:
        self.events: list[Any] = []
        self.delay, self.fail = delay, fail
        self.started = False

    @hookimpl
    def feedctl_session_started(self, session: Session) -> None:
        self.started = True

    @hookimpl
    async def feedctl_position_event(self, event: PositionEvent) -> None:
        if self.fail:
            raise RuntimeError("consumer bug")
        await asyncio.sleep(self.delay)
        self.events.append(event)


def test_plugin_consumers_receive_events_and_a_raising_one_does_not_stop_the_session(
    clean_env: Path, pm: FeedctlPluginManager, caplog: pytest.LogCaptureFixture
) -> None:
    good, bad = Recorder(), Recorder(fail=True)
    pm.register(good, name="good")
    pm.register(bad, name="bad")

    async def main() -> None:
        async with Session("t", settings_path=settings(clean_env), plugin_manager=pm) as s:
            await asyncio.wait_for(collect_until_closed(s), 5)
            for _ in range(50):
                if len(good.events) == 5:
                    break
                await asyncio.sleep(0.01)

    with caplog.at_level(logging.ERROR, logger="feedctl"):
        run_async(main())
    assert good.started
    assert good.events[0].kind is EventKind.OPENED and len(good.events) == 5
    assert "plugin 'bad' raised in feedctl_position_event" in caplog.text


def test_a_slow_plugin_consumer_gets_coalesced_prices_and_every_lifecycle_event(
    clean_env: Path, pm: FeedctlPluginManager
) -> None:
    slow = Recorder(delay=0.2)
    pm.register(slow, name="slow")

    async def main() -> None:
        async with Session("t", settings_path=settings(clean_env, "interval = 0.001\n"),
                           plugin_manager=pm) as s:
            await asyncio.wait_for(collect_until_closed(s), 5)
            await asyncio.sleep(1.2)

    run_async(main())
    kinds = [e.kind.value for e in slow.events]
    assert kinds.count("opened") == 1 and kinds.count("closed") == 1 and "changed" in kinds
    assert kinds.count("price") < 2  # the two prices were coalesced while it slept


class FailingFeed(Feed):
    async def run(self) -> None:
        raise FatalFeedError("exchange rejected the API key: set FEEDCTL_T__ACCOUNT__API_KEY")


@hookimpl
def feedctl_feed_kinds(register: Any) -> None:
    register(FeedKind("failing", FailingFeed, requires_credentials=False))


def test_fatal_failure_of_every_delivering_feed_ends_the_session_with_the_error(
    clean_env: Path, pm: FeedctlPluginManager
) -> None:
    import sys

    pm.register(sys.modules[__name__], name="failing-plugin")
    path = clean_env / "settings.toml"
    path.write_text("[t.account]\nexchange='x'\n[t.feeds.x]\nkind='failing'\nrole='primary'\n")

    async def main() -> None:
        async with Session("t", settings_path=path, plugin_manager=pm) as s:
            await asyncio.wait_for(s.wait(), 5)

    with pytest.raises(FatalFeedError, match="FEEDCTL_T__ACCOUNT__API_KEY"):
        run_async(main())


def test_status_reports_feeds_router_and_consumers(
    clean_env: Path, pm: FeedctlPluginManager
) -> None:
    async def main() -> dict[str, Any]:
        async with Session("t", settings_path=settings(clean_env), plugin_manager=pm) as s:
            await asyncio.wait_for(collect_until_closed(s), 5)
            return s.status()

    st = run_async(main())
    assert st["feeds"]["main"]["state"] == "healthy"
    assert st["feeds"]["main"]["role"] == "primary"
    assert st["router"]["active"] == "main"
    assert st["feeds"]["main"]["counters"]["updates"] == 3
