"""pydantic models of the Binance wire formats the feed reads.

Only the fields the feed uses are declared; others are ignored (Binance adds fields
without notice). Numbers that are prices or sizes stay strings here and become
``Decimal`` through :func:`feedctl.wire_decimal` in :mod:`.parse`, which refuses
``NaN``, infinities and absurd exponents.
"""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field


class _Wire(BaseModel):
    model_config = ConfigDict(extra="ignore", frozen=True, populate_by_name=True)


class AccountPosition(_Wire):
    """One entry of ``ACCOUNT_UPDATE.a.P``: the position's whole state after the event."""

    symbol: str = Field(alias="s", min_length=1)
    amount: str = Field(alias="pa")
    entry_price: str = Field(alias="ep")
    position_side: str = Field(alias="ps")
    margin_type: str | None = Field(default=None, alias="mt")


class AccountData(_Wire):
    reason: str = Field(alias="m")
    positions: list[AccountPosition] = Field(default_factory=list, alias="P")


class AccountUpdate(_Wire):
    """``ACCOUNT_UPDATE``: balances and the positions that changed (only those)."""

    event_ms: int = Field(alias="E")
    transaction_ms: int = Field(alias="T")
    data: AccountData = Field(alias="a")


class OrderData(_Wire):
    symbol: str = Field(alias="s")
    execution_type: str = Field(alias="x")
    status: str = Field(alias="X")
    last_qty: str = Field(alias="l")
    position_side: str = Field(default="BOTH", alias="ps")
    trade_ms: int = Field(alias="T")
    #: the trade's realised profit: not zero, the fill reduced a position
    realized_profit: str = Field(default="0", alias="rp")
    side: str = Field(default="", alias="S")
    #: the trade's id, as userTrades lists it (0: no trade)
    trade_id: int = Field(default=0, alias="t")


class OrderTradeUpdate(_Wire):
    """``ORDER_TRADE_UPDATE``: an order changed; ``x == "TRADE"`` is a fill."""

    event_ms: int = Field(alias="E")
    transaction_ms: int = Field(alias="T")
    order: OrderData = Field(alias="o")


class LeverageConfig(_Wire):
    symbol: str = Field(alias="s")
    leverage: int = Field(alias="l")


class AccountConfigUpdate(_Wire):
    """``ACCOUNT_CONFIG_UPDATE``: a symbol's leverage (``ac``) or the multi-assets mode."""

    event_ms: int = Field(alias="E")
    transaction_ms: int = Field(alias="T")
    leverage: LeverageConfig | None = Field(default=None, alias="ac")


class MarkPriceUpdate(_Wire):
    """``markPriceUpdate`` of ``<symbol>@markPrice[@1s]`` (and ``!markPrice@arr``)."""

    event_ms: int = Field(alias="E")
    symbol: str = Field(alias="s", min_length=1)
    mark_price: str = Field(alias="p")


class PositionRiskRow(_Wire):
    """One row of ``GET /fapi/v3/positionRisk`` (symbols with a position or open orders)."""

    symbol: str = Field(min_length=1)
    position_side: str = Field(alias="positionSide")
    amount: str = Field(alias="positionAmt")
    entry_price: str = Field(alias="entryPrice")
    mark_price: str | None = Field(default=None, alias="markPrice")
    liquidation_price: str | None = Field(default=None, alias="liquidationPrice")
    leverage: str | None = None  # v2 rows carry it; v3 rows do not
    update_ms: int = Field(alias="updateTime")


class PositionMode(_Wire):
    """``GET /fapi/v1/positionSide/dual``: ``true`` is hedge mode."""

    dual_side: bool = Field(alias="dualSidePosition")


class SymbolConfig(_Wire):
    """One row of ``GET /fapi/v1/symbolConfig``: a symbol's leverage and margin type
    (positionRisk V3 rows no longer carry the leverage)."""

    symbol: str = Field(min_length=1)
    leverage: int = Field(gt=0)


class UserTrade(_Wire):
    """One row of ``GET /fapi/v1/userTrades`` (one symbol per call)."""

    symbol: str = Field(min_length=1)
    id: int
    side: str
    position_side: str = Field(default="BOTH", alias="positionSide")
    qty: str
    price: str
    time_ms: int = Field(alias="time")
    realized_pnl: str = Field(default="0", alias="realizedPnl")


class IncomeRow(_Wire):
    """One row of ``GET /fapi/v1/income``."""

    symbol: str = ""
    income_type: str = Field(default="", alias="incomeType")
    time_ms: int = Field(default=0, alias="time")


class ListenKey(_Wire):
    listen_key: str = Field(alias="listenKey", min_length=1)


class ServerTime(_Wire):
    server_ms: int = Field(alias="serverTime", gt=0, lt=10**13)


class PremiumIndex(_Wire):
    symbol: str
    mark_price: str = Field(alias="markPrice")
    time_ms: int = Field(alias="time")


class ErrorBody(_Wire):
    """Binance's error shape: ``{"code": -1021, "msg": "..."}``."""

    code: int
    msg: str = ""
