"""Binance USDⓈ-M futures facts the feed relies on, as data.

Sources (developers.binance.com, USDⓈ-M futures): General Info (limits, error codes),
User Data Streams (listenKey lifecycle, events), Websocket Market Streams (mark price,
SUBSCRIBE), Position Information V3, and the "Important WebSocket Change Notice" that
moved market data to ``/market`` (or ``/public``) and the user data stream to
``/private`` (``/private/ws?listenKey=...``); the old ``/ws/<listenKey>`` routes stay
open but carry only public data since 2026-04-23.
"""

from __future__ import annotations

from typing import Final

#: Endpoints per environment: REST base, market-data socket base, user-data socket base.
DEFAULT_ENDPOINTS: Final[dict[str, dict[str, str]]] = {
    "mainnet": {
        "rest": "https://fapi.binance.com",
        "market_ws": "wss://fstream.binance.com/market",
        "private_ws": "wss://fstream.binance.com/private",
    },
    "testnet": {
        "rest": "https://testnet.binancefuture.com",
        "market_ws": "wss://fstream.binancefuture.com/market",
        "private_ws": "wss://fstream.binancefuture.com/private",
    },
}

#: The exchange id profiles name (ccxt's id for USDⓈ-M futures).
EXCHANGE_ID: Final = "binanceusdm"

# ----------------------------------------------------------------- REST paths
PATH_TIME: Final = "/fapi/v1/time"
PATH_LISTEN_KEY: Final = "/fapi/v1/listenKey"
PATH_POSITIONS: Final = "/fapi/v3/positionRisk"
PATH_POSITION_MODE: Final = "/fapi/v1/positionSide/dual"
PATH_PREMIUM_INDEX: Final = "/fapi/v1/premiumIndex"
PATH_SYMBOL_CONFIG: Final = "/fapi/v1/symbolConfig"
PATH_USER_TRADES: Final = "/fapi/v1/userTrades"
PATH_INCOME: Final = "/fapi/v1/income"

#: Request weights (IP, per minute) of the calls the feed makes.
WEIGHTS: Final[dict[tuple[str, str], int]] = {
    ("GET", PATH_TIME): 1,
    ("POST", PATH_LISTEN_KEY): 1,
    ("PUT", PATH_LISTEN_KEY): 1,
    ("DELETE", PATH_LISTEN_KEY): 1,
    ("GET", PATH_POSITIONS): 5,
    ("GET", PATH_POSITION_MODE): 30,
    ("GET", PATH_PREMIUM_INDEX): 1,
    ("GET", PATH_SYMBOL_CONFIG): 5,
    ("GET", PATH_USER_TRADES): 5,
    ("GET", PATH_INCOME): 30,
}
#: USDⓈ-M's REQUEST_WEIGHT limit per minute and IP (exchangeInfo ``rateLimits``).
WEIGHT_LIMIT_1M: Final = 2400
#: The header carrying the IP's weight used in the current minute.
USED_WEIGHT_HEADER: Final = "X-MBX-USED-WEIGHT-1M"
API_KEY_HEADER: Final = "X-MBX-APIKEY"

# ----------------------------------------------------------------- error codes
#: Timestamp outside recvWindow (or ahead of the server): re-measure the clock, retry.
ERR_TIMESTAMP: Final = -1021
#: Too many requests (-1003): back off.
ERR_TOO_MANY: Final = -1003
#: ``This listenKey does not exist.``: create a new one.
ERR_NO_LISTEN_KEY: Final = -1125
#: Codes retrying cannot fix, with what to tell the user and the setting to check.
FATAL_CODES: Final[dict[int, tuple[str, str]]] = {
    -2014: ("Binance rejected the API key format (-2014 API-key format invalid)", "API_KEY"),
    -2015: ("Binance rejected the API key, its IP restriction or its permissions "
            "(-2015 Invalid API-key, IP, or permissions for action; the key needs "
            "'Enable Futures')", "API_KEY"),
    -1022: ("Binance rejected the request signature (-1022)", "API_SECRET"),
}

# ----------------------------------------------------------------- user data stream
EVENT_ACCOUNT: Final = "ACCOUNT_UPDATE"
EVENT_ORDER: Final = "ORDER_TRADE_UPDATE"
EVENT_CONFIG: Final = "ACCOUNT_CONFIG_UPDATE"
EVENT_EXPIRED: Final = "listenKeyExpired"
#: Events of the user data stream that carry nothing the feed needs.
IGNORED_EVENTS: Final = frozenset({
    "MARGIN_CALL", "TRADE_LITE", "STRATEGY_UPDATE", "GRID_UPDATE",
    "CONDITIONAL_ORDER_TRIGGER_REJECT", "ALGO_UPDATE",
})
#: A listenKey is valid for 60 minutes after its creation or last keepalive.
LISTEN_KEY_VALIDITY_S: Final = 3600.0
#: Binance cuts every connection at 24 hours.
MAX_CONNECTION_AGE_S: Final = 86_400.0

# ----------------------------------------------------------------- market streams
#: Mark price streams: per symbol every 1 s or 3 s.
MARK_STREAM_1S: Final = "@markPrice@1s"
MARK_STREAM_3S: Final = "@markPrice"
#: Incoming messages (SUBSCRIBE frames, pongs...) a connection may send per second.
MAX_INCOMING_PER_S: Final = 10
#: Streams one connection may listen to.
MAX_STREAMS_PER_CONNECTION: Final = 1024

#: positionSide -> PositionKey.position_idx (as the core's PositionKey does for Bybit).
POSITION_IDX: Final[dict[str, int]] = {"BOTH": 0, "LONG": 1, "SHORT": 2}
