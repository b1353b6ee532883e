"""The conformance kit, unchanged, against binance_usdm on the embedded simulator's
Binance personality."""

from __future__ import annotations

import pytest

from feedctl.testing import FeedContract, FeedHarness

from .sim_harness import SimBinanceHarness

pytestmark = pytest.mark.integration


class TestBinanceUsdmOnTheSimulator(FeedContract):
    @pytest.fixture
    def feedctl_harness(self) -> FeedHarness:
        return SimBinanceHarness()
