"""Amounts as the exchange shows them: prices to the instrument's tick, sizes to its
step, PnL to its settle coin's precision. Pure functions over the JSON forms."""

from __future__ import annotations

from decimal import ROUND_HALF_UP, Decimal, InvalidOperation
from typing import Any

#: Settle coins shown to the cent; any other coin (BTC, ETH... for inverse) to 8 places.
_CENT_COINS = frozenset({"USDT", "USDC", "USD", "DAI", "FDUSD", "BUSD"})


def _dec(value: Any) -> Decimal | None:
    if value is None or value == "":
        return None
    try:
        return Decimal(str(value))
    except (InvalidOperation, ValueError):
        return None


def on_step(value: Any, step: Any) -> str:
    """``value`` rounded to a multiple of ``step`` and shown with the step's decimals,
    trailing zeros of the step aside (tick 0.10: 65014.90 and 65002 -> "65014.9",
    "65002.0"; tick 0.005: 150.2 -> "150.200"); as sent when the step is unknown; "-"
    when there is no value."""
    v = _dec(value)
    if v is None:
        return "-"
    s = _dec(step)
    if s is None or s <= 0:
        return str(value)
    places = max(0, -s.normalize().as_tuple().exponent)  # type: ignore[operator]
    rounded = (v / s).quantize(Decimal(1), rounding=ROUND_HALF_UP) * s
    return f"{rounded:.{places}f}"


def pnl(value: Any, coin: str | None) -> str:
    """PnL to its coin's precision, with the coin: "12.34 USDT"; "-" when unknown."""
    v = _dec(value)
    if v is None:
        return "-"
    if coin is None:
        return str(value)
    places = 2 if coin.upper() in _CENT_COINS else 8
    return f"{v:.{places}f} {coin}"


def instrument(instruments: dict[str, Any] | None, position: dict[str, Any]
               ) -> dict[str, Any]:
    """The instrument facts of ``position`` (empty when no feed told them)."""
    if not instruments:
        return {}
    return instruments.get(f"{position.get('category', 'linear')}:{position['symbol']}") or {}


def totals(positions: list[dict[str, Any]], instruments: dict[str, Any] | None
           ) -> dict[str, Decimal]:
    """Total unrealised PnL per settle coin (positions whose coin or PnL is unknown are
    left out: a total never mixes coins)."""
    out: dict[str, Decimal] = {}
    for p in positions:
        coin = instrument(instruments, p).get("settle_coin")
        v = _dec(p.get("unrealised_pnl"))
        if coin and v is not None:
            out[coin] = out.get(coin, Decimal(0)) + v
    return out
