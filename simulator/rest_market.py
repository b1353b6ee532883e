"""Public market endpoints and the account-type endpoints clients probe at start-up."""

from __future__ import annotations

import hashlib
import secrets
from urllib.parse import quote

from .errors import params_error
from .rest import RestContext, Route

CATEGORIES = ("linear", "inverse", "spot", "option")
TICKER_EXTRA = {
    "predictedDeliveryPrice": "", "basisRate": "", "deliveryFeeRate": "", "deliveryTime": "0",
    "basis": "", "preOpenPrice": "", "preQty": "", "curPreListingPhase": "",
    "fundingIntervalHour": "8", "fundingCap": "0.005",
}


def category_of(params: dict, allowed: tuple[str, ...] = CATEGORIES) -> str:
    category = params.get("category")
    if not category:
        raise params_error("Missing some parameters that must be filled in, category")
    if category not in allowed:
        raise params_error("Illegal category")
    return category


def int_param(params: dict, name: str, default: int, low: int, high: int) -> int:
    raw = params.get(name)
    if raw in (None, ""):
        return default
    try:
        value = int(raw)
    except (TypeError, ValueError):
        raise params_error(f"params error: {name} invalid") from None
    if not low <= value <= high:
        raise params_error(f"params error: {name} must be in [{low}, {high}]")
    return value


_CURSOR_SALT = secrets.token_bytes(8)


def _cursor_token(offset: int) -> str:
    return hashlib.sha256(_CURSOR_SALT + str(offset).encode()).hexdigest()[:10]


def make_cursor(offset: int) -> str:
    """An opaque cursor as Bybit writes it in `nextPageCursor`: percent-encoded
    (``"132766%3A2%2C132766%3A2"`` in Bybit's docs), passed back unchanged."""
    part = f"{offset}:{_cursor_token(offset)}"
    return quote(f"{part},{part}", safe="")


def read_cursor(cursor: str) -> int:
    """The offset of a cursor as received: the query string is decoded exactly once
    (by the parser), so a client that encoded the cursor again sends ``%3A`` here and
    is refused, as a double-encoded cursor would be by Bybit."""
    first, sep, second = cursor.partition(",")
    offset, colon, token = first.partition(":")
    if (not sep or first != second or not colon or not offset.isdigit()
            or token != _cursor_token(int(offset))):
        raise params_error(f"params error: cursor invalid, cursor[{cursor}]")
    return int(offset)


def paginate(rows: list[dict], params: dict, default: int, high: int) -> tuple[list[dict], str]:
    """Cursor pagination with opaque percent-encoded cursors (see `make_cursor`)."""
    limit = int_param(params, "limit", default, 1, high)
    cursor = params.get("cursor") or ""
    start = read_cursor(str(cursor)) if cursor else 0
    page = rows[start:start + limit]
    end = start + len(page)
    return page, make_cursor(end) if end < len(rows) else ""


def market_time(ctx: RestContext, params: dict) -> dict:
    ns = ctx.clock.now_ns()
    return {"timeSecond": str(ns // 1_000_000_000), "timeNano": str(ns)}


def instruments_info(ctx: RestContext, params: dict) -> dict:
    category = category_of(params)
    rows: list[dict] = []
    status = params.get("status") or "Trading"
    if category in ("linear", "inverse") and status == "Trading":
        symbol, base = params.get("symbol"), params.get("baseCoin")
        for name, inst in ctx.prices.instruments.items():
            if inst.category != category:
                continue
            if (symbol and name != symbol) or (base and inst.base != base):
                continue
            rows.append(inst.info_row())
    page, nxt = paginate(rows, params, 500, 1000)
    return {"category": category, "list": page, "nextPageCursor": nxt}


def tickers(ctx: RestContext, params: dict) -> dict:
    category = category_of(params)
    rows: list[dict] = []
    if category in ("linear", "inverse"):
        symbol = params.get("symbol")
        names = ctx.prices.symbols_of(category)
        if symbol and symbol not in names:
            raise params_error("Not supported symbols")
        for name in [symbol] if symbol else names:
            data, _ = ctx.prices.snapshot(name, ctx.clock.now_ms())
            data.pop("tickDirection", None)
            rows.append(data | TICKER_EXTRA)
    return {"category": category, "list": rows}


def coin_info(ctx: RestContext, params: dict) -> dict:
    coins = ["USDT", *sorted({i.base for i in ctx.prices.instruments.values()})]
    rows = []
    for coin in coins:
        if params.get("coin") and params["coin"] != coin:
            continue
        rows.append({"name": coin, "coin": coin, "remainAmount": "1000000", "chains": [{
            "chainType": coin, "confirmation": "12", "withdrawFee": "1", "depositMin": "0",
            "withdrawMin": "1", "chain": coin, "chainDeposit": "1", "chainWithdraw": "1",
            "minAccuracy": "8", "withdrawPercentageFee": "0", "contractAddress": "",
        }]})
    return {"rows": rows}


def query_api(ctx: RestContext, params: dict) -> dict:
    return {
        "id": "1001", "note": "feedctl simulator", "apiKey": ctx.api_key, "readOnly": 0,
        "secret": "", "type": 1, "ips": ["*"], "deadlineDay": -2, "expiredAt": "",
        "createdAt": "2024-01-01T00:00:00Z", "unified": 0, "uta": 1, "userID": 1001,
        "inviterID": 0, "vipLevel": "No VIP", "mktMakerLevel": "0", "affiliateID": 0,
        "rsaPublicKey": "", "isMaster": True, "parentUid": "0", "kycLevel": "LEVEL_DEFAULT",
        "kycRegion": "",
        "permissions": {"ContractTrade": ["Order", "Position"], "Spot": ["SpotTrade"],
                        "Wallet": ["AccountTransfer"], "Options": [], "Derivatives": [],
                        "CopyTrading": [], "BlockTrade": [], "Exchange": [], "NFT": [],
                        "Affiliate": []},
    }


def account_info(ctx: RestContext, params: dict) -> dict:
    return {"unifiedMarginStatus": 6, "marginMode": "REGULAR_MARGIN", "isMasterTrader": False,
            "spotHedgingStatus": "OFF", "updatedTime": "1704067200000", "dcpStatus": "OFF",
            "timeWindow": 10, "smpGroup": 0}


def wallet_balance(ctx: RestContext, params: dict) -> dict:
    account_type = params.get("accountType")
    if not account_type:
        raise params_error("Missing some parameters that must be filled in, accountType")
    if account_type != "UNIFIED":
        raise params_error(f"accountType only support UNIFIED, accountType[{account_type}]")
    return {"list": [ctx.account.wallet()]}


ROUTES = [
    Route("GET", "/v5/market/time", market_time, signed=False),
    Route("GET", "/v5/market/instruments-info", instruments_info, signed=False),
    Route("GET", "/v5/market/tickers", tickers, signed=False),
    Route("GET", "/v5/asset/coin/query-info", coin_info, signed=True),
    Route("GET", "/v5/user/query-api", query_api, signed=True),
    Route("GET", "/v5/account/info", account_info, signed=True),
    Route("GET", "/v5/account/wallet-balance", wallet_balance, signed=True),
]
