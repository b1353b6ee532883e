"""Parameter helpers shared by the ``/fapi`` endpoint modules."""

from __future__ import annotations

from .errors import bad_symbol, invalid_param, mandatory
from .rest import BinanceContext

USDT = "USDT"


def symbol_param(ctx: BinanceContext, params: dict[str, str], required: bool = True) -> str | None:
    symbol = params.get("symbol")
    if not symbol:
        if required:
            raise mandatory("symbol")
        return None
    if symbol not in ctx.symbols:
        raise bad_symbol()
    return symbol


def symbols_param(ctx: BinanceContext, params: dict[str, str]) -> list[str]:
    one = symbol_param(ctx, params, required=False)
    return [one] if one else ctx.symbols


def bool_param(params: dict[str, str], name: str) -> bool:
    value = params.get(name, "false").lower()
    if value not in ("true", "false"):
        raise invalid_param(name)
    return value == "true"
