"""Perpetual instruments: linear (USDT-settled, qty in the base coin) and inverse
(coin-settled, qty in USD contracts): tick sizes, lot sizes, leverage, start prices."""

from __future__ import annotations

import hashlib
import math
from dataclasses import dataclass
from decimal import ROUND_DOWN, ROUND_HALF_UP, ROUND_UP, Decimal

LAUNCH_TIME = "1585526400000"


@dataclass(frozen=True)
class Instrument:
    symbol: str
    base: str
    tick_size: Decimal
    qty_step: Decimal
    min_qty: Decimal
    max_qty: Decimal
    max_mkt_qty: Decimal
    max_leverage: Decimal
    start_price: Decimal
    min_notional: Decimal = Decimal("5")
    mmr: Decimal = Decimal("0.01")  # maintenance margin rate, first risk tier
    quote: str = "USDT"
    #: Inverse perpetual (BTCUSD): settled in the base coin, qty in USD contracts.
    inverse: bool = False

    @property
    def category(self) -> str:
        return "inverse" if self.inverse else "linear"

    @property
    def settle_coin(self) -> str:
        return self.base if self.inverse else self.quote

    @property
    def price_scale(self) -> int:
        return max(0, -self.tick_size.as_tuple().exponent)  # type: ignore[operator]

    @property
    def qty_scale(self) -> int:
        return max(0, -self.qty_step.as_tuple().exponent)  # type: ignore[operator]

    # -- rounding helpers -------------------------------------------------------------
    def round_price(self, price: Decimal, rounding: str = ROUND_HALF_UP) -> Decimal:
        ticks = (price / self.tick_size).to_integral_value(rounding=rounding)
        return (ticks * self.tick_size).quantize(self.tick_size)

    def price_up(self, price: Decimal) -> Decimal:
        return self.round_price(price, ROUND_UP)

    def price_down(self, price: Decimal) -> Decimal:
        return self.round_price(price, ROUND_DOWN)

    def fmt_price(self, price: Decimal) -> str:
        return str(price.quantize(self.tick_size))

    def fmt_qty(self, qty: Decimal) -> str:
        return str(qty.quantize(self.qty_step))

    def qty_on_step(self, qty: Decimal) -> bool:
        return (qty / self.qty_step) == (qty / self.qty_step).to_integral_value()

    # -- wire form ----------------------------------------------------------------------
    def info_row(self) -> dict:
        """One row of /v5/market/instruments-info?category=linear (or inverse)."""
        max_price = self.fmt_price(self.tick_size * 19_999_998)
        lot = {
            "maxOrderQty": self.fmt_qty(self.max_qty),
            "minOrderQty": self.fmt_qty(self.min_qty),
            "qtyStep": self.fmt_qty(self.qty_step),
            "postOnlyMaxOrderQty": self.fmt_qty(self.max_qty),
            "maxMktOrderQty": self.fmt_qty(self.max_mkt_qty),
        }
        if not self.inverse:
            lot["minNotionalValue"] = str(self.min_notional)
        return {
            "symbol": self.symbol,
            "contractType": "InversePerpetual" if self.inverse else "LinearPerpetual",
            "status": "Trading",
            "baseCoin": self.base,
            "quoteCoin": self.quote,
            "launchTime": LAUNCH_TIME,
            "deliveryTime": "0",
            "deliveryFeeRate": "",
            "priceScale": str(self.price_scale),
            "leverageFilter": {
                "minLeverage": "1",
                "maxLeverage": f"{self.max_leverage:.2f}",
                "leverageStep": "0.01",
            },
            "priceFilter": {
                "minPrice": self.fmt_price(self.tick_size),
                "maxPrice": max_price,
                "tickSize": self.fmt_price(self.tick_size),
            },
            "lotSizeFilter": lot,
            "unifiedMarginTrade": True,
            "fundingInterval": 480,
            "settleCoin": self.settle_coin,
            "copyTrading": "both",
            "upperFundingRate": "0.005",
            "lowerFundingRate": "-0.005",
            "isPreListing": False,
            "preListingInfo": None,
            "riskParameters": {"priceLimitRatioX": "0.01", "priceLimitRatioY": "0.02"},
            "displayName": "",
        }


def _d(value: str) -> Decimal:
    return Decimal(value)


KNOWN: dict[str, Instrument] = {
    i.symbol: i
    for i in [
        Instrument("BTCUSDT", "BTC", _d("0.10"), _d("0.001"), _d("0.001"), _d("1190.000"),
                   _d("119.000"), _d("100"), _d("65000.00"), mmr=_d("0.005")),
        Instrument("ETHUSDT", "ETH", _d("0.01"), _d("0.01"), _d("0.01"), _d("7240.00"),
                   _d("724.00"), _d("100"), _d("3200.00"), mmr=_d("0.005")),
        Instrument("SOLUSDT", "SOL", _d("0.010"), _d("0.1"), _d("0.1"), _d("79770.0"),
                   _d("7977.0"), _d("100"), _d("150.000")),
        Instrument("XRPUSDT", "XRP", _d("0.0001"), _d("1"), _d("1"), _d("6430000"),
                   _d("643000"), _d("75"), _d("0.6000")),
        Instrument("DOGEUSDT", "DOGE", _d("0.00001"), _d("1"), _d("1"), _d("35000000"),
                   _d("3500000"), _d("75"), _d("0.15000")),
        Instrument("BTCUSD", "BTC", _d("0.50"), _d("1"), _d("1"), _d("100000000"),
                   _d("5000000"), _d("100"), _d("65000.00"), min_notional=_d("0"),
                   mmr=_d("0.005"), quote="USD", inverse=True),
        Instrument("ETHUSD", "ETH", _d("0.05"), _d("1"), _d("1"), _d("20000000"),
                   _d("1000000"), _d("100"), _d("3200.00"), min_notional=_d("0"),
                   mmr=_d("0.005"), quote="USD", inverse=True),
    ]
}


def _generated(symbol: str) -> Instrument:
    """A plausible instrument for an unknown name, derived from the name alone."""
    digest = hashlib.sha256(symbol.encode()).digest()
    frac = int.from_bytes(digest[:8], "big") / 2**64
    exponent = -1 + 4 * frac  # start price between 0.1 and 1000
    start = 10**exponent
    magnitude = math.floor(math.log10(start))
    tick = Decimal(1).scaleb(magnitude - 4)
    step_exp = max(-3, min(0, math.floor(math.log10(5 / start))))
    qty_step = Decimal(1).scaleb(step_exp)
    price = (Decimal(repr(start)) / tick).to_integral_value() * tick
    mkt = (Decimal(2_000_000) / price / qty_step).to_integral_value(ROUND_DOWN) * qty_step
    mkt = max(mkt, qty_step * 1000)
    return Instrument(symbol, symbol[:-4], tick, qty_step, qty_step, mkt * 10, mkt,
                      Decimal("50"), price.quantize(tick))


def _generated_inverse(symbol: str) -> Instrument:
    """An inverse instrument for an unknown XXXUSD name (qty in whole USD contracts)."""
    lin = _generated(symbol[:-3] + "USDT")
    return Instrument(symbol, symbol[:-3], lin.tick_size, Decimal(1), Decimal(1),
                      Decimal(10_000_000), Decimal(1_000_000), lin.max_leverage,
                      lin.start_price, min_notional=Decimal(0), quote="USD", inverse=True)


def make_instruments(symbols: list[str],
                     inverse_symbols: list[str] | None = None) -> dict[str, Instrument]:
    """Linear `symbols` (XXXUSDT) and inverse `inverse_symbols` (XXXUSD)."""
    out = {s: KNOWN.get(s) or _generated(s) for s in symbols}
    for s in inverse_symbols or []:
        known = KNOWN.get(s)
        out[s] = known if known is not None and known.inverse else _generated_inverse(s)
    return out
