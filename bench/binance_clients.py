"""Client processes of the Binance benchmarks: our binance_usdm feed, ccxt.pro
``binanceusdm``, python-binance and the bare reader ceiling.

    python bench/binance_clients.py MODE KIND CONFIG_FILE

MODE ``latency`` records (symbol, E, callback ns) for every mark price the consumer gets
after a warm-up; ``capacity`` only counts. CONFIG_FILE (JSON): urls, keys, symbols,
seconds, warmup, cpu, out. The consumer is, for ours, a task reading
``session.events()`` (a ``price`` event, PnL recomputed); for ccxt.pro the return of
``watch_mark_prices``; for python-binance each message its futures multiplex mark-price
sockets return from ``recv()``; for the ceiling each decoded frame.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import re
import sys
import time
from pathlib import Path
from typing import Any

import orjson

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))
sys.path.insert(0, str(HERE))
from hybrid_clients import Sink, measure, measure_while
from hybrid_procs import pin, rss_mb

HOST = re.compile(r"^(https|wss)://[^/]+")
#: python-binance puts every stream in the URL: keep each under aiohttp's 8 KiB line
PB_STREAMS_PER_SOCKET = 200


def stream_names(symbols: list[str]) -> list[str]:
    return [f"{s.lower()}@markPrice@1s" for s in symbols]


async def wait_streaming(streaming: set[str], symbols: list[str], sink: Sink,
                         cfg: dict[str, Any]) -> float:
    """Start the warm-up once every symbol streams (subscribing N is not a latency)."""
    t0 = time.time()
    async with asyncio.timeout(90):
        while len(streaming) < len(symbols):
            await asyncio.sleep(0.05)
    sink.start_at = time.time() + cfg["warmup"]
    return round(time.time() - t0, 2)


# ------------------------------------------------------------------ ours
async def run_ours(cfg: dict[str, Any], sink: Sink) -> dict[str, Any]:
    import os
    import tempfile

    os.environ["FEEDCTL_LOAD_PLUGINS"] = "binance_usdm"
    from feedctl import EventKind, PositionEvent, Session

    urls = cfg["urls"]
    overrides = {
        "account": {"exchange": "binanceusdm", "api_key": cfg["api_key"],
                    "api_secret": cfg["api_secret"]},
        "endpoints": {"rest": urls["rest"], "market_ws": urls["market_ws"],
                      "private_ws": urls["private_ws"]},
        "feeds": {"binance_usdm": {"kind": "binance_usdm", "role": "primary",
                                   "audit_interval": 0, "stale_after": "5s",
                                   }},
        "logging": {"level": "WARNING"},
    }
    price = EventKind.PRICE
    streaming: set[str] = set()

    async def consume(stream: Any) -> None:
        async for ev in stream:
            if type(ev) is PositionEvent and ev.kind is price:
                pos = ev.position
                sink.hit(pos.symbol, pos.mark_exchange_ms)
                if len(streaming) < len(cfg["symbols"]):
                    streaming.add(pos.symbol)

    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "settings.toml"
        path.write_text("[bench]\n")
        async with Session("bench", settings_path=path, overrides=overrides) as session:
            ctx = session.feeds["binance_usdm"].ctx
            reader = asyncio.create_task(consume(session.events(name="bench", replay=False)))
            sink.absorbed = lambda: ctx.counters.get("messages", 0)
            try:
                ready = await wait_streaming(streaming, cfg["symbols"], sink, cfg)
                out = await measure(sink, cfg)
                out["ready_s"] = ready
            finally:
                reader.cancel()
                await asyncio.gather(reader, return_exceptions=True)
    return out


# ------------------------------------------------------------------ ccxt.pro
def loopback(urls: Any, http: str, ws: str) -> Any:
    if isinstance(urls, dict):
        return {k: loopback(v, http, ws) for k, v in urls.items()}
    if isinstance(urls, str):
        return HOST.sub(lambda m: http if m.group(1) == "https" else ws, urls)
    return urls


async def run_ccxt(cfg: dict[str, Any], sink: Sink) -> dict[str, Any]:
    import ccxt.pro as ccxtpro

    http = cfg["urls"]["rest"]
    ex = ccxtpro.binanceusdm({"apiKey": cfg["api_key"], "secret": cfg["api_secret"],
                              "enableRateLimit": False,
                              "options": {"fetchMarkets": {"types": ["linear"]},
                                          "fetchCurrencies": False}})
    ex.urls["api"] = loopback(ex.urls["api"], http, http.replace("http", "ws"))
    handled = [0]
    original = ex.handle_mark_prices

    def counting(client: Any, message: Any) -> Any:  # what ccxt parses, delivered or not
        handled[0] += len(message) if isinstance(message, list) else 1
        return original(client, message)

    ex.handle_mark_prices = counting
    sink.absorbed = lambda: handled[0]
    streaming: set[str] = set()
    try:
        await ex.load_markets()
        by_id = {m["id"]: m["symbol"] for m in ex.markets.values() if m.get("swap")}
        symbols = [by_id[s] for s in cfg["symbols"]]

        async def loop() -> None:
            while True:
                marks = await ex.watch_mark_prices(symbols)
                for m in marks.values():
                    info = m["info"]
                    sink.hit(info["s"], info["E"])
                # ready once ccxt holds every symbol's mark: a watch_mark_prices loop
                # gets back only the updates that arrived since its last call resolved
                if len(streaming) < len(symbols):
                    streaming.update(t["info"]["s"] for t in ex.tickers.values())

        task = asyncio.create_task(loop())
        try:
            ready = await wait_streaming(streaming, cfg["symbols"], sink, cfg)
        finally:
            task.cancel()
            await asyncio.gather(task, return_exceptions=True)
        out = await measure_while(loop(), sink, cfg)
        out["ready_s"] = ready
        return out
    finally:
        await ex.close()


# ------------------------------------------------------------------ python-binance
async def run_pbinance(cfg: dict[str, Any], sink: Sink) -> dict[str, Any]:
    from binance import AsyncClient, BinanceSocketManager

    client = AsyncClient(cfg["api_key"], cfg["api_secret"])
    client.FUTURES_URL = f"{cfg['urls']['rest']}/fapi"
    bsm = BinanceSocketManager(client, max_queue_size=100_000)
    bsm.FSTREAM_URL = cfg["urls"]["rest"].replace("http://", "ws://") + "/"
    names = stream_names(cfg["symbols"])
    streaming: set[str] = set()

    async def read(streams: list[str]) -> None:
        async with bsm.futures_multiplex_socket(streams) as socket:
            while True:
                msg = await socket.recv()
                data = msg.get("data") if isinstance(msg, dict) else None
                if isinstance(data, dict) and data.get("e") == "markPriceUpdate":
                    sink.hit(data["s"], data["E"])
                    streaming.add(data["s"])

    readers = [asyncio.create_task(read(names[i:i + PB_STREAMS_PER_SOCKET]))
               for i in range(0, len(names), PB_STREAMS_PER_SOCKET)]
    try:
        ready = await wait_streaming(streaming, cfg["symbols"], sink, cfg)
        out = await measure(sink, cfg)
        out["ready_s"] = ready
        out["sockets"] = len(readers)
        return out
    finally:
        for t in readers:
            t.cancel()
        # python-binance's socket can take long to close under load: bounded, and the
        # process exits right after writing its results (main)
        await asyncio.wait(readers, timeout=5)
        with contextlib.suppress(Exception):
            async with asyncio.timeout(5):
                await client.close_connection()


# ------------------------------------------------------------------ ceiling
async def run_raw(cfg: dict[str, Any], sink: Sink) -> dict[str, Any]:
    """The ceiling: a bare websockets + orjson reader on one /market/ws connection that
    only keeps the latest mark per symbol (no book, no PnL, no delivery)."""
    from websockets.asyncio.client import connect

    async with connect(cfg["urls"]["market_ws"] + "/ws", ping_interval=None,
                       compression=None, max_queue=256, proxy=None) as ws:
        names = stream_names(cfg["symbols"])
        for i in range(0, len(names), 100):
            await ws.send(orjson.dumps({"method": "SUBSCRIBE", "params": names[i:i + 100],
                                        "id": i + 1}).decode())
        marks: dict[str, str] = {}
        streaming: set[str] = set()

        async def loop() -> None:
            async for raw in ws:
                msg = orjson.loads(raw)
                if isinstance(msg, dict) and msg.get("e") == "markPriceUpdate":
                    marks[msg["s"]] = msg["p"]
                    sink.hit(msg["s"], msg["E"])
                    streaming.add(msg["s"])

        task = asyncio.create_task(loop())
        try:
            ready = await wait_streaming(streaming, cfg["symbols"], sink, cfg)
            out = await measure(sink, cfg)
            out["ready_s"] = ready
            return out
        finally:
            task.cancel()
            await asyncio.gather(task, return_exceptions=True)


RUNNERS = {"ours": run_ours, "ccxt": run_ccxt, "pbinance": run_pbinance, "ceiling": run_raw}


def main() -> None:
    mode, kind = sys.argv[1], sys.argv[2]
    cfg = json.loads(Path(sys.argv[3]).read_text())  # a file: keys stay off the command line
    pin(cfg.get("cpu"))
    sink = Sink(cfg, record=mode == "latency")
    loop = asyncio.new_event_loop()
    result = loop.run_until_complete(RUNNERS[kind](cfg, sink))
    result["rss_end_mb"] = rss_mb()
    if mode == "latency":
        result["samples"] = sink.samples
    Path(cfg["out"]).write_bytes(orjson.dumps(result))
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(0)  # skip the loop's shutdown: a client's leftover socket must not hang it


if __name__ == "__main__":
    main()
