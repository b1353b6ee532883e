"""Facts about the exchange, as data: paths, topics, codes. Change these first."""

from __future__ import annotations

from typing import Final

#: The one contract category this example handles.
CATEGORY: Final = "linear"

PATH_TIME: Final = "/v5/market/time"
PATH_POSITIONS: Final = "/v5/position/list"
PATH_TICKERS: Final = "/v5/market/tickers"
#: Largest page the position list returns; the client follows ``nextPageCursor``.
PAGE_LIMIT: Final = 200

TOPIC_POSITION: Final = "position"
#: The string the WebSocket auth signs, before ``expires``.
WS_AUTH_PREFIX: Final = "GET/realtime"
#: ``expires`` of the WebSocket auth: server time plus this much.
AUTH_EXPIRES_MS: Final = 10_000

RET_OK: Final = 0
#: Answers retrying cannot fix, with what the user must check.
FATAL_CODES: Final[dict[int, str]] = {
    10003: "the exchange rejected the API key",
    10004: "the exchange rejected the request signature (check the API secret)",
    10005: "the API key lacks permission to read positions",
    10010: "the API key does not allow this IP address",
}
#: Where the user sets the credentials (FEEDCTL_<PROFILE>__ACCOUNT__API_KEY...).
CREDENTIALS_HINT: Final = ("FEEDCTL_<PROFILE>__ACCOUNT__API_KEY and "
                           "FEEDCTL_<PROFILE>__ACCOUNT__API_SECRET")
