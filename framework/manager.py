"""The plugin manager: built in a factory, never at import time.

``build_plugin_manager()`` adds the hook specs, registers any plugins passed in,
loads the ``feedctl`` entry-point group (built-in plugins come through it exactly
like third-party ones), then checks pending hooks. A plugin that fails to import is
recorded as a named load error and skipped, not a crash.

Switches: ``FEEDCTL_DISABLE_PLUGIN_AUTOLOAD=1`` loads no entry points;
``FEEDCTL_LOAD_PLUGINS=a,b`` loads only the named entry points.
"""

from __future__ import annotations

import inspect
import logging
import os
import re
from collections.abc import Iterable
from dataclasses import dataclass, field
from importlib.metadata import entry_points
from pathlib import Path
from typing import Any

import pluggy
from pydantic import BaseModel

from . import hookspecs
from ._version import API_VERSION
from .errors import PluginConflictError, PluginError
from .feed import FeedKind

log = logging.getLogger("feedctl.plugins")

hookimpl = pluggy.HookimplMarker("feedctl")
ENTRY_POINT_GROUP = "feedctl"


async def await_me_maybe(value: Any) -> Any:
    """Await ``value`` if it is awaitable; return it otherwise."""
    if inspect.isawaitable(value):
        return await value
    return value


@dataclass
class PluginLoadError:
    name: str
    source: str
    error: str


@dataclass
class PluginInfo:
    name: str
    source: str
    hooks: list[str]
    version: str | None = None


@dataclass
class Registry:
    """What the loaded plugins contributed, with the contributing plugin's name."""

    kinds: dict[str, tuple[FeedKind, str]] = field(default_factory=dict)
    sections: dict[str, tuple[type[BaseModel], str]] = field(default_factory=dict)

    def kind(self, name: str) -> FeedKind | None:
        entry = self.kinds.get(name)
        return entry[0] if entry else None


class FeedctlPluginManager(pluggy.PluginManager):
    """pluggy's manager plus where each plugin came from and what failed to load."""

    def __init__(self) -> None:
        super().__init__("feedctl")
        self.sources: dict[str, str] = {}
        self.versions: dict[str, str] = {}
        self.load_errors: list[PluginLoadError] = []

    def plugins_info(self) -> list[PluginInfo]:
        out = []
        for name, plugin in sorted(self.list_name_plugin(), key=lambda np: np[0]):
            if plugin is None:
                continue
            hooks = sorted(h.name for h in (self.get_hookcallers(plugin) or []))
            out.append(PluginInfo(name, self.sources.get(name, "registered in code"), hooks,
                                  self.versions.get(name)))
        return out


def build_plugin_manager(
    plugins: Iterable[object] = (), *, load_entrypoints: bool = True
) -> FeedctlPluginManager:
    """Build a plugin manager: hook specs, ``plugins``, then the entry-point group."""
    pm = FeedctlPluginManager()
    pm.add_hookspecs(hookspecs)
    for plugin in plugins:
        name = getattr(plugin, "__name__", None) or type(plugin).__name__
        pm.register(plugin, name=name)
        pm.sources[name] = "registered in code"
    if load_entrypoints and os.environ.get("FEEDCTL_DISABLE_PLUGIN_AUTOLOAD", "") in ("", "0"):
        _load_entrypoints(pm)
    pm.check_pending()
    return pm


def _load_entrypoints(pm: FeedctlPluginManager) -> None:
    allow = os.environ.get("FEEDCTL_LOAD_PLUGINS")
    allowed = {a.strip() for a in allow.split(",") if a.strip()} if allow else None
    for ep in entry_points(group=ENTRY_POINT_GROUP):
        if allowed is not None and ep.name not in allowed:
            continue
        if pm.get_plugin(ep.name) is not None or pm.is_blocked(ep.name):
            continue
        dist = getattr(ep, "dist", None)
        source = f"{dist.name} {dist.version} (entry point {ep.value})" if dist else ep.value
        try:
            plugin = ep.load()
            pm.register(plugin, name=ep.name)
        except Exception as exc:  # a broken plugin must not take feedctl down
            pm.load_errors.append(PluginLoadError(ep.name, source, f"{type(exc).__name__}: {exc}"))
            log.warning("plugin %r failed to load and was skipped: %s: %s", ep.name,
                        type(exc).__name__, exc, extra={"plugin": ep.name})
            log.debug("traceback of plugin %r", ep.name, exc_info=True)
            continue
        pm.sources[ep.name] = source
        if dist is not None:
            pm.versions[ep.name] = dist.version


_NAME = re.compile(r"[a-z][a-z0-9_]*")


def plugin_callers(pm: pluggy.PluginManager, hook: str) -> list[tuple[str, Any]]:
    """Per plugin implementing ``hook``, in the order pluggy calls them, a hook caller of
    that plugin alone (``subset_hook_caller``): each plugin's failure is its own, and
    pluggy's rules hold — tryfirst/trylast, wrappers, implementations that take fewer
    arguments than the spec, tracing. Call it with keyword arguments; it returns the
    plugin's results (a list)."""
    caller = getattr(pm.hook, hook)
    impls = caller.get_hookimpls()
    plugins = {impl.plugin_name: impl.plugin for impl in impls}
    order: list[str] = []
    for impl in reversed(impls):  # pluggy calls the last registered (tryfirst) first
        if impl.plugin_name not in order:
            order.append(impl.plugin_name)
    return [(name, pm.subset_hook_caller(hook, remove_plugins=[
        p for n, p in plugins.items() if n != name])) for name in order]


def _core_sections() -> set[str]:
    from .settings import ProfileSettings  # the core's own top-level settings

    return set(ProfileSettings.model_fields)


def profile_files(pm: pluggy.PluginManager) -> list[Path]:
    """The profile files the plugins ship (``feedctl_profiles``), lowest precedence first:
    on a key two files set, the plugin pluggy calls first wins."""
    files: list[Path] = []
    for plugin, caller in plugin_callers(pm, "feedctl_profiles"):
        for result in call_plain(caller, plugin, "feedctl_profiles", what="feedctl_profiles"):
            if result is None:
                continue
            path = Path(result)
            if not path.is_file():
                raise PluginError(f"plugin {plugin!r} ships profiles in {str(path)!r}, which "
                                  "is not a file; reinstall the plugin", plugin=plugin)
            files.append(path)
    return files[::-1]


def _check_declaration(kind: FeedKind, plugin: str) -> None:
    """A kind's exchange, rollout slot and endpoints, checked when it registers."""
    from pydantic import ValidationError

    from .settings import Endpoints, Rollout

    where = f"plugin {plugin!r} registered feed kind {kind.name!r}"
    if kind.exchange is not None and kind.exchange != "*" and not _NAME.fullmatch(kind.exchange):
        raise PluginError(f"{where} for exchange {kind.exchange!r}: an exchange id is a "
                          "lower-case identifier (ccxt's id where there is one), or '*'",
                          plugin=plugin)
    if kind.rollout is not None and not isinstance(kind.rollout, Rollout):
        raise PluginError(f"{where} with rollout {kind.rollout!r}: use feedctl.Rollout.LIVE, "
                          "Rollout.FALLBACK or None", plugin=plugin)
    if kind.rollout is not None and kind.exchange is None:
        raise PluginError(f"{where} with a rollout slot but no exchange: set "
                          "FeedKind(exchange=...) so the modes know which profiles it serves",
                          plugin=plugin)
    model = kind.endpoints_model
    if not (isinstance(model, type) and issubclass(model, Endpoints)):
        raise PluginError(f"{where} with endpoints_model {model!r}, which is not a subclass "
                          "of feedctl.Endpoints", plugin=plugin)
    for env, urls in kind.default_endpoints.items():
        try:
            model.model_validate(dict(urls))
        except ValidationError as exc:
            first = exc.errors()[0]
            raise PluginError(
                f"{where} with default endpoints for {env!r} that its endpoints_model "
                f"refuses: {'.'.join(str(p) for p in first['loc'])}: {first['msg']}",
                plugin=plugin) from None


def collect_registry(pm: pluggy.PluginManager) -> Registry:
    """Call the registration hooks plugin by plugin, checking names and API versions."""
    reg = Registry()
    for plugin, caller in plugin_callers(pm, "feedctl_feed_kinds"):

        def register_kind(kind: FeedKind, _plugin: str = plugin) -> None:
            if not isinstance(kind, FeedKind):
                raise PluginError(
                    f"plugin {_plugin!r} registered {kind!r}, which is not a feedctl.FeedKind",
                    plugin=_plugin,
                )
            if kind.api_version != API_VERSION:
                raise PluginError(
                    f"plugin {_plugin!r} provides feed kind {kind.name!r} for plugin API "
                    f"version {kind.api_version}, but this feedctl has API version "
                    f"{API_VERSION}; install a version of the plugin built for it",
                    plugin=_plugin,
                )
            if not _NAME.fullmatch(kind.name):
                raise PluginError(
                    f"plugin {_plugin!r} registered feed kind {kind.name!r}: a kind's name is "
                    "a lower-case identifier (letters, digits, _; a letter first), as written "
                    "in feeds.<name>.kind", plugin=_plugin)
            _check_declaration(kind, _plugin)
            if kind.name in reg.kinds:
                other = reg.kinds[kind.name][1]
                raise PluginConflictError(
                    f"feed kind {kind.name!r} is provided by two plugins: {other!r} and "
                    f"{_plugin!r}; uninstall or disable one (FEEDCTL_LOAD_PLUGINS)",
                    plugin=_plugin,
                )
            reg.kinds[kind.name] = (kind, _plugin)

        call_plain(caller, plugin, "feedctl_feed_kinds", register=register_kind)

    for plugin, caller in plugin_callers(pm, "feedctl_settings_sections"):

        def register_section(name: str, model: type[BaseModel], _plugin: str = plugin) -> None:
            if not (isinstance(model, type) and issubclass(model, BaseModel)):
                raise PluginError(
                    f"plugin {_plugin!r} registered settings section {name!r} with {model!r}, "
                    "which is not a pydantic model class",
                    plugin=_plugin,
                )
            if not isinstance(name, str) or not _NAME.fullmatch(name):
                raise PluginError(
                    f"plugin {_plugin!r} registered settings section {name!r}: a section's "
                    "name is a lower-case identifier (letters, digits, _; a letter first)",
                    plugin=_plugin)
            if name in _core_sections():
                raise PluginConflictError(
                    f"plugin {_plugin!r} claims the settings section {name!r}, which is the "
                    "core's own setting; a plugin's section needs a name of its own",
                    plugin=_plugin)
            if name in reg.sections:
                other = reg.sections[name][1]
                raise PluginConflictError(
                    f"settings section {name!r} is claimed by two plugins: {other!r} and "
                    f"{_plugin!r}",
                    plugin=_plugin,
                )
            reg.sections[name] = (model, _plugin)

        call_plain(caller, plugin, "feedctl_settings_sections", register=register_section)
    return reg


def call_plain(caller: Any, plugin: str, hook: str, *, what: str = "registration hooks",
               **kwargs: Any) -> list[Any]:
    """One plugin's results of a hook that must not be async; its failure (or an
    awaitable, which is closed) is a PluginError naming the plugin."""
    try:
        results: list[Any] = caller(**kwargs)
    except PluginError:
        raise
    except Exception as exc:
        raise PluginError(
            f"plugin {plugin!r} failed in {hook}: {type(exc).__name__}: {exc}",
            plugin=plugin,
        ) from exc
    for result in results:
        if inspect.isawaitable(result):
            close = getattr(result, "close", None)
            if close is not None:
                close()
            raise PluginError(f"plugin {plugin!r}: {what} must not be async", plugin=plugin)
    return results
