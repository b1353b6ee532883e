"""Configuration of the embedded exchange.

`SimConfig` is a pydantic model; every field has a default so `SimConfig()` starts
a usable exchange on an ephemeral loopback port.  The API secret is generated when
not given and is excluded from the model's repr.
"""

from __future__ import annotations

import secrets
import string
from decimal import Decimal
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationInfo, field_validator

from .binance.config import BinanceSimConfig

DEFAULT_SYMBOLS = ["BTCUSDT", "ETHUSDT", "SOLUSDT", "XRPUSDT", "DOGEUSDT"]
DEFAULT_INVERSE_SYMBOLS = ["BTCUSD", "ETHUSD"]

_ALNUM = string.ascii_letters + string.digits


def _random_key(length: int) -> str:
    return "".join(secrets.choice(_ALNUM) for _ in range(length))


class SimConfig(BaseModel):
    """Settings of one simulator instance (one account, one API key)."""

    model_config = ConfigDict(validate_assignment=True, extra="forbid")

    host: str = "127.0.0.1"
    port: int = Field(0, ge=0, le=65535)
    symbols: list[str] = Field(default_factory=lambda: list(DEFAULT_SYMBOLS))
    #: Inverse perpetuals (settled in the base coin, on /v5/public/inverse); [] for none.
    inverse_symbols: list[str] = Field(default_factory=lambda: list(DEFAULT_INVERSE_SYMBOLS))
    seed: int = 42
    demo: bool = False
    demo_interval: float = Field(3.0, gt=0, description="seconds between demo trader actions")
    tick_interval: float = Field(0.1, gt=0, description="seconds between ticker deltas")
    quiet_symbols: list[str] = Field(
        default_factory=list,
        description="symbols that move (and send a ticker delta) only every quiet_interval")
    quiet_interval: float = Field(3.0, gt=0, description="seconds between a quiet symbol's "
                                  "deltas")
    spread_bps: Decimal = Field(Decimal("1"), ge=0, description="market fill = mark +/- spread")
    volatility_bps: Decimal = Field(
        Decimal("2"), ge=0, description="std-dev of one random-walk step, in bps of price"
    )
    taker_fee_rate: Decimal = Field(Decimal("0.00055"), ge=0)
    initial_balance: Decimal = Field(Decimal("100000"), ge=0, description="USDT wallet")
    coin_balance: Decimal = Field(
        Decimal("10"), ge=0, description="wallet of each inverse settle coin (BTC, ETH...)")
    default_leverage: Decimal = Field(Decimal("10"), gt=0)
    idle_timeout: float = Field(
        600.0, gt=0, description="seconds a WebSocket may stay silent before it is cut"
    )
    idle_check_interval: float | None = Field(
        None, gt=0, description="watchdog period; default min(30, idle_timeout / 4)"
    )
    ack_delay_ms: int = Field(
        20, ge=0, le=1000,
        description="delay of WS request answers (auth, subscribe): a network round trip; "
                    "pybit stores a subscription only after sending it, so an instant "
                    "loopback ack races it")
    ws_compress: bool = Field(
        False, description="accept permessage-deflate when offered (Bybit does; costs CPU)")
    rest_rate_limit: int = Field(100, ge=1, description="requests per second per endpoint")
    transition_log_size: int = Field(100_000, ge=1)
    max_ws_backlog: int = Field(50_000, ge=100, description="queued frames before a cut")
    api_key: str | None = None
    api_secret: str | None = Field(None, repr=False)
    #: which exchange the simulator speaks: Bybit V5 (default) or Binance USDⓈ-M futures
    exchange: Literal["bybit", "binanceusdm"] = "bybit"
    binance: BinanceSimConfig = Field(default_factory=BinanceSimConfig)

    @field_validator("symbols", "inverse_symbols", mode="before")
    @classmethod
    def _split_symbols(cls, value: object, info: ValidationInfo) -> object:
        if isinstance(value, str):
            value = [s for s in value.split(",")]
        if isinstance(value, list):
            out: list[str] = []
            for item in value:
                name = str(item).strip().upper()
                if name and name not in out:
                    out.append(name)
            if not out and info.field_name == "symbols":
                raise ValueError("symbols: at least one symbol is required")
            return out
        return value

    @field_validator("symbols")
    @classmethod
    def _check_symbols(cls, value: list[str]) -> list[str]:
        for name in value:
            if not name.endswith("USDT") or len(name) < 5 or not name.isalnum():
                raise ValueError(f"symbols: {name!r} is not a linear USDT symbol like BTCUSDT")
        return value

    @field_validator("inverse_symbols")
    @classmethod
    def _check_inverse(cls, value: list[str]) -> list[str]:
        for name in value:
            if not name.endswith("USD") or len(name) < 4 or not name.isalnum():
                raise ValueError(f"inverse_symbols: {name!r} is not an inverse symbol like "
                                 "BTCUSD")
        return value

    def model_post_init(self, __context: object) -> None:
        binance = self.exchange == "binanceusdm"  # Binance keys are 64 characters
        if self.api_key is None:
            self.api_key = _random_key(64 if binance else 18)
        if self.api_secret is None:
            self.api_secret = _random_key(64 if binance else 36)

    @property
    def check_interval(self) -> float:
        if self.idle_check_interval is not None:
            return self.idle_check_interval
        return min(30.0, self.idle_timeout / 4)


def generated_symbols(count: int) -> list[str]:
    """`count` symbols: the defaults first, then SYM001USDT, SYM002USDT, ..."""
    out = list(DEFAULT_SYMBOLS[:count])
    n = 1
    while len(out) < count:
        out.append(f"SYM{n:03d}USDT")
        n += 1
    return out
