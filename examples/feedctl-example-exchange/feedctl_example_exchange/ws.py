"""One private WebSocket: connect, authenticate, subscribe ``position``, keep alive.

``PrivateSocket.open(...)`` is an async context manager: on entry the socket is
authenticated and subscribed; on exit (normal, error or cancellation) its keepalive
task is cancelled and awaited and the socket closed — nothing outlives the block.

Liveness: a JSON ``{"op": "ping"}`` every ``ping_interval``; the exchange answers
each with a pong, so a socket silent for ``ping_interval + pong_timeout`` is dead
(:class:`ConnectionLost`). The private stream itself may be silent for hours.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections.abc import AsyncIterator, Callable
from typing import Any

import websockets
from websockets.asyncio.client import ClientConnection

from .config import ExampleSettings
from .constants import TOPIC_POSITION
from .parse import Malformed, answer, decode, is_data


class ConnectionLost(Exception):
    """The socket closed, went silent or never answered; the feed reconnects."""


class AuthRejected(Exception):
    """The exchange refused the ``auth`` request."""


class PrivateSocket:
    def __init__(self, ws: ClientConnection, settings: ExampleSettings) -> None:
        self._ws, self._s = ws, settings
        self._keepalive: asyncio.Task[None] | None = None

    def __repr__(self) -> str:
        return f"<PrivateSocket {self._ws.remote_address}>"

    @classmethod
    @contextlib.asynccontextmanager
    async def open(cls, url: str, auth: list[Any], settings: ExampleSettings
                   ) -> AsyncIterator[PrivateSocket]:
        try:
            ws = await websockets.connect(url, ping_interval=None, compression=None,
                                          open_timeout=settings.request_timeout,
                                          close_timeout=1.0)
        except (OSError, TimeoutError, websockets.InvalidHandshake) as exc:
            raise ConnectionLost(f"connect failed: {type(exc).__name__}: {exc}") from None
        sock = cls(ws, settings)
        try:
            if not (await sock._request({"op": "auth", "args": auth})).success:
                raise AuthRejected("auth rejected")
            result = await sock._request({"op": "subscribe", "args": [TOPIC_POSITION]})
            if not result.success:
                raise ConnectionLost(f"subscribe rejected: {result.ret_msg}")
            sock._keepalive = asyncio.create_task(sock._ping(), name="example-ping")
            yield sock
        finally:
            if sock._keepalive is not None:
                sock._keepalive.cancel()
                await asyncio.wait([sock._keepalive])  # never swallows our own cancel
            await ws.close()

    async def _request(self, request: dict[str, Any]) -> Any:
        """Send ``request``; wait for the answer with the same ``op``."""
        op = request["op"]
        await self._send(request)
        try:
            async with asyncio.timeout(self._s.request_timeout):
                while True:
                    msg = decode(await self._recv())
                    if not is_data(msg) and (reply := answer(msg)).op == op:
                        return reply
        except TimeoutError:
            raise ConnectionLost(f"no answer to {op} within {self._s.request_timeout:g}s"
                                 ) from None

    async def messages(self, alive: Callable[[], None]
                       ) -> AsyncIterator[dict[str, Any] | Malformed]:
        """Pushes until the socket dies (then :class:`ConnectionLost`). A frame that
        cannot be read is yielded as :class:`Malformed` for the feed to count. ``alive()``
        is called for every frame, pongs included (socket liveness)."""
        silence = self._s.ping_interval + self._s.pong_timeout
        while True:
            try:
                async with asyncio.timeout(silence):
                    raw = await self._recv()
            except TimeoutError:
                raise ConnectionLost(f"silent for {silence:g}s (no pong)") from None
            alive()
            try:
                msg = decode(raw)
                if is_data(msg):
                    yield msg
                else:
                    answer(msg)  # a pong or a late answer: alive, nothing to do
            except Malformed as exc:
                yield exc

    async def _ping(self) -> None:
        while True:
            await asyncio.sleep(self._s.ping_interval)
            with contextlib.suppress(ConnectionLost):  # the reader notices a dead socket
                await self._send({"op": "ping"})

    async def _send(self, obj: dict[str, Any]) -> None:
        try:
            await self._ws.send(json.dumps(obj))
        except websockets.ConnectionClosed as exc:
            raise ConnectionLost(f"closed: {exc}") from None

    async def _recv(self) -> str | bytes:
        try:
            return await self._ws.recv()
        except websockets.ConnectionClosed as exc:
            raise ConnectionLost(f"closed: {exc}") from None
