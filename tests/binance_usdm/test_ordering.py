"""Two states of one position in one millisecond: Binance's pushes carry no sequence
number, and a close and a reopen (or two ACCOUNT_UPDATEs of one engine call) can share
``T`` and ``E``. The feed's seq orders them by (T, E, arrival) so that the book takes
the second for a new state, not for a copy of the first (parse.push_seq)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from feedctl import EventKind, PositionBook, PositionUpdate
from feedctl.plugins.binance_usdm.parse import account_update, position_rows

pytestmark = pytest.mark.unit
DATA = Path(__file__).parent / "data"
T = 1_796_000_000_000


def push(amount: str, *, t: int = T, e: int = T + 1) -> dict[str, Any]:
    msg = json.loads((DATA / "account_update.json").read_text())
    msg["E"], msg["T"] = e, t
    msg["a"]["P"] = [{"s": "ETHUSDT", "pa": amount, "ep": "3000.5" if amount != "0" else "0",
                      "bep": "0", "cr": "0", "up": "0", "mt": "cross", "iw": "0",
                      "ps": "BOTH"}]
    return msg


def states(*msgs: dict[str, Any]) -> list[PositionUpdate]:
    out: list[PositionUpdate] = []
    for n, msg in enumerate(msgs, start=1):
        updates, problems, _ = account_update(msg, 1, {}, arrival=n)
        assert not problems
        out.extend(updates)
    return out


def kinds(book: PositionBook, updates: list[PositionUpdate]) -> list[EventKind]:
    return [ev.kind for u in updates for ev in book.apply(u)]


def test_a_close_and_a_reopen_in_one_millisecond_are_both_delivered() -> None:
    book = PositionBook(exchange="binanceusdm", account="a", feed="binance_usdm")
    assert kinds(book, states(push("1", t=T - 5, e=T - 4))) == [EventKind.OPENED]
    got = kinds(book, states(push("0"), push("2")))
    assert got == [EventKind.CLOSED, EventKind.OPENED]


def test_a_copy_of_a_push_delivered_again_makes_no_event() -> None:
    book = PositionBook(exchange="binanceusdm", account="a", feed="binance_usdm")
    first, again = states(push("1"), push("1"))
    assert kinds(book, [first]) == [EventKind.OPENED]
    assert kinds(book, [again]) == []


def test_a_push_of_an_older_millisecond_arriving_late_is_dropped() -> None:
    book = PositionBook(exchange="binanceusdm", account="a", feed="binance_usdm")
    late, new = states(push("1", t=T - 1, e=T), push("2"))
    assert kinds(book, [new]) == [EventKind.OPENED]
    assert kinds(book, [late]) == []
    assert book.positions[late.key].size == 2


def test_a_snapshot_row_of_a_millisecond_before_it_outranks_that_millisecond_s_push(
        ) -> None:
    book = PositionBook(exchange="binanceusdm", account="a", feed="binance_usdm")
    row = {"symbol": "ETHUSDT", "positionSide": "BOTH", "positionAmt": "3",
           "entryPrice": "3001", "markPrice": "3002", "liquidationPrice": "0",
           "updateTime": T, "leverage": "10"}
    (snap,), problems = position_rows([row], 1, hedge=False, leverage={}, as_of_ms=T + 20)
    assert not problems
    (buffered,) = states(push("2"))  # applied after the snapshot, as a resync does
    assert kinds(book, [snap]) == [EventKind.OPENED]
    assert kinds(book, [buffered]) == []
    assert book.positions[snap.key].size == 3
