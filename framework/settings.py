"""Validated settings of one profile (pydantic models, unknown keys refused).

The raw layers (built-in defaults, settings.toml, .secrets.toml, FEEDCTL_ variables)
are merged by :mod:`feedctl.config`; this module defines what a valid profile is.
"""

from __future__ import annotations

import re
from enum import StrEnum
from typing import Annotated, Any

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, SecretStr, model_validator

_DURATION = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*(ms|s|m|h)?\s*$")
_UNITS = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0, None: 1.0}


def parse_duration(value: Any) -> float:
    """Seconds from ``5``, ``2.5``, ``"500ms"``, ``"10s"``, ``"1m"``, ``"1h"``."""
    if isinstance(value, bool):
        raise ValueError("expected a duration such as 10, '500ms', '10s' or '1m'")
    if isinstance(value, int | float):
        if value < 0:
            raise ValueError("a duration cannot be negative")
        return float(value)
    if isinstance(value, str):
        m = _DURATION.match(value)
        if m:
            return float(m.group(1)) * _UNITS[m.group(2)]
    raise ValueError(f"expected a duration such as 10, '500ms', '10s' or '1m', got {value!r}")


#: Seconds; accepts numbers or strings with a unit (ms, s, m, h).
Duration = Annotated[float, BeforeValidator(parse_duration)]


class StrictModel(BaseModel):
    """Base for every settings model: unknown keys are an error, not silently ignored."""

    model_config = ConfigDict(extra="forbid", frozen=True)


class Mode(StrEnum):
    REST = "rest"
    CANARY = "canary"
    PARALLEL = "parallel"
    PRODUCTION = "production"


class Role(StrEnum):
    PRIMARY = "primary"
    STANDBY = "standby"
    SHADOW = "shadow"


class Rollout(StrEnum):
    """The slot a feed kind fills in the rollout modes of its exchange."""

    #: The streaming feed (private + public sockets): primary in production and parallel.
    LIVE = "live"
    #: The polling fallback: primary in rest and canary, standby in production.
    FALLBACK = "fallback"


#: The design's mode table: role -> the rollout slot that fills it. Which kind fills a
#: slot is resolved per exchange from what the loaded kinds declare (plan.py).
MODE_PRESETS: dict[Mode, dict[Role, Rollout]] = {
    Mode.REST: {Role.PRIMARY: Rollout.FALLBACK},
    Mode.CANARY: {Role.PRIMARY: Rollout.FALLBACK, Role.SHADOW: Rollout.LIVE},
    Mode.PARALLEL: {Role.PRIMARY: Rollout.LIVE, Role.SHADOW: Rollout.FALLBACK},
    Mode.PRODUCTION: {Role.PRIMARY: Rollout.LIVE, Role.STANDBY: Rollout.FALLBACK},
}


def _url(schemes: tuple[str, ...]) -> Any:
    def check(value: Any) -> Any:
        if not isinstance(value, str):
            return value
        from urllib.parse import urlsplit

        try:
            parts = urlsplit(value.strip())
            host = parts.hostname
        except ValueError:
            host = None
            parts = None
        if parts is None or parts.scheme not in schemes or not host:
            raise ValueError(f"expected a {' or '.join(s + '://' for s in schemes)} URL "
                             f"with a host, such as {schemes[-1]}://127.0.0.1:8000")
        return value.strip()
    return BeforeValidator(check)


#: An http(s) URL with a host: use it for a kind's REST endpoint fields.
HttpEndpoint = Annotated[str, _url(("http", "https"))]
#: A ws(s) URL with a host: use it for a kind's socket endpoint fields.
WsEndpoint = Annotated[str, _url(("ws", "wss"))]


class Endpoints(BaseModel):
    """Base of a feed kind's endpoint model (``FeedKind.endpoints_model``): one field per
    URL the kind reads from ``ctx.endpoints``, typed :data:`HttpEndpoint` or
    :data:`WsEndpoint`. Subclasses refuse unknown keys. Used directly (tests, harnesses)
    it holds whatever URLs it is given."""

    model_config = ConfigDict(extra="allow", frozen=True)

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        if "extra" not in cls.__dict__.get("model_config", {}):
            cls.model_config = {**cls.model_config, "extra": "forbid"}


def _digits_as_text(value: Any) -> Any:
    """A key, secret or uid of digits only, read from a variable (whose value is parsed as
    TOML: ``12345`` is a number), is the text it was written as."""
    return str(value) if isinstance(value, int) and not isinstance(value, bool) else value


#: A credential: text, digits read from a variable included.
Credential = Annotated[str, BeforeValidator(_digits_as_text)]
SecretCredential = Annotated[SecretStr, BeforeValidator(_digits_as_text)]


class AccountSettings(StrictModel):
    """The account every feed of a profile watches. Secrets never come from settings.toml."""

    #: The exchange id (ccxt's id where there is one). Every
    #: profile names it; the modes pick the kinds that declare it (``FeedKind.exchange``).
    exchange: str | None = Field(default=None, pattern=r"^[a-z][a-z0-9_]*$")
    name: str = "main"
    api_key: SecretCredential | None = None
    api_secret: SecretCredential | None = None
    #: Some exchanges also want a passphrase (ccxt's ``password``) and/or a ``uid``.
    password: SecretCredential | None = None
    uid: Credential | None = None

    def has_credentials(self) -> bool:
        return bool(
            self.api_key
            and self.api_key.get_secret_value()
            and self.api_secret
            and self.api_secret.get_secret_value()
        )


#: An account's name in ``[<profile>.accounts.<name>]``: it is also a part of the
#: variables that set its keys (FEEDCTL_<PROFILE>__ACCOUNTS__<NAME>__API_KEY), so
#: lower-case letters, digits and single underscores only.
ACCOUNT_NAME = r"^[a-z][a-z0-9]*(_[a-z0-9]+)*$"


class AccountEntry(StrictModel):
    """One account of a profile that serves several (``[<profile>.accounts.<name>]``).

    Unset fields come from the profile: ``exchange`` from ``[<profile>.account]``,
    ``environment`` from the profile's. ``feeds`` holds per-account settings of the
    profile's feeds, by feed name, laid over the profile's ``[<profile>.feeds.<name>]``
    tables (the symbols or settle coins a kind takes, ...). Secrets never come from
    settings.toml: FEEDCTL_<PROFILE>__ACCOUNTS__<NAME>__API_KEY / __API_SECRET, or
    .secrets.toml.
    """

    exchange: str | None = Field(default=None, pattern=r"^[a-z][a-z0-9_]*$")
    environment: str | None = Field(default=None, pattern=r"^[a-z][a-z0-9_-]*$")
    enabled: bool = True
    api_key: SecretCredential | None = None
    api_secret: SecretCredential | None = None
    password: SecretCredential | None = None
    uid: Credential | None = None
    feeds: dict[str, dict[str, Any]] = Field(default_factory=dict)


class RouterSettings(StrictModel):
    #: How long the primary must be unhealthy before the standby delivers.
    failover_after: Duration = 1.0
    #: How long the primary must be healthy again (resynced: a feed reports healthy only
    #: after its snapshot) before it delivers again. Short, so that a brief private-socket
    #: outage costs seconds, not the poller's stale marks for half a minute.
    failback_after: Duration = 3.0
    #: Damping against a flapping primary: a failover within ``flap_window`` of the last
    #: failback doubles the wait before the next failback, up to ``failback_max``; a
    #: primary that then delivers for ``flap_window`` without failing gets the short wait
    #: back.
    failback_max: Duration = 60.0
    flap_window: Duration = 120.0

    @model_validator(mode="after")
    def _ordered(self) -> RouterSettings:
        if self.failback_max < self.failback_after:
            raise ValueError(f"failback_max ({self.failback_max}s) must not be shorter "
                             f"than failback_after ({self.failback_after}s)")
        return self


class DeliverySettings(StrictModel):
    #: Undelivered lifecycle/status events a consumer may hold before it is cut off.
    max_pending: int = Field(default=100_000, ge=100)
    #: A consumer whose oldest pending event is older than this is reported as lagging.
    lag_threshold: Duration = 1.0


class LoggingSettings(StrictModel):
    format: str = Field(default="kv", pattern="^(kv|json)$")
    level: Annotated[str, BeforeValidator(lambda v: v.upper() if isinstance(v, str) else v)
                     ] = Field(default="INFO", pattern="^(DEBUG|INFO|WARNING|ERROR)$")


class MonitorSettings(StrictModel):
    """The read-only monitor server (status API, /metrics, dashboard)."""

    enabled: bool = False
    host: str = "127.0.0.1"
    #: 0 picks a free port (printed in the log at start).
    port: int = Field(default=8765, ge=0, le=65535)
    #: Optional bearer token; from FEEDCTL_<PROFILE>__MONITOR__TOKEN or .secrets.toml.
    token: SecretStr | None = None


class FeedEntry(BaseModel):
    """One feed of a profile: its kind, optional explicit role, and kind-specific settings.

    Everything but ``kind``, ``role`` and ``enabled`` is validated by the kind's own
    settings model.
    """

    model_config = ConfigDict(extra="allow", frozen=True)

    kind: str
    role: Role | None = None
    enabled: bool = True

    def kind_settings(self) -> dict[str, Any]:
        return dict(self.model_extra or {})


class ValidationSettings(StrictModel):
    """Shadow-feed validation (canary and parallel modes)."""

    #: How often the books are compared (and a report is published).
    interval: Duration = 1.0
    #: Rolling window of the agreement figures.
    window: Duration = 300.0
    #: How long a difference may last before it counts as a disagreement: set it to
    #: at least the slower feed's polling interval (REST lags by up to one interval).
    settle: Duration = 12.0


class ProfileSettings(StrictModel):
    """Everything the core needs from one profile."""

    profile: str
    mode: Mode = Mode.PRODUCTION
    #: Which of the kinds' default endpoint sets applies (``FeedKind.default_endpoints``).
    environment: str = Field(default="mainnet", pattern=r"^[a-z][a-z0-9_-]*$")
    account: AccountSettings = AccountSettings()
    #: The accounts of a profile that serves several in one process, by name. Empty: the
    #: profile serves the one ``account``. Given: these are its accounts, and ``account``
    #: only supplies their defaults (its exchange).
    accounts: dict[Annotated[str, Field(pattern=ACCOUNT_NAME)], AccountEntry] = Field(
        default_factory=dict)
    #: URLs that override the kinds' defaults, by endpoint name (each kind takes the names
    #: its ``endpoints_model`` declares; a name no feed of the profile declares is refused).
    endpoints: dict[str, str] = Field(default_factory=dict)
    feeds: dict[str, FeedEntry] = Field(default_factory=dict)
    router: RouterSettings = RouterSettings()
    delivery: DeliverySettings = DeliverySettings()
    logging: LoggingSettings = LoggingSettings()
    monitor: MonitorSettings = MonitorSettings()
    validation: ValidationSettings = ValidationSettings()
    #: Plugin-owned sections (validated by the plugins' models), by section name.
    plugins: dict[str, Any] = Field(default_factory=dict)

    @property
    def explicit_roles(self) -> bool:
        return any(f.role is not None for f in self.feeds.values())
