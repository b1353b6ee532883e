"""The binance_usdm feed, in a real session, against the personality in hedge mode: the
LONG and SHORT sides of one symbol are two positions (index 1 and 2), each opened and
closed on its own."""

from __future__ import annotations

import asyncio
from decimal import Decimal
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from feedctl import EventKind, PositionEvent, Session

from .conftest import Rest, make_sim, run

pytestmark = pytest.mark.integration


def overrides(sim: Any) -> dict[str, Any]:
    urls = sim.urls
    return {
        "account": {"exchange": "binanceusdm", "api_key": sim.api_key,
                    "api_secret": sim.api_secret, "name": "hedge"},
        "endpoints": {"rest": urls["rest"], "market_ws": urls["market_ws"],
                      "private_ws": urls["private_ws"]},
        "feeds": {"binance_usdm": {"kind": "binance_usdm", "role": "primary"}},
    }


async def next_lifecycle(stream: Any, kind: EventKind) -> PositionEvent:
    async with asyncio.timeout(10):
        async for ev in stream:
            if isinstance(ev, PositionEvent) and ev.kind is kind:
                return ev
    raise AssertionError("the stream ended")


def test_the_feed_delivers_each_hedge_side_as_its_own_position(tmp_path: Path) -> None:
    async def main() -> None:
        settings = tmp_path / "settings.toml"
        settings.write_text("[hedge]\n")
        async with make_sim(mark_fast_interval=0.2) as sim, \
                aiohttp.ClientSession() as http:
            rest = Rest(sim, http)
            await rest.ok("POST", "/fapi/v1/positionSide/dual", {"dualSidePosition": "true"})
            async with Session("hedge", settings_path=settings,
                               overrides=overrides(sim)) as session:
                stream = session.events(name="hedge")
                await rest.market_order("BTCUSDT", "BUY", "0.020", positionSide="LONG")
                long = await next_lifecycle(stream, EventKind.OPENED)
                await rest.market_order("BTCUSDT", "SELL", "0.010", positionSide="SHORT")
                short = await next_lifecycle(stream, EventKind.OPENED)
                assert (long.position.position_idx, long.position.side.value,
                        long.position.size) == (1, "long", Decimal("0.020"))
                assert (short.position.position_idx, short.position.side.value,
                        short.position.size) == (2, "short", Decimal("0.010"))
                await rest.market_order("BTCUSDT", "SELL", "0.020", positionSide="LONG")
                closed = await next_lifecycle(stream, EventKind.CLOSED)
                assert closed.position.position_idx == 1
                book = session.feeds["binance_usdm"].book.positions
                assert [(k.position_idx, p.size) for k, p in book.items()] == [
                    (2, Decimal("0.010"))]
                stream.close()

    run(main(), timeout=60)
