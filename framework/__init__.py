"""feedctl's public API. Plugins import from here, never from private modules.

Feed plugin authors need: :data:`hookimpl`, :class:`FeedKind`, :class:`Feed`,
:class:`FeedContext`, the models (:class:`PositionUpdate`, :class:`MarkPrice`, ...),
:class:`FeedState`, the errors, :class:`Backoff` and :class:`StrictModel`/:data:`Duration`
for settings. Library users need :class:`Session`.
"""

from ._version import API_VERSION, __version__
from .backoff import Backoff
from .book import PositionBook, unrealised_pnl
from .budget import RollingBudget, jitter
from .config import env_var_name
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
from .feed import Feed, FeedContext, FeedKind, NoSettings
from .logs import redact
from .manager import await_me_maybe, build_plugin_manager, hookimpl
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
from .services import Service
from .session import EventStream, Session
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
from .validator import ValidationReport

__all__ = [
    "API_VERSION",
    "AccountSettings",
    "Backoff",
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
    "ProfileSettings",
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
    "env_var_name",
    "hookimpl",
    "jitter",
    "now_ns",
    "redact",
    "unrealised_pnl",
    "wire_decimal",
]
