"""listenKeys: created by POST, kept alive by PUT, closed by DELETE, expired by time.

- a listenKey is valid for 60 minutes (``listen_key_validity``) after creation or the
  last keepalive;
- POST on an account with an active listenKey returns that key and extends it;
- PUT extends it, or answers -1125 when the key does not exist (expired or deleted);
- DELETE closes the stream and invalidates the key;
- when a key expires, the connections on it receive ``listenKeyExpired`` and then no
  more user data until a valid key is used (the connection itself stays open).

https://developers.binance.com/docs/derivatives/usds-margined-futures/user-data-streams/Connect
https://developers.binance.com/docs/derivatives/usds-margined-futures/user-data-streams/Start-User-Data-Stream
https://developers.binance.com/docs/derivatives/usds-margined-futures/user-data-streams/Keepalive-User-Data-Stream
https://developers.binance.com/docs/derivatives/usds-margined-futures/user-data-streams/Close-User-Data-Stream
https://developers.binance.com/docs/derivatives/usds-margined-futures/user-data-streams/Event-User-Data-Stream-Expired
"""

from __future__ import annotations

import secrets
import string
import time
from collections.abc import Callable

from .errors import no_listen_key

_ALNUM = string.ascii_letters + string.digits
Expired = Callable[[str], None]


class ListenKeys:
    def __init__(self, validity: float, on_expired: Expired, on_closed: Expired) -> None:
        self.validity = validity
        self._expires: dict[str, float] = {}
        self._on_expired = on_expired
        self._on_closed = on_closed
        self.created = 0
        self.expired = 0
        #: the listen_key_keepalive fault: the next N keepalives answer -1125 and the key
        #: is gone (what a client sees when its key was dropped on Binance's side)
        self.reject_keepalives = 0

    def _now(self) -> float:
        return time.monotonic()

    def active(self) -> str | None:
        now = self._now()
        for key, until in self._expires.items():
            if until > now:
                return key
        return None

    def valid(self, key: str) -> bool:
        until = self._expires.get(key)
        return until is not None and until > self._now()

    def create(self) -> str:
        key = self.active()
        if key is None:
            key = "".join(secrets.choice(_ALNUM) for _ in range(64))
            self.created += 1
        self._expires[key] = self._now() + self.validity
        return key

    def keepalive(self, key: str | None) -> str:
        if self.reject_keepalives > 0 and key in self._expires:
            self.reject_keepalives -= 1
            self.expire(key)
            raise no_listen_key()
        if not key or not self.valid(key):
            raise no_listen_key()
        self._expires[key] = self._now() + self.validity
        return key

    def delete(self, key: str | None) -> None:
        if not key or key not in self._expires:
            raise no_listen_key()
        del self._expires[key]
        self._on_closed(key)

    def reap(self) -> list[str]:
        """Expire every key past its validity (called by the hub's watchdog)."""
        now = self._now()
        gone = [k for k, until in self._expires.items() if until <= now]
        for key in gone:
            self.expire(key)
        return gone

    def expire(self, key: str | None = None) -> list[str]:
        """Expire `key` now, or every key (the ``listen_key_expiry`` fault)."""
        keys = [key] if key is not None else list(self._expires)
        out = []
        for k in keys:
            if self._expires.pop(k, None) is not None:
                self.expired += 1
                out.append(k)
                self._on_expired(k)
        return out

    def forget(self) -> int:
        """Every key vanishes without ``listenKeyExpired`` (the ``forget-listen-keys``
        fault: a key dropped on Binance's side that the client only learns of from its
        next keepalive, -1125)."""
        count = len(self._expires)
        self.expired += count
        self._expires.clear()
        return count

    def remaining(self) -> dict[str, float]:
        now = self._now()
        return {k[:8] + "…": round(until - now, 3) for k, until in self._expires.items()}
