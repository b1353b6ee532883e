"""A planned reconnect that waits for the connection budget's headroom while the socket
it replaces dies: the loss is seen at once, not hidden behind the wait
(docs/reliability.md, F26)."""

from __future__ import annotations

import asyncio

import pytest

from feedctl import FeedState

from .conftest import harness, run, wait_until

pytestmark = pytest.mark.integration

# four new sockets per 300 s: the two the feed opens fill the planned share (half), so
# the planned swap after ~1 s waits minutes for headroom; an unplanned one still may go
WAITING = dict(connections_per_window=4, connection_window=300.0, connection_spacing=0.0,
               max_connection_lifetime=1.0, share_public=False)


def test_a_private_socket_dropped_while_its_planned_successor_waits_is_a_loss_at_once(
) -> None:
    async def go() -> None:
        async with harness(["BTCUSDT"], **WAITING) as h:
            budget = h.feed.connects
            assert budget is not None
            await wait_until(lambda: budget.acquired >= 2, 3)
            await asyncio.sleep(1.2)  # the planned swaps are waiting now
            n = len(h.statuses)
            await h.ctl.drop("private")
            # reported and reconnected (an unplanned socket may use the reserve)
            await wait_until(lambda: ("reconnecting", "reconnect") in h.states()[n:], 3)
            await h.healthy(5)
            before = len(h.events)
            await h.ctl.place_order("BTCUSDT", "Buy", "0.01")
            await wait_until(lambda: any(e.kind.is_lifecycle for e in h.events[before:]), 3)

    run(go())


def test_a_public_socket_dropped_while_its_planned_successor_waits_is_replaced_at_once(
) -> None:
    async def go() -> None:
        async with harness(["BTCUSDT"], **WAITING) as h:
            await h.ctl.place_order("BTCUSDT", "Buy", "0.01")
            await wait_until(lambda: h.prices("BTCUSDT"))
            await asyncio.sleep(1.5)  # the planned swaps are waiting now
            reconnects = h.ctx.counters.get("reconnects", 0)
            await h.ctl.drop("public")
            await wait_until(lambda: h.ctx.counters.get("reconnects", 0) > reconnects, 3)
            await wait_until(lambda: h.ctx.state is FeedState.HEALTHY, 5)
            n = len(h.prices("BTCUSDT"))
            await wait_until(lambda: len(h.prices("BTCUSDT")) > n + 2, 3)

    run(go())
