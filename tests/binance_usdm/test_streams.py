"""The feed's stream behaviour on the embedded simulator's Binance personality (real
loopback sockets): listenKey lifecycle, planned reconnects, hedge mode, lost pushes,
marks only for open symbols, audit, leverage."""

from __future__ import annotations

import asyncio
from decimal import Decimal

import pytest

from feedctl import EventKind, FeedState, Side
from feedctl.testing import FeedProbe

from .sim_harness import SimBinanceHarness, run

pytestmark = pytest.mark.integration

BTC, ETH = "BTCUSDT", "ETHUSDT"
H = SimBinanceHarness


def mark_of(probe: FeedProbe, symbol: str) -> Decimal | None:
    pos = probe.position(symbol)
    return None if pos is None else pos.mark_price


def states(probe: FeedProbe) -> list[str]:
    return [s.status.state.value for s in probe.statuses]


def test_a_silently_dropped_key_is_found_by_the_keepalive_and_recreated() -> None:
    async def scenario(probe: FeedProbe, h: H) -> None:
        await probe.healthy()
        await probe.wait_for(lambda: probe.ctx.counters.get("keepalives", 0) >= 1,
                             "a keepalive PUT")
        first = h.listen_keys()
        assert await h.ctl.forget_listen_keys() == 1  # no event: the next PUT says -1125
        await probe.wait_for(lambda: probe.ctx.counters.get("listen_key_recreated", 0) >= 1,
                             "the key recreated after -1125")
        await probe.wait_for(lambda: probe.ctx.counters.get("resyncs", 0) >= 2, "a resync")
        await probe.healthy()
        assert h.listen_keys() and not h.listen_keys() & first
        await h.ctl.place_order(ETH, "Sell", Decimal("1"))
        await probe.wait_for(lambda: probe.lifecycle(ETH) == ["opened"], "opened on the new key")

    probe = run(scenario, keepalive_interval=0.3)
    assert probe.ctx.counters["keepalives"] >= 1


def test_a_key_that_dies_while_its_socket_opens_is_replaced_not_kept_silent() -> None:
    """The keepalive of the key answers -1125 (the key is gone) while the reconnect's
    socket on that key is still opening: the feed does not settle on that socket (the
    exchange sends nothing on a dead key) but opens one on a new key."""
    async def scenario(probe: FeedProbe, h: H) -> None:
        await probe.healthy()
        user = probe.feed.user  # type: ignore[union-attr]
        await h.ctl.drop("private")
        # inside the reconnect: its socket exists and is opening (buffering), none is
        # watched yet
        async with asyncio.timeout(5):
            while not (user.conn is None and user._buffer is not None):
                await asyncio.sleep(0)
        h.sim.binance.user.keys.expire()        # the exchange drops the key...
        user.key_gone("keepalive answered -1125")  # ...and the keepalive learns it
        await probe.wait_for(lambda: probe.ctx.counters.get("resyncs", 0) >= 2, "a resync")
        await probe.healthy()
        await h.ctl.place_order(ETH, "Sell", Decimal("1"))
        await probe.wait_for(lambda: probe.lifecycle(ETH) == ["opened"], "opened on a live key")
        assert h.user_keys() and set(h.user_keys()) <= h.listen_keys()

    run(scenario)


def test_hedge_mode_positions_have_their_own_indexes() -> None:
    async def scenario(probe: FeedProbe, h: H) -> None:
        await probe.healthy()
        await h.hedge_order(BTC, "BUY", Decimal("0.02"), "LONG")
        await h.hedge_order(BTC, "SELL", Decimal("0.01"), "SHORT")
        await probe.wait_for(lambda: len(probe.book.positions) == 2, "both sides open")

    probe = run(scenario, before=H.hedge_mode)
    got = {(k.position_idx, p.side.value, p.size) for k, p in probe.book.positions.items()}
    assert got == {(1, "long", Decimal("0.02")), (2, "short", Decimal("0.01"))}
    assert probe.lifecycle(BTC) == ["opened", "opened"]


def test_a_lost_position_push_is_found_by_its_fill_and_resynced() -> None:
    async def scenario(probe: FeedProbe, h: H) -> None:
        await probe.healthy()
        await h.ctl.drop_account_updates(1)
        await h.ctl.place_order(ETH, "Buy", Decimal("2"))  # no ACCOUNT_UPDATE, the fill comes
        await probe.wait_for(lambda: probe.lifecycle(ETH) == ["opened"],
                             "the position from the resync")

    probe = run(scenario)
    assert probe.ctx.counters["position_push_missing"] == 1
    assert probe.ctx.counters["resyncs"] == 2
    assert "resyncing" in states(probe)[1:]


def test_marks_are_subscribed_only_for_open_symbols() -> None:
    async def scenario(probe: FeedProbe, h: H) -> None:
        await probe.healthy()
        assert [s for s in h.market_streams() if s] == []
        await h.ctl.place_order(BTC, "Buy", Decimal("0.01"))
        await probe.wait_for(lambda: {"btcusdt@markPrice@1s"} in h.market_streams(),
                             "the BTC mark stream subscribed")
        await h.ctl.set_price(BTC, Decimal("61000"))
        await probe.wait_for(lambda: mark_of(probe, BTC) == Decimal("61000"), "the new mark")
        await h.ctl.close_position(BTC)
        await probe.wait_for(lambda: all(not s for s in h.market_streams()),
                             "the BTC mark stream unsubscribed")

    run(scenario, mark_linger=0)


def test_a_closed_symbol_stays_subscribed_so_a_reopen_starts_from_a_fresh_mark() -> None:
    async def scenario(probe: FeedProbe, h: H) -> None:
        await probe.healthy()
        await h.ctl.place_order(BTC, "Buy", Decimal("0.01"))
        await probe.wait_for(lambda: mark_of(probe, BTC) is not None, "a mark")
        await h.ctl.close_position(BTC)
        await probe.wait_for(lambda: probe.lifecycle(BTC) == ["opened", "closed"], "closed")
        await h.ctl.set_price(BTC, Decimal("61234"))  # moves while no position holds it
        await asyncio.sleep(0.5)
        assert {"btcusdt@markPrice@1s"} in h.market_streams()  # still subscribed
        await h.ctl.place_order(BTC, "Buy", Decimal("0.01"))
        await probe.wait_for(lambda: probe.lifecycle(BTC) == ["opened", "closed", "opened"],
                             "reopened")
        reopened = [e for e in probe.events if e.kind is EventKind.OPENED][-1]
        assert reopened.position.mark_price == Decimal("61234")

    run(scenario, mark_linger=30)


def test_a_lifecycle_whose_open_push_arrives_after_its_close_is_delivered_as_past() -> None:
    async def scenario(probe: FeedProbe, h: H) -> None:
        await probe.healthy()
        await h.ctl.reorder_positions(1)  # the open's push is held until the close's
        await h.ctl.place_order(ETH, "Buy", Decimal("1"))
        await asyncio.sleep(0.1)
        await h.ctl.close_position(ETH)
        await probe.wait_for(lambda: probe.lifecycle(ETH) == ["opened", "closed"],
                             "the lifecycle, late")

    probe = run(scenario)
    assert all(e.past for e in probe.events if e.position.symbol == ETH
               and e.kind is not EventKind.PRICE)
    # found by the late push, or by the close's fill when it realised a profit: once
    assert probe.lifecycle(ETH) == ["opened", "closed"]
    assert sum(probe.ctx.counters.get(c, 0)
               for c in ("late_lifecycles", "unseen_lifecycles")) == 1
    assert not probe.book.positions


def test_a_stale_mark_stream_degrades_and_recovers() -> None:
    async def scenario(probe: FeedProbe, h: H) -> None:
        await probe.healthy()
        await h.ctl.place_order(BTC, "Buy", Decimal("0.01"))
        await probe.wait_for(lambda: mark_of(probe, BTC) is not None, "a mark")
        await h.ctl.stall("public", 2.5)  # the market socket sends nothing
        await probe.wait_for(lambda: probe.state is FeedState.DEGRADED, "degraded (stale)")
        await h.ctl.set_price(BTC, Decimal("59000"))  # REST premiumIndex has it
        await probe.wait_for(lambda: mark_of(probe, BTC) == Decimal("59000"),
                             "the mark from REST while stale")
        await probe.healthy("healthy again (fresh)")

    probe = run(scenario)
    assert any(s.reason == "stale" for s in probe.statuses)
    assert probe.ctx.counters["stale_marks"] >= 1


def test_the_audit_repairs_a_book_that_drifted() -> None:
    async def scenario(probe: FeedProbe, h: H) -> None:
        await probe.healthy()
        # changed on the exchange with its only push lost (no fill reveals it)
        await h.ctl.drop_account_updates(1)
        await h.ctl.set_position(ETH, "Buy", Decimal("3"), Decimal("3000"))
        await probe.wait_for(lambda: probe.lifecycle(ETH) == ["opened"], "audit repair")

    probe = run(scenario, audit_interval=0.3)
    assert probe.ctx.counters["audit_mismatches"] >= 1


def test_a_close_the_audit_repaired_is_not_replayed_onto_the_flat_book_by_a_resync(
        ) -> None:
    """F56 (Binance short campaign, seed 6010 production): a short's close whose
    ACCOUNT_UPDATE is lost, made at its entry price, is found by the audit (in the
    book, flat on the exchange), which closes it. The next resync's gap replay must not
    apply the close's fill again onto the flat book: that made a long of the short's
    close (phantom states: the long opened while no socket was up delivered one
    close's size too big)."""
    async def scenario(probe: FeedProbe, h: H) -> None:
        await probe.healthy()
        # the price held still and no spread: the close realises no PnL, so nothing in
        # its fill says it reduced a position (the replay's other guard against a close
        # onto flat)
        await h.ctl.set_price(ETH, "3000")
        await h.ctl.place_order(ETH, "Sell", Decimal("1"))
        await probe.wait_for(lambda: probe.lifecycle(ETH) == ["opened"], "opened")
        await asyncio.sleep(1.2)  # older than what the audit leaves alone as young
        await h.ctl.drop_account_updates(1)  # the close's position push is lost
        await h.ctl.close_position(ETH)
        await probe.wait_for(lambda: probe.lifecycle(ETH) == ["opened", "closed"],
                             "the audit's repair", within=4)
        resyncs = probe.ctx.counters.get("resyncs", 0)
        await h.ctl.refuse_handshakes("private", 1.0)
        await h.ctl.drop("private")
        await h.ctl.place_order(ETH, "Buy", Decimal("2"))  # no socket up: replayed
        await asyncio.sleep(0.05)
        await h.ctl.place_order(ETH, "Buy", Decimal("1"))  # the snapshot's row: 3
        await probe.wait_for(lambda: probe.ctx.counters.get("resyncs", 0) > resyncs,
                             "the resync", within=8)
        await probe.healthy()
        await probe.wait_for(lambda: len(probe.lifecycle(ETH)) >= 3, "the long", within=4)
        await asyncio.sleep(0.3)
        await h.ctl.close_position(ETH)
        await probe.wait_for(lambda: len(probe.lifecycle(ETH)) >= 4, "its close", within=4)

    probe = run(scenario, sim_config={"spread_bps": 0}, audit_interval=0.3,
                fill_confirm_after=5.0)
    assert probe.ctx.counters["audit_mismatches"] >= 1
    lifecycle = [(e.kind.value, e.position.side, e.position.size) for e in probe.events
                 if e.position.symbol == ETH and e.kind is not EventKind.PRICE]
    # the long as the exchange had it: opened at 2, then 3 (the snapshot's row);
    # without the fix, opened at 3 (the short's close counted as a buy of 1)
    assert lifecycle == [("opened", Side.SHORT, Decimal("1")),
                         ("closed", Side.SHORT, Decimal("1")),
                         ("opened", Side.LONG, Decimal("2")),
                         ("changed", Side.LONG, Decimal("3")),
                         ("closed", Side.LONG, Decimal("3"))]
    assert not probe.book.positions


def test_leverage_comes_from_symbol_config_and_a_change_is_a_changed_event() -> None:
    async def scenario(probe: FeedProbe, h: H) -> None:
        await probe.healthy()
        await h.ctl.place_order(BTC, "Buy", Decimal("0.01"))
        await probe.wait_for(lambda: probe.lifecycle(BTC) == ["opened"], "opened")
        await h.ctl.set_leverage(BTC, Decimal("7"))  # ACCOUNT_CONFIG_UPDATE
        await probe.wait_for(lambda: probe.lifecycle(BTC) == ["opened", "changed"], "changed")

    probe = run(scenario, sim_config={"default_leverage": 20})
    assert probe.events[0].position.leverage == 20  # /fapi/v1/symbolConfig at the resync
    changed = [e for e in probe.events if e.kind is EventKind.CHANGED]
    assert changed[0].changes == ("leverage",) and changed[0].position.leverage == 7


def test_user_data_comes_from_the_private_route_with_the_listen_key() -> None:
    """The simulator serves user data only on /private/ws?listenKey= (the legacy
    /ws/<listenKey> route opens and stays silent, as Binance's does since 2026-04-23)."""
    async def scenario(probe: FeedProbe, h: H) -> None:
        await probe.healthy()
        assert h.user_keys() == list(h.listen_keys())
        await h.ctl.place_order(BTC, "Buy", Decimal("0.5"))
        await probe.wait_for(lambda: probe.lifecycle(BTC) == ["opened"], "opened")

    run(scenario)


def test_the_listen_key_is_in_no_log_record() -> None:
    """It grants read access to the account's user data: websockets' DEBUG handshake
    lines and our own messages show it as ``***``."""
    keys: list[str] = []

    async def scenario(probe: FeedProbe, h: H) -> None:
        await probe.healthy()
        keys.extend(h.listen_keys())
        await h.ctl.expire_listen_keys()  # a second key, and the expiry's log lines
        await probe.wait_for(lambda: probe.ctx.counters.get("resyncs", 0) >= 2, "a resync")
        keys.extend(h.listen_keys())

    probe = run(scenario)
    texts = probe.logs.texts()
    assert len(keys) == 2 and any("listenKey=***" in t for t in texts.values())
    assert [n for n, t in texts.items() if any(k in t for k in keys)] == []


def test_a_planned_swap_that_gets_a_new_key_resyncs() -> None:
    """The old key died silently before the swap (no event, no keepalive yet): what it
    would have carried since is missing, so the swap is a gap."""
    async def scenario(probe: FeedProbe, h: H) -> None:
        await probe.healthy()
        await h.ctl.forget_listen_keys()
        await h.ctl.place_order(BTC, "Buy", Decimal("0.01"))  # pushed to nobody
        await probe.wait_for(lambda: probe.lifecycle(BTC) == ["opened"], "opened by a resync")

    probe = run(scenario, max_connection_lifetime=1.0, fill_confirm_after=30)
    assert probe.ctx.counters["resyncs"] >= 2  # the start, and the swap (more if slow)


def test_the_all_market_stream_gives_marks_of_open_symbols_only() -> None:
    async def scenario(probe: FeedProbe, h: H) -> None:
        await probe.healthy()
        await h.ctl.place_order(ETH, "Buy", Decimal("1"))
        await probe.wait_for(lambda: {"!markPrice@arr@1s"} in h.market_streams(),
                             "the all-market stream subscribed")
        await h.ctl.set_price(ETH, Decimal("3100.5"))
        await probe.wait_for(lambda: mark_of(probe, ETH) == Decimal("3100.5"), "ETH's mark")
        await probe.quiet()
        assert probe.state is FeedState.HEALTHY and probe.position(BTC) is None
        await h.ctl.close_position(ETH)
        await probe.wait_for(lambda: all(not s for s in h.market_streams()),
                             "unsubscribed when nothing is open")

    run(scenario, mark_stream="all")


@pytest.mark.parametrize("account_update_first", [False, True])
def test_either_order_of_a_fills_events_is_no_lost_push(account_update_first: bool) -> None:
    """Binance does not order events of different types: the fill's ORDER_TRADE_UPDATE
    may come before its ACCOUNT_UPDATE or after it."""
    async def scenario(probe: FeedProbe, h: H) -> None:
        await probe.healthy()
        await h.ctl.place_order(BTC, "Buy", Decimal("0.01"))
        await h.ctl.place_order(BTC, "Sell", Decimal("0.01"))
        await probe.wait_for(lambda: probe.lifecycle(BTC) == ["opened", "closed"], "both")
        await asyncio.sleep(1.2)  # past fill_confirm_after

    probe = run(scenario, {"account_update_first": account_update_first})
    assert probe.ctx.counters["fills"] == 2
    assert "position_push_missing" not in probe.ctx.counters
    assert probe.ctx.counters["resyncs"] == 1


def test_a_late_position_push_within_the_deadline_is_no_lost_push() -> None:
    """The user stream delayed by 300 ms (under ``fill_confirm_after``): no resync."""
    async def scenario(probe: FeedProbe, h: H) -> None:
        await probe.healthy()
        await h.ctl.delay("private", 300, 3.0)
        await h.ctl.place_order(BTC, "Buy", Decimal("0.01"))
        await probe.wait_for(lambda: probe.lifecycle(BTC) == ["opened"], "opened")
        await asyncio.sleep(1.2)

    probe = run(scenario)
    assert "position_push_missing" not in probe.ctx.counters
    assert probe.ctx.counters["resyncs"] == 1


def test_a_position_opened_while_the_market_socket_is_down_degrades_at_once() -> None:
    async def scenario(probe: FeedProbe, h: H) -> None:
        await probe.healthy()
        await h.ctl.refuse_handshakes("public", 3.0)
        await h.ctl.drop("public")
        await probe.wait_for(lambda: probe.feed is not None
                             and probe.feed.market.down is not None, "the market socket down")
        assert probe.state is FeedState.HEALTHY  # nothing open: no price is missing
        await h.ctl.place_order(BTC, "Buy", Decimal("0.01"))
        await probe.wait_for(lambda: probe.state is FeedState.DEGRADED, "degraded")
        await probe.wait_for(lambda: mark_of(probe, BTC) is not None, "a mark from REST")
        await probe.healthy("healthy once the market socket is back")

    run(scenario)


def test_a_resync_settles_every_fill_it_covers() -> None:
    """Two pushes lost 0.5 s apart: the first fill's resync covers the second fill too,
    which then causes no resync of its own."""
    async def scenario(probe: FeedProbe, h: H) -> None:
        await probe.healthy()
        await h.ctl.drop_account_updates(2)
        await h.ctl.place_order(BTC, "Buy", Decimal("0.01"))
        await asyncio.sleep(0.5)
        await h.ctl.place_order(ETH, "Buy", Decimal("1"))
        await probe.wait_for(lambda: len(probe.book.positions) == 2, "both from the resync")
        await asyncio.sleep(1.5)  # past the second fill's deadline

    probe = run(scenario)
    assert probe.ctx.counters["position_push_missing"] == 1
    assert probe.ctx.counters["resyncs"] == 2


def test_streams_beyond_the_connection_limit_are_counted_and_stale(
        monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr("feedctl.plugins.binance_usdm.market.MAX_STREAMS_PER_CONNECTION", 1)

    async def scenario(probe: FeedProbe, h: H) -> None:
        await probe.healthy()
        await h.ctl.place_order(BTC, "Buy", Decimal("0.01"))
        await h.ctl.place_order(ETH, "Buy", Decimal("1"))
        await probe.wait_for(lambda: probe.ctx.status.stale_symbols == (ETH,), "ETH stale")
        assert probe.state is FeedState.DEGRADED and mark_of(probe, BTC) is not None

    probe = run(scenario, stale_mark_interval=0)
    assert probe.ctx.counters["subscription_overflow"] == 1


def test_a_stale_limit_under_the_stream_period_does_not_flap() -> None:
    """stale_after 0.2 s against marks pushed every 0.4 s (as 0.6 s would be against
    Binance's @markPrice@1s): the limit is raised to 1.5 periods, the feed stays healthy."""
    async def scenario(probe: FeedProbe, h: H) -> None:
        await probe.healthy()
        await h.ctl.place_order(BTC, "Buy", Decimal("0.01"))
        await probe.wait_for(lambda: mark_of(probe, BTC) is not None, "a mark")
        await asyncio.sleep(1.5)  # the period is learned from the first marks
        seen = len(probe.statuses)
        await asyncio.sleep(3)
        assert [s.reason for s in probe.statuses[seen:]] == []
        assert probe.state is FeedState.HEALTHY

    run(scenario, binance={"mark_fast_interval": 0.4}, stale_after=0.2)


def test_a_late_lifecycle_after_a_close_only_the_snapshot_saw_is_delivered_as_past() -> None:
    """The close of a lifecycle reaches the book only from a resync's snapshot (its push
    lost with the socket up): the pushes the book kept for that key still end open. A
    later lifecycle whose open push arrives after its close (reordered) must still be
    told apart from the one the snapshot closed, and delivered as past."""
    async def scenario(probe: FeedProbe, h: H) -> None:
        await probe.healthy()
        await h.ctl.place_order(ETH, "Sell", Decimal("1"))
        await probe.wait_for(lambda: probe.lifecycle(ETH) == ["opened"], "opened")
        await asyncio.sleep(1.1)  # past FILL_MATCH_MS: the open's push confirms no later fill
        await h.ctl.drop_account_updates(1)  # the close's push is lost, its fill comes
        await h.ctl.close_position(ETH)
        await probe.wait_for(lambda: probe.lifecycle(ETH) == ["opened", "closed"],
                             "closed by the resync's snapshot")
        assert probe.ctx.counters["position_push_missing"] == 1
        await h.ctl.reorder_positions(1)  # the open's push is held until the close's
        await h.ctl.place_order(ETH, "Sell", Decimal("1"))
        await asyncio.sleep(0.1)
        await h.ctl.close_position(ETH)
        await probe.wait_for(lambda: probe.lifecycle(ETH) == ["opened", "closed"] * 2,
                             "the second lifecycle, late")

    probe = run(scenario)
    second = [e for e in probe.events if e.position.symbol == ETH
              and e.kind is not EventKind.PRICE][2:]
    assert [e.kind for e in second] == [EventKind.OPENED, EventKind.CLOSED]
    assert all(e.past for e in second)
    assert not probe.book.positions


async def _a_resync_waiting_for_a_retry(probe: FeedProbe, h: H) -> None:
    """Healthy, then a reconnect whose resync's snapshot waits for a retry (a 429)."""
    await probe.healthy()
    await h.ctl.rest_errors("rate_limit", 1, "/fapi/v3/positionRisk")
    await h.ctl.drop("private")  # reconnect; its snapshot waits for a retry
    await probe.wait_for(lambda: probe.ctx.counters.get("rest_retries", 0) >= 1,
                         "the snapshot's retry")


def test_a_lifecycle_made_while_the_socket_died_during_a_resync_is_replayed() -> None:
    """The user socket dies while the resync's snapshot is being read (here: a 429 and
    its retry): the pushes after its death never reach the buffer, so the fills from
    the stream's start on are not all in the book when the snapshot (taken after a
    lifecycle opened and closed) is reconciled. The resync is given up; the next one
    replays them."""
    async def scenario(probe: FeedProbe, h: H) -> None:
        await _a_resync_waiting_for_a_retry(probe, h)
        await h.ctl.drop("private")  # the resync's socket dies under it
        await h.ctl.place_order(ETH, "Sell", Decimal("1"))
        await h.ctl.close_position(ETH)
        await probe.wait_for(lambda: probe.lifecycle(ETH) == ["opened", "closed"],
                             "the lifecycle, replayed")
        await probe.healthy()

    probe = run(scenario)
    assert not probe.book.positions


async def _a_resync_waiting_for_its_snapshots_retry(probe: FeedProbe, h: H) -> None:
    """A short ETH position open, then a reconnect whose snapshot read waits for a retry
    (a 429): the resync is in flight when this returns."""
    await probe.healthy()
    await h.ctl.place_order(ETH, "Sell", Decimal("1"))
    await probe.wait_for(lambda: probe.lifecycle(ETH) == ["opened"], "opened")
    await h.ctl.rest_errors("rate_limit", 1, "/fapi/v3/positionRisk")
    await h.ctl.drop("private")  # reconnect; its snapshot waits for a retry
    await probe.wait_for(lambda: probe.ctx.counters.get("rest_retries", 0) >= 1,
                         "the snapshot's retry")


def test_a_close_and_reopen_pushed_while_a_resync_reads_its_snapshot_stay_two_lifecycles(
        ) -> None:
    """A position is closed and the same side reopened while a resync's snapshot is in
    flight (here: its 429 and retry): the pushes wait in the buffer, and the snapshot
    shows only the reopened position. The buffered pushes carry the boundary: consumers
    get the close and the reopen, not one lifecycle whose size changed."""
    async def scenario(probe: FeedProbe, h: H) -> None:
        await _a_resync_waiting_for_its_snapshots_retry(probe, h)
        await h.ctl.close_position(ETH)
        await h.ctl.place_order(ETH, "Sell", Decimal("2"))
        await probe.wait_for(lambda: probe.ctx.counters.get("resyncs", 0) >= 2, "resynced")
        await probe.healthy()
        await probe.wait_for(lambda: probe.lifecycle(ETH) == ["opened", "closed", "opened"],
                             "the close and the reopen")

    probe = run(scenario)
    pos = probe.position(ETH)
    assert pos is not None and pos.size == Decimal("2")


def test_a_flip_only_the_snapshot_shows_stays_two_lifecycles_when_a_later_close_is_buffered(
        ) -> None:
    """F54 (Binance short campaign, seeds 6010 production and 6102 parallel): a flip
    (short -> long in one order) is made while no user socket is up; the reconnect's
    snapshot shows the long (its ``updateTime`` the flip's), and the long is closed
    while the resync's gap replay waits for a retry (a 429 on userTrades): that close's
    push waits in the buffer. The replay leaves the row's own state to the row, the
    buffered close goes to the book before the snapshot: without the row first, it
    closed the short and the long was never delivered. Consumers get both lifecycles."""
    async def scenario(probe: FeedProbe, h: H) -> None:
        await probe.healthy()
        await h.ctl.place_order(ETH, "Sell", Decimal("1"))
        await probe.wait_for(lambda: probe.lifecycle(ETH) == ["opened"], "opened")
        retries = probe.ctx.counters.get("rest_retries", 0)
        await h.ctl.rest_errors("rate_limit", 1, "/fapi/v1/listenKey")
        await h.ctl.drop("private")  # the reconnect waits for a retry: no socket up
        await h.ctl.place_order(ETH, "Buy", Decimal("2"))  # the flip, its push lost
        await probe.wait_for(lambda: probe.ctx.counters.get("rest_retries", 0) > retries,
                             "the listenKey's retry")
        await h.ctl.rest_errors("rate_limit", 1, "/fapi/v1/userTrades")
        await probe.wait_for(lambda: probe.ctx.counters.get("rest_retries", 0) > retries + 1,
                             "the gap replay's retry", within=6)
        await h.ctl.close_position(ETH)  # pushed into the resync's buffer
        await probe.wait_for(
            lambda: probe.lifecycle(ETH) == ["opened", "closed", "opened", "closed"],
            "the short, the long", within=6)
        await probe.healthy()

    probe = run(scenario)
    assert not probe.book.positions
    sides = [e.position.side for e in probe.events
             if e.position.symbol == ETH and e.kind is not EventKind.PRICE]
    assert sides == [Side.SHORT, Side.SHORT, Side.LONG, Side.LONG]


def test_a_close_and_reopen_while_the_socket_died_during_a_resync_stay_two_lifecycles(
        ) -> None:
    """As above, but the resync's socket dies before the close and reopen: the buffer
    never gets their pushes, and the snapshot shows only the reopened position. The
    resync is given up rather than reconciled (which would merge the two lifecycles into
    a size change, past what a later fill replay can split); the next one replays the
    fills from the book's state."""
    async def scenario(probe: FeedProbe, h: H) -> None:
        await _a_resync_waiting_for_its_snapshots_retry(probe, h)
        await h.ctl.drop("private")  # the resync's socket dies under it
        await h.ctl.close_position(ETH)
        await h.ctl.place_order(ETH, "Sell", Decimal("2"))
        await probe.wait_for(lambda: probe.lifecycle(ETH) == ["opened", "closed", "opened"],
                             "the close and the reopen")
        await probe.healthy()

    probe = run(scenario)
    pos = probe.position(ETH)
    assert pos is not None and pos.size == Decimal("2")


def test_a_lifecycle_lost_in_a_stall_a_reconnect_landed_in_is_replayed() -> None:
    """The user socket is dropped during a stall (the server reads and sends nothing,
    pings included): the reconnect's socket opens and its snapshot is read while the
    stall lasts, and a lifecycle made then is pushed into the stall, lost with the
    socket up. No ping of the new socket falls in the stall (``ping_interval`` is long),
    so only the resync can notice it: its ping goes unanswered, the resync is given up,
    and the next one replays the lifecycle's fills."""
    async def scenario(probe: FeedProbe, h: H) -> None:
        await probe.healthy()
        await h.ctl.stall("private", 2.0)
        await h.ctl.drop("private")  # the reconnect lands in the stall
        await asyncio.sleep(0.4)  # reconnected and resynced (before: healthy here)
        await h.ctl.place_order(ETH, "Sell", Decimal("1"))
        await h.ctl.close_position(ETH)
        await probe.wait_for(lambda: probe.lifecycle(ETH) == ["opened", "closed"],
                             "the lifecycle, replayed", within=6)
        await probe.healthy()

    probe = run(scenario, ping_interval=10.0, pong_timeout=0.5)
    assert not probe.book.positions
    assert probe.ctx.counters.get("resyncs_given_up", 0) >= 1


def test_a_push_proving_a_pong_lost_is_not_applied_before_the_gap_replay() -> None:
    """A stall (the server reads and sends nothing) swallows a ping and the pushes of a
    close and a same-side reopen; the socket stays up. The first push after it (an
    add) was made long after the unanswered ping: it proves the pong, and with it the
    pushes before, lost. The socket is dropped before that push is applied, and the
    reconnect's replay delivers the close and the reopen in order (applied, the add
    would have merged them into one lifecycle whose size changed)."""
    async def scenario(probe: FeedProbe, h: H) -> None:
        await probe.healthy()
        await h.ctl.place_order(ETH, "Sell", Decimal("1"))
        await probe.wait_for(lambda: probe.lifecycle(ETH) == ["opened"], "opened")
        await h.ctl.stall("private", 1.5)
        await h.ctl.close_position(ETH)
        await h.ctl.place_order(ETH, "Sell", Decimal("2"))
        await asyncio.sleep(1.7)  # the stall is over; its ping is still unanswered
        await h.ctl.place_order(ETH, "Sell", Decimal("1"))
        await probe.wait_for(
            lambda: probe.lifecycle(ETH) == ["opened", "closed", "opened", "changed"],
            "the close and the reopen, then the add")

    probe = run(scenario, ping_interval=0.5, pong_timeout=5.0, pong_overdue_after=0.3)
    pos = probe.position(ETH)
    assert pos is not None and pos.size == Decimal("3")
    assert probe.ctx.counters.get("pong_lost", 0) >= 1


def test_a_lifecycle_a_stall_hid_from_the_resyncs_own_socket_is_replayed() -> None:
    """A reconnect's socket is up and buffering, its snapshot waits for a retry (a 429);
    a short stall of that socket swallows the pushes of a whole lifecycle and ends
    before the snapshot is read, so the resync's ping is answered. The buffer lacks the
    lifecycle and the snapshot shows the key flat: only the replay of the fills made
    since the socket's start, up to the snapshot, delivers it."""
    async def scenario(probe: FeedProbe, h: H) -> None:
        await _a_resync_waiting_for_a_retry(probe, h)
        await h.ctl.stall("private", 0.3)
        await h.ctl.place_order(ETH, "Sell", Decimal("1"))
        await h.ctl.close_position(ETH)
        await probe.wait_for(lambda: probe.lifecycle(ETH) == ["opened", "closed"],
                             "the lifecycle, replayed", within=6)
        await probe.healthy()

    probe = run(scenario, ping_interval=10.0)
    assert not probe.book.positions


def test_a_resync_whose_ping_is_answered_late_is_given_up() -> None:
    """A pong later than ``pong_overdue_after`` does not confirm a resync's socket: it
    may answer a later ping (websockets takes one pong for every earlier ping's), after
    a stall swallowed ours and the pushes made after the snapshot. Here the server
    answers pings late while data flows: the reconnect's resyncs are given up until the
    pongs are prompt again, then the feed is healthy."""
    async def scenario(probe: FeedProbe, h: H) -> None:
        await probe.healthy()
        await h.ctl.late_pongs("private", 800, 1.5)
        await h.ctl.drop("private")
        await probe.wait_for(lambda: probe.ctx.counters.get("resyncs_given_up", 0) >= 1,
                             "a resync given up on a late pong", within=4)
        await probe.healthy()

    probe = run(scenario, ping_interval=10.0, pong_timeout=3.0, pong_overdue_after=0.3)
    assert probe.ctx.counters.get("resyncs", 0) >= 2


def test_a_push_its_fills_do_not_account_for_is_not_applied_before_the_gap_replay() -> None:
    """A stall that holds no ping (none is due in it) swallows the pushes and fills of a
    close and a same-side reopen; the socket stays up and nothing times out. The next
    order's fill says it sold 1 while its push shows the short going from 1 to 3: the
    book lacks a state before that push. The push is held back for a resync in place,
    whose replay delivers the close and the reopen in order (applied, the push would
    have merged them into one lifecycle whose size changed; F51)."""
    async def scenario(probe: FeedProbe, h: H) -> None:
        await probe.healthy()
        await h.ctl.place_order(ETH, "Sell", Decimal("1"))
        await probe.wait_for(lambda: probe.lifecycle(ETH) == ["opened"], "opened")
        await h.ctl.stall("private", 0.6)
        await h.ctl.close_position(ETH)
        await h.ctl.place_order(ETH, "Sell", Decimal("2"))
        await asyncio.sleep(0.8)  # the stall is over; no ping was sent in it
        await h.ctl.place_order(ETH, "Sell", Decimal("1"))
        await probe.wait_for(
            lambda: probe.lifecycle(ETH) == ["opened", "closed", "opened", "changed"],
            "the close and the reopen, then the add")

    probe = run(scenario, ping_interval=10.0, pong_timeout=5.0)
    pos = probe.position(ETH)
    assert pos is not None and pos.size == Decimal("3")
    assert probe.ctx.counters.get("push_gaps", 0) == 1
    assert probe.ctx.counters.get("pong_lost", 0) == 0


def test_a_lifecycle_a_stall_swallowed_whole_is_found_by_the_audits_fills_check() -> None:
    """F57 (Binance short campaign, seed 6108 parallel; L1): a stall that holds no ping
    swallows every push of a lifecycle opened and closed inside it; the socket stays
    up, nothing times out, the book is as flat as the exchange, and no later push of
    the symbol follows. The audit's positions agree; its check of the fills since the
    fill floor finds two the stream never showed, and the resync it asks for replays
    them: consumers get the lifecycle. (Before: the audit moved the fill floor past it,
    and it was never delivered.)"""
    async def scenario(probe: FeedProbe, h: H) -> None:
        await probe.healthy()
        await h.ctl.stall("private", 0.6)
        await h.ctl.place_order(ETH, "Sell", Decimal("1"))
        await h.ctl.close_position(ETH)
        # the stall is over (no ping was sent in it); a push a second later: what came
        # before it has had the time to arrive, so the audit may judge it
        await asyncio.sleep(1.6)
        await h.ctl.place_order(BTC, "Buy", Decimal("0.01"))
        await probe.wait_for(lambda: probe.lifecycle(ETH) == ["opened", "closed"],
                             "the lifecycle from the fills", within=5)

    probe = run(scenario, ping_interval=10.0, pong_timeout=5.0, audit_interval=0.3)
    assert probe.ctx.counters.get("unseen_fills", 0) == 2
    assert probe.lifecycle(BTC)[0] == "opened" and "closed" not in probe.lifecycle(BTC)
    assert probe.ctx.counters.get("pong_lost", 0) == 0


def test_fills_the_stream_showed_never_make_the_audit_resync() -> None:
    """The other side of F57: orders whose pushes all arrived give the audit's fills
    check nothing to find: no resync beyond the first sync."""
    async def scenario(probe: FeedProbe, h: H) -> None:
        await probe.healthy()
        await h.ctl.place_order(ETH, "Sell", Decimal("1"))
        await h.ctl.close_position(ETH)
        await probe.wait_for(lambda: probe.lifecycle(ETH) == ["opened", "closed"], "both")
        audits = probe.ctx.counters.get("audits", 0)
        await probe.wait_for(lambda: probe.ctx.counters.get("audits", 0) >= audits + 3,
                             "three audits after it", within=5)

    probe = run(scenario, audit_interval=0.3)
    assert probe.ctx.counters.get("unseen_fills", 0) == 0
    assert probe.ctx.counters.get("resyncs", 0) == 1


def test_a_lifecycle_opened_just_after_a_snapshot_stamped_ahead_is_not_hidden_by_it() -> None:
    """The server clock was measured through a slow round trip (1 s: the offset 400 ms
    ahead, within the 501 ms error). A resync's snapshot then closes a position whose
    close push a stall lost, stamped with its server-corrected send time - 400 ms later
    than the server served it. A lifecycle opened just after is pushed with an earlier
    ``T`` than that stamp: it is not taken for older than the snapshot's close (before:
    dropped as stale, never delivered; F52)."""
    async def scenario(probe: FeedProbe, h: H) -> None:
        await probe.healthy()
        await h.ctl.place_order(ETH, "Sell", Decimal("1"))
        await probe.wait_for(lambda: probe.lifecycle(ETH) == ["opened"], "opened")
        clock = probe.feed.clock  # type: ignore[union-attr]
        clock.offset_ms += 400
        clock.rtt_ms = 1000.0
        await h.ctl.stall("private", 0.3)
        await h.ctl.close_position(ETH)
        await asyncio.sleep(0.4)
        await h.ctl.drop("private")
        await probe.wait_for(lambda: probe.lifecycle(ETH) == ["opened", "closed"],
                             "the close, from the snapshot")
        await h.ctl.place_order(ETH, "Buy", Decimal("1"))
        await probe.wait_for(
            lambda: probe.lifecycle(ETH) == ["opened", "closed", "opened"], "the reopen")

    probe = run(scenario, ping_interval=10.0, replay_gaps=False)
    pos = probe.position(ETH)
    assert pos is not None and pos.side is Side.LONG
