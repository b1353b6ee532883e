"""Server-side processes of the hybrid benchmarks (run as subprocesses, one role each).

    python bench/hybrid_procs.py sim N CPU      # the simulator, instrumented
    python bench/hybrid_procs.py replay CPU     # a fast ticker replay server

``sim``: the simulator with N symbols and a position open on each. It records, for
every ticker frame, the instant it hands the frame to the socket (``send_frame``) keyed
by (symbol, ts), and the instant each tick started; ``dump PATH`` on stdin writes and
clears them. ``ts`` in a frame is the tick start truncated to the millisecond, so exact
latencies are computed against these nanosecond records instead.

``replay``: a WebSocket server answering subscribe/ping like Bybit's public linear
endpoint; after a subscribe it sends a snapshot per symbol, then blasts pre-encoded
delta frames (markPrice always moving) written straight to the transport, as fast as
the client's TCP window allows: what arrives is what the client can absorb.
"""

from __future__ import annotations

import asyncio
import os
import struct
import sys
import time
from pathlib import Path
from typing import Any

import orjson

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))


def pin(cpu: int | None) -> None:
    if cpu is not None and hasattr(os, "sched_setaffinity") and cpu < (os.cpu_count() or 1):
        os.sched_setaffinity(0, {cpu})


def rss_mb() -> float:
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 2**20


def pct(values: list[float], q: float) -> float:
    if not values:
        return float("nan")
    data = sorted(values)
    return data[min(len(data) - 1, int(len(data) * q))]


def ws_frame(payload: bytes) -> bytes:
    """An unmasked server-to-client text frame."""
    n = len(payload)
    if n < 126:
        head = struct.pack("!BB", 0x81, n)
    elif n < 65536:
        head = struct.pack("!BBH", 0x81, 126, n)
    else:
        head = struct.pack("!BBQ", 0x81, 127, n)
    return head + payload


# ------------------------------------------------------------------ sim role
async def sim_main(n: int) -> None:
    from aiohttp import web

    from feedctl.simulator import SimConfig, Simulator, generated_symbols

    sent: dict[tuple[str, int], int] = {}
    ticks: dict[int, int] = {}
    orig_send = web.WebSocketResponse.send_frame

    async def send_frame(self: Any, data: bytes, opcode: Any, compress: Any = None) -> None:
        if data[:18] == b'{"topic":"tickers.':
            end = data.index(b'"', 18)
            k = data.rindex(b'"ts":')
            sent[(data[18:end].decode(), int(data[k + 5:data.index(b"}", k)]))] = time.time_ns()
        await orig_send(self, data, opcode, compress)

    web.WebSocketResponse.send_frame = send_frame  # type: ignore[method-assign]
    symbols = generated_symbols(n)
    cfg = SimConfig(port=0, symbols=symbols, seed=1, rest_rate_limit=100_000,
                    max_ws_backlog=1_000_000)
    async with Simulator(cfg) as sim:
        orig_publish = sim.public.publish

        def publish(deltas: Any, now: int) -> int:
            ticks[now] = time.time_ns()
            return orig_publish(deltas, now)

        sim.public.publish = publish  # type: ignore[method-assign]
        for sym in symbols:
            inst = sim.instruments[sym]
            sim.account.set_position(sym, "Buy", inst.min_qty)
        info = {"urls": sim.urls, "api_key": sim.api_key, "api_secret": sim.api_secret,
                "symbols": symbols}
        print(orjson.dumps(info).decode(), flush=True)
        while True:
            line = (await asyncio.to_thread(sys.stdin.readline)).strip()
            if not line or line == "quit":
                return
            if line.startswith("dump "):
                blob = orjson.dumps({
                    "sent": [[s, ts, ns] for (s, ts), ns in sent.items()],
                    "ticks": [[ts, ns] for ts, ns in ticks.items()],
                    "stats": sim.stats(),
                })
                await asyncio.to_thread(Path(line[5:]).write_bytes, blob)
                sent.clear()
                ticks.clear()
                print("dumped", flush=True)


# ------------------------------------------------------------------ replay role
def _snapshot(sym: str) -> bytes:
    data = {"symbol": sym, "tickDirection": "PlusTick", "price24hPcnt": "0.01",
            "lastPrice": "100.00", "prevPrice24h": "99.00", "highPrice24h": "101.00",
            "lowPrice24h": "98.00", "prevPrice1h": "99.50", "markPrice": "100.00",
            "indexPrice": "100.01", "openInterest": "1000", "openInterestValue": "100000.00",
            "turnover24h": "1000000.00", "volume24h": "10000", "nextFundingTime":
            "1673280000000", "fundingRate": "0.0001", "bid1Price": "99.99", "bid1Size": "10",
            "ask1Price": "100.00", "ask1Size": "12"}
    return orjson.dumps({"topic": f"tickers.{sym}", "type": "snapshot", "data": data,
                         "cs": 1, "ts": int(time.time() * 1000)})


def _blob(symbols: list[str], rounds: int = 200) -> tuple[bytes, int]:
    """Pre-framed deltas, round-robin over symbols; the mark moves in every frame."""
    ts = int(time.time() * 1000)
    frames = []
    for i in range(rounds):
        mark = f"{100 + (i % 50) * 0.01 + 0.005:.3f}"
        for sym in symbols:
            payload = {"topic": f"tickers.{sym}", "type": "delta",
                       "data": {"symbol": sym, "markPrice": mark, "indexPrice": mark,
                                "bid1Price": "99.99", "bid1Size": str(i % 7 + 1)},
                       "cs": 2 + i, "ts": ts}
            frames.append(ws_frame(orjson.dumps(payload)))
    return b"".join(frames), len(frames)


async def replay_main() -> None:
    from websockets.asyncio.server import ServerConnection, serve

    async def blast(ws: ServerConnection, symbols: list[str]) -> None:
        await asyncio.sleep(0.2)  # let the subscribe acks and snapshots go first
        blob, _count = _blob(symbols)
        chunk = len(blob) // 20 or len(blob)
        transport = ws.transport
        while not transport.is_closing():
            if transport.get_write_buffer_size() > 1 << 21:
                await asyncio.sleep(0.0005)
                continue
            for start in range(0, len(blob), chunk):
                transport.write(blob[start:start + chunk])
            await asyncio.sleep(0)

    async def handler(ws: ServerConnection) -> None:
        subscribed: list[str] = []
        blaster: asyncio.Task[None] | None = None
        try:
            async for raw in ws:
                msg = orjson.loads(raw)
                op = msg.get("op")
                answer: dict[str, Any] = {"success": True, "ret_msg": "", "conn_id": "replay",
                                          "op": op}
                if "req_id" in msg:
                    answer["req_id"] = msg["req_id"]
                if op == "ping":
                    answer["ret_msg"] = "pong"
                # written like the blast, straight to the transport: websockets' send()
                # would wait for a drain the blast never lets happen (pongs never sent)
                ws.transport.write(ws_frame(orjson.dumps(answer)))
                if op == "subscribe":
                    new = [a[len("tickers."):] for a in msg.get("args", [])]
                    for sym in new:
                        ws.transport.write(ws_frame(_snapshot(sym)))
                    subscribed.extend(new)
                    if blaster is not None:
                        blaster.cancel()
                    blaster = asyncio.create_task(blast(ws, list(subscribed)))
        finally:
            if blaster is not None:
                blaster.cancel()

    async with serve(handler, "127.0.0.1", 0, compression=None, max_queue=None) as server:
        port = server.sockets[0].getsockname()[1]
        print(orjson.dumps({"url": f"ws://127.0.0.1:{port}/v5/public/linear"}).decode(),
              flush=True)
        await asyncio.to_thread(sys.stdin.readline)


if __name__ == "__main__":
    role = sys.argv[1]
    if role == "sim":
        pin(int(sys.argv[3]))
        asyncio.run(sim_main(int(sys.argv[2])))
    elif role == "replay":
        pin(int(sys.argv[2]))
        asyncio.run(replay_main())
    else:
        raise SystemExit(f"unknown role {role!r}")
