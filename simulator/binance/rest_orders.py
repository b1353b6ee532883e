"""Orders: MARKET orders fill at once; nothing is ever left open.

https://developers.binance.com/docs/derivatives/usds-margined-futures/trade/rest-api
(New-Order, Query-Order, Current-All-Open-Orders, Cancel-All-Open-Orders, Cancel-Order,
Account-Trade-List)
https://developers.binance.com/docs/derivatives/usds-margined-futures/account/rest-api/Get-Income-History
"""

from __future__ import annotations

from decimal import Decimal, InvalidOperation

from ..errors import SimError
from .errors import BinanceError, invalid_param, mandatory
from .ledger import client_order_id
from .params import bool_param, symbol_param
from .rest import BinanceContext
from .wire import POSITION_INDEXES

WEEK_MS = 7 * 86_400_000
#: hedge mode: the side that opens (adds to) each position index; the other closes it
HEDGE_OPENS = {1: "BUY", 2: "SELL"}

ENGINE_ERRORS = {
    110007: (-2019, "Margin is insufficient."),
    110017: (-2022, "ReduceOnly Order is rejected."),
    110072: (-4116, "ClientOrderId is duplicated."),
}


def new_order(ctx: BinanceContext, params: dict[str, str]) -> dict:
    symbol = symbol_param(ctx, params)
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
    idx = position_index(ctx, params)
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
    reduce_only = bool_param(params, "reduceOnly")
    if idx and "reduceOnly" in params:
        raise BinanceError(-1106, "Parameter 'reduceOnly' sent when not required.")
    if idx and side != HEDGE_OPENS[idx]:
        # hedge mode: SELL LONG / BUY SHORT close, and never more than is open
        pos = ctx.account.position(symbol, idx)
        if not pos.is_open or amount > pos.size:
            raise BinanceError(-2022, "ReduceOnly Order is rejected.")
    client = params.get("newClientOrderId") or client_order_id()
    try:
        result = ctx.account.place_market_order(
            symbol, "Buy" if side == "BUY" else "Sell", amount, reduce_only=reduce_only,
            position_idx=idx, order_link_id=client, reason="order")
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


def position_index(ctx: BinanceContext, params: dict[str, str]) -> int:
    """The engine position index of an order's ``positionSide``: BOTH (the default) in
    one-way mode, LONG or SHORT (mandatory) in hedge mode; else -4061."""
    position_side = params.get("positionSide", "BOTH")
    if position_side not in POSITION_INDEXES:
        raise invalid_param("positionSide")
    idx = POSITION_INDEXES[position_side]
    if (idx != 0) != ctx.dual_side[0]:
        raise BinanceError(-4061, "Order's position side does not match user's setting.")
    return idx


def query_order(ctx: BinanceContext, params: dict[str, str]) -> dict:
    symbol = symbol_param(ctx, params)
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
    symbol_param(ctx, params, required=False)
    return []


def cancel_all(ctx: BinanceContext, params: dict[str, str]) -> dict:
    symbol_param(ctx, params)
    return {"code": 200, "msg": "The operation of cancel all open order is done."}


def cancel_order(ctx: BinanceContext, params: dict[str, str]) -> dict:
    symbol_param(ctx, params)
    raise BinanceError(-2011, "Unknown order sent.")


def time_window(params: dict[str, str], now_ms: int, limit_default: int
                ) -> tuple[int | None, int | None, int]:
    """(startTime, endTime, limit): without either time, the last 7 days."""
    def number(name: str) -> int | None:
        raw = params.get(name)
        if raw in (None, ""):
            return None
        try:
            return int(raw)
        except ValueError:
            raise invalid_param(name) from None

    start, end, limit = number("startTime"), number("endTime"), number("limit")
    if limit is None:
        limit = limit_default
    if not 1 <= limit <= 1000:
        raise invalid_param("limit")
    if start is None and end is None:
        start = now_ms - WEEK_MS
    if start is not None and end is not None and (end < start or end - start > WEEK_MS):
        raise BinanceError(-1127, "More than 168 hours between startTime and endTime.")
    return start, end, limit


def user_trades(ctx: BinanceContext, params: dict[str, str]) -> list[dict]:
    """Ascending by id; from ``fromId``, or inside the time window (the last 7 days by
    default), the first ``limit`` (default 500, at most 1000) rows; with neither
    ``startTime`` nor ``fromId``, the most recent ones."""
    symbol = symbol_param(ctx, params)
    start, end, limit = time_window(params, ctx.clock.now_ms(), 500)
    rows = [t for t in ctx.ledger.trades if t["symbol"] == symbol]
    if params.get("orderId"):
        rows = [t for t in rows if str(t["orderId"]) == params["orderId"]]
    if params.get("fromId"):
        try:
            from_id = int(params["fromId"])
        except ValueError:
            raise invalid_param("fromId") from None
        return [t for t in rows if t["id"] >= from_id][:limit]
    rows = [t for t in rows if (start is None or t["time"] >= start)
            and (end is None or t["time"] <= end)]
    return rows[:limit] if params.get("startTime") else rows[-limit:]


def income(ctx: BinanceContext, params: dict[str, str]) -> list[dict]:
    """``symbol`` and ``incomeType`` filters; the time window as for userTrades; the first
    ``limit`` rows (default 100, at most 1000) from ``startTime``, else the latest."""
    symbol, kind = params.get("symbol"), params.get("incomeType")
    if symbol:
        symbol_param(ctx, params)
    start, end, limit = time_window(params, ctx.clock.now_ms(), 100)
    rows = [r for r in ctx.ledger.income
            if (not symbol or r["symbol"] == symbol) and (not kind or r["incomeType"] == kind)
            and (start is None or r["time"] >= start) and (end is None or r["time"] <= end)]
    return rows[:limit] if params.get("startTime") else rows[-limit:]
