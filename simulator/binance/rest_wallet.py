"""The two spot-wallet endpoints a client of USDⓈ-M futures reads at start-up.

ccxt's ``binanceusdm`` loads currencies (with API keys) from the wallet's coin list and
the cross-margin pairs, both on the spot API's host (``/sapi``). The simulator answers
them on its one port, so a client pointed at it with every URL loads its markets
without options changed: the coins are USDT and the base assets of the instruments;
there are no margin pairs.

https://developers.binance.com/docs/wallet/capital/all-coins-info (GET
/sapi/v1/capital/config/getall, USER_DATA, weight 10)
https://developers.binance.com/docs/margin_trading/market-data/Get-All-Cross-Margin-Pairs
(GET /sapi/v1/margin/allPairs, MARKET_DATA, weight 1)
"""

from __future__ import annotations

from .rest import SIGNED, USER_STREAM, BinanceContext, Route, weight


def _network(coin: str) -> dict:
    return {"network": coin, "coin": coin, "withdrawIntegerMultiple": "0.00000001",
            "isDefault": True, "depositEnable": True, "withdrawEnable": True,
            "depositDesc": "", "withdrawDesc": "", "specialTips": "", "name": coin,
            "resetAddressStatus": False, "addressRegex": "", "memoRegex": "",
            "withdrawFee": "1", "withdrawMin": "2", "withdrawMax": "10000000",
            "minConfirm": 12, "unLockConfirm": 0, "sameAddress": False,
            "estimatedArrivalTime": 5, "busy": False, "contractAddressUrl": "",
            "contractAddress": ""}


def coins(ctx: BinanceContext, params: dict[str, str]) -> list[dict]:
    names = ["USDT", *sorted({ctx.prices.instruments[s].base for s in ctx.symbols})]
    return [{"coin": c, "name": c, "depositAllEnable": True, "withdrawAllEnable": True,
             "free": "0", "locked": "0", "freeze": "0", "withdrawing": "0", "ipoing": "0",
             "ipoable": "0", "storage": "0", "isLegalMoney": False, "trading": True,
             "networkList": [_network(c)]} for c in names]


def margin_pairs(ctx: BinanceContext, params: dict[str, str]) -> list[dict]:
    return []


ROUTES = [
    Route("GET", "/sapi/v1/capital/config/getall", coins, SIGNED, weight(10)),
    Route("GET", "/sapi/v1/margin/allPairs", margin_pairs, USER_STREAM, weight(1)),
]
