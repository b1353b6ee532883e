"""rest_polling against the simulator through ccxt, over real loopback sockets."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from decimal import Decimal
from typing import Any

import pytest

from feedctl import FatalFeedError, FeedState
from feedctl.simulator import SimConfig, SimControl, Simulator, generated_symbols

from .conftest import Harness, make_harness, run, running

pytestmark = pytest.mark.integration

INTERVAL = 0.2
#: One poll costs ~0.1 s on loopback: ccxt's own limiter holds each request back by
#: the endpoint's cost (5 x 20 ms for /v5/position/list).
SLACK = 0.45

Body = Callable[[Harness, SimControl, Simulator], Awaitable[None]]


async def rest_errors(ctl: SimControl, mode: str, count: int, path: str) -> None:
    # SimControl.rest_errors(path=...) collides with _post(path, ...): call the API directly
    await ctl.request("POST", "/faults/rest-error", {"mode": mode, "count": count, "path": path})


def with_sim(body: Body, symbols: list[str] | None = None, timeout: float = 30,
             **settings: Any) -> Harness:
    settings.setdefault("interval", INTERVAL)
    out: list[Harness] = []

    async def main() -> None:
        cfg = SimConfig(port=0, symbols=symbols or ["BTCUSDT", "ETHUSDT"], seed=1)
        async with Simulator(cfg) as sim, SimControl(sim.urls["control"]) as ctl:
            h = make_harness(api_key=sim.api_key, api_secret=sim.api_secret,
                             rest=sim.urls["rest"], **settings)
            out.append(h)
            async with running(h):
                await body(h, ctl, sim)

    run(main(), timeout=timeout)
    return out[0]


def test_lifecycle_open_add_reduce_close_flip_within_one_interval(no_leak_logs: Any) -> None:
    async def body(h: Harness, ctl: SimControl, sim: Simulator) -> None:
        await h.healthy()
        assert h.states() == [("connecting", ""), ("healthy", "resync_done")]
        steps = [
            ("Buy", "0.010", ["opened"]),
            ("Buy", "0.030", ["changed"]),   # add
            ("Buy", "0.020", ["changed"]),   # reduce
            ("Sell", "0.020", ["closed", "opened"]),  # flip in one snapshot
            ("", "0", ["closed"]),
        ]
        for side, size, expect in steps:
            before = len(h.lifecycle("BTCUSDT"))
            await ctl.set_position("BTCUSDT", side, size)
            took = await h.wait_for(lambda b=before, e=expect: h.lifecycle("BTCUSDT")[b:] == e,
                                    what=f"{expect} after {side} {size}")
            assert took <= INTERVAL + SLACK, f"{expect} seen after {took:.3f}s"
            if size != "0":
                pos = h.book.positions[next(iter(h.book.positions))]
                assert pos.size == Decimal(size) and pos.side.value == (
                    "long" if side == "Buy" else "short")
        await ctl.set_position("ETHUSDT", "Buy", "0.5")
        await h.wait_for(lambda: h.lifecycle("ETHUSDT") == ["opened"])
        await ctl.set_leverage("ETHUSDT", "5")
        await h.wait_for(lambda: h.lifecycle("ETHUSDT") == ["opened", "changed"])
        assert h.events[-1].changes and "leverage" in h.events[-1].changes
        assert h.lifecycle("BTCUSDT").count("opened") == 2  # never a duplicate opened
        c = h.ctx.counters
        assert c["polls"] >= 5 and c["requests"] >= c["polls"] and "errors" not in c
        assert h.ctx.status.last_message_ns is not None
        assert h.ctx.status.latency_ms_p50 is not None

    with_sim(body)


def test_mark_prices_follow_the_exchange(no_leak_logs: Any) -> None:
    async def body(h: Harness, ctl: SimControl, sim: Simulator) -> None:
        await ctl.set_price("BTCUSDT", "60000")
        await ctl.set_position("BTCUSDT", "Buy", "0.010", entry_price="60000")
        await h.healthy()
        await h.wait_for(lambda: h.lifecycle() == ["opened"])
        await ctl.set_price("BTCUSDT", "61000")
        start = time.monotonic()

        def priced() -> bool:
            pos = h.book.positions.get(next(iter(h.book.positions)))
            return pos is not None and pos.mark_price == Decimal("61000")

        await h.wait_for(priced, what="mark 61000")
        assert time.monotonic() - start <= INTERVAL + SLACK
        pos = next(iter(h.book.positions.values()))
        assert pos.unrealised_pnl == Decimal("10.000")  # (61000 - 60000) * 0.01
        assert "price" in h.kinds("BTCUSDT")
        # bybit: the rows' own markPrice, so a poll is one request and no ticker call
        assert h.feed.last_cycle["requests"] == 1
        await ctl.release_price("BTCUSDT")

    with_sim(body)


def test_tickers_source_costs_one_more_request(no_leak_logs: Any) -> None:
    async def body(h: Harness, ctl: SimControl, sim: Simulator) -> None:
        await ctl.set_price("ETHUSDT", "3000")
        await ctl.set_position("ETHUSDT", "Sell", "1")
        await h.healthy()
        await h.wait_for(lambda: h.book.positions and next(
            iter(h.book.positions.values())).mark_price == Decimal("3000"), what="mark")
        assert h.feed.last_cycle["requests"] == 2

    with_sim(body, mark_price_source="tickers")


def test_pagination_250_positions_no_false_close(no_leak_logs: Any) -> None:
    symbols = generated_symbols(250)

    async def body(h: Harness, ctl: SimControl, sim: Simulator) -> None:
        for sym in symbols:
            await ctl.set_position(sym, "Buy", "1")
        await h.healthy(within=15)
        await h.wait_for(lambda: len(h.book.positions) == 250, within=5, what="250 open")
        assert h.feed.last_cycle["requests"] == 2  # 200 + 50, cursor followed
        await ctl.close_position(symbols[-1])
        await ctl.close_position(symbols[0])
        await h.wait_for(lambda: h.lifecycle().count("closed") == 2, what="2 closed")
        assert len(h.book.positions) == 248 and h.lifecycle().count("opened") == 250
        polls = h.ctx.counters["polls"]
        await h.wait_for(lambda: h.ctx.counters["polls"] >= polls + 3, what="3 more polls")
        assert h.lifecycle().count("closed") == 2 and h.lifecycle().count("opened") == 250

    with_sim(body, symbols=symbols, timeout=40)


@pytest.mark.slow
def test_rate_limit_answers_slow_the_poller_without_false_close(no_leak_logs: Any) -> None:
    async def body(h: Harness, ctl: SimControl, sim: Simulator) -> None:
        await ctl.set_position("BTCUSDT", "Buy", "0.01")
        await h.healthy()
        await h.wait_for(lambda: h.lifecycle() == ["opened"])
        await rest_errors(ctl, "rate_limit", 2, "/v5/position/list")
        await h.wait_for(lambda: h.ctx.counters.get("rate_limited", 0) >= 2, what="2 x 10006")
        assert h.feed.slowdown == 4 and h.feed.effective_interval == pytest.approx(0.8)
        assert ("degraded", "rate_limited") in h.states()
        await h.healthy(within=3)
        assert h.states()[-1] == ("healthy", "recovered")
        assert h.lifecycle() == ["opened"]
        h.feed._last_rate_limit -= 60  # cooldown over: the interval comes back
        await h.wait_for(lambda: h.feed.slowdown == 1, within=4, what="full speed")

    with_sim(body, slowdown_cooldown=30)


@pytest.mark.parametrize("mode", ["503", "502"])
def test_5xx_degrades_reconnects_and_recovers_without_false_close(
        mode: str, no_leak_logs: Any) -> None:
    async def body(h: Harness, ctl: SimControl, sim: Simulator) -> None:
        await ctl.set_position("BTCUSDT", "Buy", "0.01")
        await h.healthy()
        await h.wait_for(lambda: h.lifecycle() == ["opened"])
        await rest_errors(ctl, mode, 3, "/v5/position/list")
        await h.wait_for(lambda: h.ctx.counters.get("reconnects", 0) == 1, what="reconnect")
        await h.healthy()
        got = h.states()
        assert got[-3:] == [("degraded", "error"), ("reconnecting", "reconnect"),
                            ("healthy", "resync_done")]
        assert h.ctx.counters["errors"] == 3 and h.ctx.counters["resyncs"] == 2
        assert "ExchangeNotAvailable" in h.statuses[-2].status.detail
        assert h.lifecycle() == ["opened"]

    with_sim(body, backoff_base=0.05, backoff_cap=0.1, reconnect_after=3)


def test_authentication_failure_is_fatal_with_a_clear_message(no_leak_logs: Any) -> None:
    async def body(h: Harness, ctl: SimControl, sim: Simulator) -> None:
        assert h.task is not None
        with pytest.raises(FatalFeedError) as info:
            await asyncio.wait_for(h.task, 10)
        msg = str(info.value)
        assert msg.startswith("bybit rejected the API credentials (AuthenticationError")
        assert "FEEDCTL_<PROFILE>__ACCOUNT__API_KEY" in msg and "API_SECRET" in msg
        assert "wrong-secret" not in msg and sim.api_key not in msg
        assert not h.events

    async def main() -> None:
        async with Simulator(SimConfig(port=0, symbols=["BTCUSDT"], seed=1)) as sim, \
                SimControl(sim.urls["control"]) as ctl:
            h = make_harness(api_key=sim.api_key, api_secret="wrong-secret",
                             rest=sim.urls["rest"], interval=INTERVAL)
            async with running(h):
                await body(h, ctl, sim)

    run(main(), timeout=20)


def test_cancel_mid_poll_closes_the_client(no_leak_logs: Any) -> None:
    async def body(h: Harness, ctl: SimControl, sim: Simulator) -> None:
        await h.healthy()
        for delay in (0.0, 0.03, 0.07, 0.12):  # inside the limiter wait or the request
            h2 = make_harness(api_key=sim.api_key, api_secret=sim.api_secret,
                              rest=sim.urls["rest"], interval=0.05)
            async with running(h2):
                await h2.healthy()
                await asyncio.sleep(delay)
            assert h2.task is not None and h2.task.cancelled()
            assert h2.feed.client is not None and h2.feed.client.exchange.session is None

    with_sim(body)


def test_cancel_while_the_exchange_never_answers(no_leak_logs: Any) -> None:
    async def main() -> None:
        hung: list[asyncio.StreamWriter] = []

        async def accept(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            hung.append(writer)  # read nothing, answer nothing

        server = await asyncio.start_server(accept, "127.0.0.1", 0)
        port = server.sockets[0].getsockname()[1]
        h = make_harness(rest=f"http://127.0.0.1:{port}", interval=INTERVAL, timeout=30)
        async with running(h):
            await h.wait_for(lambda: hung, what="a request in flight")
            assert h.ctx.state is FeedState.CONNECTING
        assert h.task is not None and h.task.cancelled()
        assert h.feed.client is not None and h.feed.client.exchange.session is None
        for w in hung:
            w.close()
        server.close()
        await server.wait_closed()

    run(main(), timeout=10)


def test_a_poll_knows_flat_only_what_its_settle_coins_list(no_leak_logs: Any) -> None:
    """settle_coins = USDT: an open inverse position is neither listed nor known flat
    from the poll (a router taking over from a feed that sees it must not close it);
    a linear symbol of the listing is known flat."""
    from feedctl import Category, PositionKey

    async def body(h: Harness, ctl: SimControl, sim: Simulator) -> None:
        await ctl.set_position("BTCUSD", "Buy", "100")
        await h.healthy()
        await h.wait_for(lambda: h.ctx.counters.get("polls", 0) >= 2, what="two polls")
        inverse = PositionKey(Category.INVERSE, "BTCUSD", 0)
        linear = PositionKey(Category.LINEAR, "ETHUSDT", 0)
        assert not h.feed.covers(inverse) and h.feed.covers(linear)
        assert h.book.known_flat_as_of(inverse) is None
        assert h.book.known_flat_as_of(linear) is not None
        assert inverse not in h.book.positions

    with_sim(body, settle_coins=["USDT"])


def test_a_poll_tells_each_listings_time_and_a_key_its_own(no_leak_logs: Any) -> None:
    """Bybit is listed settle coin by settle coin (USDT, then BTC, then ETH): the snapshot
    keeps each listing's own server time, and a key is flat as of its own listing's
    answer, not the first one's before it (F48): ETHUSD's is the ETH listing's."""
    from feedctl import Category, PositionKey

    async def body(h: Harness, ctl: SimControl, sim: Simulator) -> None:
        await h.healthy()
        assert h.feed.client is not None
        before = int(time.time() * 1000)
        snap = await h.feed.client.snapshot()
        times = snap.listing_as_of_ms
        assert list(times) == ["USDT", "BTC", "ETH"]
        assert snap.as_of_ms == times["USDT"] >= before
        # each its own answer's server time (ccxt's limiter spaces the requests)
        assert [ms for ms, _ in snap.samples] == list(times.values())
        assert times["USDT"] <= times["BTC"] <= times["ETH"]
        feed = h.feed
        assert feed.listed_at(PositionKey(Category.INVERSE, "ETHUSD", 0), snap) == times["ETH"]
        assert feed.listed_at(PositionKey(Category.INVERSE, "BTCUSD", 0), snap) == times["BTC"]
        assert feed.listed_at(PositionKey(Category.LINEAR, "ETHUSDT", 0), snap) == times["USDT"]

    with_sim(body, settle_coins=["USDT", "BTC", "ETH"])


def test_the_first_poll_resumes_from_the_prior_state_and_opens_nothing_twice(
        no_leak_logs: Any) -> None:
    """A poller given what the account's consumers last knew (``feedctl_prior_state``:
    another process served it) starts its book there: a position consumers hold that
    grew meanwhile is one change, never a second open; one that closed meanwhile is a
    close; a new one an open."""
    from feedctl import PositionUpdate, PriorState, Side

    old_ms = int(time.time() * 1000) - 60_000

    def held(symbol: str, size: str) -> PositionUpdate:
        return PositionUpdate(category="linear", symbol=symbol, position_idx=0,
                              side=Side.LONG, size=Decimal(size), entry_price=Decimal(100),
                              seq=1, exchange_ms=old_ms)

    async def body(h: Harness, ctl: SimControl, sim: Simulator) -> None:
        await h.healthy()
        await h.wait_for(lambda: len(h.lifecycle()) >= 5, what="the first poll's events")
        await asyncio.sleep(3 * INTERVAL)  # later polls add nothing
        assert h.lifecycle("BTCUSDT") == ["opened", "changed"]  # the prior, then the poll
        assert h.lifecycle("ETHUSDT") == ["opened", "closed"]
        assert h.lifecycle("SOLUSDT") == ["opened"]
        assert h.ctx.counters.get("resumed_from_prior") == 1 and h.ctx.prior_taken

    async def main() -> None:
        cfg = SimConfig(port=0, symbols=["BTCUSDT", "ETHUSDT", "SOLUSDT"], seed=1)
        async with Simulator(cfg) as sim, SimControl(sim.urls["control"]) as ctl:
            await ctl.set_position("BTCUSDT", "Buy", "0.03")
            await ctl.set_position("SOLUSDT", "Buy", "1")
            h = make_harness(api_key=sim.api_key, api_secret=sim.api_secret,
                             rest=sim.urls["rest"], interval=INTERVAL)
            h.ctx.set_prior(PriorState(positions={
                u.key: u for u in (held("BTCUSDT", "0.01"), held("ETHUSDT", "0.5"))},
                as_of_ms=old_ms))
            async with running(h):
                await body(h, ctl, sim)

    run(main(), timeout=30)
