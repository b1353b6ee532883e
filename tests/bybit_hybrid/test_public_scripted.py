"""The public socket against a scripted server (REST and private from the simulator):
bad frames of every kind, request batching, a rejected topic."""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator
from typing import Any

import orjson
import pytest
import websockets
from websockets.asyncio.server import ServerConnection, serve

from feedctl import FeedState

from .conftest import harness, payload, run, wait_until

pytestmark = pytest.mark.integration


class Script:
    """A Bybit-like public endpoint whose answers and pushes the test controls."""

    def __init__(self, reject: set[str] | None = None) -> None:
        self.requests: list[dict[str, Any]] = []
        self.reject = reject or set()
        self.conns: list[ServerConnection] = []
        #: connections that stalled: the server reads them but answers and pushes nothing
        self.muted: set[ServerConnection] = set()

    async def handler(self, ws: ServerConnection) -> None:
        self.conns.append(ws)
        async for raw in ws:
            msg = orjson.loads(raw)
            self.requests.append(msg)
            if ws in self.muted:
                continue
            bad = [a for a in msg.get("args") or [] if a in self.reject]
            answer = {"success": not bad, "ret_msg": f"error:handler not found,topic:{bad[0]}"
                      if bad else "", "conn_id": "s", "req_id": msg.get("req_id"),
                      "op": msg.get("op")}
            if msg.get("op") == "ping":
                answer["ret_msg"] = "pong"
            await ws.send(orjson.dumps(answer).decode())
            if msg.get("op") == "subscribe" and not bad:
                for topic in msg["args"]:
                    snap = payload("ticker_snapshot_linear.json")
                    snap["topic"] = topic
                    snap["data"]["symbol"] = topic.split(".", 1)[1]
                    snap["ts"] = int(time.time() * 1000)
                    await ws.send(orjson.dumps(snap).decode())

    def stall(self) -> None:
        """The open connections go silent (a new connection is served normally)."""
        self.muted.update(self.conns)

    async def send(self, frame: Any) -> None:
        data = frame if isinstance(frame, str | bytes) else orjson.dumps(frame).decode()
        for ws in self.conns:
            if ws in self.muted:
                continue
            with contextlib.suppress(websockets.ConnectionClosed):
                await ws.send(data)


@contextlib.asynccontextmanager
async def scripted(script: Script) -> AsyncIterator[str]:
    async with serve(script.handler, "127.0.0.1", 0, compression=None) as server:
        port = server.sockets[0].getsockname()[1]
        yield f"ws://127.0.0.1:{port}/v5/public/linear"


def delta(symbol: str, mark: str) -> dict[str, Any]:
    return {"topic": f"tickers.{symbol}", "type": "delta",
            "data": {"symbol": symbol, "markPrice": mark}, "cs": 1,
            "ts": int(time.time() * 1000) + 1000}


def test_bad_frames_are_counted_never_raised() -> None:
    async def go() -> None:
        script = Script()
        async with scripted(script) as url, harness(endpoints={"public_ws": url},
                                                    stale_after=5) as h:
            await h.ctl.place_order("BTCUSDT", "Buy", "0.01")
            await wait_until(lambda: script.conns and h.prices("BTCUSDT"))
            frames: list[Any] = [
                delta("NOPEUSDT", "1.5"),  # unknown symbol
                {"topic": "orderbook.1.BTCUSDT", "type": "delta", "data": {}},  # unexpected
                payload("malformed_truncated.txt"),  # truncated JSON
                "[1, 2, 3]",  # not an object
                {"topic": "tickers.BTCUSDT", "type": "delta", "data": []},  # bad data
                delta("BTCUSDT", "abc"),  # a field that fails to parse
                delta("BTCUSDT", "-3"),
                {"hello": "world"},  # neither topic nor op
                b"\x00\x01",  # binary garbage
                delta("BTCUSDT", "17300.5"),  # and then a good one
            ]
            for f in frames:
                await script.send(f)
            await wait_until(lambda: any(e.position.mark_price == 17300.5
                                         for e in h.prices("BTCUSDT")))
            c = h.ctx.counters
            assert c["unknown_symbol"] == 1 and c["unexpected_topic"] == 1
            assert c["malformed"] >= 5 and c["bad_field"] == 2
            assert c.get("handler_errors", 0) == 0 and c.get("reconnects", 0) == 0
            assert h.ctx.state is FeedState.HEALTHY

    run(go())


def test_subscriptions_are_batched_and_a_rejected_topic_is_isolated() -> None:
    async def go() -> None:
        script = Script(reject={"tickers.ETHUSDT"})
        syms = ["BTCUSDT", "ETHUSDT", "SOLUSDT", "XRPUSDT", "DOGEUSDT"]
        async with scripted(script) as url, harness(syms, endpoints={"public_ws": url},
                                                    max_topics_per_request=2) as h:
            for sym in syms:
                await h.ctl.set_position(sym, "Buy", "1")
            await wait_until(lambda: len(h.feed.details()["public"]["linear"]["subscriptions"])
                             == 4)
            subs = [r for r in script.requests if r["op"] == "subscribe"]
            assert all(len(r["args"]) <= 2 for r in subs)
            assert h.feed.details()["public"]["linear"]["rejected"] == ["ETHUSDT"]
            assert h.ctx.counters["subscribe_rejected"] == 1
            await wait_until(lambda: h.ctx.state is FeedState.DEGRADED)
            assert "ETHUSDT" in h.ctx.status.stale_symbols  # no price for it: not hidden
            await h.ctl.close_position("ETHUSDT")  # no longer wanted: healthy again
            await wait_until(lambda: h.ctx.state is FeedState.HEALTHY)

    run(go())


def test_a_stall_that_starts_while_a_subscribe_waits_is_seen_after_stale_after() -> None:
    """The socket goes silent (no answers, no tickers) just as a new symbol is subscribed:
    the feed is degraded with both symbols stale after ``stale_after``, and the socket is
    replaced, long before the subscribe's 8 s request timeout (no ping rescues it: 30 s)."""
    async def go() -> None:
        script = Script()
        async with scripted(script) as url, harness(
                endpoints={"public_ws": url}, stale_after=0.5, request_timeout=8.0,
                ping_interval=30.0, pong_timeout=30.0) as h:
            await h.ctl.place_order("BTCUSDT", "Buy", "0.01")
            await wait_until(lambda: script.conns and h.prices("BTCUSDT"))

            async def ticking() -> None:
                n = 0
                while True:
                    n += 1
                    await script.send(delta("BTCUSDT", f"{17000 + n}.5"))
                    await script.send(delta("ETHUSDT", f"{1700 + n}.5"))
                    await asyncio.sleep(0.1)

            ticker = asyncio.create_task(ticking())
            try:
                await asyncio.sleep(0.6)
                assert h.ctx.state is FeedState.HEALTHY
                script.stall()
                began = time.monotonic()
                await h.ctl.place_order("ETHUSDT", "Buy", "0.1")  # its subscribe waits
                await wait_until(lambda: h.ctx.state is FeedState.DEGRADED, within=3.0)
                await wait_until(lambda: set(h.ctx.status.stale_symbols)
                                 == {"BTCUSDT", "ETHUSDT"}, within=3.0)
                await wait_until(lambda: len(script.conns) >= 2, within=3.0)
                assert time.monotonic() - began < 3.0
                assert h.ctx.counters["reconnects"] >= 1
                # the new socket answers: both priced, healthy again
                await wait_until(lambda: h.ctx.state is FeedState.HEALTHY, within=5.0)
            finally:
                ticker.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await ticker

    run(go())
