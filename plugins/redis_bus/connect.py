"""Redis clients from URLs (``redis://``, ``rediss://`` for TLS, ``user:password@`` for
an ACL user) and their safe names for logs: never the password."""

from __future__ import annotations

import os
from typing import Any
from urllib.parse import urlsplit

from feedctl import ConfigError


def client(url: str, *, timeout: float = 2.0) -> Any:
    """An asyncio client that answers str (decode_responses) and gives up on a command
    after ``timeout`` s. TLS and client-certificate options ride on the URL's query
    (``?ssl_ca_certs=...&ssl_cert_reqs=required``), as redis-py reads them."""
    try:
        import redis.asyncio as aioredis
    except ImportError as exc:  # the optional extra is not installed
        raise ConfigError("the Redis bus needs redis-py: pip install "
                          "'feedctl-positions[redis]'") from exc
    parts = urlsplit(url)
    if parts.scheme not in ("redis", "rediss", "unix"):
        raise ConfigError(f"redis URL {safe_url(url)!r}: expected redis://, rediss:// or "
                          "unix://")
    return aioredis.from_url(url, decode_responses=True, socket_timeout=timeout,
                             socket_connect_timeout=timeout, health_check_interval=0,
                             retry=one_retry())


def one_retry() -> Any:
    """Retry a command once, at once, on a connection error (a pooled connection that
    Redis closed), never on a timeout. redis-py's default (10 retries with backoff up
    to 1 s, timeouts included) makes one command take up to ~12 s against a slow or
    stopped Redis: far past ``timeout``, and past the session's 5 s for stopping
    hooks. The callers retry with their own backoff (publisher, lease keeper)."""
    from redis.asyncio.retry import Retry
    from redis.backoff import NoBackoff
    from redis.exceptions import ConnectionError as RedisConnectionError

    return Retry(NoBackoff(), 1, supported_errors=(RedisConnectionError,))


def safe_url(url: str) -> str:
    """The URL without its password (for logs and errors)."""
    parts = urlsplit(url)
    if parts.password is None:
        return url
    host = parts.hostname or ""
    port = f":{parts.port}" if parts.port else ""
    user = f"{parts.username}:***@" if parts.username else "***@"
    return parts._replace(netloc=f"{user}{host}{port}").geturl()


def owner_name() -> str:
    """A worker's name in leases: host and pid (unique among live workers)."""
    return f"{os.uname().nodename}-{os.getpid()}"
