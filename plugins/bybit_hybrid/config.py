"""Settings of the ``bybit_hybrid`` feed kind (table ``[<profile>.feeds.<name>]``).

Every duration accepts a number of seconds or a string with a unit (``"500ms"``,
``"20s"``, ``"1h"``). Unknown keys are refused.
"""

from __future__ import annotations

from pydantic import Field, field_validator, model_validator

from feedctl import Category, Duration, StrictModel

from .constants import (
    DEFAULT_TOPICS_PER_REQUEST,
    MAX_ACTIVE_TIME_RANGE_S,
    MAX_ARGS_CHARS_PER_CONNECTION,
    PING_INTERVAL_S,
)


class HybridSettings(StrictModel):
    """Tuning of the hybrid feed; the defaults follow Bybit's recommendations."""

    #: JSON ``{"op":"ping"}`` period on both sockets (Bybit recommends 20 s).
    ping_interval: Duration = PING_INTERVAL_S
    #: A socket whose pong is this late is dead and is reconnected.
    pong_timeout: Duration = 10.0
    #: A subscribed ticker silent this long is stale (linear tickers come every 100 ms):
    #: resubscribe, then reconnect the public socket if it stays stale.
    stale_after: Duration = 2.0
    #: While a symbol's ticker is stale (or the public socket down), its mark is read
    #: from REST (/v5/market/tickers) this often; 0 turns it off.
    stale_mark_interval: Duration = 1.0
    #: At most this many stale symbols are read per interval (REST rate limits).
    stale_mark_max: int = Field(10, ge=1)
    #: A symbol no longer watched (its position closed) stays subscribed this long: a
    #: reopen soon after - or a position a resync opens while the public socket is down
    #: - starts from a fresh mark, not the one the book had when it stopped watching it.
    #: 0 unsubscribes at once.
    mark_linger: Duration = 30.0
    #: A data frame the exchange created (its ``creationTime``/``ts``, server clock)
    #: this long after a ping that is still unanswered proves the pong was lost - and
    #: with it whatever was sent meanwhile: the socket is treated as lost *before* that
    #: frame is applied, so the gap replay can put the lost states back in order. Must
    #: cover one-way latency plus the clock-offset error; None disables.
    pong_overdue_after: Duration | None = 1.0
    #: Planned reconnect (make-before-break) after this connection age; None disables.
    max_connection_lifetime: Duration | None = 3600.0
    #: Bybit's ``max_active_time`` for the private socket (30 s .. 600 s); None = Bybit's
    #: default (10 minutes without ping-pong or data).
    private_max_active_time: Duration | None = None
    #: WS auth ``expires`` = clock-skew-corrected now + this margin.
    expires_margin: Duration = 10.0
    #: REST ``X-BAPI-RECV-WINDOW`` in milliseconds.
    recv_window: int = Field(5000, ge=100, le=60_000)
    #: Period of the REST audit comparing the book with /v5/position/list; 0 disables.
    audit_interval: Duration = 60.0
    #: Reconnect backoff: full jitter in [0, min(cap, base * 2**attempt)].
    backoff_base: Duration = 0.5
    backoff_cap: Duration = 30.0
    #: A connection that lived this long resets the backoff.
    backoff_reset_after: Duration = 30.0
    #: Settle coins whose linear positions the REST snapshot lists.
    settle_coins: list[str] = Field(default_factory=lambda: ["USDT"], min_length=1)
    #: Categories the REST snapshot covers (inverse positions also need ``inverse``).
    categories: list[Category] = Field(default_factory=lambda: [Category.LINEAR], min_length=1)
    #: Topics per subscribe/unsubscribe request.
    max_topics_per_request: int = Field(DEFAULT_TOPICS_PER_REQUEST, ge=1, le=1000)
    #: Total characters of subscription args on one public connection.
    max_args_chars: int = Field(MAX_ARGS_CHARS_PER_CONNECTION, ge=100, le=21_000)
    #: One set of public ticker sockets per (category, URL) for every account of the
    #: session, subscriptions counted by symbol and sharded past ``max_args_chars``
    #: (public_hub.py); false: this feed opens its own.
    share_public: bool = True
    #: New sockets (public and private) this process opens per exchange host within
    #: ``connection_window``: shared by every account (Bybit allows 500 per 5 minutes
    #: per IP), at least ``connection_spacing`` apart (a mass reconnect is staggered).
    #: Planned reconnects (``max_connection_lifetime``) fall due at a per-socket offset
    #: within the lifetime's last quarter and use only the budget's first half: the
    #: other half stays for sockets that dropped. Accounts stating different numbers
    #: for one host share the strictest.
    connections_per_window: int = Field(400, ge=1, le=500)
    connection_window: Duration = 300.0
    connection_spacing: Duration = 0.02
    #: REST requests per host within ``rest_window``, shared by every account (Bybit
    #: allows 600 per 5 s per IP; an HTTP 403 ban of minutes follows an excess), spaced
    #: evenly over the window: requests admitted together can reach the exchange
    #: bunched (a busy loop sends late), so the margin is wide.
    rest_per_window: int = Field(400, ge=1, le=600)
    rest_window: Duration = 5.0
    #: Signed REST requests per API key (Bybit: per UID) and endpoint in any rolling
    #: second, shared by the feeds of one key: Bybit allows 50/s for /v5/position/list
    #: and /v5/execution/list (its rate-limit table) and answers an excess 10006.
    #: Spaced evenly once a quarter of it is used.
    uid_requests_per_second: int = Field(40, ge=1, le=1000)
    #: Time to wait for an auth/subscribe answer, a WS handshake or a REST answer.
    request_timeout: Duration = 10.0
    #: After HTTP 403 (Bybit's IP ban: "terminate all HTTP sessions and wait for at least
    #: 10 minutes") no REST request is sent for this long; the sockets go on.
    ip_ban_pause: Duration = 600.0
    #: REST attempts for one call before the feed gives up and reconnects.
    rest_attempts: int = Field(5, ge=1, le=50)
    #: After a private gap, replay fills (/v5/execution/list) so that a position opened
    #: and closed inside the gap still yields its ``opened`` and ``closed`` events.
    replay_gaps: bool = True
    #: Consecutive rejected WS auths (with a fresh clock measurement between them)
    #: before the feed fails for good.
    max_auth_failures: int = Field(3, ge=1, le=20)

    @field_validator("settle_coins")
    @classmethod
    def _upper(cls, value: list[str]) -> list[str]:
        return [v.strip().upper() for v in value if v.strip()]

    @field_validator("private_max_active_time")
    @classmethod
    def _active_time(cls, value: float | None) -> float | None:
        lo, hi = MAX_ACTIVE_TIME_RANGE_S
        if value is not None and not lo <= value <= hi:
            raise ValueError(f"private_max_active_time must be between {lo}s and {hi}s")
        return value

    @model_validator(mode="after")
    def _check(self) -> HybridSettings:
        for name in ("ping_interval", "pong_timeout", "stale_after", "expires_margin",
                     "backoff_base", "request_timeout"):
            if getattr(self, name) <= 0:
                raise ValueError(f"{name} must be greater than 0")
        if self.pong_overdue_after is not None and self.pong_overdue_after <= 0:
            raise ValueError("pong_overdue_after must be greater than 0 (or unset)")
        if self.backoff_cap < self.backoff_base:
            raise ValueError("backoff_cap must be at least backoff_base")
        if self.max_connection_lifetime is not None and self.max_connection_lifetime < 1:
            raise ValueError("max_connection_lifetime must be at least 1s (or unset)")
        return self

    @property
    def max_active_time_param(self) -> str | None:
        """The ``max_active_time`` query value, e.g. ``"120s"``."""
        if self.private_max_active_time is None:
            return None
        return f"{int(self.private_max_active_time)}s"
