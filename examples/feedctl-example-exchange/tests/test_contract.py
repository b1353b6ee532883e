"""feedctl's feed contract, run against example_exchange (and the embedded simulator)."""

from __future__ import annotations

from feedctl.testing import FeedContract


class TestExampleExchange(FeedContract):
    """Every test of the kit; the harness comes from conftest.py's feedctl_harness."""
