"""The feed against the simulator's faults: drops, stalls, gaps, bad messages."""

from __future__ import annotations

import asyncio
import time
from decimal import Decimal
from typing import Any

import pytest

from feedctl import Category, FeedState

from .conftest import harness, run, wait_until

pytestmark = pytest.mark.integration


@pytest.mark.parametrize("kind", ["public", "private", "all"])
def test_dropped_sockets_reconnect_resync_and_resubscribe(kind: str) -> None:
    async def go() -> None:
        async with harness() as h:
            await h.ctl.place_order("BTCUSDT", "Buy", "0.01")
            await h.settle()
            await wait_until(lambda: len(h.prices("BTCUSDT")) >= 2)
            resyncs = h.ctx.counters["resyncs"]
            n_status = len(h.statuses)
            assert await h.ctl.drop(kind) >= (2 if kind == "all" else 1)
            await wait_until(lambda: h.ctx.counters.get("reconnects", 0)
                             >= (2 if kind == "all" else 1))
            await h.healthy()
            after = h.states()[n_status:]
            # healthy again when the last socket is back: the resync's end, or (for both
            # sockets) the public's fresh tickers if that came last
            back = {"public": {"fresh"}, "private": {"resync_done"},
                    "all": {"resync_done", "fresh"}}[kind]
            assert any(s == "healthy" and r in back for s, r in after), after
            assert any(reason == "reconnect" for _, reason in after), after
            if kind != "public":
                assert h.ctx.counters["resyncs"] == resyncs + 1
                assert ("reconnecting", "reconnect") in after
            else:
                assert ("degraded", "reconnect") in after
                assert h.ctx.counters["resyncs"] == resyncs
            await wait_until(lambda: h.feed.details()["public"]["linear"]["subscriptions"]
                             == ["tickers.BTCUSDT"])
            n = len(h.prices("BTCUSDT"))
            await wait_until(lambda: len(h.prices("BTCUSDT")) >= n + 3)  # prices flow again
            await h.ctl.place_order("BTCUSDT", "Sell", "0.01")  # lifecycle flows again
            await wait_until(lambda: h.kinds("BTCUSDT") == ["opened", "closed"])
            assert h.ctx.status.reconnects >= 1

    run(go())


def test_positions_opened_and_closed_while_private_is_down() -> None:
    async def go() -> None:
        async with harness(["BTCUSDT", "ETHUSDT", "SOLUSDT"]) as h:
            await h.ctl.place_order("BTCUSDT", "Buy", "0.01")
            await h.settle()
            await h.ctl.stall("private", 1.5)  # pushes are lost, pings unanswered
            await h.ctl.place_order("ETHUSDT", "Buy", "0.10")  # opened ...
            await h.ctl.place_order("ETHUSDT", "Sell", "0.10")  # ... and closed in the gap
            await h.ctl.place_order("BTCUSDT", "Sell", "0.01")  # closed in the gap
            await h.ctl.place_order("SOLUSDT", "Sell", "1.0")  # opened in the gap
            await wait_until(lambda: h.ctx.state is not FeedState.HEALTHY, 2)
            await asyncio.sleep(1.0)
            assert not h.kinds("ETHUSDT")  # nothing seen yet
            await wait_until(lambda: h.ctx.counters.get("resyncs", 0) >= 2, 5)
            await h.healthy()
            assert h.kinds("ETHUSDT") == ["opened", "closed"]
            assert h.kinds("BTCUSDT") == ["opened", "closed"]
            assert h.kinds("SOLUSDT") == ["opened"]
            assert h.ctx.counters["gap_replayed"] >= 2
            await h.settle()
            # the book is HEALTHY only after the resync that revealed all of this
            healthy_at = [i for i, s in enumerate(h.statuses) if s.reason == "resync_done"][-1]
            eth_closed = next(e for e in h.events if e.kind.value == "closed"
                              and e.position.symbol == "ETHUSDT")
            assert eth_closed.position.received_ns <= h.statuses[healthy_at].status.since_ns

    run(go())


def test_duplicate_reordered_and_malformed_messages() -> None:
    async def go() -> None:
        async with harness() as h:
            await h.ctl.duplicate_positions(3)
            await h.ctl.place_order("BTCUSDT", "Buy", "0.01")
            await h.ctl.place_order("BTCUSDT", "Buy", "0.01")
            await h.settle()
            await h.ctl.reorder_positions(1)  # the next push is held and sent after a newer
            await h.ctl.place_order("BTCUSDT", "Sell", "0.005")
            await h.ctl.place_order("BTCUSDT", "Sell", "0.005")
            await h.settle()
            await asyncio.sleep(0.1)
            assert await h.ctl.malformed("all", 2) >= 2
            await wait_until(lambda: h.ctx.counters.get("malformed", 0) >= 4)
            await h.ctl.place_order("BTCUSDT", "Sell", "0.01")
            await h.settle()
            assert h.kinds("BTCUSDT") == ["opened", "changed", "changed", "changed", "closed"]
            assert h.book.counters["duplicates_dropped"] >= 3
            assert h.book.counters["stale_dropped"] >= 1
            assert h.ctx.counters.get("reconnects", 0) == 0  # bad frames do not kill sockets
            assert h.ctx.state is FeedState.HEALTHY
            n = len(h.prices("BTCUSDT"))
            assert n > 0

    run(go())


def test_stalled_public_socket_detected_within_threshold() -> None:
    async def go() -> None:
        async with harness(["BTCUSDT", "ETHUSDT"], stale_after=0.3, ping_interval=5) as h:
            await h.ctl.place_order("BTCUSDT", "Buy", "0.01")
            await h.ctl.place_order("ETHUSDT", "Buy", "0.1")
            await wait_until(lambda: h.prices("ETHUSDT") and h.prices("BTCUSDT"))
            n = len(h.statuses)
            t0 = time.monotonic()
            await h.ctl.stall("public", 1.0)
            await wait_until(lambda: h.ctx.state is FeedState.DEGRADED, 2)
            detected = time.monotonic() - t0
            # stale_after + one check period (stale_after / 4) + the last tick's age
            assert detected <= 0.3 + 0.075 + 0.1 + 0.1, detected
            reasons = [r for _, r in h.states()[n:]]
            assert reasons[0] == "stale" and set(h.ctx.status.stale_symbols) == {
                "BTCUSDT", "ETHUSDT"}
            await wait_until(lambda: h.ctx.state is FeedState.HEALTHY, 3)
            assert h.states()[-1] == ("healthy", "fresh") and not h.ctx.status.stale_symbols
            assert h.ctx.counters["reconnects"] >= 1  # a stalled socket is replaced

    run(go())


def test_one_stale_symbol_is_resubscribed_then_the_socket_replaced() -> None:
    async def go() -> None:
        async with harness(["BTCUSDT", "ETHUSDT"], stale_after=0.3, ping_interval=5) as h:
            await h.ctl.place_order("BTCUSDT", "Buy", "0.01")
            await wait_until(lambda: h.prices("BTCUSDT"))
            await h.ctl.stall("public", 1.0)  # one symbol: cannot tell a stall from a topic
            await wait_until(lambda: h.ctx.counters.get("resubscribes", 0) >= 1, 2)
            assert h.ctx.status.stale_symbols == ("BTCUSDT",)
            assert h.ctx.state is FeedState.DEGRADED
            assert h.ctx.counters.get("reconnects", 0) == 0
            # the resubscribe goes unanswered as well: the socket is replaced
            await wait_until(lambda: h.ctx.counters.get("reconnects", 0) >= 1, 2)
            await wait_until(lambda: h.ctx.state is FeedState.HEALTHY, 3)
            n = len(h.prices("BTCUSDT"))
            await wait_until(lambda: len(h.prices("BTCUSDT")) > n + 2)

    run(go())


def test_stalled_private_socket_detected_by_missing_pong() -> None:
    async def go() -> None:
        async with harness(ping_interval=0.3, pong_timeout=0.3) as h:
            await asyncio.sleep(0.7)  # silence on the private socket is normal
            assert h.ctx.state is FeedState.HEALTHY
            t0 = time.monotonic()
            await h.ctl.stall("private", 0.8)
            await wait_until(lambda: h.ctx.state is FeedState.RECONNECTING, 2)
            assert time.monotonic() - t0 <= 0.3 + 0.3 + 0.15
            assert h.ctx.counters["pong_timeouts"] == 1
            await h.healthy(4)

    run(go())


def _sizes(h: object, symbol: str) -> list[tuple[str, str]]:
    return [(e.kind.value, str(e.position.size)) for e in h.lifecycle(symbol)]  # type: ignore[attr-defined]


def test_audit_replays_a_lifecycle_lost_while_the_socket_stayed_up() -> None:
    async def go() -> None:
        async with harness(ping_interval=30, pong_timeout=10, audit_interval=0.4) as h:
            await h.ctl.stall("private", 0.8)  # shorter than the ping period: unnoticed
            await h.ctl.place_order("BTCUSDT", "Buy", "0.01")
            await h.ctl.place_order("BTCUSDT", "Sell", "0.01", reduce_only=True)
            await wait_until(lambda: len(h.lifecycle("BTCUSDT")) == 2, 5)
            assert _sizes(h, "BTCUSDT") == [("opened", "0.01"), ("closed", "0.01")]
            assert h.ctx.counters["audit_mismatches"] >= 2
            assert h.ctx.counters.get("reconnects", 0) == 0

    run(go())


def test_gap_replay_after_an_audit_repair_has_no_phantom_states() -> None:
    async def go() -> None:
        async with harness(ping_interval=30, pong_timeout=10, audit_interval=0.4) as h:
            await h.ctl.place_order("BTCUSDT", "Buy", "0.01")
            await wait_until(lambda: _sizes(h, "BTCUSDT") == [("opened", "0.01")])
            await h.ctl.stall("private", 30)  # pushes are dropped from now on
            await h.ctl.place_order("BTCUSDT", "Buy", "0.01")  # the audit repairs this
            await wait_until(lambda: _sizes(h, "BTCUSDT")[-1] == ("changed", "0.02"), 5)
            await h.ctl.place_order("BTCUSDT", "Sell", "0.02", reduce_only=True)
            await h.ctl.clear_faults()
            await h.ctl.drop("private")  # a gap: reconnect, resync, replay the fills
            await wait_until(lambda: _sizes(h, "BTCUSDT")[-1][0] == "closed", 5)
            await h.healthy()
            await asyncio.sleep(0.5)
            assert _sizes(h, "BTCUSDT") == [("opened", "0.01"), ("changed", "0.02"),
                                             ("closed", "0.02")]

    run(go())


def test_a_stale_ticker_gets_its_mark_from_rest_while_the_socket_recovers() -> None:
    """The public socket stalls for 4 s: the symbol is reported stale (degraded), yet its
    mark keeps moving, read from /v5/market/tickers every stale_mark_interval."""
    async def go() -> None:
        async with harness(stale_mark_interval=0.3, ping_interval=30.0,
                           pong_timeout=30.0) as h:
            await h.ctl.place_order("BTCUSDT", "Buy", "0.01")
            await wait_until(lambda: len(h.prices("BTCUSDT")) >= 2)
            await h.ctl.stall("public", 4)
            await wait_until(lambda: "BTCUSDT" in h.ctx.status.stale_symbols, within=3)
            before = len(h.prices("BTCUSDT"))
            await asyncio.sleep(1.5)
            assert "BTCUSDT" in h.ctx.status.stale_symbols or h.ctx.counters.get(
                "reconnects", 0)  # still stale, or the socket was replaced meanwhile
            assert h.ctx.counters.get("stale_marks", 0) >= 2
            assert len(h.prices("BTCUSDT")) > before  # the price moved meanwhile

    run(go())


def test_one_stale_symbols_rate_limited_read_holds_up_no_other_symbols_read() -> None:
    """The public socket stalls with two positions open, and the next four ticker reads
    are refused with 10006 (each retry waits for the limit's reset, up to 1 s). The two
    symbols' REST reads run side by side, two refusals each, so both have a REST mark
    within about two resets after they went stale; read one after another, the first
    symbol's retries alone (four resets, three of them whole seconds) would hold up the
    other."""
    async def go() -> dict[str, float]:
        symbols = ["BTCUSDT", "ETHUSDT"]
        async with harness(symbols, stale_mark_interval=0.5, stale_after=0.5,
                           ping_interval=30.0, pong_timeout=30.0, rest_attempts=5,
                           backoff_cap=1.0) as h:
            for sym in symbols:
                await h.ctl.set_position(sym, "Buy", "1")
            await wait_until(lambda: all(len(h.prices(s)) >= 2 for s in symbols))
            await h.ctl.stall("public", 6)
            await h.ctl.rest_errors("rate_limit", count=4, path="/v5/market/tickers")
            stalled = time.monotonic()
            seen = {s: len(h.prices(s)) for s in symbols}
            first: dict[str, float] = {}
            while len(first) < len(symbols) and time.monotonic() - stalled < 5.5:
                await asyncio.sleep(0.02)
                for s in symbols:
                    if s not in first and len(h.prices(s)) > seen[s]:
                        first[s] = time.monotonic() - stalled
            assert h.ctx.counters.get("stale_marks", 0) >= 2
            return first

    first = run(go(), timeout=40)
    assert sorted(first) == ["BTCUSDT", "ETHUSDT"], first
    # stale after 0.5 s, read at the next check, two refusals each: <= 0.65 + 1 + 1 s;
    # one after another: >= 0.5 + 3 s (the last three waits are whole seconds)
    assert max(first.values()) < 3.1, first


def test_every_one_of_a_sockets_worth_of_stale_symbols_gets_a_rest_mark_each_interval(
) -> None:
    """The public socket stalls with 14 positions open (the campaign's settings: stale
    after 1 s, a REST read per stale symbol every second, two at a time): every symbol's
    mark moves at least every interval plus a read's round trip. A loop that starts reads
    only at its checks (a quarter of stale_after) reads 8 symbols a second, and one that
    takes them in name order starves the last ones for the whole stall."""
    symbols = ["BTCUSDT", "ETHUSDT"] + [f"SYM{i:03d}USDT" for i in range(1, 13)]

    async def go() -> dict[str, float]:
        async with harness(symbols, stale_mark_interval=1.0, stale_after=1.0,
                           ping_interval=30.0, pong_timeout=30.0) as h:
            for sym in symbols:
                await h.ctl.set_position(sym, "Buy", "1")
            await wait_until(lambda: all(len(h.prices(s)) >= 1 for s in symbols), within=5)
            await h.ctl.stall("public", 7)
            stalled = time.monotonic()
            await wait_until(lambda: len(h.ctx.status.stale_symbols) == len(symbols),
                             within=3)
            # from when all are stale, the longest wait for a new REST mark, per symbol
            since = {s: time.monotonic() for s in symbols}
            seen = {s: len(h.prices(s)) for s in symbols}
            longest = dict.fromkeys(symbols, 0.0)
            while time.monotonic() - stalled < 6.0:
                await asyncio.sleep(0.02)
                now = time.monotonic()
                for s in symbols:
                    n = len(h.prices(s))
                    if n > seen[s]:
                        seen[s], since[s] = n, now
                    longest[s] = max(longest[s], now - since[s])
            return longest

    longest = run(go(), timeout=40)
    assert max(longest.values()) < 1.6, sorted(longest.items(), key=lambda kv: -kv[1])[:4]


def test_a_symbol_that_goes_stale_is_read_from_rest_at_once_not_an_interval_later(
) -> None:
    """While the public socket is stalled, a position opens on a second symbol: its mark
    is read from REST as soon as it is stale, not when the first symbol's next read is
    due (stale_mark_interval is per symbol)."""
    async def go() -> None:
        async with harness(stale_mark_interval=3.0, ping_interval=30.0,
                           pong_timeout=30.0) as h:
            await h.ctl.place_order("BTCUSDT", "Buy", "0.01")
            await wait_until(lambda: len(h.prices("BTCUSDT")) >= 2)
            await h.ctl.stall("public", 6)
            await wait_until(lambda: h.ctx.counters.get("stale_marks", 0) >= 1, within=3)
            await h.ctl.place_order("ETHUSDT", "Buy", "0.1")
            await wait_until(lambda: h.kinds("ETHUSDT") == ["opened"])
            opened = time.monotonic()
            await wait_until(lambda: len(h.prices("ETHUSDT")) >= 1, within=2.5)
            # stale after stale_after (0.4 s), then read at the next check
            assert time.monotonic() - opened < 1.5

    run(go())


def test_a_pong_1_5_s_late_within_pong_timeout_is_no_reconnect() -> None:
    """The late-pong fault answers every ping 1.5 s late while data flows on time: the
    frames created meanwhile are held until the late pong comes, then applied in order;
    nothing reconnects and no price or lifecycle event is lost."""
    async def go() -> None:
        async with harness(ping_interval=1.0, pong_timeout=3.0, stale_after=3.0) as h:
            await h.ctl.place_order("BTCUSDT", "Buy", "0.01")
            await h.settle()
            await h.ctl.late_pongs("all", ms=1500, seconds=4.0)
            n = len(h.prices("BTCUSDT"))
            await h.ctl.place_order("ETHUSDT", "Sell", "0.1")
            await asyncio.sleep(4.5)
            await h.ctl.place_order("ETHUSDT", "Buy", "0.1")
            await wait_until(lambda: h.kinds("ETHUSDT") == ["opened", "closed"], 5)
            assert h.ctx.counters.get("reconnects", 0) == 0
            assert h.ctx.counters.get("pongs_late", 0) >= 2  # both sockets, several pings
            assert h.ctx.counters.get("pongs_lost", 0) == 0
            assert len(h.prices("BTCUSDT")) >= n + 20  # ~10 a second kept coming
            assert h.ctx.state is FeedState.HEALTHY

    run(go(), timeout=40)


def test_http_403_pauses_rest_for_the_ban_period_with_a_status_saying_so() -> None:
    async def go() -> None:
        async with harness(ip_ban_pause=2.0) as h:
            await h.ctl.rest_errors("403", count=1, path="/v5/position")
            await h.ctl.drop("private")  # the resync's snapshot meets the ban
            await wait_until(lambda: h.ctx.counters.get("rest_banned", 0) == 1, 3)
            t0 = time.monotonic()
            before = h.sim.rest.requests
            await wait_until(lambda: "REST paused" in h.ctx.status.detail, 1)
            assert "403" in h.ctx.status.detail and "10 minutes" in h.ctx.status.detail
            await asyncio.sleep(1.5)
            assert h.sim.rest.requests == before  # not one request during the ban
            assert h.ctx.counters.get("rest_banned_skips", 0) >= 1
            await h.healthy(5)
            assert time.monotonic() - t0 >= 1.5
            assert "REST paused" not in h.ctx.status.detail

    run(go())


def test_a_quiet_symbol_is_confirmed_by_rest_and_never_degrades_the_feed() -> None:
    """Bybit pushes a ticker only when it changed: a symbol silent for stale_after whose
    REST mark equals the last one streamed is quiet, not stale — no degraded state, no
    resubscribe — while a symbol whose topic really died is still caught (test above)."""
    async def go() -> None:
        async with harness(["BTCUSDT", "ETHUSDT"], stale_after=0.4,
                           stale_mark_interval=0.2, ping_interval=5) as h:
            await h.ctl.place_order("BTCUSDT", "Buy", "0.01")
            await wait_until(lambda: h.prices("BTCUSDT"))
            await h.ctl.request("POST", "/price/quiet", {"symbol": "BTCUSDT", "every_ms": 2000})
            seen = len(h.states())
            await asyncio.sleep(5.0)
            assert [s for s in h.states()[seen:] if s[0] == "degraded"] == []
            assert h.ctx.state is FeedState.HEALTHY
            assert h.ctx.counters.get("quiet_confirmed", 0) >= 3
            assert h.ctx.counters.get("resubscribes", 0) == 0
            assert h.ctx.counters.get("reconnects", 0) == 0

    run(go())


def test_a_replayed_open_of_a_key_the_snapshot_missed_keeps_the_known_leverage() -> None:
    """Fills carry no leverage: a position the replay opens that its snapshot did not list
    (opened between the snapshot and the fill read) takes the leverage the key's last
    state carried, not none (consumers would see its leverage vanish)."""

    async def go() -> None:
        async with harness(ping_interval=30.0, pong_timeout=10.0) as h:
            await h.ctl.place_order("BTCUSDT", "Buy", "0.01")
            await wait_until(lambda: h.kinds("BTCUSDT") == ["opened"])
            leverage = h.lifecycle("BTCUSDT")[-1].position.leverage
            assert leverage is not None and leverage > 0
            await h.ctl.place_order("BTCUSDT", "Sell", "0.01")
            await wait_until(lambda: h.kinds("BTCUSDT") == ["opened", "closed"])
            since = int(time.time() * 1000)
            await h.ctl.stall("private", 5)  # the next pushes are lost, unnoticed
            await h.ctl.place_order("BTCUSDT", "Buy", "0.02")
            # the replay of a resync whose snapshot (taken before the order) listed nothing
            assert await h.feed.recovery.replay_fills([], since, None) == 1
            opened = h.lifecycle("BTCUSDT")[-1]
            assert (opened.kind.value, opened.position.size) == ("opened", Decimal("0.02"))
            assert opened.position.leverage == leverage

    run(go())


def test_a_close_and_reopen_lost_with_the_socket_up_are_split_out_of_the_merged_lifecycle(
) -> None:
    """The close of a position and its reopen on the same side are lost while the socket
    stays up; the next push (a top-up) reaches the book as a change of the first. The
    audit's fill replay finds the two lifecycles: consumers get the close, as of the lost
    close, and the reopen - not one lifecycle for two."""

    async def go() -> None:
        async with harness(ping_interval=30, pong_timeout=10, audit_interval=0.4) as h:
            await h.ctl.place_order("BTCUSDT", "Buy", "0.01")
            await wait_until(lambda: _sizes(h, "BTCUSDT") == [("opened", "0.01")])
            await h.ctl.stall("private", 0.3)  # shorter than the ping period: unnoticed
            await h.ctl.place_order("BTCUSDT", "Sell", "0.01", reduce_only=True)  # lost
            await h.ctl.place_order("BTCUSDT", "Buy", "0.02")  # lost
            await asyncio.sleep(0.35)
            await h.ctl.place_order("BTCUSDT", "Buy", "0.01")  # pushed: 0.03
            await wait_until(lambda: h.kinds("BTCUSDT")[-2:] == ["closed", "opened"], 5)
            kinds = h.kinds("BTCUSDT")
            # the first lifecycle, as the book saw it (the close lost, the reopen's states
            # seen as changes), then the split: its close, and the second's open
            assert kinds[0] == "opened" and set(kinds[1:-2]) == {"changed"}, kinds
            *_, closed, opened = h.lifecycle("BTCUSDT")
            assert closed.position.seq is not None and opened.position.seq is not None
            changes = [e.position.seq for e in h.lifecycle("BTCUSDT")[1:-2]]
            # as of the lost close: before the reopen's states
            assert all(q is not None and closed.position.seq < q for q in changes)
            assert opened.position.size == Decimal("0.03")
            assert h.ctx.counters.get("states_unrecoverable", 0) == 0
            assert h.ctx.counters.get("reconnects", 0) == 0

    run(go())


def test_a_merged_lifecycle_that_closed_before_the_loss_was_found_is_delivered_as_past(
) -> None:
    """F49: as above, but the merged lifecycle closes before anything finds the loss (no
    audit; a resync after a socket drop, seconds later, replays the fills). The split
    can no longer be made: the book delivers the whole of it as past history - the first
    lifecycle to its lost close, then the second (0.02, then 0.03) to its close - instead
    of skipping the lost states as unrecoverable."""

    async def go() -> None:
        async with harness(ping_interval=30, pong_timeout=10, audit_interval=300) as h:
            await h.ctl.place_order("BTCUSDT", "Buy", "0.01")
            await wait_until(lambda: _sizes(h, "BTCUSDT") == [("opened", "0.01")])
            await h.ctl.stall("private", 0.3)  # shorter than the ping period: unnoticed
            await h.ctl.place_order("BTCUSDT", "Sell", "0.01", reduce_only=True)  # lost
            await h.ctl.place_order("BTCUSDT", "Buy", "0.02")  # lost
            await asyncio.sleep(0.35)
            await h.ctl.place_order("BTCUSDT", "Buy", "0.01")  # pushed: 0.03
            await h.ctl.place_order("BTCUSDT", "Sell", "0.03", reduce_only=True)  # pushed
            await wait_until(lambda: h.kinds("BTCUSDT")[-1:] == ["closed"], 5)
            await h.ctl.drop("private")
            await wait_until(lambda: any(e.past for e in h.events), 8)
            past = [(e.kind.value, str(e.position.size)) for e in h.lifecycle("BTCUSDT")
                    if e.past]
            assert past == [("opened", "0.01"), ("closed", "0.01"),
                            ("opened", "0.02"), ("changed", "0.03"), ("closed", "0.03")]
            assert h.ctx.counters.get("states_unrecoverable", 0) == 0

    run(go())


def test_a_closed_symbol_stays_subscribed_for_mark_linger_then_is_unsubscribed() -> None:
    """After its position closes a symbol keeps its ticker for ``mark_linger``: a reopen
    soon after starts from a fresh mark; then it is unsubscribed."""
    async def go() -> None:
        async with harness(mark_linger=1.0) as h:
            subs = lambda: h.feed.details()["public"]["linear"]["subscriptions"]  # noqa: E731
            await h.ctl.place_order("BTCUSDT", "Buy", "0.01")
            await wait_until(lambda: subs() == ["tickers.BTCUSDT"])
            await h.ctl.place_order("BTCUSDT", "Sell", "0.01", reduce_only=True)
            await wait_until(lambda: h.kinds("BTCUSDT") == ["opened", "closed"])
            closed = time.monotonic()
            before = h.book.mark(Category.LINEAR, "BTCUSDT")
            await asyncio.sleep(0.5)
            assert subs() == ["tickers.BTCUSDT"]  # lingering, its mark still moving
            after = h.book.mark(Category.LINEAR, "BTCUSDT")
            assert before is not None and after is not None
            assert (after.received_ns or 0) > (before.received_ns or 0)
            await wait_until(lambda: subs() == [], within=3)
            assert time.monotonic() - closed >= 0.9

    run(go())


def test_while_the_socket_is_down_held_symbols_are_read_before_lingering_ones() -> None:
    """With the stale-mark reads capped, a symbol a position holds is read from REST
    before one that only lingers (its position closed)."""
    async def go() -> None:
        async with harness(mark_linger=30.0, stale_mark_max=1, stale_mark_interval=3.0,
                           ping_interval=30.0, pong_timeout=30.0) as h:
            await h.ctl.place_order("BTCUSDT", "Buy", "0.01")
            await h.ctl.place_order("BTCUSDT", "Sell", "0.01", reduce_only=True)  # lingers
            await h.ctl.place_order("ETHUSDT", "Buy", "0.1")  # held
            await wait_until(lambda: h.kinds("ETHUSDT") == ["opened"])
            await wait_until(lambda: sorted(
                h.feed.details()["public"]["linear"]["subscriptions"]) == [
                "tickers.BTCUSDT", "tickers.ETHUSDT"])
            reads: list[str] = []
            rest = h.feed.rest
            original = rest.mark

            def mark(category: Category, symbol: str, **kw: Any) -> object:
                reads.append(symbol)
                return original(category, symbol, **kw)

            rest.mark = mark  # type: ignore[method-assign]
            await h.ctl.stall("public", 3)
            await wait_until(lambda: len(reads) >= 2, within=3)
            assert reads[0] == "ETHUSDT", reads

    run(go())
