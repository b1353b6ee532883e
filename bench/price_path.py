"""The core's price path alone: CPU us per mark, from a feed's
``FeedContext.apply_streamed_mark`` (what the Bybit hybrid calls per ticker) through
book (PnL, the price event), router, run summary and delivery queue to a library
consumer reading ``session.events()``.

    python bench/price_path.py [--symbols 500] [--ticks 40] [--rounds 10]

A real :class:`feedctl.Session` with one feed of a kind defined here that connects to
nothing (the marks are applied by the bench), a position open on each symbol and one
consumer task; every tick moves every symbol's mark, the consumer runs after every 16
marks (as the hybrid hands them over: ``TickHandler.chunk``). No socket, no parsing:
what ``bench/hybrid_latency.py``'s ``ours`` row spends per frame beyond the ceiling's
reader is this path plus the frame parser. Reports the minimum and the median over
rounds of process CPU time per mark (the minimum is the least disturbed by other jobs on
the machine). Prints one line and writes bench/results/price_path.json.

``--parser`` measures the frame parser instead: the Bybit hybrid's
``TickerState.apply_raw`` (the fast path's decode of a ticker push and its mark's
Decimal), CPU us per frame, over the frames the simulator's public socket would send for
the same symbols and ticks (its price engine's deltas, encoded as it encodes them).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import statistics
import sys
import tempfile
import time
from decimal import Decimal
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from feedctl import (
    Category,
    Endpoints,
    EventKind,
    Feed,
    FeedKind,
    FeedState,
    HttpEndpoint,
    PositionEvent,
    PositionUpdate,
    Side,
    StrictModel,
    build_plugin_manager,
    hookimpl,
)
from feedctl.session import Session

RESULTS = Path(__file__).resolve().parent / "results" / "price_path.json"
RESULTS_PARSER = RESULTS.with_name("price_path_parser.json")
CHUNK = 16


class _Endpoints(Endpoints):
    rest: HttpEndpoint


class _Settings(StrictModel):
    pass


class _IdleFeed(Feed):
    """Healthy, and otherwise idle: the bench applies the updates and marks."""

    async def run(self) -> None:
        self.ctx.set_state(FeedState.HEALTHY, reason="resync_done")
        await asyncio.Event().wait()


class _Plugin:
    @hookimpl
    def feedctl_feed_kinds(self, register: Any) -> None:
        register(FeedKind(name="bench_idle", description="applies nothing by itself (bench)",
                          exchange="bench", factory=_IdleFeed, settings_model=_Settings,
                          requires_credentials=False, endpoints_model=_Endpoints,
                          default_endpoints={"mainnet": {"rest": "https://bench.example"}}))


async def measure(symbols: int, ticks: int, rounds: int) -> list[float]:
    pm = build_plugin_manager([_Plugin()], load_entrypoints=False)
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "settings.toml"
        path.write_text('[bench]\n[bench.feeds.main]\nkind = "bench_idle"\nrole = "primary"\n')
        async with Session("bench", settings_path=path, plugin_manager=pm) as session:
            ctx = session.feeds["main"].ctx
            names = [f"S{i}USDT" for i in range(symbols)]
            for name in names:
                ctx.apply(PositionUpdate(symbol=name, side=Side.LONG, size=Decimal("1.5"),
                                         entry_price=Decimal("100"), seq=1, exchange_ms=1))
            stream = session.events(replay=False)
            seen = [0]
            go = asyncio.Event()

            async def consume() -> None:
                async for ev in stream:
                    if type(ev) is PositionEvent and ev.kind is EventKind.PRICE:
                        seen[0] += 1
                        _ = ev.position.symbol, ev.position.mark_exchange_ms
                    if seen[0] >= go_at[0]:
                        go.set()

            go_at = [1 << 62]
            reader = asyncio.create_task(consume())
            await asyncio.sleep(0.05)  # the opens delivered
            apply = ctx.apply_streamed_mark
            linear = Category.LINEAR
            out = []
            tick = 0
            try:
                for _ in range(rounds):
                    seen[0] = 0
                    t0 = time.process_time()
                    for _ in range(ticks):
                        tick += 1
                        price = Decimal(100) + Decimal(tick) / 10_000
                        for i, name in enumerate(names):
                            apply(linear, name, price, 10 + tick, tick)
                            if i % CHUNK == CHUNK - 1:
                                await asyncio.sleep(0)  # the consumer runs
                    go_at[0] = ticks * symbols
                    go.clear()
                    if seen[0] < go_at[0]:
                        await asyncio.wait_for(go.wait(), 30)
                    out.append((time.process_time() - t0) / (ticks * symbols) * 1e6)
                    go_at[0] = 1 << 62
            finally:
                reader.cancel()
                await asyncio.gather(reader, return_exceptions=True)
            return out


def ticker_frames(symbols: int, ticks: int) -> list[bytes]:
    """The ``tickers.*`` delta pushes of ``ticks`` ticks of the simulator's price engine
    for ``symbols`` symbols, 100 ms apart, as its public socket encodes them."""
    from feedctl.simulator.instruments import make_instruments
    from feedctl.simulator.prices import PriceEngine
    from feedctl.simulator.ws_common import dumps

    engine = PriceEngine(make_instruments([f"S{i}USDT" for i in range(symbols)]), seed=7)
    now = time.time_ns() // 1_000_000
    frames = []
    for t in range(ticks):
        ts = now + 100 * (t + 1)
        for symbol, delta, cs in engine.step(ts):
            frames.append(dumps({"topic": f"tickers.{symbol}", "type": "delta",
                                 "data": delta, "cs": cs, "ts": ts}))
    return frames


def measure_parser(symbols: int, ticks: int, rounds: int) -> list[float]:
    """CPU us per frame of ``TickerState.apply_raw`` over :func:`ticker_frames`, each
    round on a fresh state (as a new connection's)."""
    from feedctl.plugins.bybit_hybrid.parse import TickerState

    frames = [memoryview(f) for f in ticker_frames(symbols, ticks)]
    out = []
    for _ in range(rounds):
        state = TickerState(Category.LINEAR)
        state.symbols.update(f"S{i}USDT" for i in range(symbols))
        apply_raw = state.apply_raw
        t0 = time.process_time()
        for frame in frames:
            apply_raw(frame, 1)
        out.append((time.process_time() - t0) / len(frames) * 1e6)
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--symbols", type=int, default=500)
    ap.add_argument("--ticks", type=int, default=40)
    ap.add_argument("--rounds", type=int, default=10)
    ap.add_argument("--parser", action="store_true",
                    help="measure the ticker frame parser instead (TickerState.apply_raw)")
    ap.add_argument("--out", default=None, help=f"default {RESULTS} (--parser: "
                    f"{RESULTS_PARSER})")
    args = ap.parse_args()
    if args.parser:
        per_mark = measure_parser(args.symbols, args.ticks, args.rounds)
        what, unit = "ticker parser", "frame"
    else:
        per_mark = asyncio.run(measure(args.symbols, args.ticks, args.rounds))
        what, unit = "price path", "mark"
    best, median = round(min(per_mark), 2), round(statistics.median(per_mark), 2)
    print(f"{what}, {args.symbols} symbols: {best} us CPU per {unit} (min of "
          f"{args.rounds} rounds of {args.ticks} ticks; median {median}), load average "
          f"{os.getloadavg()[0]:.1f}")
    out = Path(args.out or (RESULTS_PARSER if args.parser else RESULTS))
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps({
        "bench": "price_path", "measured": what, "argv": sys.argv[1:],
        "python": platform.python_version(), "loadavg": os.getloadavg(),
        f"us_per_{unit}_min": best, f"us_per_{unit}_median": median,
        "rounds": [round(v, 3) for v in per_mark]}, indent=1) + "\n")


if __name__ == "__main__":
    main()
