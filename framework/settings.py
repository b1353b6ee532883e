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


#: The design's mode table: role -> feed name.
MODE_PRESETS: dict[Mode, dict[Role, str]] = {
    Mode.REST: {Role.PRIMARY: "rest_polling"},
    Mode.CANARY: {Role.PRIMARY: "rest_polling", Role.SHADOW: "bybit_hybrid"},
    Mode.PARALLEL: {Role.PRIMARY: "bybit_hybrid", Role.SHADOW: "rest_polling"},
    Mode.PRODUCTION: {Role.PRIMARY: "bybit_hybrid", Role.STANDBY: "rest_polling"},
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


_HttpUrl = Annotated[str, _url(("http", "https"))]
_WsUrl = Annotated[str, _url(("ws", "wss"))]


class Endpoints(StrictModel):
    """Where the profile's exchange lives. Feeds read the URLs they need. REST endpoints
    are http(s) URLs, socket endpoints ws(s) URLs, each with a host."""

    rest: _HttpUrl = "https://api.bybit.com"
    public_ws: _WsUrl = "wss://stream.bybit.com/v5/public/linear"
    public_ws_inverse: _WsUrl = "wss://stream.bybit.com/v5/public/inverse"
    private_ws: _WsUrl = "wss://stream.bybit.com/v5/private"


class AccountSettings(StrictModel):
    """The account every feed of a profile watches. Secrets never come from settings.toml."""

    exchange: str = "bybit"
    name: str = "main"
    api_key: SecretStr | None = None
    api_secret: SecretStr | None = None
    #: Some exchanges (okx, kucoin, bitget...) also want a passphrase and/or a uid.
    password: SecretStr | None = None
    uid: str | None = None

    def has_credentials(self) -> bool:
        return bool(
            self.api_key
            and self.api_key.get_secret_value()
            and self.api_secret
            and self.api_secret.get_secret_value()
        )


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
    account: AccountSettings = AccountSettings()
    endpoints: Endpoints = Endpoints()
    feeds: dict[str, FeedEntry] = Field(default_factory=dict)
    router: RouterSettings = RouterSettings()
    delivery: DeliverySettings = DeliverySettings()
    logging: LoggingSettings = LoggingSettings()
    monitor: MonitorSettings = MonitorSettings()
    validation: ValidationSettings = ValidationSettings()
    #: Plugin-owned sections (validated by the plugins' models), by section name.
    plugins: dict[str, Any] = Field(default_factory=dict)

    def roles(self) -> dict[str, Role]:
        """Feed name -> role: explicit roles if any feed sets one, else the mode's preset."""
        explicit = {n: f.role for n, f in self.feeds.items() if f.role is not None and f.enabled}
        if explicit:
            return explicit
        return {name: role for role, name in MODE_PRESETS[self.mode].items()}

    @property
    def explicit_roles(self) -> bool:
        return any(f.role is not None for f in self.feeds.values())
