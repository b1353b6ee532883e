"""``feedctl run``'s end of run (framework/cli_run.py), in process."""

from __future__ import annotations

import asyncio
import re
import sys
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest

from feedctl import Feed, FeedKind, FeedState, PositionUpdate, Side, hookimpl
from feedctl.cli_run import run_plan
from feedctl.manager import build_plugin_manager
from feedctl.plan import build_plan
from tests.conftest import run_async

pytestmark = pytest.mark.unit


class ChurnFeed(Feed):
    """Opens and closes a position on every turn of the loop, until cancelled: events
    are delivered at any moment of the run's end."""

    async def run(self) -> None:
        self.ctx.set_state(FeedState.HEALTHY, reason="resync_done")
        seq = 0
        while True:
            seq += 1
            self.ctx.apply(PositionUpdate(symbol="BTCUSDT", side=Side.LONG, size=Decimal(1),
                                          entry_price=Decimal(100), seq=seq, exchange_ms=seq))
            await asyncio.sleep(0)
            seq += 1
            self.ctx.apply(PositionUpdate(symbol="BTCUSDT", side=None, size=Decimal(0),
                                          seq=seq, exchange_ms=seq))
            await asyncio.sleep(0.001)


@hookimpl
def feedctl_session_stopping(session: Any) -> Any:
    """A consumer that takes a moment to stop (a Redis publisher's lease release): the
    feeds deliver meanwhile."""
    return asyncio.sleep(0.05)


@hookimpl
def feedctl_feed_kinds(register: Any) -> None:
    register(FeedKind("churn", ChurnFeed, requires_credentials=False, exchange="churn"))


def test_the_summary_counts_every_lifecycle_the_output_printed(
        clean_env: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """The summary was taken before the session stopped, and what it delivered while
    stopping was printed but not counted ("closed 0" under a printed close)."""
    (clean_env / "settings.toml").write_text(
        "[t.account]\nexchange = 'churn'\n[t.feeds.c]\nkind = 'churn'\nrole = 'primary'\n")
    pm = build_plugin_manager([sys.modules[__name__]], load_entrypoints=False)
    plan = build_plan("t", settings_path=clean_env / "settings.toml", pm=pm)
    code = run_async(run_plan(plan, 0.5, "jsonl"), 20)
    out = capsys.readouterr()
    assert int(code) == 0, out.err
    printed = {k: out.out.count(f'"kind":"{k}"') for k in ("opened", "closed")}
    said = re.search(r"lifecycles delivered: opened (\d+), changed \d+, closed (\d+)", out.err)
    assert said is not None, out.err
    assert printed["opened"] > 10
    assert (int(said.group(1)), int(said.group(2))) == (printed["opened"], printed["closed"])


def _price_event(feed: str, mark: str, pnl: str) -> Any:
    from feedctl import Category, EventKind, Position, PositionEvent

    pos = Position(exchange="bybit", account="main", feed=feed, category=Category.LINEAR,
                   symbol="BTCUSDT", side=Side.SHORT, size=Decimal("0.007"),
                   entry_price=Decimal("64980.8"), mark_price=Decimal(mark),
                   unrealised_pnl=Decimal(pnl), received_ns=1)
    return PositionEvent(kind=EventKind.OPENED, feed=feed, position=pos)


def test_line_output_shows_amounts_to_the_instrument_whatever_the_feed() -> None:
    """Point 9, off a terminal: the streaming feed sent 64745.80, the poller 64745.8 and
    the book's PnL had four places: one column, one format (the tick 0.10, the settle coin)."""
    import io

    from feedctl.output import TextPrinter

    known = {"linear:BTCUSDT": {"tick_size": "0.10", "qty_step": "0.001",
                                "settle_coin": "USDT"}}
    out = io.StringIO()
    printer = TextPrinter(out, instruments=lambda: known)
    printer(_price_event("bybit_hybrid", "64745.80", "1.6450"))
    printer(_price_event("rest_polling", "64745.8", "1.645"))
    first, second = (line.split(" ", 1)[1] for line in out.getvalue().splitlines())
    assert "mark=64745.8 upnl=1.64 USDT feed=bybit_hybrid" in first
    assert first.replace("bybit_hybrid", "rest_polling") == second
    unknown = io.StringIO()  # no feed described the instrument yet: as sent
    TextPrinter(unknown, instruments=dict)(_price_event("rest_polling", "64745.8", "1.645"))
    assert "mark=64745.8 upnl=1.6450 feed" in unknown.getvalue()
