"""Venue facts the poller relies on, kept as data (see docs/rest_polling.md)."""

from __future__ import annotations

#: ccxt exchange id used when neither the feed nor the account names one.
DEFAULT_EXCHANGE = "bybit"

#: Bybit ``/v5/position/list``: the largest page; ``limit`` defaults to 20 otherwise.
BYBIT_PAGE_LIMIT = 200

#: Settle coins of Bybit's linear contracts; any other settle coin is an inverse contract.
BYBIT_LINEAR_SETTLE = frozenset({"USDT", "USDC"})


#: Raw position fields (Bybit names) read before ccxt's unified, float-typed ones.
RAW_SIZE = ("size", "qty")
RAW_ENTRY = ("avgPrice", "entryPrice", "avgEntryPrice")
RAW_MARK = ("markPrice",)
RAW_LEVERAGE = ("leverage",)
RAW_LIQ = ("liqPrice", "liquidationPrice")
RAW_TAKE_PROFIT = ("takeProfit",)
RAW_STOP_LOSS = ("stopLoss",)
RAW_TRAILING = ("trailingStop",)
RAW_UPDATED = ("updatedTime", "updatedAt", "updateTime")

#: ``has`` flags in the order the poller prefers them for mark prices (cheapest first
#: after the positions' own ``markPrice``, which costs no request).
MARK_PRICE_CALLS = ("fetchMarkPrices", "fetchTickers", "fetchMarkPrice", "fetchTicker")
