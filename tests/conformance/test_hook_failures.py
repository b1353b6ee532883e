"""Hooks that raise while a session runs are logged with the plugin's name and the
session goes on; a feed factory that misbehaves is named when the session starts."""

from __future__ import annotations

import asyncio
import logging
import re
from pathlib import Path
from typing import Any, Literal

import pytest
from pydantic import BaseModel

from feedctl import (
    EventKind,
    FeedKind,
    PluginError,
    PositionEvent,
    Session,
    build_plugin_manager,
    hookimpl,
)
from feedctl.manager import FeedctlPluginManager
from feedctl.plan import build_plan
from tests.conftest import run_async
from tests.core import scripted

pytestmark = pytest.mark.unit

PROFILE = "[t.feeds.main]\nkind = 'scripted'\nrole = 'primary'\n"
SHADOWED = PROFILE + ("[t.feeds.other]\nkind = 'scripted'\nrole = 'shadow'\n"
                      "[t.validation]\ninterval = '100ms'\n")


class Signal(BaseModel):
    type: Literal["signal"] = "signal"
    name: str = "test"


class Broken:
    """Raises in every session and consumer hook; counts the calls."""

    def __init__(self) -> None:
        self.calls: dict[str, int] = {}

    def _boom(self, hook: str) -> None:
        self.calls[hook] = self.calls.get(hook, 0) + 1
        raise RuntimeError(f"bug in {hook}")

    @hookimpl
    def feedctl_session_started(self, session: Any) -> None:
        self._boom("feedctl_session_started")

    @hookimpl
    async def feedctl_session_stopping(self, session: Any) -> None:
        self._boom("feedctl_session_stopping")

    @hookimpl
    def feedctl_position_event(self, event: Any) -> None:
        self._boom("feedctl_position_event")

    @hookimpl
    async def feedctl_status_event(self, event: Any) -> None:
        self._boom("feedctl_status_event")

    @hookimpl
    def feedctl_signal_event(self, event: Any) -> None:
        self._boom("feedctl_signal_event")

    @hookimpl
    def feedctl_validation_report(self, report: Any) -> None:
        self._boom("feedctl_validation_report")


class Good:
    def __init__(self) -> None:
        self.kinds: list[str] = []

    @hookimpl
    def feedctl_position_event(self, event: PositionEvent) -> None:
        self.kinds.append(event.kind.value)


def manager(**plugins: object) -> FeedctlPluginManager:
    pm = build_plugin_manager([scripted], load_entrypoints=False)
    for name, plugin in plugins.items():
        pm.register(plugin, name=name)
    return pm


def run_session(folder: Path, pm: FeedctlPluginManager, profile: str = PROFILE,
                until: Any = None) -> None:
    path = folder / "settings.toml"
    path.write_text(profile)

    async def main() -> None:
        async with Session("t", settings_path=path, plugin_manager=pm) as session:
            session.publish(Signal())
            async with asyncio.timeout(10):
                async for ev in session.events():
                    if isinstance(ev, PositionEvent) and ev.kind is EventKind.CLOSED:
                        break
                while until is not None and not until():
                    await asyncio.sleep(0.02)

    run_async(main())


def test_session_and_consumer_hooks_raising_are_logged_and_the_session_goes_on(
        isolated: Path, caplog: pytest.LogCaptureFixture) -> None:
    broken, good = Broken(), Good()
    pm = manager(broken=broken, good=good)
    with caplog.at_level(logging.ERROR, logger="feedctl"):
        run_session(isolated, pm, until=lambda: len(good.kinds) == 5)
    assert good.kinds == ["opened", "price", "price", "changed", "closed"]
    for hook in ("feedctl_session_started", "feedctl_session_stopping"):
        assert f"plugin 'broken' failed in {hook}" in caplog.text
        assert broken.calls[hook] == 1
    for hook in ("feedctl_position_event", "feedctl_status_event", "feedctl_signal_event"):
        assert f"plugin 'broken' raised in {hook}; the session goes on" in caplog.text
        assert broken.calls[hook] >= 1
    assert f"RuntimeError: bug in {hook}" in caplog.text  # with its traceback


def test_validation_report_hook_raising_is_logged_and_the_session_goes_on(
        isolated: Path, caplog: pytest.LogCaptureFixture) -> None:
    broken = Broken()
    pm = manager(broken=broken)
    with caplog.at_level(logging.ERROR, logger="feedctl"):
        run_session(isolated, pm, SHADOWED,
                    until=lambda: broken.calls.get("feedctl_validation_report", 0) >= 2)
    assert ("plugin 'broken' raised in feedctl_validation_report; the session goes on"
            in caplog.text)


# --------------------------------------------------------------------- feed factories
def kind_plugin(factory: Any) -> object:
    class Plugin:
        @hookimpl
        def feedctl_feed_kinds(self, register: Any) -> None:
            register(FeedKind(name="odd", factory=factory, requires_credentials=False))

    return Plugin()


ODD = "[t.account]\nexchange = 'x'\n[t.feeds.main]\nkind = 'odd'\nrole = 'primary'\n"


def start(folder: Path, pm: FeedctlPluginManager) -> None:
    path = folder / "settings.toml"
    path.write_text(ODD)

    async def main() -> None:
        async with Session("t", settings_path=path, plugin_manager=pm):
            pass

    run_async(main())


def test_a_factory_returning_something_else_than_a_feed_is_named(isolated: Path) -> None:
    pm = manager(oddities=kind_plugin(lambda ctx, settings: {"not": "a feed"}))
    with pytest.raises(PluginError) as err:
        start(isolated, pm)
    assert str(err.value) == (
        "plugin 'oddities': factory of feed kind 'odd' returned dict, not a feedctl.Feed")


def test_a_factory_returning_something_else_is_a_plugin_error(isolated: Path) -> None:
    pm = manager(oddities=kind_plugin(lambda ctx, settings: 42))
    with pytest.raises(PluginError, match=re.escape(
            "plugin 'oddities': factory of feed kind 'odd' returned int, not a feedctl.Feed")):
        start(isolated, pm)


def test_a_factory_raising_names_the_plugin(isolated: Path) -> None:
    def factory(ctx: Any, settings: Any) -> Any:
        raise RuntimeError("cannot build")

    with pytest.raises(PluginError, match=re.escape(
            "plugin 'oddities': factory of feed kind 'odd' failed: RuntimeError: cannot build")):
        start(isolated, manager(oddities=kind_plugin(factory)))


# --------------------------------------------------------------------- services
class Services:
    def __init__(self, result: Any = None, error: Exception | None = None) -> None:
        self.result, self.error = result, error

    @hookimpl
    def feedctl_services(self, settings: Any) -> Any:
        if self.error is not None:
            raise self.error
        return self.result


def test_services_hook_returning_a_non_service_is_named(isolated: Path) -> None:
    (isolated / "settings.toml").write_text(PROFILE)
    pm = manager(svc=Services(result=[42]))
    with pytest.raises(PluginError) as err:
        build_plan("t", settings_path=isolated / "settings.toml", pm=pm)
    assert str(err.value) == (
        "plugin 'svc' returned 42 from feedctl_services, which is not a feedctl.Service")


def test_an_async_services_hook_is_refused_with_the_plugin_named(isolated: Path) -> None:
    class AsyncServices:
        @hookimpl
        async def feedctl_services(self, settings: Any) -> Any:
            return []

    (isolated / "settings.toml").write_text(PROFILE)
    with pytest.raises(PluginError, match=re.escape(
            "plugin 'svc': feedctl_services must not be async")):
        build_plan("t", settings_path=isolated / "settings.toml",
                   pm=manager(svc=AsyncServices()))


def test_services_hook_raising_names_the_plugin(isolated: Path) -> None:
    (isolated / "settings.toml").write_text(PROFILE)
    pm = manager(svc=Services(error=RuntimeError("no exchange")))
    with pytest.raises(PluginError, match=re.escape(
            "plugin 'svc' failed in feedctl_services: RuntimeError: no exchange")):
        build_plan("t", settings_path=isolated / "settings.toml", pm=pm)
