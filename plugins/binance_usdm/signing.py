"""Binance request signing and the server clock it depends on. Pure functions, no I/O.

A SIGNED (USER_DATA) request carries ``timestamp`` (server-corrected ms) and
``recvWindow`` in its query, and ``signature = hex(HMAC_SHA256(secret, query))`` over
the query string exactly as sent, appended last; the key goes in ``X-MBX-APIKEY``.
USER_STREAM calls (listenKey) carry only the key header.

Secrets arrive as :class:`pydantic.SecretStr`; ``get_secret_value()`` is called here
and nowhere else, and no function returns or logs the secret.
"""

from __future__ import annotations

import hashlib
import hmac
import math
import time
from urllib.parse import urlencode

from pydantic import SecretStr

from .constants import API_KEY_HEADER


def signature(secret: SecretStr, payload: str) -> str:
    return hmac.new(secret.get_secret_value().encode(), payload.encode(),
                    hashlib.sha256).hexdigest()


def signed_query(secret: SecretStr, params: list[tuple[str, str]], timestamp_ms: int,
                 recv_window: int) -> str:
    """``params`` + recvWindow + timestamp, url-encoded, with the signature appended."""
    query = urlencode([*params, ("recvWindow", str(recv_window)),
                       ("timestamp", str(timestamp_ms))])
    return f"{query}&signature={signature(secret, query)}"


def key_header(api_key: SecretStr) -> dict[str, str]:
    return {API_KEY_HEADER: api_key.get_secret_value()}


class ServerClock:
    """Local clock corrected by the offset measured against ``/fapi/v1/time``:
    ``offset_ms = server_time - midpoint(local send, local receive)``."""

    def __init__(self) -> None:
        self.offset_ms = 0
        self.rtt_ms: float | None = None
        self.measured_at: float | None = None

    def update(self, server_ms: int, sent_ns: int, received_ns: int) -> int:
        mid_ms = (sent_ns + received_ns) / 2 / 1e6
        self.offset_ms = round(server_ms - mid_ms)
        self.rtt_ms = (received_ns - sent_ns) / 1e6
        self.measured_at = time.monotonic()
        return self.offset_ms

    def now_ms(self) -> int:
        return time.time_ns() // 1_000_000 + self.offset_ms

    def error_ms(self) -> int:
        """How far ``now_ms`` may be from the server's clock: half the round trip of the
        measurement (the server read its clock somewhere inside it); a second before
        any. A floor taken from ``now_ms`` (every fill before it is known) is safe only
        this much lower: a fill the server stamped just after it may fall under it."""
        if self.rtt_ms is None:
            return 1000
        return math.ceil(self.rtt_ms / 2) + 1
