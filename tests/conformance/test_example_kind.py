"""The conformance kit against the example third-party plugin (from source)."""

from __future__ import annotations

import pytest

from feedctl.testing import FeedContract, FeedHarness

pytestmark = pytest.mark.integration


class TestExampleExchange(FeedContract):
    @pytest.fixture
    def feedctl_harness(self, example_on_path: None) -> FeedHarness:
        from feedctl_example_exchange.testing import ExampleHarness

        return ExampleHarness()
