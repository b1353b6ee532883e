"""The one fixture the feedctl conformance kit needs: a harness for this feed kind."""

from __future__ import annotations

import pytest
from feedctl_example_exchange.testing import ExampleHarness

from feedctl.testing import FeedHarness


@pytest.fixture
def feedctl_harness() -> FeedHarness:
    return ExampleHarness()
