"""Bybit V5 signatures and the server clock they depend on. Pure functions, no I/O.

* WS auth: ``args = [api_key, expires_ms, hex(HMAC_SHA256(secret, "GET/realtime" + expires))]``.
* REST: ``X-BAPI-SIGN = hex(HMAC_SHA256(secret, timestamp + api_key + recv_window + payload))``
  where payload is the query string exactly as sent (GET) or the JSON body (POST).

Secrets arrive as :class:`pydantic.SecretStr`; ``get_secret_value()`` is called here
and nowhere else, and no function returns or logs the secret.
"""

from __future__ import annotations

import hashlib
import hmac
import time

from pydantic import SecretStr

from .constants import WS_AUTH_PATH


def hmac_hex(secret: SecretStr, message: str) -> str:
    return hmac.new(
        secret.get_secret_value().encode(), message.encode(), hashlib.sha256
    ).hexdigest()


def ws_auth_args(api_key: SecretStr, api_secret: SecretStr, expires_ms: int) -> list[str | int]:
    """The ``args`` of ``{"op":"auth"}``; ``expires_ms`` must be in the future."""
    signature = hmac_hex(api_secret, f"{WS_AUTH_PATH}{expires_ms}")
    return [api_key.get_secret_value(), expires_ms, signature]


def rest_headers(
    api_key: SecretStr, api_secret: SecretStr, timestamp_ms: int, recv_window: int, payload: str
) -> dict[str, str]:
    """Headers of a signed V5 request; ``payload`` is the raw query string or JSON body."""
    key = api_key.get_secret_value()
    sign = hmac_hex(api_secret, f"{timestamp_ms}{key}{recv_window}{payload}")
    return {
        "X-BAPI-API-KEY": key,
        "X-BAPI-TIMESTAMP": str(timestamp_ms),
        "X-BAPI-RECV-WINDOW": str(recv_window),
        "X-BAPI-SIGN": sign,
    }


class ServerClock:
    """Local clock corrected by the offset measured against ``/v5/market/time``.

    ``offset_ms = server_time - midpoint(local send, local receive)``; ``now_ms()`` is
    the local time plus that offset: what timestamps and auth ``expires`` must use.
    """

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

    def known_offset_ms(self) -> int | None:
        """The offset, or None before the first measurement (it may be far off then)."""
        return None if self.measured_at is None else self.offset_ms

    def now_ms(self) -> int:
        return time.time_ns() // 1_000_000 + self.offset_ms
