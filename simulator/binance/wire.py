"""Binance wire forms of the shared engines' state: position rows (REST and stream),
balances, exchange-info symbols, mark prices.  Pure functions; no I/O.

Field lists follow:
https://developers.binance.com/docs/derivatives/usds-margined-futures/trade/rest-api/Position-Information-V3
https://developers.binance.com/docs/derivatives/usds-margined-futures/trade/rest-api/Position-Information-V2
https://developers.binance.com/docs/derivatives/usds-margined-futures/account/rest-api/Account-Information-V3
https://developers.binance.com/docs/derivatives/usds-margined-futures/account/rest-api/Futures-Account-Balance-V3
https://developers.binance.com/docs/derivatives/usds-margined-futures/market-data/rest-api/Exchange-Information
https://developers.binance.com/docs/derivatives/usds-margined-futures/market-data/rest-api/Mark-Price
https://developers.binance.com/docs/derivatives/usds-margined-futures/user-data-streams/Event-Balance-and-Position-Update
"""

from __future__ import annotations

from decimal import ROUND_HALF_UP, Decimal

from ..instruments import Instrument
from ..position import D0, Position

D1 = Decimal(1)
Q8 = Decimal("0.00000001")
ONBOARD_MS = 1569398400000
PERPETUAL_DELIVERY_MS = 4133404800000
MAX_NOTIONAL = "20000000"


def f8(value: Decimal) -> str:
    """Binance's 8-decimal fixed form ("0.00000000"), never exponent notation."""
    text = format(value.quantize(Q8, rounding=ROUND_HALF_UP), "f")
    return text[1:] if text.startswith("-") and set(text[1:]) <= {"0", "."} else text


def plain(value: Decimal) -> str:
    """Shortest fixed form with at least one decimal ("0.0", "65000.1")."""
    text = format(value.normalize(), "f") if value else "0"
    return text if "." in text else text + ".0"


def entry_price(value: Decimal) -> str:
    """An average entry price as Binance shows it: rounded to 8 decimals (the engine's
    quotient has 28 significant digits), in the shortest fixed form."""
    return plain(value.quantize(Q8, rounding=ROUND_HALF_UP))


def qty(inst: Instrument, value: Decimal) -> str:
    return str(value.quantize(inst.qty_step))


def signed_amount(pos: Position) -> Decimal:
    return pos.size * pos.sign


def break_even(pos: Position, fee_rate: Decimal) -> Decimal:
    """Entry price moved by the taker fee of the open and of the close."""
    if not pos.is_open:
        return D0
    if pos.side == "Buy":
        return pos.entry * (D1 + fee_rate) / (D1 - fee_rate)
    return pos.entry * (D1 - fee_rate) / (D1 + fee_rate)


#: Binance's positionSide of an engine position index (0 one-way, 1/2 hedge buy/sell)
POSITION_SIDES = {0: "BOTH", 1: "LONG", 2: "SHORT"}
#: ... and back
POSITION_INDEXES = {v: k for k, v in POSITION_SIDES.items()}


def position_side(pos: Position | int) -> str:
    """BOTH in one-way mode; LONG / SHORT for hedge mode's positions (index 1 / 2)."""
    return POSITION_SIDES.get(pos if isinstance(pos, int) else pos.idx, "BOTH")


def risk_v3(pos: Position, mark: Decimal, fee_rate: Decimal) -> dict:
    """One row of GET /fapi/v3/positionRisk (only symbols with a position are listed)."""
    inst, amount = pos.inst, signed_amount(pos)
    notional = amount * mark
    im = abs(notional) / pos.leverage if pos.is_open else D0
    liq = pos.liq_price()
    return {
        "symbol": inst.symbol,
        "positionSide": position_side(pos),
        "positionAmt": qty(inst, amount),
        "entryPrice": entry_price(pos.entry),
        "breakEvenPrice": plain(break_even(pos, fee_rate).quantize(Q8)),
        "markPrice": f8(mark),
        "unRealizedProfit": f8(pos.unrealised(mark)),
        "liquidationPrice": plain(liq) if liq is not None else "0",
        "isolatedMargin": "0",
        "notional": f8(notional),
        "marginAsset": inst.quote,
        "isolatedWallet": "0",
        "initialMargin": f8(im),
        "maintMargin": f8(abs(notional) * inst.mmr),
        "positionInitialMargin": f8(im),
        "openOrderInitialMargin": "0",
        "adl": 2 if pos.is_open else 0,
        "bidNotional": "0",
        "askNotional": "0",
        "updateTime": pos.updated_ms,
    }


def risk_v2(pos: Position, mark: Decimal, fee_rate: Decimal) -> dict:
    """One row of GET /fapi/v2/positionRisk (every symbol, flat ones included)."""
    row = risk_v3(pos, mark, fee_rate)
    return {
        "symbol": row["symbol"], "positionAmt": row["positionAmt"],
        "entryPrice": row["entryPrice"], "breakEvenPrice": row["breakEvenPrice"],
        "markPrice": row["markPrice"], "unRealizedProfit": row["unRealizedProfit"],
        "liquidationPrice": row["liquidationPrice"], "leverage": str(int(pos.leverage)),
        "maxNotionalValue": MAX_NOTIONAL, "marginType": "cross", "isolatedMargin": "0.00000000",
        "isAutoAddMargin": "false", "positionSide": row["positionSide"],
        "notional": row["notional"], "isolatedWallet": "0", "updateTime": pos.updated_ms,
    }


def stream_position(pos: Position, mark: Decimal, fee_rate: Decimal,
                    realised: Decimal) -> dict:
    """An element of ACCOUNT_UPDATE's ``a.P`` (cross margin: ``iw`` is 0)."""
    return {
        "s": pos.inst.symbol,
        "pa": qty(pos.inst, signed_amount(pos)),
        "ep": entry_price(pos.entry),
        "bep": plain(break_even(pos, fee_rate).quantize(Q8)),
        "cr": f8(realised),
        "up": f8(pos.unrealised(mark)),
        "mt": "cross",
        "iw": "0",
        "ps": position_side(pos),
    }


def symbol_info(inst: Instrument) -> dict:
    """One element of exchangeInfo's ``symbols``."""
    tick, step = inst.fmt_price(inst.tick_size), inst.fmt_qty(inst.qty_step)
    return {
        "symbol": inst.symbol, "pair": inst.symbol, "contractType": "PERPETUAL",
        "deliveryDate": PERPETUAL_DELIVERY_MS, "onboardDate": ONBOARD_MS, "status": "TRADING",
        "maintMarginPercent": "2.5000", "requiredMarginPercent": "5.0000",
        "baseAsset": inst.base, "quoteAsset": inst.quote, "marginAsset": inst.quote,
        "pricePrecision": inst.price_scale, "quantityPrecision": inst.qty_scale,
        "baseAssetPrecision": 8, "quotePrecision": 8, "underlyingType": "COIN",
        "underlyingSubType": [], "settlePlan": 0, "triggerProtect": "0.0500",
        "liquidationFee": "0.012500", "marketTakeBound": "0.05", "maxMoveOrderLimit": 10000,
        "filters": [
            {"filterType": "PRICE_FILTER", "minPrice": tick,
             "maxPrice": inst.fmt_price(inst.tick_size * 19_999_998), "tickSize": tick},
            {"filterType": "LOT_SIZE", "minQty": inst.fmt_qty(inst.min_qty),
             "maxQty": inst.fmt_qty(inst.max_qty), "stepSize": step},
            {"filterType": "MARKET_LOT_SIZE", "minQty": inst.fmt_qty(inst.min_qty),
             "maxQty": inst.fmt_qty(inst.max_mkt_qty), "stepSize": step},
            {"filterType": "MAX_NUM_ORDERS", "limit": 200},
            {"filterType": "MAX_NUM_ALGO_ORDERS", "limit": 10},
            {"filterType": "MIN_NOTIONAL", "notional": str(inst.min_notional)},
            {"filterType": "PERCENT_PRICE", "multiplierUp": "1.0500",
             "multiplierDown": "0.9500", "multiplierDecimal": "4"},
        ],
        "orderTypes": ["LIMIT", "MARKET", "STOP", "STOP_MARKET", "TAKE_PROFIT",
                       "TAKE_PROFIT_MARKET", "TRAILING_STOP_MARKET"],
        "timeInForce": ["GTC", "IOC", "FOK", "GTX", "GTD"],
        "permissionSets": ["GRID", "COPY"],
    }


def mark_fields(snapshot: dict[str, str]) -> tuple[Decimal, Decimal, Decimal, int]:
    """(mark, index, funding rate, next funding time) from a price-engine snapshot."""
    return (Decimal(snapshot["markPrice"]), Decimal(snapshot["indexPrice"]),
            Decimal(snapshot["fundingRate"]), int(snapshot["nextFundingTime"]))


def premium_index(symbol: str, snapshot: dict[str, str], now_ms: int) -> dict:
    mark, index, rate, next_funding = mark_fields(snapshot)
    return {"symbol": symbol, "markPrice": f8(mark), "indexPrice": f8(index),
            "estimatedSettlePrice": f8(index), "lastFundingRate": f8(rate),
            "interestRate": "0.00010000", "nextFundingTime": next_funding, "time": now_ms}


def mark_price_update(symbol: str, snapshot: dict[str, str], now_ms: int) -> dict:
    """The payload of ``<symbol>@markPrice`` (and an element of ``!markPrice@arr``).

    https://developers.binance.com/docs/derivatives/usds-margined-futures/websocket-market-streams/Mark-Price-Stream
    """
    mark, index, rate, next_funding = mark_fields(snapshot)
    return {"e": "markPriceUpdate", "E": now_ms, "s": symbol, "p": f8(mark), "i": f8(index),
            "P": f8(index), "r": f8(rate), "T": next_funding}
