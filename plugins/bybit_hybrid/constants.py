"""Bybit V5 facts the hybrid feed relies on, as data (see /work/shared/bybit-v5.md)."""

from __future__ import annotations

from typing import Final

from feedctl import Category

#: Hosts per environment: REST, public linear WS, public inverse WS, private WS.
HOSTS: Final[dict[str, dict[str, str]]] = {
    "mainnet": {
        "rest": "https://api.bybit.com",
        "public_ws": "wss://stream.bybit.com/v5/public/linear",
        "public_ws_inverse": "wss://stream.bybit.com/v5/public/inverse",
        "private_ws": "wss://stream.bybit.com/v5/private",
    },
    "testnet": {
        "rest": "https://api-testnet.bybit.com",
        "public_ws": "wss://stream-testnet.bybit.com/v5/public/linear",
        "public_ws_inverse": "wss://stream-testnet.bybit.com/v5/public/inverse",
        "private_ws": "wss://stream-testnet.bybit.com/v5/private",
    },
    "demo": {
        "rest": "https://api-demo.bybit.com",
        "public_ws": "wss://stream.bybit.com/v5/public/linear",
        "public_ws_inverse": "wss://stream.bybit.com/v5/public/inverse",
        "private_ws": "wss://stream-demo.bybit.com/v5/private",
    },
}

# ----------------------------------------------------------------- topics and ops
TOPIC_POSITION: Final = "position"
#: Topics carrying position states; a push carries the topic as subscribed. The feed
#: subscribes the categorised topic of each configured category (``position.linear``,
#: ``position.inverse``): the all-in-one ``position`` also carries option rows.
POSITION_TOPICS: Final = frozenset({"position", "position.linear", "position.inverse"})


def position_topics(categories: list[Category]) -> list[str]:
    """The categorised position topics of ``categories``, in one subscribe request
    (Bybit: only the all-in-one topic may not share a request with them)."""
    return [f"{TOPIC_POSITION}.{c.value}" for c in dict.fromkeys(categories)]
#: Private topics we do not subscribe; seeing one is counted as ``unexpected_topic``.
#: ``execution`` and ``wallet`` add nothing to a position's state that the ``position``
#: push lacks, so the feed does not subscribe them.
OTHER_PRIVATE_TOPICS: Final = frozenset(
    {"execution", "execution.fast", "order", "wallet", "greeks", "dcp"}
)
TICKERS_PREFIX: Final = "tickers."
#: how Bybit rejects a subscribe of a topic the connection already has
ALREADY_SUBSCRIBED = "error:already subscribed"

WS_AUTH_PATH: Final = "GET/realtime"

# ----------------------------------------------------------------- REST
PATH_TIME: Final = "/v5/market/time"
PATH_POSITIONS: Final = "/v5/position/list"
PATH_EXECUTIONS: Final = "/v5/execution/list"
PATH_INSTRUMENTS: Final = "/v5/market/instruments-info"
PATH_TICKERS: Final = "/v5/market/tickers"
#: Largest page /v5/position/list accepts.
POSITION_PAGE_LIMIT: Final = 200

# ----------------------------------------------------------------- limits
#: Total characters of one public connection's subscription args.
MAX_ARGS_CHARS_PER_CONNECTION: Final = 21_000
#: Spot's per-request arg limit; linear/inverse have none, but small batches keep
#: one bad topic from failing many (a bad topic fails its whole request).
DEFAULT_TOPICS_PER_REQUEST: Final = 10
MAX_ACTIVE_TIME_RANGE_S: Final = (30, 600)
#: Bybit recommends a JSON ping every 20 s.
PING_INTERVAL_S: Final = 20.0

# ----------------------------------------------------------------- retCodes
RET_OK: Final = 0
#: Codes retrying cannot fix, with the setting the user has to check.
FATAL_CODES: Final[dict[int, tuple[str, str]]] = {
    10003: ("Bybit rejected the API key", "API_KEY"),
    10004: ("Bybit rejected the request signature", "API_SECRET"),
    10005: ("Bybit denied permission for this API key (it needs read access to positions)",
            "API_KEY"),
    10010: ("Bybit refused this IP address for the API key (IP whitelist)", "API_KEY"),
}
#: The request timestamp was outside the receive window: re-measure the clock, retry.
RET_TIMESTAMP: Final = 10002
#: Rate limit and server-side trouble: back off and retry.
RETRY_CODES: Final = frozenset({10002, 10006, 10016})

CATEGORY_BY_NAME: Final[dict[str, Category]] = {c.value: c for c in Category}
