"""Client processes of the hybrid benchmarks: our feed, ccxt.pro and pybit.

    python bench/hybrid_clients.py MODE KIND CONFIG_FILE

MODE ``latency``: record (symbol, ts, callback ns) for every ticker the consumer gets
after a warm-up. MODE ``capacity``: count what the consumer gets per second (and the
RSS at given message counts). CONFIG_FILE (JSON) carries urls, keys, symbols, seconds,
warmup, cpu, out (a file for the results) and options (profile, json_stdlib,
no_fast_path, ws_parser, consumers, settled, rss_at).

The consumer is, for ours, a task reading ``session.events()`` (a ``price`` event with
the PnL already recomputed, through book, router and delivery queue); for ccxt.pro the
return of ``watch_tickers``; for pybit the ``ticker_stream`` callback (in pybit's
websocket thread); for the ceiling the loop reading the bare websockets connection.
"""

from __future__ import annotations

import asyncio
import json
import sys
import threading
import time
from collections.abc import Coroutine
from pathlib import Path
from typing import Any

import orjson

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from hybrid_procs import pin, rss_mb


class Sink:
    """The consumer: counts, optionally records samples and RSS checkpoints."""

    def __init__(self, cfg: dict[str, Any], record: bool) -> None:
        self.record = record
        self.samples: list[tuple[str, int, int]] = []
        self.count = 0
        self.start_at = time.time() + cfg["warmup"]
        self.rss_at = sorted(cfg.get("options", {}).get("rss_at", []))
        self.rss: dict[str, float] = {}
        self.lock = threading.Lock()
        #: messages the client absorbed (ours coalesces: events <= messages)
        self.absorbed: Any = lambda: self.count

    def hit(self, symbol: str, ts: int | None) -> None:
        now = time.time_ns()
        self.count += 1
        if self.record and now / 1e9 >= self.start_at and ts is not None:
            self.samples.append((symbol, ts, now))
        if self.rss_at and self.absorbed() >= self.rss_at[0]:
            self.rss[str(self.rss_at.pop(0))] = rss_mb()


async def measure(sink: Sink, cfg: dict[str, Any]) -> dict[str, Any]:
    await asyncio.sleep(max(0.0, sink.start_at - time.time()))
    c0, a0, t0, cpu0 = sink.count, sink.absorbed(), time.perf_counter(), time.process_time()
    deadline = time.perf_counter() + cfg["seconds"]
    rss_target = sink.rss_at[-1] if sink.rss_at else None
    while time.perf_counter() < deadline or (rss_target and sink.rss_at):
        await asyncio.sleep(0.05)  # polling: the sink is also fed from pybit's thread
    elapsed = time.perf_counter() - t0
    absorbed = sink.absorbed() - a0
    return {"rate": absorbed / elapsed, "events_rate": (sink.count - c0) / elapsed,
            "count": absorbed, "seconds": elapsed,
            "cpu_pct": 100 * (time.process_time() - cpu0) / elapsed}


async def measure_while(reader: Coroutine[Any, Any, None], sink: Sink,
                        cfg: dict[str, Any]) -> dict[str, Any]:
    """:func:`measure` while ``reader`` runs as a task, cancelled afterwards."""
    task = asyncio.create_task(reader)
    try:
        return await measure(sink, cfg)
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)


# ------------------------------------------------------------------ ours
async def run_ours(cfg: dict[str, Any], sink: Sink) -> dict[str, Any]:
    """The whole feed: a :class:`feedctl.Session` (book, router, delivery queues) with
    ``options.consumers`` library consumers (default 1), each its own task reading
    ``session.events()``; the first one is the sink (the others count what they get)."""
    import os
    import tempfile

    # the feed plugin alone: the consumers are the bench's (no trailing-stop dispatcher)
    os.environ["FEEDCTL_LOAD_PLUGINS"] = "bybit_hybrid"
    from feedctl import EventKind, PositionEvent, Session

    opts = cfg.get("options", {})
    if opts.get("json_stdlib") or opts.get("no_fast_path"):
        # the public socket's ticker fast path (msgspec) declines every frame: each one is
        # decoded into a dict by orjson, or by json below
        from feedctl.plugins.bybit_hybrid.ticks import TickHandler

        TickHandler.raw = lambda self, raw, received_ns: False  # type: ignore[method-assign]
    if opts.get("json_stdlib"):
        import feedctl.plugins.bybit_hybrid.parse as parse_mod
        import feedctl.plugins.bybit_hybrid.ws as ws_mod

        def _loads(raw: Any) -> Any:  # the hybrid hands frames over as memoryviews
            return json.loads(bytes(raw) if isinstance(raw, memoryview) else raw)

        class _Json:  # what orjson buys: decode with the standard library instead
            loads = staticmethod(_loads)
            dumps = staticmethod(orjson.dumps)
            JSONDecodeError = json.JSONDecodeError

        parse_mod.orjson = ws_mod.orjson = _Json  # type: ignore[assignment]

    if opts.get("ws_parser"):  # every frame through websockets' parser, as the ceiling
        from feedctl.plugins.bybit_hybrid.ws import _DispatchingConnection

        _DispatchingConnection.fast_parsing = False

    urls = cfg["urls"]
    overrides = {
        "account": {"api_key": cfg["api_key"], "api_secret": cfg["api_secret"]},
        "endpoints": {"rest": urls["rest"], "public_ws": urls["public_ws"],
                      "public_ws_inverse": urls["public_ws"].replace("/linear", "/inverse"),
                      "private_ws": urls["private_ws"]},
        # the live feed alone, as primary: no REST poller competing for the core
        "feeds": {"bybit_hybrid": {"kind": "bybit_hybrid", "role": "primary",
                                   "audit_interval": 0, "stale_after": "5s",
                                   "max_connection_lifetime": None}},
        "logging": {"level": "WARNING"},
    }
    price = EventKind.PRICE
    # nothing is recorded before the warm-up that follows readiness (set below): the
    # frames of the subscribe phase (and of the start-up reads) are not the steady state
    sink.start_at = float("inf")
    counts = [0] * max(1, int(opts.get("consumers", 1)))
    streaming: set[str] = set()  # symbols whose prices reach the consumer

    async def consume(i: int, stream: Any) -> None:
        async for ev in stream:
            if type(ev) is PositionEvent and ev.kind is price:
                if i == 0:
                    pos = ev.position
                    sink.hit(pos.symbol, pos.mark_exchange_ms)
                    if len(streaming) < len(cfg["symbols"]):
                        streaming.add(pos.symbol)
                else:
                    counts[i] += 1

    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "settings.toml"
        path.write_text("[bench]\n")
        async with Session("bench", settings_path=path, overrides=overrides) as session:
            ctx = session.feeds["bybit_hybrid"].ctx
            streams = [session.events(name=f"bench-{i}", replay=False)
                       for i in range(len(counts))]
            readers = [asyncio.create_task(consume(i, s)) for i, s in enumerate(streams)]
            sink.absorbed = lambda: ctx.counters.get("messages", 0)
            try:
                # the warm-up starts once every symbol streams: the feed subscribes in
                # batches of 10 topics, one request at a time, after its REST snapshot;
                # with 500 symbols that takes seconds, which is not a latency
                t0 = time.time()
                async with asyncio.timeout(90):
                    while len(streaming) < len(cfg["symbols"]):
                        await asyncio.sleep(0.05)
                if opts.get("settled"):
                    # and once the feed's start-up reads are done: it reads each open
                    # symbol's instrument from REST once (at 500 symbols that is
                    # ~500 requests over tens of seconds), a one-off start-up cost that
                    # is not the steady-state latency either
                    async with asyncio.timeout(240):
                        while len(ctx.instruments) < len(cfg["symbols"]):
                            await asyncio.sleep(0.1)
                ready_s = round(time.time() - t0, 2)
                sink.start_at = time.time() + cfg["warmup"]
                out = await measure(sink, cfg)
                out["ready_s"] = ready_s
            finally:
                for t in readers:
                    t.cancel()
                await asyncio.gather(*readers, return_exceptions=True)
            out["messages_counter"] = ctx.counters.get("messages", 0)
            out["consumers"] = len(counts)
            out["consumer_events"] = [sink.count, *counts[1:]]
    return out


# ------------------------------------------------------------------ ccxt.pro
async def run_ccxt(cfg: dict[str, Any], sink: Sink) -> dict[str, Any]:
    import ccxt.pro as ccxtpro

    urls = cfg["urls"]
    ex = ccxtpro.bybit({"apiKey": cfg["api_key"], "secret": cfg["api_secret"],
                        "enableRateLimit": False,
                        "options": {"fetchMarkets": {"types": ["linear"]}}})
    for key in ("spot", "futures", "v2", "public", "private"):
        ex.urls["api"][key] = urls["rest"]
    ex.urls["api"]["ws"]["public"]["linear"] = urls["public_ws"]
    handled = [0]
    original = ex.handle_ticker

    def counting(client: Any, message: Any) -> Any:  # what ccxt parses, delivered or not
        handled[0] += 1
        return original(client, message)

    ex.handle_ticker = counting
    sink.absorbed = lambda: handled[0]
    try:
        await ex.load_markets()
        by_id = {m["id"]: m["symbol"] for m in ex.markets.values()}
        symbols = [by_id[s] for s in cfg["symbols"]]

        async def loop() -> None:
            while True:
                tickers = await ex.watch_tickers(symbols)
                for t in tickers.values():
                    sink.hit(t["info"]["symbol"], t["timestamp"])

        return await measure_while(loop(), sink, cfg)
    finally:
        await ex.close()


# ------------------------------------------------------------------ pybit
async def run_pybit(cfg: dict[str, Any], sink: Sink) -> dict[str, Any]:
    from pybit import unified_trading

    unified_trading.PUBLIC_WSS = cfg["urls"]["public_ws"].replace("/linear", "/{CHANNEL_TYPE}")

    def callback(msg: dict[str, Any]) -> None:
        sink.hit(msg["data"]["symbol"], msg.get("ts"))

    ws = unified_trading.WebSocket(channel_type="linear", testnet=False)
    try:
        ws.ticker_stream(symbol=list(cfg["symbols"]), callback=callback)
        return await measure(sink, cfg)
    finally:
        ws.exit()


# ------------------------------------------------------------------ ceiling
async def run_raw(cfg: dict[str, Any], sink: Sink) -> dict[str, Any]:
    """The ceiling: a bare websockets + orjson reader that only keeps the latest
    markPrice per symbol (no book, no PnL, no delivery) - what any Python client built
    on these two libraries can reach at most."""
    from websockets.asyncio.client import connect

    async with connect(cfg["urls"]["public_ws"], ping_interval=None, compression=None,
                       max_queue=256, proxy=None) as ws:
        topics = [f"tickers.{s}" for s in cfg["symbols"]]
        for i in range(0, len(topics), 10):
            await ws.send(orjson.dumps({"op": "subscribe", "args": topics[i:i + 10]}).decode())

        marks: dict[str, str] = {}

        async def loop() -> None:
            async for raw in ws:
                msg = orjson.loads(raw)
                data = msg.get("data")
                if isinstance(data, dict) and "symbol" in data:
                    mark = data.get("markPrice")
                    if mark is not None:
                        marks[data["symbol"]] = mark
                    sink.hit(data["symbol"], msg.get("ts"))

        return await measure_while(loop(), sink, cfg)


RUNNERS = {"ours": run_ours, "ccxt": run_ccxt, "pybit": run_pybit, "ceiling": run_raw}


def main() -> None:
    mode, kind = sys.argv[1], sys.argv[2]
    cfg = json.loads(Path(sys.argv[3]).read_text())  # a file: keys stay off the command line
    pin(cfg.get("cpu"))
    sink = Sink(cfg, record=mode == "latency")
    profile = cfg.get("options", {}).get("profile") and kind == "ours"
    if profile:
        import cProfile
        import pstats

        prof = cProfile.Profile()
        prof.enable()
    result = asyncio.run(RUNNERS[kind](cfg, sink))
    if profile:
        prof.disable()
        stats = pstats.Stats(prof).sort_stats("tottime")
        stats.print_stats(25)
    result["rss_mb"] = sink.rss
    result["rss_end_mb"] = rss_mb()
    if mode == "latency":
        result["samples"] = sink.samples
    Path(cfg["out"]).write_bytes(orjson.dumps(result))


if __name__ == "__main__":
    main()
