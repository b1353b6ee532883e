"""WebSocket plumbing shared by the public and the private endpoint.

Each connection has its own writer task draining a queue of pre-encoded frames, so
a tick encodes a message once and hands the same bytes to every subscriber.  Faults
hook in here: a stalled kind sends nothing and answers no pings (control frames
included), a delayed kind holds each frame for N ms, a late-pong kind answers pings N ms
late while its data flows on time, drop and malformed act at once.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import secrets
import string
import time
from collections import deque
from typing import Any

import orjson
from aiohttp import WSMsgType, web

from .faults import Faults

log = logging.getLogger("feedctl.simulator")
MALFORMED = b'{"topic":"tickers.BTCUSDT","type":"delta","data":{"symbol":"BTC'
_ALPHABET = string.ascii_lowercase + string.digits


def new_conn_id() -> str:
    return "".join(secrets.choice(_ALPHABET) for _ in range(20)) + "-" + secrets.token_hex(2)


def dumps(obj: Any) -> bytes:
    return orjson.dumps(obj)


class Conn:
    def __init__(self, hub: Hub, ws: web.WebSocketResponse, request: web.Request,
                 idle_timeout: float) -> None:
        self.hub = hub
        self.kind = hub.kind
        self.ws = ws
        self.request = request
        self.conn_id = new_conn_id()
        self.idle_timeout = idle_timeout
        self.last_recv = time.monotonic()
        self.topics: set[str] = set()
        self.authed = False
        self.closed = False
        self._queue: deque[tuple[float, bytes]] = deque()
        self._wakeup = asyncio.Event()
        self.writer = asyncio.get_running_loop().create_task(self._write_loop())
        self._late: set[asyncio.TimerHandle] = set()
        self._pong_due = 0.0  # loop time of the latest late pong queued
        self._pongs: set[asyncio.Task] = set()
        self.sent = 0

    def send(self, data: bytes, min_delay_ms: int = 0) -> None:
        if self.closed or self.hub.faults.stalled(self.kind):
            return
        delay = max(self.hub.faults.delay_ms(self.kind), min_delay_ms)
        self._queue.append((time.monotonic() + delay / 1000 if delay else 0.0, data))
        if len(self._queue) > self.hub.max_backlog:
            log.warning("%s connection %s fell behind (%d frames queued): closing",
                        self.kind, self.conn_id, len(self._queue))
            self._queue.clear()
            self.abort()
            return
        self._wakeup.set()

    def send_obj(self, obj: Any) -> None:
        self.send(dumps(obj))

    def pong(self, obj: Any) -> None:
        """A JSON pong: at once, or late (the late-pong fault) while data frames keep
        flowing on time - the pong is queued later, not held at the queue's head."""
        loop = asyncio.get_running_loop()
        delay = self.hub.faults.pong_delay_ms(self.kind) / 1000
        now = loop.time()
        # pongs stay in ping order (timers due at the same instant may fire in any order)
        due = max(now + delay, self._pong_due + 0.0001) if self._late else now + delay
        if due <= now:
            self.send_obj(obj)
            return
        self._pong_due = due
        data = dumps(obj)

        def fire() -> None:
            self._late.discard(handle)
            self.send(data)

        handle = loop.call_at(due, fire)
        self._late.add(handle)

    async def control_pong(self, payload: bytes) -> None:
        """A control-frame pong, late under the late-pong fault (in its own task)."""
        delay = self.hub.faults.pong_delay_ms(self.kind)
        if not delay:
            await self.ws.pong(payload)
            return

        async def later() -> None:
            await asyncio.sleep(delay / 1000)
            if not self.closed:
                with contextlib.suppress(ConnectionError, RuntimeError):
                    await self.ws.pong(payload)

        task = asyncio.get_running_loop().create_task(later())
        self._pongs.add(task)
        task.add_done_callback(self._pongs.discard)

    def answer(self, obj: Any) -> None:
        """An answer to an auth or (un)subscribe request: sent after the ack delay."""
        self.send(dumps(obj), self.hub.ack_delay_ms)

    async def _write_loop(self) -> None:
        try:
            while not self.closed:
                await self._wakeup.wait()
                self._wakeup.clear()
                while self._queue and not self.closed:
                    due, data = self._queue[0]
                    if due:
                        wait = due - time.monotonic()
                        if wait > 0:
                            await asyncio.sleep(wait)
                    self._queue.popleft()
                    if self.hub.faults.stalled(self.kind):
                        continue
                    await self.ws.send_frame(data, WSMsgType.TEXT)
                    self.sent += 1
        except (ConnectionError, RuntimeError) as exc:
            log.debug("%s connection %s: send failed: %s", self.kind, self.conn_id, exc)
            self.abort()

    def abort(self) -> None:
        """Cut the TCP connection without a close frame (a network drop)."""
        self.closed = True
        transport = self.request.transport
        if transport is not None:
            transport.abort()

    async def close(self, code: int = 1000, message: bytes = b"") -> None:
        self.closed = True
        self._wakeup.set()
        try:
            async with asyncio.timeout(2):
                await self.ws.close(code=code, message=message)
        except (TimeoutError, ConnectionError, RuntimeError):
            self.abort()

    async def stop_writer(self) -> None:
        self.closed = True
        for handle in self._late:
            handle.cancel()
        self._late.clear()
        tasks = [self.writer, *self._pongs]
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)


class Hub:
    """The connections of one kind: accept, read loop, idle watchdog, faults."""

    kind = "public"

    def __init__(self, faults: Faults, idle_timeout: float, max_backlog: int,
                 ack_delay_ms: int = 0) -> None:
        self.faults = faults
        self.ack_delay_ms = ack_delay_ms
        self.compress = False  # permessage-deflate, when a client offers it
        self.idle_timeout = idle_timeout
        self.max_backlog = max_backlog
        self.conns: set[Conn] = set()
        self.total_accepted = 0

    def conn_idle_timeout(self, request: web.Request) -> float:
        return self.idle_timeout

    async def handle(self, request: web.Request) -> web.StreamResponse:
        idle = self.conn_idle_timeout(request)  # may raise HTTPBadRequest
        ws = web.WebSocketResponse(autoping=False, max_msg_size=1 << 20, compress=self.compress)
        await ws.prepare(request)
        conn = Conn(self, ws, request, idle)
        self.conns.add(conn)
        self.total_accepted += 1
        log.debug("%s connection %s opened", self.kind, conn.conn_id)
        try:
            self.on_open(conn)
            await self._read_loop(conn)
        finally:
            self.conns.discard(conn)
            self.on_close(conn)
            await conn.stop_writer()
            if not ws.closed:
                await conn.close()
            log.debug("%s connection %s closed", self.kind, conn.conn_id)
        return ws

    async def _read_loop(self, conn: Conn) -> None:
        ws = conn.ws
        while True:
            msg = await ws.receive()
            if msg.type in (WSMsgType.CLOSE, WSMsgType.CLOSING, WSMsgType.CLOSED,
                            WSMsgType.ERROR):
                return
            conn.last_recv = time.monotonic()
            if self.faults.stalled(self.kind):
                continue  # a stalled server reads but answers nothing, not even pings
            if msg.type == WSMsgType.PING:
                try:
                    await conn.control_pong(msg.data)
                except ConnectionError:
                    return
            elif msg.type == WSMsgType.TEXT:
                self.on_text(conn, msg.data)
            elif msg.type == WSMsgType.BINARY:
                self.on_text(conn, msg.data.decode("utf-8", "replace"))

    # -- overridden by the endpoints ------------------------------------------------
    def on_text(self, conn: Conn, text: str) -> None:
        raise NotImplementedError

    def on_open(self, conn: Conn) -> None:
        """Called once a connection is accepted, before its first frame is read."""

    def on_close(self, conn: Conn) -> None:
        pass

    # -- shared helpers -------------------------------------------------------------
    @staticmethod
    def parse(text: str) -> dict | None:
        try:
            obj = orjson.loads(text)
        except orjson.JSONDecodeError:
            return None
        return obj if isinstance(obj, dict) else None

    @staticmethod
    def with_req_id(answer: dict, request: dict | None) -> dict:
        if request is not None and "req_id" in request:
            answer["req_id"] = request["req_id"]
        return answer

    # -- watchdog and faults --------------------------------------------------------
    async def reap_idle(self) -> int:
        now = time.monotonic()
        idle = [c for c in self.conns if now - c.last_recv > c.idle_timeout]
        for conn in idle:
            log.info("%s connection %s idle for %.0f s: closing", self.kind, conn.conn_id,
                     now - conn.last_recv)
        await asyncio.gather(*(c.close(1000, b"idle timeout") for c in idle),
                             return_exceptions=True)
        return len(idle)

    async def drop_all(self, mode: str = "close") -> int:
        conns = list(self.conns)
        if mode == "abort":
            for conn in conns:
                conn.abort()
        else:
            await asyncio.gather(*(c.close(1001, b"server drop") for c in conns),
                                 return_exceptions=True)
        return len(conns)

    def send_malformed(self, count: int = 1) -> int:
        for conn in list(self.conns):
            for _ in range(count):
                conn.send(MALFORMED)
        return len(self.conns)

    async def shutdown(self) -> None:
        await asyncio.gather(*(c.close(1001, b"server shutdown") for c in list(self.conns)),
                             return_exceptions=True)
        await asyncio.gather(*(c.stop_writer() for c in list(self.conns)),
                             return_exceptions=True)
