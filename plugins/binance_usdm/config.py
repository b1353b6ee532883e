"""Settings of the ``binance_usdm`` feed kind (table ``[<profile>.feeds.<name>]``) and
its endpoints.

Every duration accepts a number of seconds or a string with a unit (``"500ms"``,
``"20s"``, ``"1h"``). Unknown keys are refused.
"""

from __future__ import annotations

from typing import Literal

from pydantic import Field, model_validator

from feedctl import Duration, Endpoints, HttpEndpoint, StrictModel, WsEndpoint

from .constants import LISTEN_KEY_VALIDITY_S, MAX_CONNECTION_AGE_S


class BinanceEndpoints(Endpoints):
    """Where the kind's exchange lives: the REST base, the market-data socket base
    (``.../market`` or ``.../public``) and the user-data socket base (``.../private``)."""

    rest: HttpEndpoint
    market_ws: WsEndpoint
    private_ws: WsEndpoint


class BinanceSettings(StrictModel):
    """Tuning of the feed; the defaults follow Binance's documentation."""

    #: WebSocket ping period on both sockets (Binance also pings every 3 minutes and
    #: answers ours at once): a missing pong for ``pong_timeout`` is a dead socket.
    ping_interval: Duration = 20.0
    pong_timeout: Duration = 10.0
    #: A user-data frame made (by its event time ``E``) this long after a ping still
    #: unanswered proves that ping's pong lost (the server answers a ping as it reads
    #: it, before anything it makes later): pushes went missing with the socket up
    #: (a stall), so the socket is dropped before that frame is applied and the
    #: reconnect replays the fills. None: ``min(1s, pong_timeout / 4)``.
    pong_overdue_after: Duration | None = None
    #: listenKey keepalive (PUT) period; the key lives 60 minutes after each one.
    keepalive_interval: Duration = 1800.0
    #: Planned make-before-break reconnect of each socket after this age, ahead of
    #: Binance's 24-hour cut; must be shorter than 24 h.
    max_connection_lifetime: Duration = 82_800.0
    #: Mark price stream: ``1s`` (``<symbol>@markPrice@1s``) or ``3s`` (``@markPrice``).
    mark_speed: Literal["1s", "3s"] = "1s"
    #: ``symbol``: one stream per open symbol; ``all``: the all-market stream
    #: ``!markPrice@arr[@1s]`` (one subscription, every symbol's mark, filtered here).
    mark_stream: Literal["symbol", "all"] = "symbol"
    #: A wanted symbol without a mark price this long is stale (degraded); None: three
    #: stream periods (3 s for ``1s``, 9 s for ``3s``).
    stale_after: Duration | None = None
    #: A symbol no open position needs any more stays subscribed this long, so that a
    #: reopen starts from a fresh mark (not the one from before the close); 0: at once.
    mark_linger: Duration = 60.0
    #: While a symbol is stale, its mark is read from REST premiumIndex this often; 0 off.
    stale_mark_interval: Duration = 2.0
    #: A fill (ORDER_TRADE_UPDATE) whose ACCOUNT_UPDATE has not come this long after it
    #: means the position push was lost: the feed resyncs from REST.
    fill_confirm_after: Duration = 3.0
    #: After a gap (reconnect, lost push), replay the account's fills since the last
    #: snapshot (userTrades per symbol) so that a position opened and closed inside the
    #: gap still yields its ``opened`` and ``closed``.
    replay_gaps: bool = True
    #: Period of the REST audit comparing the book with positionRisk; 0 disables.
    audit_interval: Duration = 60.0
    #: ``recvWindow`` of signed requests, in milliseconds (Binance: at most 60000).
    recv_window: int = Field(5000, ge=100, le=60_000)
    #: REST weight the feed leaves unused per minute: above ``WEIGHT_LIMIT_1M -
    #: weight_reserve`` it waits for the next minute instead of sending.
    weight_reserve: int = Field(600, ge=0, le=2300)
    #: Reconnect backoff: full jitter in [0, min(cap, base * 2**attempt)].
    backoff_base: Duration = 0.5
    backoff_cap: Duration = 30.0
    #: A connection that lived this long resets the backoff.
    backoff_reset_after: Duration = 30.0
    #: Handshake, SUBSCRIBE answer and REST answer timeout.
    request_timeout: Duration = 10.0
    #: REST attempts for one call before the feed gives up and reconnects.
    rest_attempts: int = Field(5, ge=1, le=50)

    @model_validator(mode="after")
    def _check(self) -> BinanceSettings:
        for name in ("ping_interval", "pong_timeout", "keepalive_interval", "backoff_base",
                     "request_timeout", "fill_confirm_after"):
            if getattr(self, name) <= 0:
                raise ValueError(f"{name} must be greater than 0")
        if self.keepalive_interval >= LISTEN_KEY_VALIDITY_S - 60:
            raise ValueError("keepalive_interval must be well under the listenKey's 60 "
                             "minutes (at most 59m)")
        if not 1 <= self.max_connection_lifetime < MAX_CONNECTION_AGE_S:
            raise ValueError("max_connection_lifetime must be at least 1s and shorter than "
                             "Binance's 24-hour cut")
        if self.mark_linger < 0:
            raise ValueError("mark_linger must be 0 or more")
        if self.pong_overdue_after is not None and self.pong_overdue_after <= 0:
            raise ValueError("pong_overdue_after must be greater than 0 (or unset)")
        if self.stale_after is not None and self.stale_after <= 0:
            raise ValueError("stale_after must be greater than 0 (or unset)")
        if self.backoff_cap < self.backoff_base:
            raise ValueError("backoff_cap must be at least backoff_base")
        return self

    @property
    def mark_suffix(self) -> str:
        return "@markPrice@1s" if self.mark_speed == "1s" else "@markPrice"

    @property
    def all_stream(self) -> str:
        return "!markPrice@arr@1s" if self.mark_speed == "1s" else "!markPrice@arr"

    @property
    def pong_overdue(self) -> float:
        if self.pong_overdue_after is not None:
            return self.pong_overdue_after
        return min(1.0, self.pong_timeout / 4)

    @property
    def stale_limit(self) -> float:
        if self.stale_after is not None:
            return self.stale_after
        return 3.0 if self.mark_speed == "1s" else 9.0
