"""The feed against the simulator: lifecycle, prices and PnL, subscriptions, audit,
planned reconnects."""

from __future__ import annotations

import asyncio
import itertools
import time
from decimal import Decimal

import pytest

from feedctl import EventKind, FeedState, PositionUpdate, Side

from .conftest import harness, run, wait_until

pytestmark = pytest.mark.integration
D = Decimal


def test_lifecycle_open_add_reduce_close_flip_and_no_op_pushes() -> None:
    async def go() -> None:
        async with harness() as h:
            ctl = h.ctl
            steps = [("Buy", "0.010"), ("Buy", "0.010"), ("Sell", "0.005"), ("Sell", "0.015"),
                     ("Buy", "0.010"), ("Sell", "0.030"), ("Buy", "0.020")]
            for side, qty in steps:
                await ctl.place_order("BTCUSDT", side, qty)
                await h.settle()
            await ctl.set_position("ETHUSDT", "Sell", "1.00", entry_price="3000")
            await ctl.set_trading_stop("ETHUSDT", takeProfit="2500")
            await ctl.set_leverage("ETHUSDT", "5")
            await wait_until(lambda: len(h.lifecycle("ETHUSDT")) >= 3)
            await asyncio.sleep(0.2)
            assert h.kinds("BTCUSDT") == [
                "opened", "changed", "changed", "closed",  # open, add, reduce, close
                "opened", "closed", "opened",  # reopen, flip to short ...
                "closed"]  # ... and the buy that closes the short
            btc = h.lifecycle("BTCUSDT")
            assert "size" in btc[1].changes and btc[2].changes == ("size",)
            assert btc[5].position.side is Side.LONG and btc[6].position.side is Side.SHORT
            assert btc[6].position.size == D("0.02") and btc[6].position.lifecycle == 3
            eth = h.lifecycle("ETHUSDT")
            assert [e.kind.value for e in eth] == ["opened", "changed", "changed"]
            assert eth[1].changes == ("take_profit",) and "leverage" in eth[2].changes
            assert eth[1].position.take_profit == D(2500)
            # every order pushed once before its fill with nothing changed: no event
            assert h.book.counters["duplicates_dropped"] >= len(steps) - 1  # 1st: never traded
            assert h.ctx.state is FeedState.HEALTHY and h.ctx.counters.get("reconnects", 0) == 0

    run(go())


def test_prices_every_100ms_with_pnl_to_the_last_decimal() -> None:
    async def go() -> None:
        async with harness(["BTCUSDT", "ETHUSDT", "SOLUSDT"]) as h:
            await h.ctl.place_order("BTCUSDT", "Buy", "0.013")
            await h.ctl.place_order("ETHUSDT", "Sell", "0.37")
            await h.ctl.set_position("SOLUSDT", "Buy", "12.3", entry_price="149.987")
            await h.settle()
            t0 = time.monotonic()
            await asyncio.sleep(2.0)
            elapsed = time.monotonic() - t0
            sims = {r["symbol"]: r for r in await h.ctl.positions()}
            for sym in ("BTCUSDT", "ETHUSDT", "SOLUSDT"):
                recent = [e for e in h.prices(sym) if e.position.mark_received_ns
                          and e.position.mark_received_ns > (time.time() - elapsed) * 1e9]
                assert len(recent) / elapsed >= 8, (sym, len(recent))  # ~10 per second
            # the simulator's own PnL at a mark we also saw must equal ours exactly
            for _ in range(5):
                sims = {r["symbol"]: r for r in await h.ctl.positions()}
                await asyncio.sleep(0.15)
                for sym, row in sims.items():
                    mark = D(row["markPrice"])
                    seen = [e for e in h.prices(sym) if e.position.mark_price == mark]
                    assert seen, (sym, row["markPrice"])
                    assert seen[-1].position.unrealised_pnl == D(row["unrealisedPnl"])
            # a held price: the last event's PnL equals the simulator's to the last digit
            await h.ctl.set_price("SOLUSDT", "151.23")
            await wait_until(lambda: h.book.positions and any(
                p.mark_price == D("151.23") for p in h.book.positions.values()))
            sol = next(p for p in h.book.positions.values() if p.symbol == "SOLUSDT")
            row = next(r for r in await h.ctl.positions() if r["symbol"] == "SOLUSDT")
            assert sol.unrealised_pnl == D(row["unrealisedPnl"]) == (
                (D("151.23") - D("149.987")) * D("12.3"))
            lat = h.ctx.status
            assert lat.latency_ms_p50 is not None and lat.latency_ms_p50 < 50

    run(go())


def test_subscriptions_follow_open_positions() -> None:
    async def go() -> None:
        async with harness(["BTCUSDT", "ETHUSDT", "SOLUSDT"]) as h:
            pub = h.feed.publics
            assert pub and not next(iter(pub.values())).details()["subscriptions"]
            await h.ctl.place_order("BTCUSDT", "Buy", "0.01")
            await h.ctl.place_order("ETHUSDT", "Buy", "0.1")
            details = h.feed.details()
            await wait_until(lambda: h.feed.details()["public"]["linear"]["subscriptions"]
                             == ["tickers.BTCUSDT", "tickers.ETHUSDT"])
            await h.ctl.close_position("BTCUSDT")
            await wait_until(lambda: h.feed.details()["public"]["linear"]["subscriptions"]
                             == ["tickers.ETHUSDT"])
            n = len(h.prices("BTCUSDT"))
            await asyncio.sleep(0.4)
            assert len(h.prices("BTCUSDT")) == n  # no price events after the close
            details = h.feed.details()
            assert details["private"]["subscriptions"] == ["position.linear"]
            assert details["private"]["age_s"] > 0 and details["public"]["linear"]["age_s"] > 0

    run(go())


def test_audit_repairs_a_diverged_book() -> None:
    async def go() -> None:
        async with harness(audit_interval=0.3) as h:
            await h.ctl.place_order("BTCUSDT", "Buy", "0.01")
            await h.settle()
            # make the book diverge: a phantom ETH position, and BTC wrongly closed
            h.book.apply(PositionUpdate(symbol="ETHUSDT", side=Side.LONG, size=D(1),
                                        entry_price=D(3000), exchange_ms=1))
            h.book.apply(PositionUpdate(symbol="BTCUSDT", side=None, size=D(0)))
            assert {p.symbol for p in h.book.positions.values()} == {"ETHUSDT"}
            # BTC's wrong close kept its version, so the book never reopens it from a row
            # of that same state: the audit must see it twice and force it
            await wait_until(lambda: h.kinds("BTCUSDT") == ["opened", "closed", "opened"], 5)
            await h.settle()
            assert h.kinds("ETHUSDT") == ["opened", "closed"]
            assert h.kinds("BTCUSDT") == ["opened", "closed", "opened"]
            assert h.ctx.counters["audit_mismatches"] == 3  # ETH once, BTC twice
            audits = h.ctx.counters["audits"]
            await wait_until(lambda: h.ctx.counters["audits"] >= audits + 2, 3)
            assert h.ctx.counters["audit_mismatches"] == 3  # repaired: later audits agree

    run(go())


@pytest.mark.slow
def test_planned_reconnect_loses_no_price_and_no_lifecycle_event() -> None:
    async def go() -> None:
        async with harness(max_connection_lifetime=1.0) as h:
            await h.ctl.place_order("BTCUSDT", "Buy", "0.01")
            await h.settle()
            first = (await h.ctl.transitions())[-1]["id"] if await h.ctl.transitions() else 0
            t_end = time.monotonic() + 3.2
            side = "Buy"
            while time.monotonic() < t_end:  # an order every 100 ms across the swaps
                await h.ctl.place_order("ETHUSDT", side, "0.10")
                side = "Sell" if side == "Buy" else "Buy"
                await asyncio.sleep(0.1)
            await h.settle()
            assert h.ctx.counters.get("planned_reconnects", 0) >= 4  # both sockets, twice+
            assert h.ctx.counters.get("reconnects", 0) == 0
            assert all(s.status.state is FeedState.HEALTHY for s in h.statuses[3:]), h.states()
            sim_events = [t for t in await h.ctl.transitions(after=first)
                          if t["symbol"] == "ETHUSDT"]
            assert h.kinds("ETHUSDT") == [t["kind"] for t in sim_events]
            marks = [e.position.mark_exchange_ms for e in h.prices("BTCUSDT")]
            gaps = [b - a for a, b in itertools.pairwise(marks) if a and b]
            assert gaps and max(gaps) <= 250, max(gaps)  # one 100 ms tick missed at most

    run(go(), timeout=40)


def test_private_max_active_time_and_clock_skew_correction() -> None:
    async def skew(ctl: object) -> None:
        await ctl.clock_skew(25_000, 30)  # type: ignore[attr-defined]

    async def go() -> None:
        async with harness(prepare=skew, private_max_active_time="30s", expires_margin=2) as h:
            assert abs(h.feed.clock.offset_ms - 25_000) < 200
            assert h.feed.private.url().endswith("?max_active_time=30s")
            await h.ctl.place_order("BTCUSDT", "Buy", "0.01")  # REST and WS auth both work
            await wait_until(lambda: h.kinds("BTCUSDT") == ["opened"])
            assert any(e.kind is EventKind.PRICE for e in h.events) or True

    run(go())


def test_the_instruments_of_open_symbols_are_told_to_the_views() -> None:
    async def go() -> None:
        async with harness() as h:
            await h.ctl.place_order("BTCUSDT", "Buy", "0.01")
            await wait_until(lambda: ("linear", "BTCUSDT") in {
                (c.value, s) for c, s in h.ctx.instruments}, within=8)
            inst = next(i for i in h.ctx.instruments.values() if i.symbol == "BTCUSDT")
            import aiohttp

            async with aiohttp.ClientSession() as http, http.get(
                    h.sim.urls["rest"] + "/v5/market/instruments-info",
                    params={"category": "linear", "symbol": "BTCUSDT"}) as r:
                info = await r.json()
            row = info["result"]["list"][0]
            assert str(inst.tick_size) == row["priceFilter"]["tickSize"]
            assert str(inst.qty_step) == row["lotSizeFilter"]["qtyStep"]
            assert inst.settle_coin == row["settleCoin"] == "USDT"

    run(go())
