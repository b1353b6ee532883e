"""feedctl's public API. Plugins import from here, never from private modules.

Feed plugin authors need: :data:`hookimpl`, :class:`FeedKind`, :class:`Feed`,
:class:`FeedContext`, the models (:class:`PositionUpdate`, :class:`MarkPrice`, ...),
:class:`FeedState`, the errors, :class:`Backoff` and :class:`StrictModel`/:data:`Duration`
for settings. Library users need :class:`Session`, or :class:`RemoteSession`
to read a Session's events from Redis Streams anywhere (docs/redis.md).

The names load on first use (PEP 562), so ``import feedctl`` and ``feedctl --version``
stay fast; ``from feedctl import X`` works as usual.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

from ._version import API_VERSION, __version__

if TYPE_CHECKING:
    from .backoff import (
        Backoff,
    )
    from .book import (
        PositionBook,
        unrealised_pnl,
    )
    from .budget import (
        RollingBudget,
        jitter,
        staggered,
    )
    from .config import (
        env_var_name,
    )
    from .errors import (
        ConfigError,
        ConsumerOverflowError,
        FatalFeedError,
        FeedctlError,
        FeedError,
        PluginConflictError,
        PluginError,
        RetryableFeedError,
    )
    from .feed import (
        Feed,
        FeedContext,
        FeedKind,
        NoSettings,
        PriorState,
    )
    from .logs import (
        configure_logging,
        redact,
        register_secret,
    )
    from .manager import (
        await_me_maybe,
        build_plugin_manager,
        hookimpl,
    )
    from .models import (
        Category,
        Event,
        EventKind,
        FeedState,
        FeedStatus,
        Instrument,
        MarkPrice,
        Position,
        PositionEvent,
        PositionKey,
        PositionUpdate,
        RouteEvent,
        Side,
        StatusEvent,
        now_ns,
        wire_decimal,
    )
    from .remote import (
        BusKeys,
        GapEvent,
        RemoteSession,
    )
    from .services import (
        Service,
    )
    from .session import (
        EventStream,
        Session,
    )
    from .settings import (
        AccountSettings,
        Duration,
        Endpoints,
        HttpEndpoint,
        Mode,
        ProfileSettings,
        Role,
        Rollout,
        StrictModel,
        WsEndpoint,
    )
    from .validator import (
        ValidationReport,
    )

#: Public name -> the module that defines it.
_WHERE: dict[str, str] = {
    "AccountSettings": ".settings",
    "Backoff": ".backoff",
    "BusKeys": ".remote",
    "Category": ".models",
    "ConfigError": ".errors",
    "ConsumerOverflowError": ".errors",
    "Duration": ".settings",
    "Endpoints": ".settings",
    "Event": ".models",
    "EventKind": ".models",
    "EventStream": ".session",
    "FatalFeedError": ".errors",
    "Feed": ".feed",
    "FeedContext": ".feed",
    "PriorState": ".feed",
    "FeedError": ".errors",
    "FeedKind": ".feed",
    "FeedState": ".models",
    "FeedStatus": ".models",
    "FeedctlError": ".errors",
    "GapEvent": ".remote",
    "HttpEndpoint": ".settings",
    "Instrument": ".models",
    "MarkPrice": ".models",
    "Mode": ".settings",
    "NoSettings": ".feed",
    "PluginConflictError": ".errors",
    "PluginError": ".errors",
    "Position": ".models",
    "PositionBook": ".book",
    "PositionEvent": ".models",
    "PositionKey": ".models",
    "PositionUpdate": ".models",
    "ProfileSettings": ".settings",
    "RemoteSession": ".remote",
    "RetryableFeedError": ".errors",
    "RollingBudget": ".budget",
    "Role": ".settings",
    "Rollout": ".settings",
    "RouteEvent": ".models",
    "Service": ".services",
    "Session": ".session",
    "Side": ".models",
    "StatusEvent": ".models",
    "StrictModel": ".settings",
    "ValidationReport": ".validator",
    "WsEndpoint": ".settings",
    "await_me_maybe": ".manager",
    "build_plugin_manager": ".manager",
    "env_var_name": ".config",
    "hookimpl": ".manager",
    "jitter": ".budget",
    "now_ns": ".models",
    "configure_logging": ".logs",
    "redact": ".logs",
    "register_secret": ".logs",
    "staggered": ".budget",
    "unrealised_pnl": ".book",
    "wire_decimal": ".models",
}



def __getattr__(name: str) -> Any:
    where = _WHERE.get(name)
    if where is None:
        raise AttributeError(f"module 'feedctl' has no attribute {name!r}")
    value = getattr(importlib.import_module(where, __name__), name)
    globals()[name] = value  # loaded once
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(_WHERE))


__all__ = [
    "API_VERSION",
    "AccountSettings",
    "Backoff",
    "BusKeys",
    "Category",
    "ConfigError",
    "ConsumerOverflowError",
    "Duration",
    "Endpoints",
    "Event",
    "EventKind",
    "EventStream",
    "FatalFeedError",
    "Feed",
    "FeedContext",
    "FeedError",
    "FeedKind",
    "FeedState",
    "FeedStatus",
    "FeedctlError",
    "GapEvent",
    "HttpEndpoint",
    "Instrument",
    "MarkPrice",
    "Mode",
    "NoSettings",
    "PluginConflictError",
    "PluginError",
    "Position",
    "PositionBook",
    "PositionEvent",
    "PositionKey",
    "PositionUpdate",
    "PriorState",
    "ProfileSettings",
    "RemoteSession",
    "RetryableFeedError",
    "Role",
    "RollingBudget",
    "Rollout",
    "RouteEvent",
    "Service",
    "Session",
    "Side",
    "StatusEvent",
    "StrictModel",
    "ValidationReport",
    "WsEndpoint",
    "__version__",
    "await_me_maybe",
    "build_plugin_manager",
    "configure_logging",
    "env_var_name",
    "hookimpl",
    "jitter",
    "now_ns",
    "redact",
    "register_secret",
    "staggered",
    "unrealised_pnl",
    "wire_decimal",
]
