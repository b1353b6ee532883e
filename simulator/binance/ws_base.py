"""What every Binance stream connection shares: the 24-hour cut, the server's ping
frames (a client silent past the pong deadline is cut), the limit of incoming frames per
second, and method frames' error answers.

https://developers.binance.com/docs/derivatives/usds-margined-futures/websocket-market-streams
("A single connection is only valid for 24 hours", "The websocket server will send a
ping frame every 3 minutes ... not receive a pong frame back ... within a 10 minute
period, the connection will be disconnected", "10 incoming messages per second",
"A connection that goes beyond the limit will be disconnected")
https://developers.binance.com/docs/derivatives/usds-margined-futures/websocket-market-streams/Live-Subscribing-Unsubscribing-to-streams
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from aiohttp import web

from ..faults import Faults
from ..ws_common import Conn, Hub, dumps
from .config import BinanceSimConfig

log = logging.getLogger("feedctl.simulator")
MALFORMED = b'{"e":"markPriceUpdate","E":17,"s":"BTCUSDT","p":"650'
METHODS = ("SUBSCRIBE", "UNSUBSCRIBE", "LIST_SUBSCRIPTIONS", "SET_PROPERTY", "GET_PROPERTY")


@dataclass
class ConnState:
    route: str  # "market", "public", "private" or "legacy"
    combined: bool
    streams: list[str] = field(default_factory=list)
    second: int = 0
    frames: int = 0
    cut: asyncio.TimerHandle | None = None
    extra: dict[str, Any] = field(default_factory=dict)


def method_error(code: int, msg: str, req_id: object = None) -> dict:
    """The documented ``{"code", "msg"}``, with the request's ``id`` when it had a valid
    one (the pages show no ``id`` in error answers; it is kept so clients can match)."""
    out: dict[str, Any] = {"code": code, "msg": msg}
    if req_id is not None:
        out["id"] = req_id
    return out


class BinanceHub(Hub):
    """A Binance stream endpoint. `kind` is the fault kind ("public" or "private")."""

    def __init__(self, kind: str, faults: Faults, now_ms: Callable[[], int],
                 cfg: BinanceSimConfig, max_backlog: int) -> None:
        super().__init__(faults, cfg.pong_timeout, max_backlog, 0)
        self.kind = kind
        self.now_ms = now_ms
        self.cfg = cfg
        self.state: dict[Conn, ConnState] = {}
        self.cut_for_rate = 0
        self.cut_for_lifetime = 0
        self.pings_sent = 0
        #: the refuse-handshakes fault: until this monotonic time, new connections get
        #: HTTP 503 at the handshake (open ones are left alone)
        self.refuse_until = 0.0
        self.refused = 0

    # -- connection lifecycle -------------------------------------------------------
    async def handle(self, request: web.Request) -> web.StreamResponse:
        if self.refuse_until and time.monotonic() < self.refuse_until:
            self.refused += 1
            return web.Response(status=503, text="503 Service Temporarily Unavailable")
        self.refuse_until = 0.0
        return await super().handle(request)

    def make_state(self, conn: Conn) -> ConnState:
        raise NotImplementedError

    def on_open(self, conn: Conn) -> None:
        st = self.make_state(conn)
        loop = asyncio.get_running_loop()
        st.cut = loop.call_later(self.cfg.connection_lifetime, self._lifetime_over, conn)
        self.state[conn] = st
        self.opened(conn, st)

    def opened(self, conn: Conn, st: ConnState) -> None:
        """Hook: the connection and its state exist."""

    def _lifetime_over(self, conn: Conn) -> None:
        if conn in self.conns and not conn.closed:
            self.cut_for_lifetime += 1
            log.info("%s connection %s reached its lifetime: closing", self.kind, conn.conn_id)
            asyncio.get_running_loop().create_task(conn.close(1000, b"connection lifetime"))

    def on_close(self, conn: Conn) -> None:
        st = self.state.pop(conn, None)
        if st is not None:
            if st.cut is not None:
                st.cut.cancel()
            self.closed(conn, st)

    def closed(self, conn: Conn, st: ConnState) -> None:
        """Hook: the connection is gone."""

    # -- incoming frames ------------------------------------------------------------
    def on_text(self, conn: Conn, text: str) -> None:
        st = self.state.get(conn)
        if st is None or conn.closed:  # frames read after the cut count for nothing
            return
        second = int(time.monotonic())
        if st.second != second:
            st.second, st.frames = second, 0
        st.frames += 1
        if st.frames > self.cfg.max_incoming_per_second:
            self.cut_for_rate += 1
            log.info("%s connection %s sent more than %d frames in a second: closing",
                     self.kind, conn.conn_id, self.cfg.max_incoming_per_second)
            conn.abort()
            return
        req = self.parse(text)
        if req is None:
            conn.send_obj(method_error(3, "Invalid JSON: expected value at line 1 column 1"))
            return
        req_id = req.get("id")
        method = req.get("method")
        if method is None:
            conn.send_obj(method_error(2, "Invalid request: missing field `method`", req_id))
            return
        if method not in METHODS:
            conn.send_obj(method_error(
                2, f"Invalid request: unknown variant {method}, expected one of "
                   f"{', '.join(METHODS)}", req_id))
            return
        if req_id is not None and (isinstance(req_id, bool) or not isinstance(req_id, int)
                                   or req_id < 0):
            conn.send_obj(method_error(2, "Invalid request: request ID must be an unsigned "
                                          "integer"))
            return
        params = req.get("params", [])
        self.on_method(conn, st, str(method), params, req_id)

    def on_method(self, conn: Conn, st: ConnState, method: str, params: Any,
                  req_id: object) -> None:
        if method == "SET_PROPERTY":
            if (not isinstance(params, list) or len(params) != 2
                    or params[0] != "combined"):
                conn.send_obj(method_error(0, "Unknown property", req_id))
            elif not isinstance(params[1], bool):
                conn.send_obj(method_error(1, "Invalid value type: expected Boolean", req_id))
            else:
                st.combined = params[1]
                conn.send_obj({"result": None, "id": req_id})
        elif method == "GET_PROPERTY":
            if params != ["combined"]:
                conn.send_obj(method_error(0, "Unknown property", req_id))
            else:
                conn.send_obj({"result": st.combined, "id": req_id})
        elif method == "LIST_SUBSCRIPTIONS":
            conn.send_obj({"result": list(st.streams), "id": req_id})
        else:
            if not isinstance(params, list) or not all(isinstance(p, str) for p in params):
                conn.send_obj(method_error(2, "Invalid request: params must be a list of "
                                              "strings", req_id))
                return
            if method == "SUBSCRIBE":
                new = [p for p in params if p not in st.streams]
                if len(st.streams) + len(new) > self.cfg.max_streams:
                    conn.send_obj(method_error(
                        2, f"Invalid request: too many streams (limit {self.cfg.max_streams})",
                        req_id))
                    return
                for name in new:
                    st.streams.append(name)
                    self.subscribed(conn, st, name)
            else:
                for name in params:
                    if name in st.streams:
                        st.streams.remove(name)
                        self.unsubscribed(conn, st, name)
            conn.send_obj({"result": None, "id": req_id})

    def subscribed(self, conn: Conn, st: ConnState, name: str) -> None:
        """Hook: `name` was added to the connection's streams."""

    def unsubscribed(self, conn: Conn, st: ConnState, name: str) -> None:
        """Hook: `name` was removed from the connection's streams."""

    # -- server pings and faults ----------------------------------------------------
    async def ping_loop(self) -> None:
        """A ping frame to every connection each ``ping_interval``; then the connections
        silent (no pong, no frame) for ``pong_timeout`` are cut."""
        while True:
            await asyncio.sleep(self.cfg.ping_interval)
            await self.reap_idle()
            if self.faults.stalled(self.kind):
                continue
            for conn in list(self.conns):
                if conn.closed:
                    continue
                try:
                    await conn.ws.ping(str(self.now_ms()).encode())
                    self.pings_sent += 1
                except (ConnectionError, RuntimeError):
                    conn.abort()

    def send_malformed(self, count: int = 1) -> int:
        for conn in list(self.conns):
            for _ in range(count):
                conn.send(MALFORMED)
        return len(self.conns)

    @staticmethod
    def encode(obj: Any) -> bytes:
        return dumps(obj)
