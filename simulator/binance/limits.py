"""Request weights and order counts, per IP and per account, in Binance's windows.

Every request costs its endpoint's weight against REQUEST_WEIGHT (2400 per minute per
IP); the running total of the current minute comes back in ``X-MBX-USED-WEIGHT-1M``.
Past the limit the answer is HTTP 429 (-1003); a client that keeps sending inside the
same window after ``ban_after`` 429s is banned with HTTP 418 and ``Retry-After`` for
``ban_seconds``, doubled for each repeat (Binance: from 2 minutes up to 3 days).
Orders count against ORDERS per 10 s and per minute (``X-MBX-ORDER-COUNT-10S``/``-1M``).

https://developers.binance.com/docs/derivatives/usds-margined-futures/general-info
(LIMITS: IP Limits, Order Rate Limits)
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

from .config import BinanceSimConfig
from .errors import BinanceError

MINUTE_MS = 60_000
MAX_BAN_MS = 3 * 86_400_000


@dataclass
class _Ip:
    minute: int = -1
    used: int = 0
    refused: int = 0
    banned_until: int = 0
    bans: int = 0


@dataclass
class _Orders:
    window10: int = -1
    count10: int = 0
    window60: int = -1
    count60: int = 0


@dataclass
class Limits:
    cfg: BinanceSimConfig
    now_ms: Callable[[], int]
    ips: dict[str, _Ip] = field(default_factory=dict)
    orders: _Orders = field(default_factory=_Orders)

    def used(self, ip: str) -> int:
        state = self.ips.get(ip)
        if state is None or state.minute != self.now_ms() // MINUTE_MS:
            return 0
        return state.used

    def charge(self, ip: str, weight: int) -> tuple[dict[str, str], BinanceError | None]:
        """Count `weight` for `ip`; return the headers and the refusal, if any."""
        now = self.now_ms()
        state = self.ips.setdefault(ip, _Ip())
        minute = now // MINUTE_MS
        if state.minute != minute:
            state.minute, state.used, state.refused = minute, 0, 0
        if state.banned_until > now:
            return self._ban_answer(ip, state, now)
        if state.used + weight > self.cfg.weight_limit:
            state.refused += 1
            if state.refused > self.cfg.ban_after:
                state.bans += 1
                length = min(int(self.cfg.ban_seconds * 1000) * 2 ** (state.bans - 1),
                             MAX_BAN_MS)
                state.banned_until = now + length
                return self._ban_answer(ip, state, now)
            retry = (minute + 1) * MINUTE_MS - now
            headers = {"X-MBX-USED-WEIGHT-1M": str(state.used),
                       "Retry-After": str(max(1, -(-retry // 1000)))}
            return headers, BinanceError(
                -1003, f"Too many requests; current limit of IP({ip}) is "
                       f"{self.cfg.weight_limit} requests per minute. Please use the websocket "
                       "for live updates to avoid polling the API.", 429)
        state.used += weight
        return {"X-MBX-USED-WEIGHT-1M": str(state.used)}, None

    def _ban_answer(self, ip: str, state: _Ip, now: int) -> tuple[dict[str, str],
                                                                  BinanceError]:
        retry = max(1, -(-(state.banned_until - now) // 1000))
        headers = {"X-MBX-USED-WEIGHT-1M": str(state.used), "Retry-After": str(retry)}
        return headers, BinanceError(
            -1003, f"Way too many requests; IP({ip}) banned until {state.banned_until}. "
                   "Please use the websocket for live updates to avoid bans.", 418)

    def count_order(self) -> tuple[dict[str, str], BinanceError | None]:
        now = self.now_ms()
        o = self.orders
        w10, w60 = now // 10_000, now // MINUTE_MS
        if o.window10 != w10:
            o.window10, o.count10 = w10, 0
        if o.window60 != w60:
            o.window60, o.count60 = w60, 0
        if o.count10 >= self.cfg.order_limit_10s or o.count60 >= self.cfg.order_limit_1m:
            headers = {"X-MBX-ORDER-COUNT-10S": str(o.count10),
                       "X-MBX-ORDER-COUNT-1M": str(o.count60)}
            limit = (f"{self.cfg.order_limit_10s} orders per 10 seconds"
                     if o.count10 >= self.cfg.order_limit_10s
                     else f"{self.cfg.order_limit_1m} orders per minute")
            return headers, BinanceError(
                -1015, f"Too many new orders; current limit is {limit}.", 429)
        o.count10 += 1
        o.count60 += 1
        return {"X-MBX-ORDER-COUNT-10S": str(o.count10),
                "X-MBX-ORDER-COUNT-1M": str(o.count60)}, None

    def clear(self) -> None:
        self.ips.clear()
        self.orders = _Orders()
