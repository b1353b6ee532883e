"""The core calls hooks through pluggy's machinery (a subset hook caller per plugin), so
pluggy's documented rules hold for feedctl's hooks: one test per rule."""

from __future__ import annotations

from collections.abc import Callable, Generator
from typing import Any

import pluggy
import pytest

from feedctl import FeedKind, build_plugin_manager, hookimpl
from feedctl.manager import collect_registry, plugin_callers
from feedctl.testing.fake_exchange import FakeFeed

pytestmark = pytest.mark.unit


def kind(name: str) -> FeedKind:
    return FeedKind(name=name, factory=FakeFeed, requires_credentials=False)


def manager(**plugins: object) -> Any:
    pm = build_plugin_manager(load_entrypoints=False)
    for name, plugin in plugins.items():
        pm.register(plugin, name=name)
    return pm


def test_tryfirst_and_trylast_order_the_calls_as_pluggy_does() -> None:
    calls: list[str] = []

    class Last:
        @hookimpl(trylast=True)
        def feedctl_feed_kinds(self, register: Callable[[Any], None]) -> None:
            calls.append("trylast")

    class First:
        @hookimpl(tryfirst=True)
        def feedctl_feed_kinds(self, register: Callable[[Any], None]) -> None:
            calls.append("tryfirst")

    class Plain:
        @hookimpl
        def feedctl_feed_kinds(self, register: Callable[[Any], None]) -> None:
            calls.append("plain")

    pm = manager(first=First(), plain=Plain(), last=Last())  # registered in this order
    collect_registry(pm)
    assert calls == ["tryfirst", "plain", "trylast"]


def test_a_wrapper_implementation_runs() -> None:
    """A ``wrapper=True`` implementation is called (it used to be skipped). Each plugin
    is called on its own, so a wrapper wraps its own plugin's call (docs/plugins.md)."""
    calls: list[str] = []

    class Wrapper:
        @hookimpl(wrapper=True)
        def feedctl_feed_kinds(self, register: Callable[[Any], None]
                               ) -> Generator[None, Any, Any]:
            calls.append("before")
            result = yield
            calls.append("after")
            return result

    class Registers:
        @hookimpl
        def feedctl_feed_kinds(self, register: Callable[[Any], None]) -> None:
            calls.append("register")
            register(kind("wrapped_kind"))

    reg = collect_registry(manager(wrapper=Wrapper(), registers=Registers()))
    assert calls.count("before") == calls.count("after") == 1 and "register" in calls
    assert calls.index("before") < calls.index("after")
    assert "wrapped_kind" in reg.kinds


def test_an_implementation_may_take_fewer_arguments_than_the_spec() -> None:
    seen: list[str] = []

    class Lean:  # feedctl_position_event(event, session): this one takes neither
        @hookimpl
        def feedctl_position_event(self) -> None:
            seen.append("called")

    pm = manager(lean=Lean())
    ((name, caller),) = plugin_callers(pm, "feedctl_position_event")
    caller(event=object(), session=object())
    assert name == "lean" and seen == ["called"]


def test_pluggy_tracing_records_the_calls() -> None:
    class Registers:
        @hookimpl
        def feedctl_feed_kinds(self, register: Callable[[Any], None]) -> None:
            register(kind("traced"))

    pm = manager(traced=Registers())
    lines: list[str] = []
    pm.trace.root.setwriter(lines.append)
    undo = pm.enable_tracing()
    try:
        collect_registry(pm)
    finally:
        undo()
    assert any("feedctl_feed_kinds" in line for line in lines), lines
    assert isinstance(pm, pluggy.PluginManager)
