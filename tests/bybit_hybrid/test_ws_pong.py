"""``Conn``'s lost-pong check: a data frame created long after an unanswered ping is held
until a probe ping tells a late pong from a lost one (docs/bybit_hybrid.md, "Lost
pongs")."""

from __future__ import annotations

import asyncio
import logging
import time
from typing import Any

import orjson
import pytest

from feedctl.plugins.bybit_hybrid.ws import Conn

pytestmark = pytest.mark.unit

PING_AGE_MS = 2_000  # the unanswered ping was sent this long ago


def _deliver(created_after_ping_ms: int, offset: int | None, ping_answered: bool = False,
             then: list[str] | None = None) -> tuple[list[dict[str, Any]], str | None]:
    """Hand ``_frame`` a push created that long after the ping (ping ``p1``, probe
    ``q2``), then the pongs whose req_ids ``then`` lists; what reached ``on_data`` and
    why the connection finished (None: still alive)."""

    async def main() -> tuple[list[dict[str, Any]], str | None]:
        got: list[dict[str, Any]] = []
        conn = Conn(name="private", url="ws://127.0.0.1:9", on_data=lambda m, _t: got.append(m),
                    ping_interval=20, pong_timeout=10, request_timeout=1,
                    log=logging.LoggerAdapter(logging.getLogger("test")),
                    count=lambda _name: None, report=lambda _p, _n: None,
                    pong_overdue_after=1.0, server_offset_ms=lambda: offset)
        now_ns = time.time_ns()
        conn._ping_sent_ns = None if ping_answered else now_ns - PING_AGE_MS * 1_000_000
        conn._ping_id = None if ping_answered else "p1"
        sent_ms = (now_ns // 1_000_000 - PING_AGE_MS) + (offset or 0)
        frame = {"topic": "position", "creationTime": sent_ms + created_after_ping_ms,
                 "data": []}
        conn._frame(orjson.dumps(frame), now_ns)
        if conn._probe_wanted:
            conn._probe_id = "q2"  # what the pinger sends when asked
        for req_id in then or []:
            conn._frame(orjson.dumps({"req_id": req_id, "op": "pong", "args": ["1"]}),
                        time.time_ns())
        return got, conn.closed.result() if conn.closed.done() else None

    return asyncio.run(main())


def test_a_frame_created_long_after_an_unanswered_ping_is_held() -> None:
    got, reason = _deliver(created_after_ping_ms=1_500, offset=0)
    assert got == [] and reason is None


def test_the_probe_answered_first_proves_the_pong_lost() -> None:
    got, reason = _deliver(created_after_ping_ms=1_500, offset=0, then=["q2"])
    assert got == [] and reason is not None and "probe ping" in reason


def test_a_connection_holding_frames_says_so_until_the_pong_comes() -> None:
    async def main() -> tuple[bool, bool]:
        conn = Conn(name="private", url="ws://127.0.0.1:9", on_data=lambda _m, _t: None,
                    ping_interval=20, pong_timeout=10, request_timeout=1,
                    log=logging.LoggerAdapter(logging.getLogger("test")),
                    count=lambda _name: None, report=lambda _p, _n: None,
                    pong_overdue_after=1.0, server_offset_ms=lambda: 0)
        now_ns = time.time_ns()
        conn._ping_sent_ns, conn._ping_id = now_ns - PING_AGE_MS * 1_000_000, "p1"
        created = now_ns // 1_000_000 - PING_AGE_MS + 1_500
        conn._frame(orjson.dumps({"topic": "position", "creationTime": created, "data": []}),
                    now_ns)
        before = conn.holding  # a planned swap must treat closing it as a gap
        conn._frame(orjson.dumps({"req_id": "p1", "op": "pong"}), time.time_ns())
        return before, conn.holding

    assert asyncio.run(main()) == (True, False)


def test_a_late_pong_releases_the_held_frames() -> None:
    got, reason = _deliver(created_after_ping_ms=1_500, offset=0, then=["p1", "q2"])
    assert len(got) == 1 and reason is None


def test_a_frame_created_soon_after_the_ping_is_delivered() -> None:
    got, reason = _deliver(created_after_ping_ms=500, offset=0)
    assert len(got) == 1 and reason is None


def test_the_check_uses_the_measured_server_clock_offset() -> None:
    # the server clock runs 5 s ahead: created 0.5 s after the ping by the server's clock
    got, reason = _deliver(created_after_ping_ms=500, offset=5_000)
    assert len(got) == 1 and reason is None


def test_without_a_measured_clock_offset_the_check_is_off() -> None:
    got, reason = _deliver(created_after_ping_ms=1_500, offset=None)
    assert len(got) == 1 and reason is None


def test_an_answered_ping_leaves_frames_alone() -> None:
    got, reason = _deliver(created_after_ping_ms=60_000, offset=0, ping_answered=True)
    assert len(got) == 1 and reason is None


@pytest.mark.integration
def test_the_frame_dispatch_override_is_still_called_by_this_websockets() -> None:
    """The hybrid hands text frames over from websockets' ``process_event`` (an internal
    method; pyproject pins websockets' major versions): if a websockets release stops
    calling it, frames would silently queue for recv() instead — this fails then."""
    import websockets
    from websockets.asyncio.server import ServerConnection, serve

    from feedctl.plugins.bybit_hybrid.ws import _DispatchingConnection

    async def main() -> tuple[list[bytes], bool]:
        async def handler(ws: ServerConnection) -> None:
            await ws.recv()  # frames only once asked, as Bybit after a subscribe
            for n in range(3):
                await ws.send(f'{{"n":{n}}}')
            await asyncio.sleep(1)

        async with serve(handler, "127.0.0.1", 0) as server:
            port = server.sockets[0].getsockname()[1]
            got: list[bytes] = []
            async with websockets.connect(f"ws://127.0.0.1:{port}",
                                          create_connection=_DispatchingConnection) as ws:
                assert isinstance(ws, _DispatchingConnection)
                ws.on_frame = lambda data, _ns, _read: got.append(bytes(data))
                await ws.send("go")
                deadline = time.monotonic() + 3
                while len(got) < 3 and time.monotonic() < deadline:
                    await asyncio.sleep(0.01)
                try:
                    async with asyncio.timeout(0.2):
                        await ws.recv()
                    queued = True
                except TimeoutError:
                    queued = False
            return got, queued

    got, queued = asyncio.run(main())
    assert got == [b'{"n":0}', b'{"n":1}', b'{"n":2}']
    assert not queued  # nothing went the recv() way
