"""The conformance kit, unchanged, against binance_usdm on the embedded simulator's
Binance personality (skipped until that personality is on this branch)."""

from __future__ import annotations

import pytest

from feedctl.testing import FeedContract, FeedHarness

pytest.importorskip("feedctl.simulator.binance", reason="the simulator's Binance "
                    "personality (branch binsim) is not merged here yet")

from .sim_harness import SimBinanceHarness

pytestmark = pytest.mark.integration


class TestBinanceUsdmOnTheSimulator(FeedContract):
    @pytest.fixture
    def feedctl_harness(self) -> FeedHarness:
        return SimBinanceHarness()
