"""Settings of an ``example_exchange`` feed: its ``[<profile>.feeds.<name>]`` table.

``StrictModel`` refuses unknown keys, so a typo stops ``feedctl run`` with one line
naming the setting. ``Duration`` accepts ``10``, ``"500ms"``, ``"10s"``, ``"1m"``.
"""

from __future__ import annotations

from pydantic import Field, model_validator

from feedctl import Duration, Endpoints, HttpEndpoint, StrictModel, WsEndpoint


class ExampleEndpoints(Endpoints):
    """The URLs the feed reads from ``ctx.endpoints``: ``[<profile>.endpoints]`` keys."""

    rest: HttpEndpoint
    private_ws: WsEndpoint


#: The exchange's own URLs per environment (a profile's ``environment``); a profile's
#: ``[<profile>.endpoints]`` overrides them key by key (the simulator's, in the tests).
EXAMPLE_ENDPOINTS = {
    "mainnet": {"rest": "https://api.example-exchange.invalid",
                "private_ws": "wss://stream.example-exchange.invalid/v5/private"},
}


class ExampleSettings(StrictModel):
    """Tuning of the feed; the defaults suit a real exchange."""

    #: JSON ``{"op": "ping"}`` period on the private socket.
    ping_interval: Duration = 20.0
    #: A socket silent for ``ping_interval + pong_timeout`` is dead and is reconnected.
    pong_timeout: Duration = 10.0
    #: Longest wait for a handshake, an auth/subscribe answer or a REST answer.
    request_timeout: Duration = 10.0
    #: Mark prices of open positions are polled from REST this often.
    mark_interval: Duration = 1.0
    #: Mark-price polls failing in a row before the feed reports itself degraded.
    mark_failures: int = Field(3, ge=1)
    #: Reconnect delay: full jitter in [0, min(cap, base * 2**attempt)].
    backoff_base: Duration = 0.5
    backoff_cap: Duration = 30.0
    #: Rejected WebSocket auths in a row before the feed fails for good (bad key).
    max_auth_failures: int = Field(3, ge=1)
    #: REST ``X-BAPI-RECV-WINDOW`` in milliseconds.
    recv_window: int = Field(5000, ge=100, le=60_000)
    #: Settle coin whose positions the REST snapshot lists.
    settle_coin: str = "USDT"

    @model_validator(mode="after")
    def _check(self) -> ExampleSettings:
        for name in ("ping_interval", "pong_timeout", "request_timeout", "mark_interval",
                     "backoff_base"):
            if getattr(self, name) <= 0:
                raise ValueError(f"{name} must be greater than 0")
        if self.backoff_cap < self.backoff_base:
            raise ValueError("backoff_cap must be at least backoff_base")
        return self
