"""Market streams: ``<symbol>@markPrice``, ``<symbol>@markPrice@1s``, ``!markPrice@arr``
and ``!markPrice@arr@1s``, raw (``/ws/<streams>``) or combined (``/stream?streams=``,
each frame ``{"stream": <name>, "data": <payload>}``), and SUBSCRIBE / UNSUBSCRIBE /
LIST_SUBSCRIPTIONS / SET_PROPERTY / GET_PROPERTY method frames.

Routes, after Binance's WebSocket change notice for USDⓈ-M futures (new base URLs
``/public`` for high-frequency public data, ``/market`` for regular market data,
``/private`` for user data; legacy URLs retired on 2026-04-23):

- ``/market/ws[/<streams>]`` and ``/market/stream?streams=``: the mark-price streams;
- ``/public/...``: opens and accepts subscriptions, but mark price is a "market" stream,
  so nothing is pushed there (streams must go to their category's endpoint);
- the legacy ``/ws[/<streams>]`` and ``/stream?streams=``: public data only. A listenKey
  given there (``/ws/<listenKey>``) is accepted like any name and never delivers.

The 3-second and 1-second cadences are ``mark_interval`` and ``mark_fast_interval``.

https://developers.binance.com/docs/derivatives/usds-margined-futures/websocket-market-streams
https://developers.binance.com/docs/derivatives/usds-margined-futures/websocket-market-streams/Mark-Price-Stream
https://developers.binance.com/docs/derivatives/usds-margined-futures/websocket-market-streams/Mark-Price-Stream-for-All-market
https://developers.binance.com/docs/derivatives/usds-margined-futures/websocket-market-streams/Live-Subscribing-Unsubscribing-to-streams
"""

from __future__ import annotations

import asyncio
import re
from collections.abc import Callable

from ..faults import Faults
from ..prices import PriceEngine
from ..ws_common import Conn
from .config import BinanceSimConfig
from .wire import mark_price_update
from .ws_base import BinanceHub, ConnState

SYMBOL_STREAM = re.compile(r"^([a-z0-9]+)@markPrice(@1s)?$")
ALL_STREAM = re.compile(r"^!markPrice@arr(@1s)?$")
DELIVERING = ("market", "legacy")


def route_of(path: str) -> tuple[str, bool, list[str]]:
    """(route, combined, streams in the path) of a market-stream request path."""
    route = "legacy"
    for prefix in ("/market", "/public"):
        if path.startswith(prefix + "/"):
            route, path = prefix[1:], path[len(prefix):]
    combined = path.startswith("/stream")
    streams: list[str] = []
    if path.startswith("/ws/"):
        streams = [s for s in path[len("/ws/"):].split("/") if s]
    return route, combined, streams


class MarketHub(BinanceHub):
    def __init__(self, faults: Faults, prices: PriceEngine, symbols: list[str],
                 now_ms: Callable[[], int], cfg: BinanceSimConfig, max_backlog: int) -> None:
        super().__init__("public", faults, now_ms, cfg, max_backlog)
        self.prices = prices
        self.by_lower = {s.lower(): s for s in symbols}
        #: stream name -> connections that get it (only on delivering routes)
        self.subscribers: dict[str, set[Conn]] = {}
        self.messages = 0

    def make_state(self, conn: Conn) -> ConnState:
        route, combined, streams = route_of(conn.request.path)
        if combined:
            raw = conn.request.query.get("streams", "")
            streams = [s for s in raw.split("/") if s]
        st = ConnState(route=route, combined=combined)
        for name in streams[: self.cfg.max_streams]:
            if name not in st.streams:
                st.streams.append(name)
        return st

    def opened(self, conn: Conn, st: ConnState) -> None:
        for name in st.streams:
            self.subscribed(conn, st, name)

    def subscribed(self, conn: Conn, st: ConnState, name: str) -> None:
        if st.route in DELIVERING and self._known(name):
            self.subscribers.setdefault(name, set()).add(conn)

    def unsubscribed(self, conn: Conn, st: ConnState, name: str) -> None:
        subs = self.subscribers.get(name)
        if subs is not None:
            subs.discard(conn)

    def closed(self, conn: Conn, st: ConnState) -> None:
        for name in st.streams:
            self.unsubscribed(conn, st, name)

    def _known(self, name: str) -> bool:
        if ALL_STREAM.match(name):
            return True
        match = SYMBOL_STREAM.match(name)
        return bool(match and match.group(1) in self.by_lower)

    # -- publishing -----------------------------------------------------------------
    async def mark_loop(self, fast: bool) -> None:
        interval = self.cfg.mark_fast_interval if fast else self.cfg.mark_interval
        loop = asyncio.get_running_loop()
        due = loop.time() + interval
        while True:
            await asyncio.sleep(max(0.0, due - loop.time()))
            self.publish(fast)
            due += interval
            if loop.time() > due:
                due = loop.time() + interval

    def publish(self, fast: bool) -> int:
        suffix = "@1s" if fast else ""
        now = self.now_ms()
        sent = 0
        payloads: dict[str, dict] = {}

        def payload(symbol: str) -> dict:
            found = payloads.get(symbol)
            if found is None:
                snap, _ = self.prices.snapshot(symbol, now)
                found = payloads[symbol] = mark_price_update(symbol, snap, now)
            return found

        for lower, symbol in self.by_lower.items():
            subs = self.subscribers.get(f"{lower}@markPrice{suffix}")
            if subs:
                sent += self._fan_out(f"{lower}@markPrice{suffix}", payload(symbol), subs)
        name = f"!markPrice@arr{suffix}"
        subs = self.subscribers.get(name)
        if subs:
            sent += self._fan_out(name, [payload(s) for s in self.by_lower.values()], subs)
        self.messages += sent
        return sent

    def _fan_out(self, name: str, data: object, subs: set[Conn]) -> int:
        raw: bytes | None = None
        wrapped: bytes | None = None
        for conn in subs:
            st = self.state.get(conn)
            if st is None:
                continue
            if st.combined:
                if wrapped is None:
                    wrapped = self.encode({"stream": name, "data": data})
                conn.send(wrapped)
            else:
                if raw is None:
                    raw = self.encode(data)
                conn.send(raw)
        return len(subs)
