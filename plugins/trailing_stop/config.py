"""Settings of the trailing-stop consumer: ``[<profile>.trailing_stop]`` and
``[<profile>.trading]``."""

from __future__ import annotations

from decimal import Decimal

from pydantic import Field

from feedctl import StrictModel


class StopRule(StrictModel):
    """When a stop activates and how far it trails."""

    #: Unrealised profit, in percent of the entry price, at which the stop activates.
    activation_pct: Decimal = Field(default=Decimal("1.0"), gt=0)
    #: How far the price may retrace from its best level after activation, in percent.
    callback_pct: Decimal = Field(default=Decimal("0.5"), gt=0, lt=100)


class TrailingStopSettings(StrictModel):
    enabled: bool = True
    activation_pct: Decimal = Field(default=Decimal("1.0"), gt=0)
    callback_pct: Decimal = Field(default=Decimal("0.5"), gt=0, lt=100)
    #: Per-symbol overrides: ``symbols.BTCUSDT = { activation_pct = 0.5, callback_pct = 0.2 }``.
    symbols: dict[str, StopRule] = Field(default_factory=dict)

    def rule(self, symbol: str) -> StopRule:
        return self.symbols.get(symbol) or StopRule(
            activation_pct=self.activation_pct, callback_pct=self.callback_pct)


class TradingSettings(StrictModel):
    """Order placement. Off by default: the trailing stop only reports (dry run)."""

    enabled: bool = False
