"""Settings of the Binance personality (``SimConfig.binance``).

The lifetimes Binance fixes (60-minute listenKey, 24-hour connection, 3-minute server
ping, 10-minute pong deadline) are settings here so that tests can run them in seconds.

https://developers.binance.com/docs/derivatives/usds-margined-futures/user-data-streams
https://developers.binance.com/docs/derivatives/usds-margined-futures/websocket-market-streams
https://developers.binance.com/docs/derivatives/usds-margined-futures/general-info
"""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field


class BinanceSimConfig(BaseModel):
    model_config = ConfigDict(validate_assignment=True, extra="forbid")

    listen_key_validity: float = Field(
        3600.0, gt=0, description="seconds a listenKey lives without a keepalive (PUT)")
    connection_lifetime: float = Field(
        86400.0, gt=0, description="seconds before the server cuts any stream connection")
    ping_interval: float = Field(180.0, gt=0, description="seconds between server ping frames")
    pong_timeout: float = Field(
        600.0, gt=0, description="seconds without any frame from a client before the cut")
    weight_limit: int = Field(2400, ge=1, description="REQUEST_WEIGHT per minute per IP")
    order_limit_10s: int = Field(300, ge=1, description="ORDERS per 10 seconds")
    order_limit_1m: int = Field(1200, ge=1, description="ORDERS per minute")
    ban_after: int = Field(
        5, ge=1, description="429 answers in one minute window before the IP is banned (418)")
    ban_seconds: float = Field(120.0, gt=0, description="first ban's length (Binance: 2 min)")
    mark_interval: float = Field(3.0, gt=0, description="period of <symbol>@markPrice")
    mark_fast_interval: float = Field(1.0, gt=0, description="period of @markPrice@1s")
    max_incoming_per_second: int = Field(
        10, ge=1, description="client frames per second before the connection is cut")
    max_streams: int = Field(1024, ge=1, description="streams one connection may hold")
    account_update_first: bool = Field(
        False, description="push a fill's ACCOUNT_UPDATE before its order updates")
    funding_interval: float | None = Field(
        None, gt=0, description="seconds between funding settlements; None = only on demand")
