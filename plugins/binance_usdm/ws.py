"""One Binance WebSocket connection: a reader handing frames to a callback, method
requests (``SUBSCRIBE``/``UNSUBSCRIBE``) matched to their answers by ``id``, and
liveness by WebSocket ping/pong (websockets' own keepalive: Binance answers pings and
pings every 3 minutes itself).

A :class:`Conn` owns exactly one task (its reader); ``close()`` cancels and awaits it
and closes the socket. When the connection dies for any reason, :attr:`Conn.closed`
resolves with the reason, every pending request fails with :class:`ConnectionLost`,
and the owner decides what to do.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import logging
import re
import time
from collections.abc import Callable
from typing import Any

import orjson
import websockets
from websockets.asyncio.client import ClientConnection

from .constants import MAX_INCOMING_PER_S
from .parse import Problem, decode


class _RedactListenKey(logging.Filter):
    """websockets logs the handshake's request line at DEBUG: it holds the listenKey,
    which grants read access to the account's user data while it lives."""

    def filter(self, record: logging.LogRecord) -> bool:
        if isinstance(record.args, tuple) and any("listenKey=" in str(a) for a in record.args):
            record.args = tuple(_no_key(str(a)) for a in record.args)
        elif isinstance(record.msg, str) and "listenKey=" in record.msg:
            record.msg = _no_key(record.msg)
        return True


#: The websockets library's logger for our connections (listenKeys redacted).
WS_LOG = logging.getLogger("feedctl.feed.binance_usdm.websockets")
WS_LOG.addFilter(_RedactListenKey())


class ConnectionLost(Exception):
    """The socket is gone (or never opened); the message says why."""


class RequestRejected(Exception):
    """The server answered a method request with an ``error``."""


async def finish(task: asyncio.Task[Any]) -> None:
    """Wait for a cancelled task to end, even if we are cancelled meanwhile (then
    re-raise): giving up early would leave the task behind, suppressing the cancel
    would keep a stopping feed running."""
    interrupted = False
    while not task.done():
        try:
            await asyncio.wait({task})
        except asyncio.CancelledError:
            interrupted = True
    if interrupted:
        raise asyncio.CancelledError


class Conn:
    """One socket; see the module docstring."""

    def __init__(
        self, *, name: str, url: str, on_data: Callable[[Any, int], None],
        ping_interval: float, pong_timeout: float, request_timeout: float,
        log: logging.LoggerAdapter[logging.Logger], report: Callable[[Problem, str], None],
        pong_lost_after: tuple[float, Callable[[], int]] | None = None,
    ) -> None:
        self.name, self._url = name, url
        self._on_data, self._report = on_data, report
        self._ping_interval, self._pong_timeout = ping_interval, pong_timeout
        self._request_timeout = request_timeout
        self._log = log
        #: (seconds, the server's clock in ms): a frame whose ``E`` is that much after a
        #: ping still unanswered proves the pong lost (see ``_pong_lost``)
        self._pong_lost_after = pong_lost_after
        self._ws: ClientConnection | None = None
        self._task: asyncio.Task[None] | None = None
        self._pending: dict[int, asyncio.Future[Any]] = {}
        self._ids = itertools.count(1)
        self._sent: list[float] = []  # monotonic send times of the last second
        self.closed: asyncio.Future[str] = asyncio.get_running_loop().create_future()
        self.opened_at: float | None = None
        self.last_frame_ns: int | None = None

    def __repr__(self) -> str:  # the URL may hold a listenKey: never shown
        return f"<Conn {self.name} alive={self.alive}>"

    async def open(self) -> None:
        """Connect and start reading; ConnectionLost if the handshake fails."""
        try:
            self._ws = await websockets.connect(
                self._url, ping_interval=self._ping_interval, ping_timeout=self._pong_timeout,
                open_timeout=self._request_timeout, close_timeout=1.0, compression=None,
                max_queue=1024, proxy=None, logger=WS_LOG,
            )
        except Exception as exc:
            raise ConnectionLost(f"connect to {self.name} failed: {type(exc).__name__}: "
                                 f"{_no_key(str(exc))}") from None
        self.opened_at = time.monotonic()
        self._task = asyncio.create_task(self._read(), name=f"binance-{self.name}")

    @property
    def alive(self) -> bool:
        return self._ws is not None and not self.closed.done()

    def age(self) -> float:
        return 0.0 if self.opened_at is None else time.monotonic() - self.opened_at

    def finish(self, reason: str) -> None:
        """Declare the connection dead (the owner closes it)."""
        if not self.closed.done():
            self.closed.set_result(reason)
        for fut in self._pending.values():
            if not fut.done():
                fut.set_exception(ConnectionLost(f"{self.name} lost: {reason}"))
        self._pending.clear()

    async def close(self) -> None:
        """Stop reading and close the socket; safe to call twice, never raises."""
        task, self._task = self._task, None
        if task is not None and not task.done():
            task.cancel()
            await finish(task)
        if self._ws is not None:
            with contextlib.suppress(Exception):
                await self._ws.close()
        self.finish("closed by us")

    async def answers_ping(self, within: float, prompt: float) -> bool:
        """Whether the server answers a WebSocket ping within ``prompt`` s (waiting up to
        ``within`` s) and the socket is still open then: it was alive, and reading,
        throughout. False if it is closed (a close frame not yet read fails the ping's
        wait too), silent (a stalled server reads pings and answers none), or slow: a
        pong later than ``prompt`` may be a later ping's (websockets takes it for every
        earlier one's too), so a stall may lie between the ping and its answer."""
        ws = self._ws
        if ws is None or self.closed.done():
            return False
        try:
            async with asyncio.timeout(within):  # the send too: it waits to drain
                pong = await ws.ping()
                latency = await asyncio.shield(pong)
        except (websockets.ConnectionClosed, TimeoutError):
            return False
        return latency <= prompt and not self.closed.done()

    async def request(self, method: str, params: list[str]) -> Any:
        """Send ``{"method", "params", "id"}`` and return its ``result``; RequestRejected
        on an ``error`` answer, ConnectionLost on a closed socket or no answer in time.
        Frames are spaced to stay under Binance's 10 incoming messages per second."""
        if not self.alive or self._ws is None:
            raise ConnectionLost(f"{self.name} socket is closed")
        await self._pace()
        req_id = next(self._ids)
        fut: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
        self._pending[req_id] = fut
        try:
            await self._ws.send(orjson.dumps({"method": method, "params": params,
                                              "id": req_id}).decode())
            async with asyncio.timeout(self._request_timeout):
                return await fut
        except TimeoutError:
            raise ConnectionLost(f"no answer to {method} on {self.name} within "
                                 f"{self._request_timeout:g}s") from None
        except websockets.ConnectionClosed as exc:
            raise ConnectionLost(f"{self.name} closed: {exc}") from None
        finally:
            self._pending.pop(req_id, None)
            if fut.done() and not fut.cancelled():
                fut.exception()  # failed by finish() while the send failed: retrieved
            else:
                fut.cancel()

    async def _pace(self) -> None:
        # half the limit: websockets' pings and pongs count as incoming messages too
        limit = MAX_INCOMING_PER_S // 2
        now = time.monotonic()
        self._sent = [t for t in self._sent if now - t < 1.0]
        if len(self._sent) >= limit:
            await asyncio.sleep(1.0 - (now - self._sent[0]))
        self._sent.append(time.monotonic())

    async def _read(self) -> None:
        assert self._ws is not None
        reason = "closed"
        try:
            async for raw in self._ws:
                self._frame(raw, time.time_ns())
            reason = self._close_reason()
        except websockets.ConnectionClosed:
            reason = self._close_reason()
        except Exception as exc:  # a network error: the connection is gone
            reason = f"{self.name} failed: {type(exc).__name__}: {exc}"
        finally:
            self.finish(reason)

    def _close_reason(self) -> str:
        ws = self._ws
        code = getattr(ws, "close_code", None)
        text = getattr(ws, "close_reason", "") or ""
        if code == 1011 and "keepalive" in text:
            return f"{self.name}: no pong within {self._pong_timeout:g}s"
        return f"{self.name} closed (code {code}{': ' + text if text else ''})"

    def _frame(self, raw: bytes | str, received_ns: int) -> None:
        if self.closed.done():
            return
        self.last_frame_ns = received_ns
        if isinstance(raw, str) and raw.startswith("["):  # !markPrice@arr: a list
            try:
                data: Any = orjson.loads(raw)
            except orjson.JSONDecodeError as exc:
                self._report(Problem("malformed", f"not JSON: {exc}"), self.name)
                return
        else:
            msg = decode(raw)
            if isinstance(msg, Problem):
                self._report(msg, self.name)
                return
            if "id" in msg and ("result" in msg or "error" in msg):
                self._answer(msg)
                return
            lost = self._pong_lost(msg)
            if lost is not None:
                self._report(Problem("pong_lost", f"{lost}: dropping the socket"), self.name)
                self.finish(lost)
                return
            data = msg
        try:
            self._on_data(data, received_ns)
        except Exception:  # a handler bug must not kill the connection
            self._report(Problem("handler_errors", "error handling a frame"), self.name)
            self._log.exception("error handling a %s frame", self.name)

    def _pong_lost(self, msg: dict[str, Any]) -> str | None:
        """Why ``msg`` proves a ping's pong lost, or None: its event time ``E`` is more
        than the configured margin after the send of a ping still unanswered. The
        server answers a ping as it reads it, so a frame it made later comes after the
        pong; that frame arriving first means the server dropped what it should have
        sent (a stall), pushes included."""
        if self._pong_lost_after is None:
            return None
        margin, server_ms = self._pong_lost_after
        inner = msg.get("data")
        e = (inner if isinstance(inner, dict) else msg).get("E")
        pings = getattr(self._ws, "pending_pings", None)
        if type(e) is not int or not pings:
            return None
        loop_now = asyncio.get_running_loop().time()
        sent = min(ts for _fut, ts in pings.values())
        sent_ms = server_ms() - (loop_now - sent) * 1000
        late = (e - sent_ms) / 1000
        if late <= margin:
            return None
        return f"a frame made {late:.3f}s after a ping still unanswered: its pong was lost"

    def _answer(self, msg: dict[str, Any]) -> None:
        fut = self._pending.get(msg["id"]) if isinstance(msg["id"], int) else None
        if fut is None or fut.done():
            return
        if msg.get("error") is not None:
            fut.set_exception(RequestRejected(str(msg["error"])[:200]))
        else:
            fut.set_result(msg.get("result"))


def _no_key(text: str) -> str:
    """``text`` with the value of every ``listenKey=`` replaced by ``***``."""
    return _KEY.sub(r"\1***", text)


_KEY = re.compile(r"(listenKey=)[^&\s\"']+")
