"""The conformance kit against the built-in feed kinds (simulator-backed)."""

from __future__ import annotations

import pytest

from feedctl.testing import FeedContract, FeedHarness

from .harnesses import BybitHybridHarness, RestPollingHarness

pytestmark = pytest.mark.integration


class TestBybitHybrid(FeedContract):
    @pytest.fixture
    def feedctl_harness(self) -> FeedHarness:
        return BybitHybridHarness()


class TestRestPolling(FeedContract):
    @pytest.fixture
    def feedctl_harness(self) -> FeedHarness:
        return RestPollingHarness()
