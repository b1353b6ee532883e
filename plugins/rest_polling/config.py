"""Settings of a ``rest_polling`` feed: the ``[<profile>.feeds.<name>]`` table."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import Field, field_validator, model_validator

from feedctl import Duration, Endpoints, HttpEndpoint, StrictModel

MarkSource = Literal["auto", "positions", "mark_prices", "tickers"]


class RestPollingEndpoints(Endpoints):
    """The one URL the poller may take from ``[<profile>.endpoints]``: ``rest``, the
    exchange's REST origin (scheme, host, port). Unset: ccxt's own URLs."""

    rest: HttpEndpoint | None = None


class RestPollingSettings(StrictModel):
    """Poll positions and mark prices of one account through a ccxt exchange."""

    #: ccxt exchange id (``bybit``, ``okx``...); default: the profile's ``account.exchange``.
    exchange: str | None = None
    #: Time between the starts of two polls (a poll that overruns starts the next at once).
    interval: Duration = 10.0
    #: Native symbols (``BTCUSDT``) to watch; default: every position of the account.
    symbols: list[str] | None = None
    #: Bybit: settle coins whose positions are listed (USDT/USDC linear, others inverse).
    settle_coins: list[str] = Field(default_factory=lambda: ["USDT"])
    #: Overrides of ``exchange.urls["api"]`` by key; ``"*"`` sets every REST key. Default:
    #: the profile's ``endpoints.rest``, when set, replaces the scheme and host of every
    #: REST key (their paths stay); else ccxt's own URLs (its sandbox on testnet).
    urls: dict[str, str] | None = None
    #: Merged (deeply) into the ccxt exchange's ``options``.
    ccxt_options: dict[str, Any] = Field(default_factory=dict)
    #: Where mark prices come from; ``auto`` picks the cheapest (see docs/rest_polling.md).
    mark_price_source: MarkSource = "auto"
    #: Per-request timeout.
    timeout: Duration = 10.0
    #: Retry delay after a failed poll: full jitter in [0, min(cap, base * 2**n)].
    backoff_base: Duration = 0.5
    backoff_cap: Duration = 30.0
    #: After this many failed polls in a row the HTTP session is dropped and reopened.
    reconnect_after: int = Field(default=3, ge=1)
    #: A rate-limit answer doubles the interval, up to this factor...
    max_slowdown: float = Field(default=16.0, ge=1.0)
    #: ...and the interval halves back per good poll once no rate-limit answer came
    #: for this long.
    slowdown_cooldown: Duration = 30.0

    @field_validator("interval", "timeout", "backoff_base", "backoff_cap")
    @classmethod
    def _positive(cls, value: float) -> float:
        if value <= 0:
            raise ValueError("must be greater than 0")
        return value

    @field_validator("symbols")
    @classmethod
    def _symbols(cls, value: list[str] | None) -> list[str] | None:
        if value is None:
            return None
        out = [s.strip() for s in value if s.strip()]
        if not out:
            raise ValueError("give at least one symbol, or leave symbols unset for all")
        return out

    @field_validator("settle_coins")
    @classmethod
    def _coins(cls, value: list[str]) -> list[str]:
        out = [c.strip().upper() for c in value if c.strip()]
        if not out:
            raise ValueError("give at least one settle coin, e.g. ['USDT']")
        return out

    @model_validator(mode="after")
    def _backoff(self) -> RestPollingSettings:
        if self.backoff_cap < self.backoff_base:
            raise ValueError("backoff_cap must be at least backoff_base")
        return self
