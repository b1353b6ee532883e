"""The snapshot hash read as what consumers last knew: an open position from its last
event, a flat one from its close, the time of the last write."""

from __future__ import annotations

from decimal import Decimal

import pytest

from feedctl import EventKind, Position, PositionEvent, PositionKey, Side
from feedctl.plugins.redis_bus.prior import prior_of

pytestmark = pytest.mark.unit


def body(kind: EventKind, symbol: str, seq: int, ms: int) -> str:
    pos = Position(exchange="bybit", account="main", feed="bybit_hybrid", symbol=symbol,
                   category="linear", side=Side.LONG, size=Decimal("0.2"),
                   entry_price=Decimal(100), leverage=Decimal(5), seq=seq, exchange_ms=ms,
                   received_ns=1)
    return PositionEvent(kind=kind, feed="bybit_hybrid", position=pos).model_dump_json()


def test_open_and_closed_keys_become_prior_states_with_their_seq_and_time() -> None:
    snap = {"_last": "1700000005000-2", "_exchange": "bybit", "lc:linear:BTCUSDT:0": "2",
            "p:linear:BTCUSDT:0": body(EventKind.OPENED, "BTCUSDT", 11, 1700000004000),
            "c:linear:ETHUSDT:0": body(EventKind.CLOSED, "ETHUSDT", 5, 1700000003000),
            "p:linear:SOLUSDT:0": "not json"}
    prior = prior_of(snap)
    assert prior.as_of_ms == 1700000005000
    btc = prior.positions[PositionKey("linear", "BTCUSDT", 0)]
    eth = prior.positions[PositionKey("linear", "ETHUSDT", 0)]
    assert (btc.side, btc.size, btc.seq, btc.exchange_ms) == (Side.LONG, Decimal("0.2"), 11,
                                                              1700000004000)
    assert (eth.side, eth.size, eth.seq, eth.exchange_ms) == (None, 0, 5, 1700000003000)
    assert len(prior.positions) == 2  # an unreadable body is left to the resync


def test_a_key_both_closed_and_reopened_is_open() -> None:
    snap = {"p:linear:BTCUSDT:0": body(EventKind.OPENED, "BTCUSDT", 9, 2),
            "c:linear:BTCUSDT:0": body(EventKind.CLOSED, "BTCUSDT", 8, 1)}
    assert prior_of(snap).positions[PositionKey("linear", "BTCUSDT", 0)].size == Decimal("0.2")
    assert prior_of(snap).as_of_ms is None
