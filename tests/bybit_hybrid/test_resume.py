"""Where a resume from what consumers last knew reads fills from (recovery.resume_since)."""

from __future__ import annotations

import time
from decimal import Decimal

import pytest

from feedctl import PositionUpdate, PriorState, Side
from feedctl.plugins.bybit_hybrid.recovery import RESUME_LOOKBACK_MS, RESUME_MAX_MS, FillReplay

pytestmark = pytest.mark.unit


def state(symbol: str, ms: int, open_: bool = True) -> PositionUpdate:
    return PositionUpdate(symbol=symbol, side=Side.LONG if open_ else None,
                          size=Decimal("0.1") if open_ else Decimal(0), seq=3, exchange_ms=ms)


def test_from_the_oldest_known_state_or_the_lookback_before_the_last_write() -> None:
    now = int(time.time() * 1000)
    old = now - 3_600_000  # a position open for an hour: its fills since then
    prior = PriorState({s.key: s for s in (state("BTCUSDT", old),
                                           state("ETHUSDT", now - 5_000, open_=False))},
                       as_of_ms=now - 1_000)
    assert FillReplay.resume_since(prior) == old
    recent = PriorState({}, as_of_ms=now - 1_000)  # keys never told: the lookback
    assert FillReplay.resume_since(recent) == now - 1_000 - RESUME_LOOKBACK_MS


def test_never_further_back_than_the_cap() -> None:
    now = int(time.time() * 1000)
    ancient = PriorState({state("BTCUSDT", 0).key: state("BTCUSDT", 0)}, as_of_ms=now)
    since = FillReplay.resume_since(ancient)
    assert abs(since - (now - RESUME_MAX_MS)) <= 1_000
