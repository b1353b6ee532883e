"""Signed position and order endpoints."""

from __future__ import annotations

import logging

from .account import parse_decimal
from .errors import SimError, params_error
from .rest import RestContext, Route
from .rest_market import category_of, int_param, paginate

log = logging.getLogger("feedctl.simulator")


def _bool(value: object, name: str) -> bool:
    if isinstance(value, bool):
        return value
    if value in (None, "", 0, "0", "false", "False"):
        return False
    if value in (1, "1", "true", "True"):
        return True
    raise params_error(f"params error: {name} invalid")


def _idx(params: dict) -> int:
    raw = params.get("positionIdx", 0)
    try:
        return int(raw) if raw not in (None, "") else 0
    except (TypeError, ValueError):
        raise params_error("params error: positionIdx invalid") from None


def _symbol(ctx: RestContext, params: dict, category: str | None = None) -> str:
    symbol = params.get("symbol")
    if not symbol:
        raise params_error("Missing some parameters that must be filled in, symbol")
    inst = ctx.account.instrument(str(symbol))
    if category is not None and inst.category != category:
        raise params_error(f"params error: symbol invalid, symbol[{symbol}]")
    return str(symbol)


def position_list(ctx: RestContext, params: dict) -> dict:
    """linear: `symbol` or `settleCoin` required; inverse: neither (all holdings), and
    `symbol` may list up to 10 names. With a symbol, flat rows come back too."""
    category = category_of(params, ("linear", "inverse", "option"))
    symbol, settle = params.get("symbol"), params.get("settleCoin")
    account = ctx.account
    rows: list[dict] = []
    if category == "linear" and not symbol and not settle and not params.get("baseCoin"):
        raise params_error("Missing some parameters that must be filled in, symbol or "
                           "settleCoin")
    if category in ("linear", "inverse"):
        if symbol:
            names = str(symbol).split(",") if category == "inverse" else [str(symbol)]
            if len(names) > 10:
                raise params_error("params error: symbol supports up to 10 names")
            for name in names:
                rows += account.rest_rows(_symbol(ctx, {"symbol": name}, category))
        else:
            rows = account.rest_rows(category=category, settle_coin=settle or None)
            base = params.get("baseCoin")
            if base:
                rows = [r for r in rows if account.instrument(r["symbol"]).base == base]
    page, nxt = paginate(rows, params, 20, 200)
    return {"category": category, "list": page, "nextPageCursor": nxt}


def order_create(ctx: RestContext, params: dict) -> dict:
    category = category_of(params, ("linear", "inverse"))
    symbol = _symbol(ctx, params, category)
    order_type = params.get("orderType")
    if order_type not in ("Market", "Limit"):
        raise params_error(f"params error: orderType invalid, orderType[{order_type}]")
    if order_type == "Limit":
        raise params_error("orderType Limit is not supported by the simulator: use Market")
    qty = parse_decimal("qty", params.get("qty"), allow_zero=False)
    link_id = str(params.get("orderLinkId") or "")
    result = ctx.account.place_market_order(
        symbol, str(params.get("side")), qty, reduce_only=_bool(params.get("reduceOnly"),
                                                                 "reduceOnly"),
        position_idx=_idx(params), order_link_id=link_id)
    tp, sl = params.get("takeProfit"), params.get("stopLoss")
    if tp or sl:
        try:
            ctx.account.set_trading_stop(symbol, take_profit=tp, stop_loss=sl,
                                         position_idx=_idx(params))
        except SimError as exc:
            log.info("TP/SL attached to order %s not applied: %s", result["orderId"], exc.msg)
    return result


def set_leverage(ctx: RestContext, params: dict) -> dict:
    category = category_of(params, ("linear", "inverse"))
    ctx.account.set_leverage(_symbol(ctx, params, category), params.get("buyLeverage"),
                             params.get("sellLeverage"))
    return {}


def trading_stop(ctx: RestContext, params: dict) -> dict:
    category = category_of(params, ("linear", "inverse"))
    symbol = _symbol(ctx, params, category)
    ctx.account.set_trading_stop(
        symbol, take_profit=params.get("takeProfit"), stop_loss=params.get("stopLoss"),
        trailing_stop=params.get("trailingStop"), active_price=params.get("activePrice"),
        tpsl_mode=params.get("tpslMode"), position_idx=_idx(params))
    return {}


def switch_mode(ctx: RestContext, params: dict) -> dict:
    """`mode` 0 (merged single) or 3 (both sides), for a `symbol` or every symbol of a
    settle `coin` that has no position (the others keep their mode, as on Bybit)."""
    category = category_of(params, ("linear", "inverse"))
    raw = params.get("mode")
    try:
        mode = int(raw)  # type: ignore[arg-type]
    except (TypeError, ValueError):
        raise params_error(f"params error: mode invalid, mode[{raw}]") from None
    account = ctx.account
    if params.get("symbol"):
        account.switch_mode(_symbol(ctx, params, category), mode)
        return {}
    coin = params.get("coin")
    if not coin:
        raise params_error("Missing some parameters that must be filled in, symbol or coin")
    switched = 0
    for name, inst in account.instruments.items():
        if inst.category != category or inst.settle_coin != coin:
            continue
        try:
            account.switch_mode(name, mode)
            switched += 1
        except SimError as exc:
            if exc.code not in (110025, 110024):
                raise
    if not switched:
        raise SimError(110025, "Position mode is not modified")
    return {}


def _orders(ctx: RestContext, params: dict) -> list[dict]:
    out = []
    for order in reversed(list(ctx.account.orders.values())):
        if params.get("symbol") and order["symbol"] != params["symbol"]:
            continue
        if params.get("orderId") and order["orderId"] != params["orderId"]:
            continue
        if params.get("orderLinkId") and order["orderLinkId"] != params["orderLinkId"]:
            continue
        out.append(order)
    return out


def order_realtime(ctx: RestContext, params: dict) -> dict:
    """Open orders (market orders fill at once, so only the ones asked for by id)."""
    category = category_of(params)
    rows = _orders(ctx, params) if params.get("orderId") or params.get("orderLinkId") else []
    limit = int_param(params, "limit", 20, 1, 50)
    return {"category": category, "list": rows[:limit], "nextPageCursor": ""}


def order_history(ctx: RestContext, params: dict) -> dict:
    category = category_of(params)
    rows = [o for o in _orders(ctx, params) if o["category"] == category]
    page, nxt = paginate(rows, params, 20, 50)
    return {"category": category, "list": page, "nextPageCursor": nxt}


def execution_list(ctx: RestContext, params: dict) -> dict:
    category = category_of(params)
    rows = [e for e in reversed(ctx.account.executions)
            if (not params.get("symbol") or e["symbol"] == params["symbol"])
            and e["category"] == category]
    page, nxt = paginate(rows, params, 50, 100)
    return {"category": category, "list": page, "nextPageCursor": nxt}


def order_cancel(ctx: RestContext, params: dict) -> dict:
    category_of(params)
    raise SimError(110001, "order not exists or too late to cancel")


def order_cancel_all(ctx: RestContext, params: dict) -> dict:
    category_of(params)
    return {"list": [], "success": "1"}


ROUTES = [
    Route("GET", "/v5/position/list", position_list, signed=True),
    Route("POST", "/v5/order/create", order_create, signed=True),
    Route("POST", "/v5/position/set-leverage", set_leverage, signed=True),
    Route("POST", "/v5/position/trading-stop", trading_stop, signed=True),
    Route("POST", "/v5/position/switch-mode", switch_mode, signed=True),
    Route("GET", "/v5/order/realtime", order_realtime, signed=True),
    Route("GET", "/v5/order/history", order_history, signed=True),
    Route("GET", "/v5/execution/list", execution_list, signed=True),
    Route("POST", "/v5/order/cancel", order_cancel, signed=True),
    Route("POST", "/v5/order/cancel-all", order_cancel_all, signed=True),
]
