"""The audit's comparison (pure) and the endpoint check at start."""

from __future__ import annotations

from decimal import Decimal

import pytest

from feedctl import (
    AccountSettings,
    Category,
    Endpoints,
    FatalFeedError,
    FeedContext,
    Position,
    PositionBook,
    PositionKey,
    PositionUpdate,
    Side,
)
from feedctl.plugins.binance_usdm.audit import audit_diff, without
from feedctl.plugins.binance_usdm.config import BinanceEndpoints
from feedctl.plugins.binance_usdm.feed import endpoints_of

pytestmark = pytest.mark.unit
KEY = PositionKey(Category.LINEAR, "BTCUSDT", 0)
AS_OF = 1_000_000


def pos(size: str, ms: int) -> Position:
    return Position(exchange="binanceusdm", account="a", feed="f", category=Category.LINEAR,
                    symbol="BTCUSDT", side=Side.LONG, size=Decimal(size),
                    entry_price=Decimal("100"), exchange_ms=ms, received_ns=1)


def row(size: str, ms: int) -> PositionUpdate:
    return PositionUpdate(symbol="BTCUSDT", side=Side.LONG, size=Decimal(size),
                          entry_price=Decimal("100"), exchange_ms=ms)


def test_a_size_difference_is_a_mismatch() -> None:
    diffs, young = audit_diff({KEY: pos("1", 1000)}, [row("2", 1000)], AS_OF, {})
    assert list(diffs) == [str(KEY)] and "size book=1 exchange=2" in diffs[str(KEY)]
    assert young == set()


def test_a_position_the_exchange_lacks_is_a_mismatch() -> None:
    diffs, _ = audit_diff({KEY: pos("1", 1000)}, [], AS_OF, {})
    assert "flat on the exchange" in diffs[str(KEY)]


def test_keys_pushed_or_changed_just_before_the_snapshot_are_not_judged() -> None:
    assert audit_diff({KEY: pos("1", 1000)}, [], AS_OF, {KEY: AS_OF - 500}) == ({}, {KEY})
    assert audit_diff({}, [row("1", AS_OF - 10)], AS_OF, {}) == ({}, {KEY})


def test_young_keys_keep_the_books_state_in_a_repair() -> None:
    kept = without([row("2", AS_OF)], {KEY: pos("1", AS_OF - 1)}, {KEY})
    assert [(u.key, u.size) for u in kept] == [(KEY, Decimal("1"))]


def _ctx(endpoints: object) -> FeedContext:
    book = PositionBook(exchange="binanceusdm", account="a", feed="f")
    return FeedContext(name="f", kind="binance_usdm", role=None, account=AccountSettings(),
                       endpoints=endpoints, book=book, profile="live")  # type: ignore[arg-type]


def test_the_kinds_endpoints_are_taken_as_they_are() -> None:
    eps = BinanceEndpoints(rest="http://h", market_ws="ws://h/market", private_ws="ws://h/private")
    assert endpoints_of(_ctx(eps)) is eps


def test_endpoints_without_the_binance_names_are_a_named_error() -> None:
    with pytest.raises(FatalFeedError, match="FEEDCTL_LIVE__ENDPOINTS__MARKET_WS"):
        endpoints_of(_ctx(Endpoints()))
