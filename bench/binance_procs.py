"""The simulator process of the Binance benchmarks (bench/binance_latency.py,
bench/binance_capacity.py), instrumented.

    python bench/binance_procs.py N CPU MARK_INTERVAL

The simulator's Binance USDⓈ-M personality with N symbols, a position open on each and
``<symbol>@markPrice@1s`` (and ``!markPrice@arr@1s``) pushed every MARK_INTERVAL
seconds. It records, in nanoseconds, when it hands each ``markPriceUpdate`` frame to a
socket, keyed by (symbol, ``E``) — ``("*", E)`` for an all-market array — and when each
publish started, keyed by ``E``. ``E`` is a millisecond stamp: exact latencies are
computed against these records. The first stdout line is the URLs and keys (JSON);
``dump PATH`` on stdin writes and clears the records; ``quit`` stops.
"""

from __future__ import annotations

import asyncio
import sys
import time
from pathlib import Path
from typing import Any

import orjson

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))
sys.path.insert(0, str(HERE))
from hybrid_procs import pin

MARK = b'"e":"markPriceUpdate"'


def frame_key(data: bytes) -> tuple[str, int] | None:
    """(symbol, E) of a markPriceUpdate frame (raw or combined), ("*", E) for arrays."""
    at = data.find(MARK)
    if at < 0:
        return None
    e = data.index(b'"E":', at) + 4
    event_ms = int(data[e:data.index(b",", e)])
    if data[:1] == b"[" or data.startswith(b'{"stream":"!'):
        return "*", event_ms
    s = data.index(b'"s":"', at) + 5
    return data[s:data.index(b'"', s)].decode(), event_ms


async def main(n: int, interval: float) -> None:
    from aiohttp import web

    from feedctl.simulator import SimConfig, Simulator, generated_symbols

    sent: dict[tuple[str, int], int] = {}
    ticks: dict[int, int] = {}
    orig_send = web.WebSocketResponse.send_frame

    async def send_frame(self: Any, data: bytes, opcode: Any, compress: Any = None) -> None:
        # the event type sits within the first 128 bytes of a raw or combined frame
        key = frame_key(data) if data.find(MARK, 0, 128) >= 0 else None
        if key is not None:
            sent.setdefault(key, time.time_ns())
        await orig_send(self, data, opcode, compress)

    web.WebSocketResponse.send_frame = send_frame  # type: ignore[method-assign]
    symbols = generated_symbols(n)
    cfg = SimConfig(port=0, symbols=symbols, seed=1, exchange="binanceusdm",
                    max_ws_backlog=1_000_000, inverse_symbols=[],
                    binance={"mark_fast_interval": interval, "weight_limit": 1_000_000,
                             "max_incoming_per_second": 10_000, "ping_interval": 60})
    async with Simulator(cfg) as sim:
        hub = sim.binance.market  # type: ignore[union-attr]
        orig_publish = hub.publish

        def publish(fast: bool) -> int:
            if fast:
                ticks[hub.now_ms()] = time.time_ns()
            return orig_publish(fast)

        hub.publish = publish  # type: ignore[method-assign]
        for sym in symbols:
            sim.account.set_position(sym, "Buy", sim.instruments[sym].min_qty)
        info = {"urls": sim.urls, "api_key": sim.api_key, "api_secret": sim.api_secret,
                "symbols": symbols}
        print(orjson.dumps(info).decode(), flush=True)
        while True:
            line = (await asyncio.to_thread(sys.stdin.readline)).strip()
            if not line or line == "quit":
                return
            if line.startswith("dump "):
                blob = orjson.dumps({"sent": [[s, e, ns] for (s, e), ns in sent.items()],
                                     "ticks": [[e, ns] for e, ns in ticks.items()],
                                     "stats": sim.stats()})
                await asyncio.to_thread(Path(line[5:]).write_bytes, blob)
                sent.clear()
                ticks.clear()
                print("dumped", flush=True)


if __name__ == "__main__":
    pin(int(sys.argv[2]))
    asyncio.run(main(int(sys.argv[1]), float(sys.argv[3])))
