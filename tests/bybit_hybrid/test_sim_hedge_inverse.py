"""Hedge mode and inverse contracts end to end against the simulator: book keys (idx 1
and 2, category inverse), PnL, resync, audit and the gap replay."""

from __future__ import annotations

import asyncio
from decimal import Decimal

import pytest

from feedctl import Category, FeedState, PositionEvent

from .conftest import Harness, harness, run, wait_until

pytestmark = pytest.mark.integration
D = Decimal


def keyed(h: Harness, symbol: str) -> list[tuple[str, int, str]]:
    """(kind, positionIdx, size) of the symbol's lifecycle events."""
    return [(e.kind.value, e.position.position_idx, str(e.position.size))
            for e in h.lifecycle(symbol)]


async def sim_rows(h: Harness) -> dict[tuple[str, int], dict]:
    return {(r["symbol"], r["positionIdx"]): r for r in await h.ctl.positions()}


async def pnl_matches(h: Harness, category: Category, symbol: str) -> None:
    """At a mark the feed also saw, the symbol's open positions' PnL equals the
    simulator's to the last digit."""
    for _ in range(20):
        rows = {k: r for k, r in (await sim_rows(h)).items() if k[0] == symbol}
        await asyncio.sleep(0.15)
        hits = 0
        for (sym, idx), row in rows.items():
            mark = D(row["markPrice"])
            seen: list[PositionEvent] = [
                e for e in h.prices(sym) if e.position.mark_price == mark
                and e.position.position_idx == idx and e.position.category is category]
            if seen:
                assert seen[-1].position.unrealised_pnl == D(row["unrealisedPnl"]), (sym, idx)
                hits += 1
        if hits == len(rows):
            return
    raise AssertionError("no mark seen by both the feed and the simulator")


def test_hedge_mode_both_sides_stream_resync_audit_and_gap_replay() -> None:
    async def go() -> None:
        async def hedge(ctl: object) -> None:
            await ctl.position_mode("XRPUSDT", 3)  # type: ignore[attr-defined]

        async with harness(["BTCUSDT", "XRPUSDT"], prepare=hedge, audit_interval=0.5) as h:
            await h.ctl.place_order("XRPUSDT", "Buy", "100")  # idx 1
            await h.ctl.place_order("XRPUSDT", "Sell", "30")  # idx 2
            await h.settle()
            keys = {(k.symbol, k.position_idx) for k in h.book.positions}
            assert keys == {("XRPUSDT", 1), ("XRPUSDT", 2)}
            await pnl_matches(h, Category.LINEAR, "XRPUSDT")
            # the short side opens and closes while the private socket is down (the
            # issue's case: it came out of the fill replay as XRPUSDT:0)
            await h.ctl.stall("private", 1.5)
            await h.ctl.place_order("XRPUSDT", "Sell", "20")  # idx 2: 30 -> 50
            await h.ctl.place_order("XRPUSDT", "Buy", "50", reduce_only=True)  # idx 2 closed
            await h.ctl.place_order("XRPUSDT", "Sell", "10")  # idx 2 reopened: 10
            await h.ctl.place_order("XRPUSDT", "Sell", "10", reduce_only=True)  # idx 1 -> 90
            await wait_until(lambda: h.ctx.state is not FeedState.HEALTHY, 2)
            await wait_until(lambda: h.ctx.counters.get("resyncs", 0) >= 2, 6)
            await h.healthy()
            await h.settle()
            assert all(idx in (1, 2) for _, idx, _ in keyed(h, "XRPUSDT"))
            short = [(k, s) for k, idx, s in keyed(h, "XRPUSDT") if idx == 2]
            assert short == [("opened", "30"), ("changed", "50"), ("closed", "50"),
                             ("opened", "10")]  # a close carries the size it closed
            long = [(k, s) for k, idx, s in keyed(h, "XRPUSDT") if idx == 1]
            assert long == [("opened", "100"), ("changed", "90")]
            assert h.ctx.counters["gap_replayed"] >= 2
            # the audit agrees with both sides
            audits = h.ctx.counters.get("audits", 0)
            await wait_until(lambda: h.ctx.counters.get("audits", 0) >= audits + 2, 4)
            assert h.feed.details()["last_audit"]["mismatches"] == {}

    run(go(), timeout=40)


def test_inverse_positions_prices_pnl_and_gap_replay() -> None:
    async def go() -> None:
        async with harness(["BTCUSDT"], categories=["linear", "inverse"]) as h:
            await h.ctl.set_position("BTCUSD", "Sell", "1000", entry_price="65000")
            await h.ctl.place_order("BTCUSDT", "Buy", "0.01")
            await h.settle()
            inv = next(p for p in h.book.positions.values() if p.symbol == "BTCUSD")
            assert inv.category is Category.INVERSE and inv.position_idx == 0
            await wait_until(lambda: len(h.prices("BTCUSD")) >= 3, 4)  # /v5/public/inverse
            assert h.feed.details()["public"]["inverse"]["subscriptions"] == ["tickers.BTCUSD"]
            await pnl_matches(h, Category.INVERSE, "BTCUSD")
            # 1000 USD short at 65000, mark m: 1000 * (1/m - 1/65000), in BTC
            pos = next(p for p in h.book.positions.values() if p.symbol == "BTCUSD")
            assert pos.mark_price is not None and pos.unrealised_pnl == (
                D(1000) * (D(1) / pos.mark_price - D(1) / D(65000)))
            await h.ctl.stall("private", 1.5)
            await h.ctl.place_order("ETHUSD", "Buy", "300")  # opened and closed in the gap
            await h.ctl.place_order("ETHUSD", "Sell", "300", reduce_only=True)
            await h.ctl.place_order("BTCUSD", "Buy", "400", reduce_only=True)  # changed
            await wait_until(lambda: h.ctx.state is not FeedState.HEALTHY, 2)
            await wait_until(lambda: h.ctx.counters.get("resyncs", 0) >= 2, 6)
            await h.healthy()
            await h.settle()
            assert keyed(h, "ETHUSD") == [("opened", 0, "300"), ("closed", 0, "300")]
            assert keyed(h, "BTCUSD") == [("opened", 0, "1000"), ("changed", 0, "600")]
            assert {e.position.category for e in h.lifecycle("ETHUSD")} == {Category.INVERSE}

    run(go(), timeout=40)
