"""Plugins that misbehave at registration get one clear error naming the plugin(s).

Registration hooks run when the plugin manager's registry is collected (``feedctl
plugins``, ``feedctl check``, ``feedctl run``, ``Session``): their failures stop the start.
"""

from __future__ import annotations

from collections.abc import Callable
from importlib.metadata import EntryPoint
from typing import Any

import pytest
from click.testing import CliRunner
from pydantic import BaseModel

from feedctl import (
    API_VERSION,
    FeedKind,
    NoSettings,
    PluginConflictError,
    PluginError,
    build_plugin_manager,
    hookimpl,
)
from feedctl import cli as cli_module
from feedctl.manager import FeedctlPluginManager, collect_registry
from feedctl.testing.fake_exchange import FakeFeed

pytestmark = pytest.mark.unit


def manager(**plugins: object) -> FeedctlPluginManager:
    pm = build_plugin_manager(load_entrypoints=False)
    for name, plugin in plugins.items():
        pm.register(plugin, name=name)
    return pm


def kind(name: str = "k", **fields: Any) -> FeedKind:
    return FeedKind(name=name, factory=FakeFeed, requires_credentials=False, **fields)


class Registers:
    """A plugin whose feedctl_feed_kinds registers ``things`` (or raises ``error``)."""

    def __init__(self, *things: Any, error: Exception | None = None) -> None:
        self.things, self.error = things, error

    @hookimpl
    def feedctl_feed_kinds(self, register: Callable[[Any], None]) -> None:
        if self.error is not None:
            raise self.error
        for thing in self.things:
            register(thing)


class Sections:
    def __init__(self, model: Any = NoSettings, error: Exception | None = None,
                 name: str = "extra") -> None:
        self.model, self.error, self.name = model, error, name

    @hookimpl
    def feedctl_settings_sections(self, register: Callable[[str, Any], None]) -> None:
        if self.error is not None:
            raise self.error
        register(self.name, self.model)


def test_feed_kinds_hook_raising_names_the_plugin() -> None:
    pm = manager(broken=Registers(error=RuntimeError("boom")))
    with pytest.raises(PluginError) as err:
        collect_registry(pm)
    assert str(err.value) == "plugin 'broken' failed in feedctl_feed_kinds: RuntimeError: boom"
    assert err.value.plugin == "broken"


def test_settings_sections_hook_raising_names_the_plugin() -> None:
    pm = manager(broken=Sections(error=ValueError("nope")))
    with pytest.raises(PluginError) as err:
        collect_registry(pm)
    assert str(err.value) == (
        "plugin 'broken' failed in feedctl_settings_sections: ValueError: nope")


def test_registering_something_that_is_not_a_feed_kind() -> None:
    pm = manager(broken=Registers({"name": "k"}))
    with pytest.raises(PluginError) as err:
        collect_registry(pm)
    assert str(err.value) == (
        "plugin 'broken' registered {'name': 'k'}, which is not a feedctl.FeedKind")


def test_registering_a_section_that_is_not_a_model() -> None:
    pm = manager(broken=Sections(model=dict))
    with pytest.raises(PluginError) as err:
        collect_registry(pm)
    assert str(err.value) == ("plugin 'broken' registered settings section 'extra' with "
                              "<class 'dict'>, which is not a pydantic model class")


def test_two_plugins_claiming_one_feed_kind_are_both_named() -> None:
    pm = manager(first=Registers(kind("dup")), second=Registers(kind("dup")))
    with pytest.raises(PluginConflictError) as err:
        collect_registry(pm)
    # in pluggy's calling order (the last registered first): the one already holding
    # the name, then the other
    assert str(err.value) == (
        "feed kind 'dup' is provided by two plugins: 'second' and 'first'; uninstall or "
        "disable one (FEEDCTL_LOAD_PLUGINS)")


def test_two_plugins_claiming_one_settings_section_are_both_named() -> None:
    class Model(BaseModel):
        pass

    pm = manager(first=Sections(Model), second=Sections(Model))
    with pytest.raises(PluginConflictError) as err:
        collect_registry(pm)
    assert str(err.value) == (
        "settings section 'extra' is claimed by two plugins: 'second' and 'first'")


def test_a_kind_built_for_another_api_version_is_refused() -> None:
    pm = manager(future=Registers(kind("k", api_version=API_VERSION + 1)))
    with pytest.raises(PluginError) as err:
        collect_registry(pm)
    assert str(err.value) == (
        f"plugin 'future' provides feed kind 'k' for plugin API version {API_VERSION + 1}, "
        f"but this feedctl has API version {API_VERSION}; install a version of the plugin "
        "built for it")


def test_an_async_registration_hook_is_refused() -> None:
    class Async:
        @hookimpl
        async def feedctl_feed_kinds(self, register: Callable[[Any], None]) -> None:
            register(kind())

    with pytest.raises(PluginError) as err:
        collect_registry(manager(asyncplugin=Async()))
    assert str(err.value) == "plugin 'asyncplugin': registration hooks must not be async"


def test_a_plugin_that_fails_to_import_is_skipped_with_a_named_warning(
        monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture) -> None:
    ghost = EntryPoint("ghost", "feedctl_no_such_module_xyz.plugin", "feedctl")
    monkeypatch.setattr("feedctl.manager.entry_points", lambda group: [ghost])
    monkeypatch.delenv("FEEDCTL_DISABLE_PLUGIN_AUTOLOAD", raising=False)
    monkeypatch.delenv("FEEDCTL_LOAD_PLUGINS", raising=False)
    with caplog.at_level("WARNING", logger="feedctl.plugins"):
        pm = build_plugin_manager()
    assert pm.get_plugin("ghost") is None
    assert [e.name for e in pm.load_errors] == ["ghost"]
    assert ("plugin 'ghost' failed to load and was skipped: ModuleNotFoundError: No module "
            "named 'feedctl_no_such_module_xyz'") in caplog.text


# --------------------------------------------------------------------- on the CLI
def run_cli(monkeypatch: pytest.MonkeyPatch, pm: FeedctlPluginManager, *args: str) -> Any:
    monkeypatch.setattr(cli_module, "_pm", pm)
    return CliRunner().invoke(cli_module.cli, list(args))


def test_feedctl_plugins_shows_a_conflict_as_one_error_line(
        monkeypatch: pytest.MonkeyPatch) -> None:
    pm = manager(first=Registers(kind("dup")), second=Registers(kind("dup")))
    out = run_cli(monkeypatch, pm, "plugins")
    assert out.exit_code == 2
    assert out.output.strip() == (
        "ERROR: feed kind 'dup' is provided by two plugins: 'second' and 'first'; uninstall "
        "or disable one (FEEDCTL_LOAD_PLUGINS)")


def test_feedctl_plugins_lists_what_failed_to_load(monkeypatch: pytest.MonkeyPatch) -> None:
    pm = manager(fine=Registers(kind("fine")))
    from feedctl.manager import PluginLoadError

    pm.load_errors.append(PluginLoadError("ghost", "feedctl-ghost 1.0 (entry point g.p)",
                                          "ImportError: nope"))
    out = run_cli(monkeypatch, pm, "plugins", "--no-hooks")
    assert out.exit_code == 0, out.output
    assert "fine  [registered in code]\n    feed kinds: fine\n" in out.output
    assert ("ghost  [feedctl-ghost 1.0 (entry point g.p)]  FAILED TO LOAD: ImportError: nope"
            in out.output)


def test_cli_commands_hook_raising_is_a_warning_and_the_cli_survives(
        monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    class BadCommands:
        @hookimpl
        def feedctl_cli_commands(self, cli: Any) -> None:
            raise RuntimeError("no commands today")

    pm = manager(broken=BadCommands())
    monkeypatch.setattr(cli_module, "_pm", pm)
    cli_module._load_plugin_commands()
    assert capsys.readouterr().err == (
        "warning: plugin 'broken' failed to add commands: no commands today\n")
    out = CliRunner().invoke(cli_module.cli, ["--version"])
    assert out.exit_code == 0 and f"plugin API {API_VERSION}" in out.output


def test_a_plugin_command_cannot_replace_a_built_in_command(
        monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    """`check` is looked up without loading the plugins' commands: a plugin's `check`
    would replace it or not depending on the command line, so it is refused, named."""
    import click

    class Shadows:
        @hookimpl
        def feedctl_cli_commands(self, cli: Any) -> None:
            cli.add_command(click.Command("check", callback=lambda: None))

    pm = manager(shadow=Shadows())
    builtin = cli_module.cli.commands["check"]
    monkeypatch.setattr(cli_module, "_pm", pm)
    cli_module._load_plugin_commands()
    assert cli_module.cli.commands["check"] is builtin
    assert capsys.readouterr().err == ("warning: plugin 'shadow' cannot replace the built-in "
                                       "command 'check'; the built-in is kept\n")


def test_a_plugin_claiming_a_core_setting_is_refused_naming_it() -> None:
    pm = manager(greedy=Sections(name="router"))
    with pytest.raises(PluginConflictError, match=r"plugin 'greedy' claims the settings "
                                                   r"section 'router', which is the core's"):
        collect_registry(pm)


@pytest.mark.parametrize("bad", ["not an identifier!", "Upper", "1st", ""])
def test_a_kind_whose_name_is_no_identifier_is_refused_naming_the_plugin(bad: str) -> None:
    pm = manager(odd=Registers(kind(bad)))
    with pytest.raises(PluginError, match=r"plugin 'odd' registered feed kind .*lower-case "
                                          r"identifier"):
        collect_registry(pm)


def test_a_section_whose_name_is_no_identifier_is_refused_naming_the_plugin() -> None:
    pm = manager(odd=Sections(name="my section"))
    with pytest.raises(PluginError, match=r"plugin 'odd' registered settings section"):
        collect_registry(pm)
