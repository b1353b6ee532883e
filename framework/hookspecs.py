"""Every hook feedctl calls. Implement them with ``@feedctl.hookimpl``.

Hooks are plain functions. The session and consumer hooks may return an awaitable
instead of their value; the core awaits it (the datasette pattern). The four hooks
called while feedctl is being set up — ``feedctl_feed_kinds``,
``feedctl_settings_sections``, ``feedctl_cli_commands`` and ``feedctl_services`` —
must return plainly (an awaitable is refused with a message naming the plugin).
A consumer or session hook that raises is logged with the plugin's name and the
session goes on; a set-up hook that raises names the plugin and stops the start.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterable
from typing import TYPE_CHECKING, Any

import pluggy

if TYPE_CHECKING:
    import click
    from pydantic import BaseModel

    from .feed import FeedKind, PriorState
    from .models import PositionEvent, RouteEvent, StatusEvent
    from .services import Service
    from .session import Session
    from .settings import ProfileSettings

hookspec = pluggy.HookspecMarker("feedctl")

# --------------------------------------------------------------------- registration


@hookspec
def feedctl_feed_kinds(register: Callable[[FeedKind], None]) -> None:
    """Contribute feed kinds.

    Called once when the plugin manager is built. Call ``register(FeedKind(...))`` for
    each kind the plugin provides. Two plugins registering one kind name is an error
    naming both plugins; a kind whose ``api_version`` differs from
    ``feedctl.API_VERSION`` is refused. Returns nothing.
    """


@hookspec
def feedctl_settings_sections(register: Callable[[str, type[BaseModel]], None]) -> None:
    """Claim top-level settings sections.

    Called once when the plugin manager is built. ``register(name, model)`` claims the
    table ``[<profile>.<name>]``; the core validates it with ``model`` (a pydantic model;
    forbid extra keys) and hands the instance back through
    ``Session.plugin_settings(name)``. Unclaimed unknown sections are an error.
    Returns nothing.
    """


@hookspec
def feedctl_profiles() -> str | os.PathLike[str] | None:
    """Ship built-in profiles: return the path of a TOML file of profile tables (the same
    form as settings.toml), or None.

    Called when a profile is loaded. The files are layered over the core's defaults and
    under the user's settings files, so ``feedctl run --profile <name>`` works from any
    directory and a settings.toml overrides any key. An exchange plugin ships its exchange's
    ``[<profile>.account] exchange = ...`` and ``environment``; the embedded exchange
    ships ``sim``. Two plugins shipping the same profile merge (later plugins win on a key).
    """


@hookspec
def feedctl_cli_commands(cli: click.Group) -> None:
    """Add subcommands to the ``feedctl`` command line.

    Called once when the CLI starts, with the root click group: ``cli.add_command(cmd)``.
    Returns nothing.
    """


# --------------------------------------------------------------------- session


@hookspec
def feedctl_services(settings: ProfileSettings) -> list[Service] | None:
    """Provide services the session must run around its feeds (an embedded exchange...).

    Called once per session, after the profile is validated and before any feed is
    built. Return a list of :class:`feedctl.Service` objects (or None). Each service
    is started in order; ``start()`` may return settings overrides (``account``,
    ``endpoints``) applied before the feeds are built. Services stop in reverse order
    after every feed has stopped.
    """


@hookspec
def feedctl_prior_state(account: str, session: Session) -> PriorState | None:
    """What ``account``'s consumers were last told, as a :class:`feedctl.PriorState`
    (a bus: its snapshot of the account), or None for no opinion.

    Called once per account of a session, after its feeds are built and before they
    start. May return an awaitable (awaited with a 5 s limit). The first answer that is
    not None is handed to the account's feeds (``FeedContext.take_prior``): a feed that
    can replay history recovers what happened since, so that consumers get every
    lifecycle when another process served the account until now. A hook that fails or
    is late is logged and the feeds start from the exchange's current state.
    """


@hookspec
def feedctl_session_started(session: Session) -> Any:
    """The session is running: feeds started, router live.

    Called once per session. ``session`` gives read access to settings, feeds, books,
    router and status. May return an awaitable. Return value ignored.
    """


@hookspec
def feedctl_session_stopping(session: Session) -> Any:
    """The session is about to stop its feeds (shutdown, ``--for`` elapsed, or error).

    Called once per session, before feeds are cancelled. May return an awaitable
    (awaited with a 5 s limit). Return value ignored.
    """


# --------------------------------------------------------------------- consumers


@hookspec
def feedctl_position_event(event: PositionEvent, session: Session) -> Any:
    """A routed position event (``opened``, ``changed``, ``price``, ``closed``).

    Called for every event of the feed currently delivering, in order per position.
    ``session`` is the session the event belongs to (an implementation may leave the
    argument out; several sessions in one process each call with their own): keep
    per-session state keyed by it.
    Each plugin implementing this hook has its own bounded queue and its own task:
    a slow plugin delays only itself; its ``price`` events are coalesced (latest
    wins) when it falls behind, lifecycle events are never dropped or reordered.
    May return an awaitable, awaited before the next event goes to this plugin.
    Return value ignored.
    """


@hookspec
def feedctl_status_event(event: StatusEvent | RouteEvent, session: Session) -> Any:
    """A feed changed state (reconnect, resync done, stale/fresh...) — a
    :class:`StatusEvent` — or the router switched the delivering feed (failover,
    failback) — a :class:`RouteEvent`.

    Called for every feed of the session, whatever its role, through the same
    per-plugin queue as position events (never dropped). May return an awaitable.
    Return value ignored.
    """


@hookspec
def feedctl_signal_event(event: BaseModel, session: Session) -> Any:
    """A consumer plugin derived an event from the position stream (e.g. a trailing
    stop ``activated`` or ``triggered``) and publishes it to the other consumers.

    Called through ``Session.publish(event)`` with a frozen pydantic model that has a
    ``type`` field. Delivered like status events. May return an awaitable.
    """


@hookspec
def feedctl_validation_report(report: BaseModel, session: Session) -> Any:
    """The validator compared a shadow feed with the primary.

    Called about once per second per shadow feed in ``canary`` and ``parallel``
    modes with a ``framework.ValidationReport``. May return an awaitable.
    """


@hookspec
def feedctl_trading_allowed(account: str, session: Session) -> bool | None:
    """Whether ``session`` may take a trading action (place or change an order) on
    ``account`` now: a consumer that trades (the trailing stop) asks right before each
    action, through ``Session.trading_allowed(account)``. The action is refused if any
    implementation answers False (the Redis bus: unless this process holds the
    account's lease); None is no opinion. Must be quick, not async, and do no I/O.
    """


# --------------------------------------------------------------------- monitoring


@hookspec
def feedctl_metrics(session: Session) -> Iterable[Any] | None:
    """The plugin's Prometheus metric families for the monitor's ``/metrics``.

    Called at every scrape, on the event loop: read figures the plugin keeps, never do
    I/O. Return an iterable of ``prometheus_client.metrics_core.Metric``
    (``CounterMetricFamily``, ``GaugeMetricFamily``, ``HistogramMetricFamily``...) or
    None for a session the plugin does nothing for. Name them ``feedctl_<plugin>_...``.
    Must not be async. A plugin that raises is left out of that scrape (logged), the
    other metrics are served.
    """
