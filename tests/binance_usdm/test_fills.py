"""The fills a position push reports, against the push (fills.py, pure): which pushes
follow a lost state and which are not judged."""

from __future__ import annotations

from decimal import Decimal

import pytest

from feedctl import Category, PositionKey
from feedctl.plugins.binance_usdm.fills import FillLedger

pytestmark = pytest.mark.unit
D = Decimal
KEY = PositionKey(Category.LINEAR, "ETHUSDT", 0)


def test_a_push_its_fills_account_for_is_not_a_gap() -> None:
    ledger = FillLedger()
    ledger.fill(KEY, 1_000, D("-2"), last_push_ms=900)
    assert ledger.gap(KEY, 1_000, D("-1"), D("-3")) is None


def test_a_push_whose_fills_make_another_amount_follows_a_lost_state() -> None:
    """Short 1 in the book, a fill selling 1, a push showing short 3: the close and a
    reopen of 2 were lost before it."""
    ledger = FillLedger()
    ledger.fill(KEY, 1_000, D("-1"), last_push_ms=900)
    assert ledger.gap(KEY, 1_000, D("-1"), D("-3")) is not None


def test_fills_through_flat_to_a_reopen_follow_a_lost_close() -> None:
    """The close's push lost but not its fill: the fills close and reopen, the push
    shows the reopened amount - the amounts agree, the flat between them does not."""
    ledger = FillLedger()
    ledger.fill(KEY, 1_000, D("1"), last_push_ms=900)
    ledger.fill(KEY, 1_400, D("-2"), last_push_ms=900)
    assert ledger.gap(KEY, 1_400, D("-1"), D("-2")) is not None


def test_a_fill_whose_push_came_first_is_not_counted() -> None:
    ledger = FillLedger()
    ledger.fill(KEY, 1_000, D("-1"), last_push_ms=1_000)
    assert ledger.gap(KEY, 1_500, D("-2"), D("-2")) is None


def test_a_push_is_judged_by_the_fills_at_or_before_its_time_only() -> None:
    ledger = FillLedger()
    ledger.fill(KEY, 1_000, D("-1"), last_push_ms=900)
    ledger.fill(KEY, 2_000, D("-1"), last_push_ms=900)
    assert ledger.gap(KEY, 1_000, D("0"), D("-1")) is None
    assert ledger.gap(KEY, 2_000, D("-1"), D("-2")) is None
