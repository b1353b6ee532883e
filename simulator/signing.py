"""Bybit V5 HMAC-SHA256 signatures (REST headers and the private WebSocket auth)."""

from __future__ import annotations

import hashlib
import hmac


def hmac_hex(secret: str, message: str) -> str:
    return hmac.new(secret.encode(), message.encode(), hashlib.sha256).hexdigest()


def rest_origin(timestamp: str, api_key: str, recv_window: str, payload: str) -> str:
    """The signed string: timestamp + api_key + recv_window + payload (raw query or body)."""
    return f"{timestamp}{api_key}{recv_window}{payload}"


def rest_signature(secret: str, timestamp: str, api_key: str, recv_window: str,
                   payload: str) -> str:
    return hmac_hex(secret, rest_origin(timestamp, api_key, recv_window, payload))


def ws_signature(secret: str, expires: str | int) -> str:
    return hmac_hex(secret, f"GET/realtime{expires}")


def ws_signature_ok(secret: str, expires: str, signature: str) -> bool:
    return hmac.compare_digest(ws_signature(secret, expires), signature.lower())


def signed_headers(api_key: str, secret: str, payload: str, timestamp_ms: int,
                   recv_window: int = 5000) -> dict[str, str]:
    """Headers a Bybit client sends; for tests and the demo's own REST calls."""
    ts, rw = str(timestamp_ms), str(recv_window)
    return {
        "X-BAPI-API-KEY": api_key,
        "X-BAPI-TIMESTAMP": ts,
        "X-BAPI-RECV-WINDOW": rw,
        "X-BAPI-SIGN": rest_signature(secret, ts, api_key, rw, payload),
        "Content-Type": "application/json",
    }
