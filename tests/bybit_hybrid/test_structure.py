"""Inside bybit_hybrid: the streams talk to the feed through the leaf ports module, and
the loss ledger is its own module (issue 15, point 4)."""

from __future__ import annotations

import ast
from decimal import Decimal
from pathlib import Path

import pytest

from feedctl import Category, PositionKey, PositionUpdate, Side
from feedctl.plugins.bybit_hybrid.ledger import LossLedger

pytestmark = pytest.mark.unit
PKG = Path(__file__).resolve().parents[2] / "plugins" / "bybit_hybrid"


def _imports(module: str, runtime_only: bool = True) -> set[str]:
    """The package-relative modules ``module`` imports (outside TYPE_CHECKING blocks)."""
    tree = ast.parse((PKG / f"{module}.py").read_text())
    skip: set[int] = set()
    if runtime_only:
        for node in ast.walk(tree):
            if isinstance(node, ast.If) and "TYPE_CHECKING" in ast.unparse(node.test):
                skip.update(id(n) for n in ast.walk(node))
    return {n.module or "" for n in ast.walk(tree)
            if isinstance(n, ast.ImportFrom) and n.level == 1 and id(n) not in skip}


def test_the_streams_never_import_the_feed() -> None:
    for module in ("private", "public", "ticks", "recovery", "ledger"):
        assert "feed" not in _imports(module, runtime_only=False), module
    assert "ports" in _imports("private") and "ports" in _imports("public")


def test_ports_is_a_leaf_and_the_ledger_is_pure() -> None:
    assert _imports("ports") == set()  # only feedctl at run time
    assert _imports("ledger", runtime_only=False) == set()


def _u(seq: int, ms: int, size: str = "1") -> PositionUpdate:
    return PositionUpdate(category=Category.LINEAR, symbol="BTCUSDT", side=Side.LONG
                          if Decimal(size) else None, size=Decimal(size),
                          entry_price=Decimal(100), seq=seq, exchange_ms=ms)


def test_the_ledger_drops_the_older_of_two_states_sharing_a_seq() -> None:
    ledger = LossLedger()
    assert ledger.admit(_u(5, 2000))  # a leverage change: the fill's seq, a later time
    assert not ledger.admit(_u(5, 1000))  # the fill's own push, arriving last: stale
    assert ledger.admit(_u(6, 1500))  # a newer seq wins whatever its time
    key = PositionKey(Category.LINEAR, "BTCUSDT", 0)
    assert ledger.last_seq[key] == 6 and ledger.last_push_ms[key] == 2000


def test_the_ledger_floor_forgets_states_the_snapshot_accounts_for() -> None:
    ledger = LossLedger()
    key = PositionKey(Category.LINEAR, "BTCUSDT", 0)
    for seq, ms in ((1, 100), (2, 200), (3, 300)):
        ledger.admit(_u(seq, ms))
    assert ledger.lost_states([(key, 2, 250)]) == {}  # seen: not lost
    ledger.note_snapshot([], 250)
    assert set(ledger.seen[key]) == {3} and ledger.fills_floor_ms == 250
    assert ledger.lost_states([(key, 2, 250)]) == {key: {2: 250}}  # forgotten, older
    ledger.note_closed({key}, 400)
    assert ledger.floor_of(key, 0) == 400
