"""The feed's stream behaviour on the scripted exchange (real loopback sockets; to be
moved onto the simulator's Binance personality): listenKey lifecycle, planned
reconnects, hedge mode, lost pushes, marks only for open symbols, audit, leverage."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from decimal import Decimal
from typing import Any

import pytest

from feedctl import EventKind, FeedState
from feedctl.testing import FeedProbe, run_scenario

from .harness import FAST, BinanceHarness
from .scripted_exchange import Pos

pytestmark = pytest.mark.integration

BTC, ETH = "BTCUSDT", "ETHUSDT"
Scenario = Callable[[FeedProbe, Any], Awaitable[None]]


def run(scenario: Scenario, *, hedge: bool = False, **settings: Any) -> FeedProbe:
    class Harness(BinanceHarness):
        pass

    Harness.settings = {**FAST, **settings}
    harness = Harness()

    async def body(probe: FeedProbe) -> None:
        await scenario(probe, harness.exchange)

    async def before() -> None:
        harness.exchange.hedge = hedge

    return run_scenario(harness, body, before=before, limit=60)


def mark_of(probe: FeedProbe, symbol: str) -> Decimal | None:
    pos = probe.position(symbol)
    return None if pos is None else pos.mark_price


def states(probe: FeedProbe) -> list[str]:
    return [s.status.state.value for s in probe.statuses]


def test_listen_key_expired_is_recreated_and_later_pushes_arrive() -> None:
    async def scenario(probe: FeedProbe, ex: Any) -> None:
        await probe.healthy()
        first = set(ex.listen_keys)
        await ex.expire_listen_keys()
        await probe.wait_for(lambda: probe.ctx.counters.get("resyncs", 0) >= 2,
                             "a resync on a new listenKey")
        await probe.healthy()
        assert ex.listen_keys and not ex.listen_keys & first
        await ex.trade(BTC, Decimal("0.01"))  # the push python-binance would miss
        await probe.wait_for(lambda: probe.lifecycle(BTC) == ["opened"], "opened after expiry")

    probe = run(scenario)
    assert probe.ctx.counters["listen_key_recreated"] == 1


def test_keepalive_puts_the_key_and_recreates_it_on_1125() -> None:
    async def scenario(probe: FeedProbe, ex: Any) -> None:
        await probe.healthy()
        await probe.wait_for(lambda: ("PUT", "/fapi/v1/listenKey") in ex.requests,
                             "a keepalive PUT")
        ex.listen_keys.clear()  # expired without an event: the next PUT says -1125
        await probe.wait_for(lambda: probe.ctx.counters.get("listen_key_recreated", 0) >= 1,
                             "the key recreated after -1125")
        await probe.wait_for(lambda: probe.ctx.counters.get("resyncs", 0) >= 2, "a resync")
        await probe.healthy()
        await ex.trade(ETH, Decimal("-1"))
        await probe.wait_for(lambda: probe.lifecycle(ETH) == ["opened"], "opened on the new key")

    probe = run(scenario, keepalive_interval=0.3)
    assert probe.ctx.counters["keepalives"] >= 1


def test_planned_reconnect_is_make_before_break_without_resync() -> None:
    async def scenario(probe: FeedProbe, ex: Any) -> None:
        await probe.healthy()
        await ex.trade(BTC, Decimal("0.01"))
        await probe.wait_for(lambda: probe.ctx.counters.get("planned_reconnects", 0) >= 4,
                             "planned reconnects of both sockets")
        await ex.trade(BTC, Decimal("0.01"))
        await ex.trade(BTC, Decimal("-0.02"))
        await probe.wait_for(lambda: probe.lifecycle(BTC) == ["opened", "changed", "closed"],
                             "the lifecycle across swaps")
        await probe.quiet()

    probe = run(scenario, max_connection_lifetime=1.0)
    assert probe.ctx.counters["resyncs"] == 1
    assert states(probe)[-1] == "healthy" and "reconnecting" not in states(probe)
    assert probe.lifecycle(BTC) == ["opened", "changed", "closed"]


def test_hedge_mode_positions_have_their_own_indexes() -> None:
    async def scenario(probe: FeedProbe, ex: Any) -> None:
        await probe.healthy()
        await ex.trade(BTC, Decimal("0.02"), "LONG")
        await ex.trade(BTC, Decimal("-0.01"), "SHORT")
        await probe.wait_for(lambda: len(probe.book.positions) == 2, "both sides open")

    probe = run(scenario, hedge=True)
    got = {(k.position_idx, p.side.value, p.size) for k, p in probe.book.positions.items()}
    assert got == {(1, "long", Decimal("0.02")), (2, "short", Decimal("0.01"))}
    assert probe.lifecycle(BTC) == ["opened", "opened"]


def test_a_lost_position_push_is_found_by_its_fill_and_resynced() -> None:
    async def scenario(probe: FeedProbe, ex: Any) -> None:
        await probe.healthy()
        ex.drop_next_account_updates = 1
        await ex.trade(ETH, Decimal("2"))  # its ACCOUNT_UPDATE never comes, the fill does
        await probe.wait_for(lambda: probe.lifecycle(ETH) == ["opened"],
                             "the position from the resync")

    probe = run(scenario)
    assert probe.ctx.counters["position_push_missing"] == 1
    assert probe.ctx.counters["resyncs"] == 2
    assert "resyncing" in states(probe)[1:]


def test_marks_are_subscribed_only_for_open_symbols() -> None:
    async def scenario(probe: FeedProbe, ex: Any) -> None:
        await probe.healthy()
        assert [s for s in ex.market_sockets.values() if s] == []
        await ex.trade(BTC, Decimal("0.01"))
        await probe.wait_for(lambda: {"btcusdt@markPrice@1s"} in ex.market_sockets.values(),
                             "the BTC mark stream subscribed")
        ex.marks[BTC] = Decimal("61000")
        await probe.wait_for(lambda: mark_of(probe, BTC) == Decimal("61000"), "the new mark")
        await ex.trade(BTC, Decimal("-0.01"))
        await probe.wait_for(lambda: all(not s for s in ex.market_sockets.values()),
                             "the BTC mark stream unsubscribed")

    run(scenario)


def test_a_stale_mark_stream_degrades_and_recovers() -> None:
    async def scenario(probe: FeedProbe, ex: Any) -> None:
        await probe.healthy()
        await ex.trade(BTC, Decimal("0.01"))
        await probe.wait_for(lambda: mark_of(probe, BTC) is not None, "a mark")
        ex.mark_frames_paused = True
        await probe.wait_for(lambda: probe.state is FeedState.DEGRADED, "degraded (stale)")
        ex.marks[BTC] = Decimal("59000")  # REST premiumIndex keeps the price moving
        await probe.wait_for(lambda: mark_of(probe, BTC) == Decimal("59000"),
                             "the mark from REST while stale")
        ex.mark_frames_paused = False
        await probe.healthy("healthy again (fresh)")

    probe = run(scenario)
    assert any(s.reason == "stale" for s in probe.statuses)
    assert probe.ctx.counters["stale_marks"] >= 1


def test_the_audit_repairs_a_book_that_drifted() -> None:
    async def scenario(probe: FeedProbe, ex: Any) -> None:
        await probe.healthy()
        # changed on the exchange without any push (a lost one nothing else reveals)
        ex.positions[(ETH, "BOTH")] = Pos(Decimal("3"), Decimal("3000"), ex.now_ms() - 5000)
        await probe.wait_for(lambda: probe.lifecycle(ETH) == ["opened"], "audit repair")

    probe = run(scenario, audit_interval=0.3)
    assert probe.ctx.counters["audit_mismatches"] >= 1


def test_leverage_comes_from_symbol_config_and_a_change_is_a_changed_event() -> None:
    async def scenario(probe: FeedProbe, ex: Any) -> None:
        await probe.healthy()
        await ex.trade(BTC, Decimal("0.01"))
        await probe.wait_for(lambda: probe.lifecycle(BTC) == ["opened"], "opened")
        await ex._push_user({"e": "ACCOUNT_CONFIG_UPDATE", "E": ex.now_ms(),
                             "T": ex.now_ms(), "ac": {"s": BTC, "l": 7}})
        await probe.wait_for(lambda: probe.lifecycle(BTC) == ["opened", "changed"], "changed")

    probe = run(scenario)
    assert probe.events[0].position.leverage == 20  # /fapi/v1/symbolConfig at the resync
    changed = [e for e in probe.events if e.kind is EventKind.CHANGED]
    assert changed[0].changes == ("leverage",) and changed[0].position.leverage == 7


def test_user_data_comes_from_the_private_route_with_the_listen_key() -> None:
    """The scripted exchange serves user data only on /private/ws?listenKey= (the old
    /ws/<listenKey> route opens and stays silent, as Binance's does since 2026-04-23)."""
    async def scenario(probe: FeedProbe, ex: Any) -> None:
        await probe.healthy()
        assert [k for k, _ws in ex.user_sockets] == list(ex.listen_keys)
        await ex.trade(BTC, Decimal("0.5"))
        await probe.wait_for(lambda: probe.lifecycle(BTC) == ["opened"], "opened")

    run(scenario)


def test_the_listen_key_is_in_no_log_record() -> None:
    """It grants read access to the account's user data: websockets' DEBUG handshake
    lines and our own messages show it as ``***``."""
    keys: list[str] = []

    async def scenario(probe: FeedProbe, ex: Any) -> None:
        await probe.healthy()
        keys.extend(ex.listen_keys)
        await ex.expire_listen_keys()  # a second key, and the expiry's log lines
        await probe.wait_for(lambda: probe.ctx.counters.get("resyncs", 0) >= 2, "a resync")
        keys.extend(ex.listen_keys)

    probe = run(scenario)
    texts = probe.logs.texts()
    assert len(keys) == 2 and any("listenKey=***" in t for t in texts.values())
    assert [n for n, t in texts.items() if any(k in t for k in keys)] == []


def test_a_planned_swap_that_gets_a_new_key_resyncs() -> None:
    """The old key died silently before the swap (no event, no keepalive yet): what it
    would have carried since is missing, so the swap is a gap."""
    async def scenario(probe: FeedProbe, ex: Any) -> None:
        await probe.healthy()
        ex.listen_keys.clear()
        await ex.trade(BTC, Decimal("0.01"))  # pushed to nobody
        await probe.wait_for(lambda: probe.lifecycle(BTC) == ["opened"], "opened by a resync")

    probe = run(scenario, max_connection_lifetime=1.0, fill_confirm_after=30)
    assert probe.ctx.counters["resyncs"] == 2


def test_the_all_market_stream_gives_marks_of_open_symbols_only() -> None:
    async def scenario(probe: FeedProbe, ex: Any) -> None:
        await probe.healthy()
        await ex.trade(ETH, Decimal("1"))
        await probe.wait_for(lambda: {"!markPrice@arr@1s"} in ex.market_sockets.values(),
                             "the all-market stream subscribed")
        ex.marks[ETH] = Decimal("3100.5")
        await probe.wait_for(lambda: mark_of(probe, ETH) == Decimal("3100.5"), "ETH's mark")
        await probe.quiet()
        assert probe.state is FeedState.HEALTHY and probe.position(BTC) is None
        await ex.trade(ETH, Decimal("-1"))
        await probe.wait_for(lambda: all(not s for s in ex.market_sockets.values()),
                             "unsubscribed when nothing is open")

    run(scenario, mark_stream="all")


def test_a_fill_before_its_position_push_is_no_lost_push() -> None:
    async def scenario(probe: FeedProbe, ex: Any) -> None:
        await probe.healthy()
        ex.fill_first = True
        await ex.trade(BTC, Decimal("0.01"))
        await ex.trade(BTC, Decimal("-0.01"))
        await probe.wait_for(lambda: probe.lifecycle(BTC) == ["opened", "closed"], "both")
        await asyncio.sleep(1.2)  # past fill_confirm_after

    probe = run(scenario)
    assert probe.ctx.counters["fills"] == 2
    assert "position_push_missing" not in probe.ctx.counters
    assert probe.ctx.counters["resyncs"] == 1


def test_a_position_opened_while_the_market_socket_is_down_degrades_at_once() -> None:
    async def scenario(probe: FeedProbe, ex: Any) -> None:
        await probe.healthy()
        ex.market_refused = True
        for ws in list(ex.market_sockets):
            await ws.close()
        await probe.wait_for(lambda: probe.feed is not None
                             and probe.feed.market.down is not None, "the market socket down")
        assert probe.state is FeedState.HEALTHY  # nothing open: no price is missing
        await ex.trade(BTC, Decimal("0.01"))
        await probe.wait_for(lambda: probe.state is FeedState.DEGRADED, "degraded")
        await probe.wait_for(lambda: mark_of(probe, BTC) is not None, "a mark from REST")
        ex.market_refused = False
        await probe.healthy("healthy once the market socket is back")

    run(scenario)


def test_a_resync_settles_every_fill_it_covers() -> None:
    """Two pushes lost 0.5 s apart: the first fill's resync covers the second fill too,
    which then causes no resync of its own."""
    async def scenario(probe: FeedProbe, ex: Any) -> None:
        await probe.healthy()
        ex.drop_next_account_updates = 2
        await ex.trade(BTC, Decimal("0.01"))
        await asyncio.sleep(0.5)
        await ex.trade(ETH, Decimal("1"))
        await probe.wait_for(lambda: len(probe.book.positions) == 2, "both from the resync")
        await asyncio.sleep(1.5)  # past the second fill's deadline

    probe = run(scenario)
    assert probe.ctx.counters["position_push_missing"] == 1
    assert probe.ctx.counters["resyncs"] == 2


def test_streams_beyond_the_connection_limit_are_counted_and_stale(
        monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr("feedctl.plugins.binance_usdm.market.MAX_STREAMS_PER_CONNECTION", 1)

    async def scenario(probe: FeedProbe, ex: Any) -> None:
        await probe.healthy()
        await ex.trade(BTC, Decimal("0.01"))
        await ex.trade(ETH, Decimal("1"))
        await probe.wait_for(lambda: probe.ctx.status.stale_symbols == (ETH,), "ETH stale")
        assert probe.state is FeedState.DEGRADED and mark_of(probe, BTC) is not None

    probe = run(scenario, stale_mark_interval=0)
    assert probe.ctx.counters["subscription_overflow"] == 1
