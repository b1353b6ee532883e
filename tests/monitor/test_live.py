"""The live terminal view: its renderables, in-process, and drawn on a real pseudo-terminal."""

from __future__ import annotations

import asyncio
import contextlib
import fcntl
import io
import os
import pty
import re
import select
import struct
import termios
import time
from pathlib import Path
from typing import Any

import pytest
from rich.console import Console

from feedctl import RouteEvent
from feedctl.manager import FeedctlPluginManager
from feedctl.monitor import live_view
from feedctl.monitor.live import LiveModel
from feedctl.monitor.render import dashboard
from feedctl.session import Session
from tests.conftest import run_async
from tests.monitor.conftest import start_app, wait_for, write_settings
from tests.monitor.test_events import TrailingStop

ANSI = re.compile(rb"\x1b\[[0-9;?]*[A-Za-z]|\x1b[()][A-Z0-9]|\x1b[=>]")

POSITION = {"symbol": "ETHUSDT", "side": "short", "size": "2", "entry_price": "3000",
            "mark_price": "2990.5", "unrealised_pnl": "19.0", "category": "linear",
            "position_idx": 0, "feed": "bybit_hybrid", "received_ns": 1,
            "mark_received_ns": None}
STATUS = {"profile": "mainnet", "mode": "parallel",
          "router": {"active": "bybit_hybrid"},
          "feeds": {"bybit_hybrid": {"state": "healthy", "synced_ns": 1}},
          "validation": {"rest_polling": {"shadow": "rest_polling", "agreement": 0.98}}}
ROWS = [{"feed": "bybit_hybrid", "role": "primary", "state": "healthy", "active": True,
         "rate": 10.0, "messages": 120, "latency_ms_p50": 3.21, "latency_ms_p99": 9.9,
         "reconnects": 2, "detail": "in sync", "stale_symbols": []},
        {"feed": "rest_polling", "role": "shadow", "state": "degraded", "rate": 0.1,
         "messages": 4, "latency_ms_p50": None, "latency_ms_p99": None, "reconnects": 0,
         "detail": "rate limited", "stale_symbols": ["BTCUSDT"]}]


def draw(renderable: Any, width: int = 140) -> str:
    console = Console(file=io.StringIO(), width=width, record=True, color_system=None)
    console.print(renderable)
    return console.export_text()


@pytest.mark.unit
def test_the_view_shows_positions_feeds_validation_and_events() -> None:
    notable = [{"text": "route bybit_hybrid -> rest_polling: failover", "at_ns": None}]
    text = draw(dashboard(STATUS, [POSITION], ROWS, notable))
    assert "profile=mainnet mode=parallel active=bybit_hybrid" in text
    for header in ("Symbol", "Side", "Size", "Entry", "Mark", "uPnL", "Price age"):
        assert header in text
    assert re.search(r"ETHUSDT\s+│\s+short\s+│\s+2\s+│\s+3000\s+│\s+2990\.5\s+│\s+19\.0", text)
    for header in ("Role", "State", "msg/s", "p50 ms", "p99 ms", "Reconnects"):
        assert header in text
    assert re.search(r"bybit_hybrid \*\s+│ primary\s+│ healthy\s+│\s+10\.0\s+│\s+120\s+│"
                     r"\s+3\.2\s+│\s+9\.9\s+│\s+2", text)
    assert "rate limited stale: BTCUSDT" in text
    assert "rest_polling agrees 98.0%" in text
    assert "route bybit_hybrid -> rest_polling: failover" in text


@pytest.mark.unit
def test_the_view_says_so_when_there_is_nothing_to_show() -> None:
    synced = {"profile": "p", "mode": "rest", "router": {"active": "rest_polling"},
              "validation": None,
              "feeds": {"rest_polling": {"state": "healthy", "synced_ns": 1}}}
    text = draw(dashboard(synced, [], [], []))
    assert "no open positions" in text and "none yet" in text
    assert "no shadow feed is validated" in text
    assert "unknown" not in text


@pytest.mark.unit
def test_a_feed_that_never_synced_shows_positions_unknown_not_flat() -> None:
    never = {"profile": "p", "mode": "production", "router": {"active": "bybit_hybrid"},
             "validation": None,
             "feeds": {"bybit_hybrid": {"state": "connecting", "synced_ns": None,
                                        "detail": "REST unreachable"}}}
    text = draw(dashboard(never, [], [], []))
    assert "no open positions" not in text
    assert ("positions unknown: not synced yet (bybit_hybrid: connecting: REST unreachable)"
            in text)


@pytest.mark.unit
def test_only_failovers_and_trailing_stops_are_listed_as_events() -> None:
    model = LiveModel(session=None)  # type: ignore[arg-type]
    model.on_event(RouteEvent(active="b", previous="a", reason="failover: a down 1.0s"))
    model.on_event(TrailingStop(action="triggered", symbol="BTCUSDT", stop_price="64000"))
    model.on_event(object())
    texts = [n["text"] for n in model.notable]
    assert texts == ["route a -> b: failover: a down 1.0s",
                     "trailing stop triggered BTCUSDT: stop 64000"]


@pytest.mark.integration
def test_live_view_redraws_until_cancelled_and_cleans_up(
    clean_env: Path, mpm: FeedctlPluginManager
) -> None:
    out = io.StringIO()
    console = Console(file=out, width=140, force_terminal=True, color_system=None)

    async def main() -> None:
        async with Session("t", settings_path=write_settings(clean_env),
                           plugin_manager=mpm) as session:
            task = asyncio.create_task(live_view(session, refresh=0.05, console=console))
            await wait_for(lambda: "BTCUSDT" in out.getvalue())
            await asyncio.sleep(0.3)
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
            # its stream is gone
            assert [c["consumer"] for c in session.status()["consumers"]] == []

    run_async(main())
    marks = set(re.findall(r"BTCUSDT\s+│\s+long\s+│\s+0\.500\s+│\s+65000\.0\s+│\s+(\d+\.\d)\s",
                           out.getvalue()))
    assert len(marks) > 1  # redrawn with moving prices


@pytest.mark.integration
@pytest.mark.slow
def test_live_view_on_a_real_pseudo_terminal(clean_env: Path) -> None:
    write_settings(clean_env)
    master, slave = pty.openpty()
    fcntl.ioctl(slave, termios.TIOCSWINSZ, struct.pack("HHHH", 40, 140, 0, 0))
    proc = start_app(clean_env, "--live", "--monitor", str(clean_env / "url"), "--for", "4",
                     env={"TERM": "xterm-256color"},
                     stdin=slave, stdout=slave, stderr=slave, close_fds=True)
    os.close(slave)
    raw = b""
    deadline = time.monotonic() + 20
    try:
        while time.monotonic() < deadline:
            ready, _, _ = select.select([master], [], [], 0.2)
            if ready:
                try:
                    chunk = os.read(master, 65536)
                except OSError:  # EIO: the child closed the terminal
                    break
                if not chunk:
                    break
                raw += chunk
            elif proc.poll() is not None:
                break
        code = proc.wait(10)
    finally:
        os.close(master)
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    text = ANSI.sub(b"", raw).decode("utf-8", "replace")
    assert code == 0, text[-2000:]
    assert "Traceback" not in text
    assert "Positions" in text and "Symbol" in text and "Price age" in text
    assert "Feeds" in text and "healthy" in text
    assert f"dashboard {(clean_env / 'url').read_text()}" in text
    marks = set(re.findall(
        r"BTCUSDT\s+│\s+long\s+│\s+0\.500\s+│\s+65000\.0\s+│\s+(\d+\.\d)\s", text))
    assert len(marks) > 2, marks  # the mark price changed on screen
    assert "\x1b[" in raw.decode("utf-8", "replace")  # it drew in place, as a terminal UI


@pytest.mark.unit
def test_a_real_trailing_stop_event_reads_as_one_short_line() -> None:
    from decimal import Decimal

    engine = pytest.importorskip("feedctl.plugins.trailing_stop.engine")
    ev = engine.TrailingStopEvent(
        action="activated", feed="bybit_hybrid", symbol="BTCUSDT", side="long",
        position_idx=0, lifecycle=1, entry_price=Decimal("64000"),
        mark_price=Decimal("64700"), best_price=Decimal("65000"), stop_price=Decimal("64350"),
        activation_price=Decimal("64640"), distance=Decimal("650"), exchange_ms=1,
        decided_ns=2, price_age_ms=3.0)
    model = LiveModel(session=None)  # type: ignore[arg-type]
    model.on_event(ev)
    assert [n["text"] for n in model.notable] == [
        "trailing stop activated BTCUSDT long: stop 64350 (mark 64700, best 65000) [dry run]"]


INSTRUMENTS = {"linear:ETHUSDT": {"tick_size": "0.01", "qty_step": "0.001",
                                  "settle_coin": "USDT"}}
FULL = {**POSITION, "size": "2", "entry_price": "3000", "mark_price": "2990.5",
        "unrealised_pnl": "19.0", "leverage": "10", "liq_price": "3290.123"}


@pytest.mark.unit
def test_amounts_are_shown_to_the_instruments_tick_with_coin_and_total() -> None:
    other = {**FULL, "symbol": "ETHUSDT", "position_idx": 1, "unrealised_pnl": "-4.5"}
    text = draw(dashboard(STATUS, [FULL, other], ROWS, [], instruments=INSTRUMENTS))
    assert re.search(r"ETHUSDT\s+│ short\s+│\s+2\.000\s+│\s+3000\.00\s+│\s+2990\.50\s+│"
                     r"\s+19\.00 USDT\s+│\s+10x\s+│\s+3290\.12", text), text
    assert re.search(r"total\s.*14\.50 USDT", text)  # one total per settle coin


@pytest.mark.unit
def test_at_80_columns_the_view_keeps_what_a_trader_reads_first() -> None:
    text = draw(dashboard(STATUS, [FULL], ROWS, [{"text": "route a -> b: " + "x" * 200,
                                                  "at_ns": None}],
                          instruments=INSTRUMENTS), width=80)
    assert max(len(line) for line in text.splitlines()) <= 80
    for column in ("Symbol", "Side", "Size", "Mark", "uPnL", "Age"):
        assert column in text, column
    assert re.search(r"ETHUSDT\s+│ short\s+│\s+2\.000\s+│\s+2990\.50\s+│\s+19\.00 USDT", text)
    assert "bybit_hybrid *" in text and "rest_polling" in text  # names whole
    assert "healthy" in text and "degraded" in text and "primary" in text


@pytest.mark.unit
def test_a_validation_with_nothing_compared_yet_is_a_readable_line() -> None:
    """Before the first compared sample (canary: the poller's first poll) the report's
    agreement is None, and the view printed the report's raw dict."""
    from feedctl import PositionBook
    from feedctl.settings import ValidationSettings
    from feedctl.validator import Validator

    books = [PositionBook(exchange="bybit", account="main", feed=f, emit=lambda e: None)
             for f in ("rest_polling", "bybit_hybrid")]
    summary = Validator(books[0], books[1:], ValidationSettings()).summary()
    assert summary["bybit_hybrid"]["agreement"] is None
    text = draw(dashboard({**STATUS, "validation": summary}, [POSITION], ROWS, []), width=80)
    assert "{" not in text and "'agreeing'" not in text
    assert "bybit_hybrid vs rest_polling: agrees" in text and "no difference now" in text
