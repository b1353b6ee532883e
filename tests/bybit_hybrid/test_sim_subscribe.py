"""A public subscribe that a stall swallowed or answered late, and the reconnect pace of
a public socket that had proved itself (docs/reliability.md, F25)."""

from __future__ import annotations

import asyncio

import pytest

from feedctl import Category

from .conftest import harness, run, wait_until

pytestmark = pytest.mark.integration

# no ping falls inside the stalls below and nothing is declared stale meanwhile: what
# happens to the subscribe alone decides whether the socket is kept
QUIET = dict(stale_after=3.0, ping_interval=5.0, pong_timeout=5.0, request_timeout=2.0)


def test_a_subscribe_a_stall_swallowed_is_sent_again_on_the_same_socket() -> None:
    async def go() -> None:
        async with harness(["BTCUSDT", "ETHUSDT"], **QUIET) as h:
            await h.ctl.place_order("BTCUSDT", "Buy", "0.01")
            await wait_until(lambda: h.prices("BTCUSDT"))
            await h.ctl.stall("public", 1.0)
            await h.ctl.place_order("ETHUSDT", "Buy", "0.1")  # subscribed into the stall
            await wait_until(lambda: h.prices("ETHUSDT"), 3)  # a ticker, not the push's mark
            # the first send was dropped; a later one, on the same socket, was answered
            # well before the 2 s request timeout would have replaced the socket
            assert h.ctx.counters.get("subscribes_resent", 0) >= 1
            assert h.ctx.counters.get("reconnects", 0) == 0

    run(go())


def test_a_subscribe_answered_late_then_already_subscribed_counts_as_subscribed() -> None:
    async def go() -> None:
        async with harness(["BTCUSDT", "ETHUSDT"], **QUIET) as h:
            await h.ctl.place_order("BTCUSDT", "Buy", "0.01")
            await wait_until(lambda: h.prices("BTCUSDT"))
            await h.ctl.delay("public", 1200, 1.5)  # every public frame 1.2 s late
            await h.ctl.place_order("ETHUSDT", "Buy", "0.1")
            # the resend is answered "already subscribed" (the first got through): the
            # topic counts as subscribed, not as a rejected symbol without a price
            await wait_until(lambda: h.ctx.counters.get("subscribes_resent", 0) >= 1, 3)
            await wait_until(lambda: h.prices("ETHUSDT"), 4)
            await asyncio.sleep(1.5)  # the late answers have all come in
            assert h.ctx.counters.get("subscribe_rejected", 0) == 0
            # the answers to the sends given up on came, and are known as late, not
            # reported as unsolicited errors
            assert h.ctx.counters.get("late_answers", 0) >= 1
            assert h.ctx.counters.get("rejected_requests", 0) == 0
            assert h.ctx.counters.get("reconnects", 0) == 0
            assert not h.ctx.status.stale_symbols

    run(go())


def test_a_public_socket_that_proved_itself_reconnects_at_the_base_backoff() -> None:
    async def go() -> None:
        async with harness(["BTCUSDT"], share_public=False, stale_after=0.3,
                           backoff_base=0.05, backoff_cap=5.0) as h:
            await h.ctl.place_order("BTCUSDT", "Buy", "0.01")
            stream = h.feed.publics[Category.LINEAR]
            for n in range(1, 5):
                await wait_until(lambda: len(h.prices("BTCUSDT")) > 0)
                await asyncio.sleep(0.4)  # subscribed, tickers flowing, lived stale_after
                await h.ctl.drop("public")
                await wait_until(lambda n=n: h.ctx.counters.get("reconnects", 0) >= n)
                # each drop of a proven socket starts the backoff over: the 4th waits
                # at most base, not base * 2**3
                assert stream._backoff.attempt == 1  # type: ignore[attr-defined]
                h.events.clear()

    run(go())
