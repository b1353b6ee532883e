"""The signed REST client: server time, the position snapshot, mark prices.

Errors are sorted for the feed's reconnect loop (see ``feedctl.errors``):
:class:`RetryableFeedError` for what a retry may fix (network, 5xx, rate limits),
:class:`FatalFeedError` for what only the user can fix (a rejected key), and
:class:`Malformed` for answers that cannot be read. Messages never carry the key or
the secret: the exchange echoes them in some errors, so every text is redacted.
"""

from __future__ import annotations

import hashlib
import hmac
import time
from typing import Any
from urllib.parse import urlencode

import aiohttp
from yarl import URL

from feedctl import FatalFeedError, MarkPrice, PositionUpdate, RetryableFeedError, now_ns

from .constants import (
    AUTH_EXPIRES_MS,
    CATEGORY,
    CREDENTIALS_HINT,
    FATAL_CODES,
    PAGE_LIMIT,
    PATH_POSITIONS,
    PATH_TICKERS,
    PATH_TIME,
    RET_OK,
    WS_AUTH_PREFIX,
)
from .parse import Envelope, Malformed, decode, envelope, mark_prices, position_page


# ------------------------------------------------------------------ signing (pure)
def sign(secret: str, message: str) -> str:
    return hmac.new(secret.encode(), message.encode(), hashlib.sha256).hexdigest()


def rest_headers(key: str, secret: str, timestamp_ms: int, recv_window: int,
                 payload: str) -> dict[str, str]:
    """Headers of a signed request; ``payload`` is the query string exactly as sent."""
    ts, window = str(timestamp_ms), str(recv_window)
    return {"X-BAPI-API-KEY": key, "X-BAPI-TIMESTAMP": ts, "X-BAPI-RECV-WINDOW": window,
            "X-BAPI-SIGN": sign(secret, ts + key + window + payload)}


def auth_args(key: str, secret: str, server_ms: int) -> list[Any]:
    """``args`` of the WebSocket ``auth`` request."""
    expires = server_ms + AUTH_EXPIRES_MS
    return [key, expires, sign(secret, f"{WS_AUTH_PREFIX}{expires}")]


def redact(text: str, *secrets: str) -> str:
    for value in secrets:
        if value:
            text = text.replace(value, "***")
    return text


# ------------------------------------------------------------------ the client
class RestClient:
    """Signed GETs on one aiohttp session (owned by the feed)."""

    def __init__(self, http: aiohttp.ClientSession, base_url: str, key: str, secret: str,
                 recv_window: int) -> None:
        self._http, self._base = http, base_url.rstrip("/")
        self._key, self._secret = key, secret
        self._recv_window = recv_window
        #: server time minus local time, in ms (measured by ``sync_clock``)
        self.offset_ms = 0

    def __repr__(self) -> str:
        return f"<RestClient {self._base}>"

    def server_ms(self) -> int:
        return int(time.time() * 1000) + self.offset_ms

    async def sync_clock(self) -> None:
        """Measure the server clock: signatures and auth expiry use server time."""
        sent = time.time() * 1000
        env = await self._get(PATH_TIME, {}, signed=False)
        if env.time_ms is not None:
            self.offset_ms = int(env.time_ms - (sent + time.time() * 1000) / 2)

    async def positions(self, settle_coin: str) -> tuple[list[PositionUpdate], int | None]:
        """Every position of the account (all pages) and the server time of the first."""
        rows: list[PositionUpdate] = []
        cursor, as_of = "", None
        while True:
            params: dict[str, Any] = {"category": CATEGORY, "settleCoin": settle_coin,
                                      "limit": PAGE_LIMIT}
            if cursor:
                params["cursor"] = cursor
            env = await self._get(PATH_POSITIONS, params, signed=True)
            as_of = env.time_ms if as_of is None else as_of
            page, cursor = position_page(env.result, received_ns=now_ns())
            rows.extend(page)
            if not cursor:
                return rows, as_of

    async def mark_prices(self, symbols: set[str]) -> tuple[list[MarkPrice], list[Malformed]]:
        params: dict[str, Any] = {"category": CATEGORY}
        if len(symbols) == 1:
            params["symbol"] = next(iter(symbols))
        env = await self._get(PATH_TICKERS, params, signed=False)
        return mark_prices(env.result, symbols, exchange_ms=env.time_ms, received_ns=now_ns())

    async def _get(self, path: str, params: dict[str, Any], *, signed: bool) -> Envelope:
        query = urlencode(params)
        url = URL(f"{self._base}{path}" + (f"?{query}" if query else ""), encoded=True)
        headers = (rest_headers(self._key, self._secret, self.server_ms(), self._recv_window,
                                query) if signed else {})
        try:
            async with self._http.get(url, headers=headers) as resp:
                raw = await resp.read()
                status = resp.status
        except (aiohttp.ClientError, TimeoutError, OSError) as exc:
            raise RetryableFeedError(self._clean(f"GET {path}: {type(exc).__name__}: {exc}")
                                     ) from None
        try:
            env = envelope(decode(raw))
        except Malformed:
            if status != 200:
                raise RetryableFeedError(f"GET {path}: HTTP {status}") from None
            raise
        if env.code in FATAL_CODES:
            raise FatalFeedError(f"{FATAL_CODES[env.code]} (retCode {env.code}); check "
                                 f"{CREDENTIALS_HINT}")
        if env.code != RET_OK:
            raise RetryableFeedError(self._clean(f"GET {path}: retCode {env.code}: "
                                                 f"{env.message}"))
        return env

    def _clean(self, text: str) -> str:
        return redact(text, self._key, self._secret)[:300]
