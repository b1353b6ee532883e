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
a message saying so); one-way mode (``positionSide`` BOTH) by default, hedge mode
(``dualSidePosition``: LONG / SHORT) on the shared account engine's hedge positions.
"""

from __future__ import annotations

from . import rest_account as account
from . import rest_market as market
from . import rest_orders as orders
from .rest import NONE as PUBLIC
from .rest import SIGNED, USER_STREAM, Route
from .rest import weight as w

ROUTES = [
    Route("GET", "/fapi/v1/ping", market.ping, PUBLIC, w(1)),
    Route("GET", "/fapi/v1/time", market.server_time, PUBLIC, w(1)),
    Route("GET", "/fapi/v1/exchangeInfo", market.exchange_info, PUBLIC, w(1)),
    Route("GET", "/fapi/v1/premiumIndex", market.mark_price, PUBLIC, w(1, 10)),
    Route("GET", "/fapi/v1/ticker/price", market.ticker_price, PUBLIC, w(1, 2)),
    Route("GET", "/fapi/v2/ticker/price", market.ticker_price, PUBLIC, w(1, 2)),
    Route("GET", "/fapi/v1/ticker/24hr", market.ticker_24h, PUBLIC, w(1, 40)),
    Route("GET", "/fapi/v1/leverageBracket", market.leverage_bracket, SIGNED, w(1)),
    Route("GET", "/fapi/v3/positionRisk", account.position_risk_v3, SIGNED, w(5)),
    Route("GET", "/fapi/v2/positionRisk", account.position_risk_v2, SIGNED, w(5)),
    Route("GET", "/fapi/v3/account", account.account_v3, SIGNED, w(5)),
    Route("GET", "/fapi/v2/account", account.account_v2, SIGNED, w(5)),
    Route("GET", "/fapi/v3/balance", account.balance, SIGNED, w(5)),
    Route("GET", "/fapi/v2/balance", account.balance, SIGNED, w(5)),
    Route("POST", "/fapi/v1/order", orders.new_order, SIGNED, w(0), order=True),
    Route("GET", "/fapi/v1/order", orders.query_order, SIGNED, w(1)),
    Route("DELETE", "/fapi/v1/order", orders.cancel_order, SIGNED, w(1)),
    Route("GET", "/fapi/v1/openOrders", orders.open_orders, SIGNED, w(1, 40)),
    Route("DELETE", "/fapi/v1/allOpenOrders", orders.cancel_all, SIGNED, w(1)),
    Route("GET", "/fapi/v1/userTrades", orders.user_trades, SIGNED, w(5)),
    Route("GET", "/fapi/v1/income", orders.income, SIGNED, w(30)),
    Route("GET", "/fapi/v1/symbolConfig", account.symbol_config, SIGNED, w(5)),
    Route("POST", "/fapi/v1/leverage", account.set_leverage, SIGNED, w(1)),
    Route("POST", "/fapi/v1/marginType", account.margin_type, SIGNED, w(1)),
    Route("GET", "/fapi/v1/positionSide/dual", account.get_dual, SIGNED, w(30)),
    Route("POST", "/fapi/v1/positionSide/dual", account.set_dual, SIGNED, w(1)),
    Route("POST", "/fapi/v1/listenKey", account.listen_key_create, USER_STREAM, w(1)),
    Route("PUT", "/fapi/v1/listenKey", account.listen_key_keepalive, USER_STREAM, w(1)),
    Route("DELETE", "/fapi/v1/listenKey", account.listen_key_close, USER_STREAM, w(1)),
]
