"""Account, positions, position mode, leverage, margin type and the listenKey.

https://developers.binance.com/docs/derivatives/usds-margined-futures/trade/rest-api
(Position-Information-V3, Position-Information-V2, Change-Initial-Leverage,
Change-Margin-Type, Change-Position-Mode, Get-Current-Position-Mode)
https://developers.binance.com/docs/derivatives/usds-margined-futures/account/rest-api
(Account-Information-V3, Account-Information-V2, Futures-Account-Balance-V3,
Futures-Account-Balance-V2, Symbol-Config)
https://developers.binance.com/docs/derivatives/usds-margined-futures/user-data-streams
(Start-User-Data-Stream, Keepalive-User-Data-Stream, Close-User-Data-Stream)
"""

from __future__ import annotations

from collections.abc import Iterator
from decimal import Decimal

from ..account_core import HEDGE, ONE_WAY
from ..errors import SimError
from ..position import Position
from .errors import BinanceError, invalid_param, mandatory, unknown
from .params import USDT, bool_param, symbol_param, symbols_param
from .rest import BinanceContext
from .wire import f8, risk_v2, risk_v3


def _positions(ctx: BinanceContext, params: dict[str, str],
               flat: bool) -> Iterator[tuple[Position, Decimal]]:
    """The positions of the symbols asked for: one row (BOTH) per symbol in one-way
    mode, two (LONG, SHORT) in hedge mode; ``flat`` keeps the closed ones."""
    names = symbols_param(ctx, params)
    account = ctx.account
    for name in names:
        for pos in account.positions_of(name):
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


def set_leverage(ctx: BinanceContext, params: dict[str, str]) -> dict:
    symbol = symbol_param(ctx, params)
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
    symbol_param(ctx, params)
    kind = params.get("marginType")
    if kind not in ("ISOLATED", "CROSSED"):
        raise invalid_param("marginType")
    if kind == "CROSSED":
        raise BinanceError(-4046, "No need to change margin type.")
    raise unknown("The simulator keeps cross margin only; ISOLATED is not supported.")


def symbol_config(ctx: BinanceContext, params: dict[str, str]) -> list[dict]:
    """Every symbol's (or ``symbol``'s) leverage and margin type: positionRisk V3 rows no
    longer carry the leverage."""
    out = []
    for name in symbols_param(ctx, params):
        pos = ctx.account.positions_of(name)[0]
        out.append({"symbol": name, "marginType": "CROSSED", "isAutoAddMargin": "false",
                    "leverage": int(pos.leverage), "maxNotionalValue": "20000000"})
    return out


def get_dual(ctx: BinanceContext, params: dict[str, str]) -> dict:
    return {"dualSidePosition": ctx.dual_side[0]}


def set_dual(ctx: BinanceContext, params: dict[str, str]) -> dict:
    """Hedge mode (``dualSidePosition=true``) or one-way mode on EVERY symbol, refused
    with -4059 when already so and -4068 while a position is open (the simulator keeps
    no open orders, so -4067 never applies). Each symbol's engine positions switch
    between index 0 (BOTH) and 1/2 (LONG/SHORT)."""
    wanted = bool_param(params, "dualSidePosition") if "dualSidePosition" in params else None
    if wanted is None:
        raise mandatory("dualSidePosition")
    if wanted == ctx.dual_side[0]:
        raise BinanceError(-4059, "No need to change position side.")
    account = ctx.account
    if any(p.is_open for s in ctx.symbols for p in account.positions_of(s)):
        raise BinanceError(-4068, "Position side cannot be changed if there exists position.")
    mode = HEDGE if wanted else ONE_WAY
    for symbol in ctx.symbols:
        if account.mode(symbol) != mode:
            account.switch_mode(symbol, mode)
    ctx.dual_side[0] = wanted
    return {"code": 200, "msg": "success"}


def listen_key_create(ctx: BinanceContext, params: dict[str, str]) -> dict:
    return {"listenKey": ctx.keys.create()}


def listen_key_keepalive(ctx: BinanceContext, params: dict[str, str]) -> dict:
    key = params.get("listenKey") or ctx.keys.active()
    return {"listenKey": ctx.keys.keepalive(key)}


def listen_key_close(ctx: BinanceContext, params: dict[str, str]) -> dict:
    ctx.keys.delete(params.get("listenKey") or ctx.keys.active())
    return {}
