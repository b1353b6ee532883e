"""Wire rows of the private `order`, `execution` and `wallet` topics (and their REST twins)."""

from __future__ import annotations

from decimal import Decimal

from .instruments import Instrument
from .position import fmt_trim


def order_row(*, inst: Instrument, order_id: str, link_id: str, side: str, qty: Decimal,
              price: Decimal, fee: Decimal, reduce_only: bool, stop_type: str,
              created_ms: int, mark: Decimal, status: str = "Filled",
              position_idx: int = 0) -> dict:
    filled = status == "Filled"
    value = exec_value(inst, qty, price) if filled else Decimal(0)
    return {
        "category": inst.category,
        "symbol": inst.symbol,
        "orderId": order_id,
        "orderLinkId": link_id,
        "blockTradeId": "",
        "side": side,
        "positionIdx": position_idx,
        "orderStatus": status,
        "cancelType": "UNKNOWN",
        "rejectReason": "EC_NoError",
        "avgPrice": fmt_trim(price) if filled else "",
        "leavesQty": "0" if filled else fmt_trim(qty),
        "leavesValue": "0",
        "cumExecQty": fmt_trim(qty) if filled else "0",
        "cumExecValue": fmt_trim(value),
        "cumExecFee": fmt_trim(fee),
        "timeInForce": "IOC",
        "orderType": "Market",
        "stopOrderType": stop_type,
        "orderIv": "",
        "triggerPrice": "",
        "takeProfit": "",
        "stopLoss": "",
        "tpTriggerBy": "",
        "slTriggerBy": "",
        "triggerDirection": 0,
        "triggerBy": "",
        "lastPriceOnCreated": fmt_trim(mark),
        "reduceOnly": reduce_only,
        "closeOnTrigger": bool(stop_type),
        "placeType": "",
        "smpType": "None",
        "smpGroup": 0,
        "smpOrderId": "",
        "tpslMode": "",
        "createType": "CreateByStopOrder" if stop_type else "CreateByUser",
        "price": fmt_trim(price),
        "qty": fmt_trim(qty),
        "createdTime": str(created_ms),
        "updatedTime": str(created_ms),
        "feeCurrency": "",
    }


def exec_value(inst: Instrument, qty: Decimal, price: Decimal) -> Decimal:
    """A fill's value in the settle coin (inverse: USD contracts / price)."""
    return qty / price if inst.inverse else qty * price


def execution_row(*, inst: Instrument, order_id: str, link_id: str, exec_id: str, side: str,
                  qty: Decimal, price: Decimal, fee: Decimal, fee_rate: Decimal, pnl: Decimal,
                  closed: Decimal, exec_type: str, stop_type: str, mark: Decimal, ms: int,
                  seq: int) -> dict:
    """A fill (/v5/execution/list, `execution` topic). Bybit's fills carry no
    positionIdx: in hedge mode the side and `closedSize` tell which side moved."""
    return {
        "category": inst.category,
        "symbol": inst.symbol,
        "isLeverage": "",
        "orderId": order_id,
        "orderLinkId": link_id,
        "side": side,
        "orderPrice": fmt_trim(price),
        "orderQty": fmt_trim(qty),
        "leavesQty": "0",
        "createType": "CreateByStopOrder" if stop_type else "CreateByUser",
        "orderType": "Market",
        "stopOrderType": stop_type,
        "execFee": fmt_trim(fee),
        "execId": exec_id,
        "execPrice": fmt_trim(price),
        "execQty": fmt_trim(qty),
        "execPnl": fmt_trim(pnl),
        "execType": exec_type,
        "execValue": fmt_trim(exec_value(inst, qty, price)),
        "execTime": str(ms),
        "isMaker": False,
        "feeRate": fmt_trim(fee_rate),
        "tradeIv": "",
        "markIv": "",
        "markPrice": fmt_trim(mark),
        "indexPrice": "",
        "underlyingPrice": "",
        "blockTradeId": "",
        "closedSize": fmt_trim(closed),
        "seq": seq,
    }


def wallet_row(*, balance: Decimal, upl: Decimal, im: Decimal, mm: Decimal,
               cum_realised: Decimal) -> dict:
    equity = balance + upl
    available = equity - im
    f = fmt_trim
    return {
        "accountType": "UNIFIED",
        "accountIMRate": f(im / equity, 0, 4) if equity > 0 else "0",
        "accountMMRate": f(mm / equity, 0, 4) if equity > 0 else "0",
        "accountLTV": "0",
        "totalEquity": f(equity),
        "totalWalletBalance": f(balance),
        "totalMarginBalance": f(equity),
        "totalAvailableBalance": f(available),
        "totalPerpUPL": f(upl),
        "totalInitialMargin": f(im),
        "totalMaintenanceMargin": f(mm),
        "coin": [{
            "coin": "USDT",
            "equity": f(equity),
            "usdValue": f(equity),
            "walletBalance": f(balance),
            "free": "",
            "locked": "0",
            "spotHedgingQty": "0",
            "borrowAmount": "0",
            "availableToWithdraw": "",
            "availableToBorrow": "",
            "accruedInterest": "0",
            "totalOrderIM": "0",
            "totalPositionIM": f(im),
            "totalPositionMM": f(mm),
            "unrealisedPnl": f(upl),
            "cumRealisedPnl": f(cum_realised),
            "bonus": "0",
            "marginCollateral": True,
            "collateralSwitch": True,
        }],
    }
