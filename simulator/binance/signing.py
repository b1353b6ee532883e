"""HMAC-SHA256 signatures of SIGNED (TRADE, USER_DATA) endpoints.

The signature is HMAC-SHA256 of ``totalParams`` (the query string concatenated with the
request body) keyed by the secret, sent as the ``signature`` parameter; ``timestamp`` is
mandatory and ``recvWindow`` (default 5000, at most 60000) bounds its age. The server
verifies the parameters exactly as received: the raw text, never re-encoded.

https://developers.binance.com/docs/derivatives/usds-margined-futures/general-info
(SIGNED Endpoint security, Timing security, SIGNED Endpoint Examples for POST /fapi/v1/order)
"""

from __future__ import annotations

import hashlib
import hmac
from urllib.parse import urlencode


def sign(secret: str, payload: str) -> str:
    return hmac.new(secret.encode(), payload.encode(), hashlib.sha256).hexdigest()


def split_signature(raw: str) -> tuple[str, str | None]:
    """(the raw text without its ``signature=`` pair, the signature or None)."""
    if not raw:
        return "", None
    kept, signature = [], None
    for part in raw.split("&"):
        if part.startswith("signature="):
            signature = part[len("signature="):]
        else:
            kept.append(part)
    return "&".join(kept), signature


def signed_query(secret: str, params: dict[str, object]) -> str:
    """A query string with its signature appended; for tests and the control tools."""
    query = urlencode({k: str(v) for k, v in params.items()})
    return f"{query}&signature={sign(secret, query)}"
