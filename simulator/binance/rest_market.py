"""Market-data endpoints (public, but the leverage brackets, which are signed).

https://developers.binance.com/docs/derivatives/usds-margined-futures/market-data/rest-api
(Test-Connectivity, Check-Server-Time, Exchange-Information, Mark-Price,
Symbol-Price-Ticker, Symbol-Price-Ticker-v2, 24hr-Ticker-Price-Change-Statistics)
https://developers.binance.com/docs/derivatives/usds-margined-futures/account/rest-api/Notional-and-Leverage-Brackets
"""

from __future__ import annotations

from decimal import Decimal

from .params import USDT, symbols_param
from .rest import BinanceContext
from .wire import premium_index, symbol_info


def ping(ctx: BinanceContext, params: dict[str, str]) -> dict:
    return {}


def server_time(ctx: BinanceContext, params: dict[str, str]) -> dict:
    return {"serverTime": ctx.clock.now_ms()}


def exchange_info(ctx: BinanceContext, params: dict[str, str]) -> dict:
    cfg = ctx.cfg
    return {
        "timezone": "UTC", "serverTime": ctx.clock.now_ms(), "futuresType": "U_MARGINED",
        "rateLimits": [
            {"rateLimitType": "REQUEST_WEIGHT", "interval": "MINUTE", "intervalNum": 1,
             "limit": cfg.weight_limit},
            {"rateLimitType": "ORDERS", "interval": "MINUTE", "intervalNum": 1,
             "limit": cfg.order_limit_1m},
            {"rateLimitType": "ORDERS", "interval": "SECOND", "intervalNum": 10,
             "limit": cfg.order_limit_10s},
        ],
        "exchangeFilters": [],
        "assets": [{"asset": USDT, "marginAvailable": True, "autoAssetExchange": "-10000"}],
        "symbols": [symbol_info(ctx.prices.instruments[s]) for s in ctx.symbols],
    }


def mark_price(ctx: BinanceContext, params: dict[str, str]) -> dict | list[dict]:
    now = ctx.clock.now_ms()
    rows = [premium_index(s, ctx.prices.snapshot(s, now)[0], now)
            for s in symbols_param(ctx, params)]
    return rows[0] if params.get("symbol") else rows


def ticker_price(ctx: BinanceContext, params: dict[str, str]) -> dict | list[dict]:
    now = ctx.clock.now_ms()
    rows = [{"symbol": s, "price": ctx.prices.snapshot(s, now)[0]["lastPrice"], "time": now}
            for s in symbols_param(ctx, params)]
    return rows[0] if params.get("symbol") else rows


def ticker_24h(ctx: BinanceContext, params: dict[str, str]) -> dict | list[dict]:
    now = ctx.clock.now_ms()
    rows = []
    for s in symbols_param(ctx, params):
        snap, _ = ctx.prices.snapshot(s, now)
        last, prev = Decimal(snap["lastPrice"]), Decimal(snap["prevPrice24h"])
        change = last - prev
        rows.append({
            "symbol": s, "priceChange": str(change),
            "priceChangePercent": f"{change / prev * 100:.3f}" if prev else "0.000",
            "weightedAvgPrice": snap["lastPrice"], "lastPrice": snap["lastPrice"],
            "lastQty": "0", "openPrice": snap["prevPrice24h"], "highPrice": snap["highPrice24h"],
            "lowPrice": snap["lowPrice24h"], "volume": snap["volume24h"],
            "quoteVolume": snap["turnover24h"], "openTime": now - 86_400_000, "closeTime": now,
            "firstId": 0, "lastId": 0, "count": 0,
        })
    return rows[0] if params.get("symbol") else rows


def leverage_bracket(ctx: BinanceContext, params: dict[str, str]) -> dict | list[dict]:
    rows = []
    for s in symbols_param(ctx, params):
        inst = ctx.prices.instruments[s]
        rows.append({"symbol": s, "notionalCoef": 1.0, "brackets": [{
            "bracket": 1, "initialLeverage": int(inst.max_leverage), "notionalCap": 20_000_000,
            "notionalFloor": 0, "maintMarginRatio": float(inst.mmr), "cum": 0.0}]})
    return rows[0] if params.get("symbol") else rows
