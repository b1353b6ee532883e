"""The conformance kit (feedctl.testing), unchanged, against binance_usdm on the embedded
simulator's Binance personality: per-symbol mark streams and the all-market stream."""

from __future__ import annotations

import pytest

from feedctl.testing import FeedContract, FeedHarness

from .sim_harness import SimBinanceHarness

pytestmark = pytest.mark.integration

class TestBinanceUsdmOnTheSimulator(FeedContract):
    @pytest.fixture
    def feedctl_harness(self) -> FeedHarness:
        return SimBinanceHarness()

class _AllMarketHarness(SimBinanceHarness):
    settings = {**SimBinanceHarness.settings, "mark_stream": "all"}

class TestBinanceUsdmAllMarketStream(FeedContract):
    """The same contract with marks from ``!markPrice@arr@1s``."""

    @pytest.fixture
    def feedctl_harness(self) -> FeedHarness:
        return _AllMarketHarness()
