"""The conformance kit itself: a conformant in-memory feed passes it, and each broken
variant fails it with a message that names the broken duty."""

from __future__ import annotations

import re
from decimal import Decimal
from typing import Any, cast

import pytest

from feedctl import EventKind, Position, PositionEvent, Side
from feedctl.testing import (
    ContractError,
    FeedContract,
    FeedHarness,
    decimal_problems,
    duplicate_problems,
    secret_problems,
)
from feedctl.testing.fake_exchange import FAKE, FakeHarness

pytestmark = pytest.mark.unit


class TestConformantFakeFeed(FeedContract):
    """The whole suite against the well-behaved in-memory feed."""

    @pytest.fixture
    def feedctl_harness(self) -> FeedHarness:
        return FakeHarness()


BROKEN = [
    ("healthy_early", "test_reaches_healthy_after_the_snapshot",
     "the feed said healthy before its book held BTCUSDT"),
    ("no_resync", "test_resync_after_outage",
     "when it said healthy again the book held BTCUSDT long 0.01"),
    ("stays_healthy", "test_outage_is_reported_and_recovered",
     "waiting for a non-healthy state during the outage"),
    ("stale_replay", "test_lifecycle_open_add_close", "'closed' for BTCUSDT"),
    ("leak_task", "test_cancellation_is_clean",
     "task left pending after the feed was cancelled: forgotten"),
    ("swallow_cancel", "test_cancellation_is_clean",
     "run() returned normally when cancelled: it must re-raise CancelledError"),
    ("unclosed_socket", "test_cancellation_is_clean", "unclosed resource: unclosed <socket"),
    ("secret_in_details", "test_no_secrets_in_reprs_or_logs",
     "the API secret appears in details()"),
    ("logs_secret", "test_no_secrets_in_reprs_or_logs",
     "the API key appears in log record"),
]


class _Config:
    @staticmethod
    def getoption(name: str, default: Any = None) -> Any:
        return default


class _Request:
    """Just enough of pytest's FixtureRequest for FeedContract.run()."""

    config = _Config()


REQUEST = cast(pytest.FixtureRequest, _Request())


@pytest.mark.parametrize(("bug", "test", "message"), BROKEN, ids=[b[0] for b in BROKEN])
def test_the_kit_names_the_broken_duty(bug: Any, test: str, message: str) -> None:
    method = getattr(FeedContract(), test)
    with pytest.raises(AssertionError) as failure:
        method(FakeHarness(bug), REQUEST)
    assert message in str(failure.value)


def test_a_kind_for_another_api_version_fails_the_kind_test() -> None:
    class Old(FakeHarness):
        kind = FAKE.__class__(**{**FAKE.__dict__, "api_version": 0})

    expected = re.escape("declares plugin API 0; this feedctl has 1")
    with pytest.raises(AssertionError, match=expected):
        FeedContract().test_kind_is_well_formed(Old())


def test_a_factory_that_returns_no_feed_fails_with_its_type() -> None:
    class NoFeed(FakeHarness):
        kind = FAKE.__class__(**{**FAKE.__dict__, "factory": lambda ctx, s: {"not": "a feed"}})

    with pytest.raises(ContractError, match=re.escape(
            "the factory of feed kind 'fake' returned dict, not a feedctl.Feed")):
        FeedContract().test_lifecycle_open_add_close(NoFeed(), REQUEST)


def test_a_harness_that_is_not_a_feed_harness_is_refused() -> None:
    with pytest.raises(ContractError, match=re.escape("returned 'oops', not a feedctl.testing")):
        FeedContract().test_lifecycle_open_add_close("oops", REQUEST)  # type: ignore[arg-type]


def test_resync_claimed_without_outage_actions_fails() -> None:
    class NoOutage(FakeHarness):
        begin_outage = FeedHarness.begin_outage
        end_outage = FeedHarness.end_outage

    expected = re.escape("claims 'resync', but NoOutage cannot cut it off")
    with pytest.raises(ContractError, match=expected):
        FeedContract().test_resync_after_outage(NoOutage(), REQUEST)


def _event(kind: EventKind, seq: int, **fields: Any) -> PositionEvent:
    values: dict[str, Any] = dict(
        exchange="x", account="a", feed="f", category="linear", symbol="BTCUSDT",
        position_idx=0, side=Side.LONG, size=Decimal(1), entry_price=Decimal(100),
        mark_price=None, unrealised_pnl=None, leverage=None, liq_price=None,
        take_profit=None, stop_loss=None, trailing_stop=None, received_ns=0)
    pos = Position.model_construct(**{**values, **fields})
    return PositionEvent.model_construct(kind=kind, feed="f", position=pos, seq=seq)


def test_pure_checks_report_floats_duplicates_and_secrets() -> None:
    events = [_event(EventKind.OPENED, 1), _event(EventKind.OPENED, 2, mark_price=1.5),
              _event(EventKind.CLOSED, 3), _event(EventKind.CLOSED, 4)]
    assert decimal_problems(events) == ["opened BTCUSDT: mark_price is float 1.5, not Decimal"]
    assert duplicate_problems(events) == [
        "duplicate opened for linear:BTCUSDT:0 (event #2)",
        "closed for linear:BTCUSDT:0, which was not open (event #4)"]
    found = secret_problems({"repr(x)": "<X key=abcd1234>"}, {"the API key": "abcd1234"})
    assert found == ["the API key appears in repr(x): '<X key=<SECRET>>'"]
