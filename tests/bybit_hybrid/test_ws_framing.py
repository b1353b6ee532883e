"""The hybrid's own frame parsing (``_DispatchingConnection._fast``) against a real
websockets server on loopback: what arrives split at any byte, of any length, with
control frames and fragments in between, is what the server sent, in order."""

from __future__ import annotations

import asyncio
import random
import struct

import pytest
import websockets
from websockets.asyncio.server import ServerConnection, serve

from feedctl.plugins.bybit_hybrid.ws import _DispatchingConnection

pytestmark = pytest.mark.integration

SIZES = [2, 60, 125, 126, 127, 300, 4_000, 65_535, 65_536, 70_000, 10]


def _frame(payload: bytes, first: int = 0x81) -> bytes:
    n = len(payload)
    if n < 126:
        head = struct.pack("!BB", first, n)
    elif n < 65536:
        head = struct.pack("!BBH", first, 126, n)
    else:
        head = struct.pack("!BBQ", first, 127, n)
    return head + payload


def _payloads(tag: str) -> list[bytes]:
    return [(f'{{"t":"{tag}{i}","p":"' + "x" * size + '"}').encode()
            for i, size in enumerate(SIZES)]


async def _dribble(ws: ServerConnection, blob: bytes, rng: random.Random) -> None:
    """Write ``blob`` in chunks of random sizes, letting the client read in between."""
    i = 0
    while i < len(blob):
        step = rng.choice([1, 2, 3, 7, 64, 1000, 20_000])
        ws.transport.write(blob[i:i + step])
        i += step
        await asyncio.sleep(0.0005 if rng.random() < 0.3 else 0)


def _run(seed: int) -> dict[str, object]:
    rng = random.Random(seed)
    first, second, third = _payloads("a"), _payloads("b"), _payloads("c")

    async def main() -> dict[str, object]:
        out: dict[str, object] = {}

        async def handler(ws: ServerConnection) -> None:
            await ws.recv()
            await ws.send('{"hello":1}')  # a whole frame, as a subscribe's answer
            await ws.recv()
            await _dribble(ws, b"".join(_frame(p) for p in first), rng)
            pong = await ws.ping()  # a control frame among the data: websockets answers
            async with asyncio.timeout(3):
                await pong
            out["pong"] = True
            await _dribble(ws, b"".join(_frame(p) for p in second), rng)
            # a fragmented message: websockets' parser from here on, frames still arrive
            fragments = _frame(b'{"frag', 0x01) + _frame(b'":1}', 0x80)
            await _dribble(ws, fragments + b"".join(_frame(p) for p in third), rng)
            await ws.wait_closed()

        async with serve(handler, "127.0.0.1", 0, compression=None, max_size=None) as server:
            port = server.sockets[0].getsockname()[1]
            got: list[bytes] = []
            fast: list[bool] = []  # per frame: did the hybrid's own parser deliver it
            async with websockets.connect(f"ws://127.0.0.1:{port}", compression=None,
                                          max_size=2**20,
                                          create_connection=_DispatchingConnection) as ws:
                assert isinstance(ws, _DispatchingConnection)

                def on_frame(data: bytes | bytearray | memoryview, _ns: int, _read: bool) -> None:
                    got.append(bytes(data))
                    fast.append(ws._fast_on)

                ws.on_frame = on_frame
                await ws.send("go")
                async with asyncio.timeout(10):
                    while not got:
                        await asyncio.sleep(0.01)
                    assert got.pop(0) == b'{"hello":1}' and fast.pop(0) is False
                    await ws.send("more")
                    out["fragmented"] = await ws.recv()
                    while len(got) < len(first) + len(second) + len(third):
                        await asyncio.sleep(0.01)
            out["got"], out["fast"] = got, fast
            out["close_code"] = ws.close_code
        return out

    out = asyncio.run(main())
    out["expected"] = first + second + third
    return out


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_frames_split_anywhere_arrive_whole_and_in_order(seed: int) -> None:
    out = _run(seed)
    assert out["got"] == out["expected"]
    n = 2 * len(SIZES)
    assert out["fast"][:n] == [True] * n  # before the fragments: the hybrid's parser


def test_a_ping_among_the_frames_is_answered_by_websockets() -> None:
    assert _run(4)["pong"] is True


def test_a_fragmented_message_goes_the_recv_way_and_later_frames_still_arrive() -> None:
    out = _run(5)
    assert out["fragmented"] == '{"frag":1}'
    assert out["got"] == out["expected"]
    assert out["close_code"] == 1000


def test_an_oversized_frame_is_refused_by_websockets() -> None:
    async def main() -> tuple[list[tuple[bytes, bool]], int | None]:
        async def handler(ws: ServerConnection) -> None:
            await ws.recv()
            await ws.send('{"hello":1}')
            await ws.recv()
            ws.transport.write(_frame(b'{"a":1}') + _frame(b"y" * 3_000))
            await ws.wait_closed()

        async with serve(handler, "127.0.0.1", 0, compression=None) as server:
            port = server.sockets[0].getsockname()[1]
            got: list[tuple[bytes, bool]] = []
            async with websockets.connect(f"ws://127.0.0.1:{port}", compression=None,
                                          max_size=1_000,
                                          create_connection=_DispatchingConnection) as ws:
                ws.on_frame = lambda data, _ns, _read: got.append((bytes(data), ws._fast_on))
                await ws.send("go")
                async with asyncio.timeout(5):
                    while not got:
                        await asyncio.sleep(0.01)
                    await ws.send("more")
                    await ws.wait_closed()
                sent = ws.protocol.close_sent
                return got, sent.code if sent is not None else None

    got, code = asyncio.run(main())
    assert got == [(b'{"hello":1}', False), (b'{"a":1}', True)]
    assert code == 1009  # websockets refused the frame as too big, as without the fast path
