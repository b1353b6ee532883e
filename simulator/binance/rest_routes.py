"""The ``/fapi`` endpoints: market data, account, positions, orders, position mode,
leverage and the listenKey. Shapes and weights from the endpoint pages below (all under
https://developers.binance.com/docs/derivatives/usds-margined-futures/):

- market-data/rest-api/Test-Connectivity, Check-Server-Time, Exchange-Information,
  Mark-Price (premiumIndex), Symbol-Price-Ticker (v1) and Symbol-Price-Ticker-v2,
  24hr-Ticker-Price-Change-Statistics
- trade/rest-api/Position-Information-V3, Position-Information-V2, New-Order, Query-Order,
  Current-All-Open-Orders, Cancel-All-Open-Orders, Account-Trade-List,
  Change-Initial-Leverage, Change-Margin-Type, Change-Position-Mode,
  Get-Current-Position-Mode
- account/rest-api/Account-Information-V3, Account-Information-V2,
  Futures-Account-Balance-V3, Futures-Account-Balance-V2, Notional-and-Leverage-Brackets
- user-data-streams/Start-User-Data-Stream, Keepalive-User-Data-Stream,
  Close-User-Data-Stream

The simulator fills MARKET orders at once (LIMIT and conditional orders are refused with
a message saying so) and keeps one-way mode (``positionSide`` BOTH) until the shared
account engine has hedge positions.
"""

from __future__ import annotations

from decimal import Decimal, InvalidOperation

from ..errors import SimError
from .errors import BinanceError, bad_symbol, invalid_param, mandatory, unknown
from .ledger import client_order_id
from .rest import NONE as PUBLIC
from .rest import SIGNED, USER_STREAM, BinanceContext, Route
from .rest import weight as w
from .wire import (
    f8,
    premium_index,
    qty,
    risk_v2,
    risk_v3,
    symbol_info,
)

USDT = "USDT"


def _symbol(ctx: BinanceContext, params: dict[str, str], required: bool = True) -> str | None:
    symbol = params.get("symbol")
    if not symbol:
        if required:
            raise mandatory("symbol")
        return None
    if symbol not in ctx.symbols:
        raise bad_symbol()
    return symbol


def _symbols(ctx: BinanceContext, params: dict[str, str]) -> list[str]:
    one = _symbol(ctx, params, required=False)
    return [one] if one else ctx.symbols


# -- market data ----------------------------------------------------------------------
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
    rows = [premium_index(s, ctx.prices.snapshot(s, now)[0], now) for s in _symbols(ctx, params)]
    return rows[0] if params.get("symbol") else rows


def ticker_price(ctx: BinanceContext, params: dict[str, str]) -> dict | list[dict]:
    now = ctx.clock.now_ms()
    rows = [{"symbol": s, "price": ctx.prices.snapshot(s, now)[0]["lastPrice"], "time": now}
            for s in _symbols(ctx, params)]
    return rows[0] if params.get("symbol") else rows


def ticker_24h(ctx: BinanceContext, params: dict[str, str]) -> dict | list[dict]:
    now = ctx.clock.now_ms()
    rows = []
    for s in _symbols(ctx, params):
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
    for s in _symbols(ctx, params):
        inst = ctx.prices.instruments[s]
        rows.append({"symbol": s, "notionalCoef": 1.0, "brackets": [{
            "bracket": 1, "initialLeverage": int(inst.max_leverage), "notionalCap": 20_000_000,
            "notionalFloor": 0, "maintMarginRatio": float(inst.mmr), "cum": 0.0}]})
    return rows[0] if params.get("symbol") else rows


# -- account and positions --------------------------------------------------------------
def _positions(ctx: BinanceContext, params: dict[str, str], flat: bool):
    names = _symbols(ctx, params)
    account = ctx.account
    for name in names:
        pos = account.position(name)
        if flat or pos.is_open:
            yield pos, account.mark(name)


def position_risk_v3(ctx: BinanceContext, params: dict[str, str]) -> list[dict]:
    fee = ctx.account.fee_rate
    return [risk_v3(p, m, fee) for p, m in _positions(ctx, params, flat=False)]


def position_risk_v2(ctx: BinanceContext, params: dict[str, str]) -> list[dict]:
    fee = ctx.account.fee_rate
    return [risk_v2(p, m, fee) for p, m in _positions(ctx, params, flat=True)]


def _totals(ctx: BinanceContext) -> dict[str, str]:
    upl, im, mm = ctx.account.totals()
    wallet = ctx.account.balance
    margin = wallet + upl
    available = margin - im
    return {"totalInitialMargin": f8(im), "totalMaintMargin": f8(mm),
            "totalWalletBalance": f8(wallet), "totalUnrealizedProfit": f8(upl),
            "totalMarginBalance": f8(margin), "totalPositionInitialMargin": f8(im),
            "totalOpenOrderInitialMargin": "0.00000000", "totalCrossWalletBalance": f8(wallet),
            "totalCrossUnPnl": f8(upl), "availableBalance": f8(available),
            "maxWithdrawAmount": f8(max(available, Decimal(0)))}


def _asset(ctx: BinanceContext) -> dict:
    t = _totals(ctx)
    return {"asset": USDT, "walletBalance": t["totalWalletBalance"],
            "unrealizedProfit": t["totalUnrealizedProfit"],
            "marginBalance": t["totalMarginBalance"],
            "maintMargin": t["totalMaintMargin"], "initialMargin": t["totalInitialMargin"],
            "positionInitialMargin": t["totalPositionInitialMargin"],
            "openOrderInitialMargin": "0.00000000",
            "crossWalletBalance": t["totalCrossWalletBalance"],
            "crossUnPnl": t["totalCrossUnPnl"], "availableBalance": t["availableBalance"],
            "maxWithdrawAmount": t["maxWithdrawAmount"], "marginAvailable": True,
            "updateTime": ctx.clock.now_ms()}


def account_v3(ctx: BinanceContext, params: dict[str, str]) -> dict:
    positions = []
    for pos, mark in _positions(ctx, {}, flat=False):
        row = risk_v3(pos, mark, ctx.account.fee_rate)
        positions.append({k: row[k] for k in (
            "symbol", "positionSide", "positionAmt", "isolatedMargin", "notional",
            "isolatedWallet", "initialMargin", "maintMargin", "updateTime")}
            | {"unrealizedProfit": row["unRealizedProfit"]})
    return _totals(ctx) | {"assets": [_asset(ctx)], "positions": positions}


def account_v2(ctx: BinanceContext, params: dict[str, str]) -> dict:
    positions = []
    for pos, mark in _positions(ctx, {}, flat=True):
        row = risk_v3(pos, mark, ctx.account.fee_rate)
        positions.append({
            "symbol": row["symbol"], "initialMargin": row["initialMargin"],
            "maintMargin": row["maintMargin"], "unrealizedProfit": row["unRealizedProfit"],
            "positionInitialMargin": row["positionInitialMargin"],
            "openOrderInitialMargin": "0", "leverage": str(int(pos.leverage)),
            "isolated": False, "entryPrice": row["entryPrice"],
            "breakEvenPrice": row["breakEvenPrice"], "maxNotional": "20000000",
            "bidNotional": "0", "askNotional": "0", "positionSide": row["positionSide"],
            "positionAmt": row["positionAmt"], "updateTime": row["updateTime"]})
    return ({"feeTier": 0, "feeBurn": False, "canTrade": True, "canDeposit": True,
             "canWithdraw": True, "updateTime": 0, "multiAssetsMargin": False,
             "tradeGroupId": -1} | _totals(ctx)
            | {"assets": [_asset(ctx)], "positions": positions})


def balance(ctx: BinanceContext, params: dict[str, str]) -> list[dict]:
    a = _asset(ctx)
    return [{"accountAlias": "SgsR", "asset": USDT, "balance": a["walletBalance"],
             "crossWalletBalance": a["crossWalletBalance"], "crossUnPnl": a["crossUnPnl"],
             "availableBalance": a["availableBalance"],
             "maxWithdrawAmount": a["maxWithdrawAmount"], "marginAvailable": True,
             "updateTime": a["updateTime"]}]


# -- orders ---------------------------------------------------------------------------
def _bool(params: dict[str, str], name: str) -> bool:
    value = params.get(name, "false").lower()
    if value not in ("true", "false"):
        raise invalid_param(name)
    return value == "true"


ENGINE_ERRORS = {
    110007: (-2019, "Margin is insufficient."),
    110017: (-2022, "ReduceOnly Order is rejected."),
    110072: (-4116, "ClientOrderId is duplicated."),
}


def new_order(ctx: BinanceContext, params: dict[str, str]) -> dict:
    symbol = _symbol(ctx, params)
    assert symbol is not None
    inst = ctx.account.instrument(symbol)
    side = params.get("side")
    if not side:
        raise mandatory("side")
    if side not in ("BUY", "SELL"):
        raise BinanceError(-1117, "Invalid side.")
    order_type = params.get("type")
    if not order_type:
        raise mandatory("type")
    if order_type not in ("MARKET", "LIMIT", "STOP", "STOP_MARKET", "TAKE_PROFIT",
                          "TAKE_PROFIT_MARKET", "TRAILING_STOP_MARKET"):
        raise BinanceError(-1116, "Invalid orderType.")
    if order_type != "MARKET":
        raise BinanceError(-1000, f"The simulator fills MARKET orders only; {order_type} "
                                  "orders are not supported (use type=MARKET).")
    position_side = params.get("positionSide", "BOTH")
    if position_side not in ("BOTH", "LONG", "SHORT"):
        raise invalid_param("positionSide")
    if position_side != "BOTH":
        raise BinanceError(-4061, "Order's position side does not match user's setting.")
    raw_qty = params.get("quantity")
    if not raw_qty:
        raise mandatory("quantity")
    try:
        amount = Decimal(raw_qty)
    except InvalidOperation:
        raise invalid_param("quantity") from None
    if not amount.is_finite() or amount <= 0:
        raise BinanceError(-4003, "Quantity less than or equal to zero.")
    if not inst.qty_on_step(amount):
        raise BinanceError(-1111, "Precision is over the maximum defined for this asset.")
    if amount > inst.max_mkt_qty:
        raise BinanceError(-4005, "Quantity greater than max quantity.")
    if amount < inst.min_qty:
        raise BinanceError(-4004, "Quantity less than min quantity.")
    reduce_only = _bool(params, "reduceOnly")
    client = params.get("newClientOrderId") or client_order_id()
    try:
        result = ctx.account.place_market_order(
            symbol, "Buy" if side == "BUY" else "Sell", amount, reduce_only=reduce_only,
            order_link_id=client, reason="order")
    except SimError as exc:
        if exc.code == 110094:
            raise BinanceError(-4164, f"Order's notional must be no smaller than "
                                      f"{inst.min_notional} (unless you choose reduce only)."
                               ) from None
        code, msg = ENGINE_ERRORS.get(exc.code, (-1000, exc.msg))
        raise BinanceError(code, msg) from None
    row = dict(ctx.ledger.orders[ctx.ledger.order_id(result["orderId"])])
    out = {k: row[k] for k in (
        "clientOrderId", "orderId", "avgPrice", "origQty", "price", "reduceOnly", "side",
        "positionSide", "status", "stopPrice", "closePosition", "symbol", "timeInForce",
        "type", "origType", "updateTime", "workingType", "priceProtect", "priceMatch",
        "selfTradePreventionMode", "goodTillDate")}
    out |= {"cumQty": row["executedQty"], "cumQuote": row["cumQuote"],
            "executedQty": row["executedQty"]}
    if params.get("newOrderRespType", "ACK") != "RESULT":
        # ACK: the order is accepted; its fill arrives on the user data stream
        out |= {"status": "NEW", "executedQty": "0", "cumQty": "0", "cumQuote": "0.00000",
                "avgPrice": "0.00"}
    return out


def query_order(ctx: BinanceContext, params: dict[str, str]) -> dict:
    symbol = _symbol(ctx, params)
    assert symbol is not None
    order_id, client = params.get("orderId"), params.get("origClientOrderId")
    if not order_id and not client:
        raise BinanceError(-1102, "Param 'origClientOrderId' or 'orderId' must be sent, but "
                                  "both were empty/null!")
    row = ctx.ledger.find(symbol, order_id, client)
    if row is None:
        raise BinanceError(-2013, "Order does not exist.")
    return row | {"cumQuote": row["cumQuote"]}


def open_orders(ctx: BinanceContext, params: dict[str, str]) -> list[dict]:
    _symbol(ctx, params, required=False)
    return []


def cancel_all(ctx: BinanceContext, params: dict[str, str]) -> dict:
    _symbol(ctx, params)
    return {"code": 200, "msg": "The operation of cancel all open order is done."}


def cancel_order(ctx: BinanceContext, params: dict[str, str]) -> dict:
    _symbol(ctx, params)
    raise BinanceError(-2011, "Unknown order sent.")


def user_trades(ctx: BinanceContext, params: dict[str, str]) -> list[dict]:
    symbol = _symbol(ctx, params)
    limit = int(params.get("limit") or 500)
    rows = [t for t in ctx.ledger.trades if t["symbol"] == symbol]
    return rows[-limit:]


def set_leverage(ctx: BinanceContext, params: dict[str, str]) -> dict:
    symbol = _symbol(ctx, params)
    assert symbol is not None
    raw = params.get("leverage")
    if not raw:
        raise mandatory("leverage")
    inst = ctx.account.instrument(symbol)
    if not raw.isdigit() or not 1 <= int(raw) <= int(inst.max_leverage):
        raise BinanceError(-4028, f"Leverage {raw} is not valid")
    try:
        ctx.account.set_leverage(symbol, raw, raw)
    except SimError as exc:
        if exc.code != 110043:  # "not modified" is no error on Binance
            raise unknown(exc.msg) from None
    return {"leverage": int(raw), "maxNotionalValue": "20000000", "symbol": symbol}


def margin_type(ctx: BinanceContext, params: dict[str, str]) -> dict:
    _symbol(ctx, params)
    kind = params.get("marginType")
    if kind not in ("ISOLATED", "CROSSED"):
        raise invalid_param("marginType")
    if kind == "CROSSED":
        raise BinanceError(-4046, "No need to change margin type.")
    raise unknown("The simulator keeps cross margin only; ISOLATED is not supported.")


def get_dual(ctx: BinanceContext, params: dict[str, str]) -> dict:
    return {"dualSidePosition": ctx.dual_side[0]}


def set_dual(ctx: BinanceContext, params: dict[str, str]) -> dict:
    wanted = _bool(params, "dualSidePosition") if "dualSidePosition" in params else None
    if wanted is None:
        raise mandatory("dualSidePosition")
    if wanted == ctx.dual_side[0]:
        raise BinanceError(-4059, "No need to change position side.")
    if ctx.account.open_positions():
        raise BinanceError(-4068, "Position side cannot be changed if there exists position.")
    raise unknown("Hedge mode is not supported by the simulator yet (one-way mode only).")


# -- listenKey ------------------------------------------------------------------------
def listen_key_create(ctx: BinanceContext, params: dict[str, str]) -> dict:
    return {"listenKey": ctx.keys.create()}


def listen_key_keepalive(ctx: BinanceContext, params: dict[str, str]) -> dict:
    key = params.get("listenKey") or ctx.keys.active()
    return {"listenKey": ctx.keys.keepalive(key)}


def listen_key_close(ctx: BinanceContext, params: dict[str, str]) -> dict:
    ctx.keys.delete(params.get("listenKey") or ctx.keys.active())
    return {}


ROUTES = [
    Route("GET", "/fapi/v1/ping", ping, PUBLIC, w(1)),
    Route("GET", "/fapi/v1/time", server_time, PUBLIC, w(1)),
    Route("GET", "/fapi/v1/exchangeInfo", exchange_info, PUBLIC, w(1)),
    Route("GET", "/fapi/v1/premiumIndex", mark_price, PUBLIC, w(1, 10)),
    Route("GET", "/fapi/v1/ticker/price", ticker_price, PUBLIC, w(1, 2)),
    Route("GET", "/fapi/v2/ticker/price", ticker_price, PUBLIC, w(1, 2)),
    Route("GET", "/fapi/v1/ticker/24hr", ticker_24h, PUBLIC, w(1, 40)),
    Route("GET", "/fapi/v1/leverageBracket", leverage_bracket, SIGNED, w(1)),
    Route("GET", "/fapi/v3/positionRisk", position_risk_v3, SIGNED, w(5)),
    Route("GET", "/fapi/v2/positionRisk", position_risk_v2, SIGNED, w(5)),
    Route("GET", "/fapi/v3/account", account_v3, SIGNED, w(5)),
    Route("GET", "/fapi/v2/account", account_v2, SIGNED, w(5)),
    Route("GET", "/fapi/v3/balance", balance, SIGNED, w(5)),
    Route("GET", "/fapi/v2/balance", balance, SIGNED, w(5)),
    Route("POST", "/fapi/v1/order", new_order, SIGNED, w(0), order=True),
    Route("GET", "/fapi/v1/order", query_order, SIGNED, w(1)),
    Route("DELETE", "/fapi/v1/order", cancel_order, SIGNED, w(1)),
    Route("GET", "/fapi/v1/openOrders", open_orders, SIGNED, w(1, 40)),
    Route("DELETE", "/fapi/v1/allOpenOrders", cancel_all, SIGNED, w(1)),
    Route("GET", "/fapi/v1/userTrades", user_trades, SIGNED, w(5)),
    Route("POST", "/fapi/v1/leverage", set_leverage, SIGNED, w(1)),
    Route("POST", "/fapi/v1/marginType", margin_type, SIGNED, w(1)),
    Route("GET", "/fapi/v1/positionSide/dual", get_dual, SIGNED, w(30)),
    Route("POST", "/fapi/v1/positionSide/dual", set_dual, SIGNED, w(1)),
    Route("POST", "/fapi/v1/listenKey", listen_key_create, USER_STREAM, w(1)),
    Route("PUT", "/fapi/v1/listenKey", listen_key_keepalive, USER_STREAM, w(1)),
    Route("DELETE", "/fapi/v1/listenKey", listen_key_close, USER_STREAM, w(1)),
]

__all__ = ["ROUTES", "qty"]
