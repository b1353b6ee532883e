"""A binance_usdm feed that starts on an account another process served resumes from
what its consumers last knew (``feedctl_prior_state``): the first resync replays every
fill since, so a lifecycle that opened and closed meanwhile and a close and reopen on
one side reach consumers, each once."""

from __future__ import annotations

import asyncio
from decimal import Decimal

import pytest

from feedctl import Position, PositionUpdate, PriorState
from feedctl.testing import FeedProbe

from .sim_harness import FAST, SimBinanceHarness
from .test_streams import BTC, ETH

pytestmark = [pytest.mark.integration, pytest.mark.timeout(60)]


def told(pos: Position) -> PositionUpdate:
    return PositionUpdate(category=pos.category, symbol=pos.symbol,
                          position_idx=pos.position_idx, side=pos.side, size=pos.size,
                          entry_price=pos.entry_price, leverage=pos.leverage, seq=pos.seq,
                          exchange_ms=pos.exchange_ms)


def run_two_feeds(with_prior: bool) -> FeedProbe:
    class Harness(SimBinanceHarness):
        settings = dict(FAST)

    harness = Harness()
    out: list[FeedProbe] = []

    async def main() -> None:
        access = await harness.start()
        try:
            first = FeedProbe(harness, access, name="first")
            await first.start()
            await first.healthy()
            await harness.ctl.place_order(BTC, "Buy", Decimal("0.01"))
            await first.wait_for(lambda: first.lifecycle(BTC) == ["opened"], "BTC opened")
            prior = PriorState(positions={p.key: told(p) for p in first.book.positions.values()},
                               as_of_ms=harness.sim.clock.now_ms())
            await first.stop()
            # while nobody serves the account: BTC closed and reopened on its side, ETH
            # opened and closed
            for symbol, side, qty in ((BTC, "Sell", "0.01"), (BTC, "Buy", "0.02"),
                                      (ETH, "Buy", "1"), (ETH, "Sell", "1")):
                await harness.ctl.place_order(symbol, side, Decimal(qty))
                await asyncio.sleep(0.01)  # fills are stamped in ms: one state per ms
            second = FeedProbe(harness, access, name="second")
            out.append(second)
            if with_prior:
                second.ctx.set_prior(prior)
            await second.start()
            try:
                await second.healthy()
                await asyncio.sleep(0.5)
            finally:
                await second.stop()
        finally:
            await harness.stop()

    asyncio.run(main())
    return out[0]


def test_the_first_resync_replays_every_fill_since_the_prior_state() -> None:
    probe = run_two_feeds(with_prior=True)
    # the prior's open, its close, the reopen: two lifecycles, not one change
    assert probe.lifecycle(BTC) == ["opened", "closed", "opened"]
    assert probe.lifecycle(ETH) == ["opened", "closed"]  # the unseen lifecycle, whole
    btc = probe.position(BTC)
    assert btc is not None and btc.size == Decimal("0.02")
    assert probe.ctx.counters["resumed_from_prior"] == 1 and probe.ctx.prior_taken


def test_without_a_prior_state_the_feed_starts_from_the_exchanges() -> None:
    probe = run_two_feeds(with_prior=False)
    assert probe.lifecycle(BTC) == ["opened"] and probe.lifecycle(ETH) == []
    assert "resumed_from_prior" not in probe.ctx.counters
