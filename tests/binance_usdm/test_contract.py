"""The conformance kit (feedctl.testing), unchanged, against binance_usdm on the scripted
exchange (to be moved onto the simulator's Binance personality)."""

from __future__ import annotations

import pytest

from feedctl.testing import FeedContract, FeedHarness

from .harness import BinanceHarness

pytestmark = pytest.mark.integration


class TestBinanceUsdm(FeedContract):
    @pytest.fixture
    def feedctl_harness(self) -> FeedHarness:
        return BinanceHarness()


class _AllMarketHarness(BinanceHarness):
    settings = {**BinanceHarness.settings, "mark_stream": "all"}


class TestBinanceUsdmAllMarketStream(FeedContract):
    """The same contract with marks from ``!markPrice@arr@1s``."""

    @pytest.fixture
    def feedctl_harness(self) -> FeedHarness:
        return _AllMarketHarness()
