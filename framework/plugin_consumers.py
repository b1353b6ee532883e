"""Plugins as consumers: one queue and one task per plugin implementing consumer hooks."""

from __future__ import annotations

import logging
from typing import Any

import pluggy

from .delivery import ConsumerQueue
from .errors import ConsumerOverflowError
from .manager import await_me_maybe, plugin_callers
from .models import PositionEvent, RouteEvent, StatusEvent
from .settings import DeliverySettings

log = logging.getLogger("feedctl.consumers")

CONSUMER_HOOKS = (
    "feedctl_position_event",
    "feedctl_status_event",
    "feedctl_signal_event",
    "feedctl_validation_report",
)


class PluginDispatcher:
    """Delivers queued events to one plugin's consumer hooks, in order."""

    def __init__(self, plugin: str, impls: dict[str, Any], settings: DeliverySettings,
                 session: Any = None) -> None:
        self.plugin = plugin
        #: hook name -> this plugin's own hook caller (pluggy.subset_hook_caller)
        self.impls = impls
        self.session = session
        self.queue = ConsumerQueue(f"plugin:{plugin}", max_pending=settings.max_pending,
                                   lag_threshold=settings.lag_threshold)
        self.errors = 0
        self._was_lagging = False

    @classmethod
    def for_plugins(cls, pm: pluggy.PluginManager, settings: DeliverySettings,
                    session: Any = None) -> list[PluginDispatcher]:
        """One dispatcher per plugin. Each plugin's implementation is called on its own
        (its own queue and task, so a slow plugin delays only itself), with the
        arguments of the spec it declares, as pluggy itself would pass them."""
        by_plugin: dict[str, dict[str, Any]] = {}
        for hook in CONSUMER_HOOKS:
            for plugin, caller in plugin_callers(pm, hook):
                by_plugin.setdefault(plugin, {})[hook] = caller
        return [cls(name, impls, settings, session) for name, impls in sorted(by_plugin.items())]

    def hook_for(self, event: Any) -> str:
        if isinstance(event, PositionEvent):
            return "feedctl_position_event"
        if isinstance(event, StatusEvent | RouteEvent):
            return "feedctl_status_event"
        if getattr(event, "type", None) == "validation":
            return "feedctl_validation_report"
        return "feedctl_signal_event"

    async def run(self) -> None:
        while True:
            try:
                event = await self.queue.get()
            except ConsumerOverflowError as exc:
                log.error("%s", exc, extra={"plugin": self.plugin})
                return
            if event is None:
                return
            hook = self.hook_for(event)
            caller = self.impls.get(hook)
            if caller is None:
                continue
            arg = "report" if hook == "feedctl_validation_report" else "event"
            try:
                for result in caller(**{arg: event, "session": self.session}):
                    await await_me_maybe(result)
            except Exception:
                self.errors += 1
                log.exception("plugin %r raised in %s; the session goes on", self.plugin, hook,
                              extra={"plugin": self.plugin, "hook": hook})

    def check_lag(self) -> None:
        lagging = self.queue.lagging
        if lagging and not self._was_lagging:
            log.warning("consumer %s is falling behind: %s", self.plugin, self.queue.stats(),
                        extra={"plugin": self.plugin})
        self._was_lagging = lagging
