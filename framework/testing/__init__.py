"""feedctl's conformance kit for feed plugins (a pytest plugin and a contract suite).

A plugin author writes one fixture and one class::

    import pytest
    from feedctl.testing import FeedContract, FeedHarness

    @pytest.fixture
    def feedctl_harness() -> FeedHarness:
        return MyExchangeHarness()

    class TestMyFeed(FeedContract):
        pass

See docs/plugins.md ("The conformance kit"). This package is part of the core: it
never imports ``plugins`` or ``simulator``.
"""

from .checks import (
    LogCapture,
    decimal_problems,
    duplicate_problems,
    object_texts,
    secret_problems,
    secrets_of,
)
from .contract import FeedContract
from .harness import ExchangeAccess, FeedHarness
from .probe import ContractError, FeedProbe, run_scenario

__all__ = [
    "ContractError",
    "ExchangeAccess",
    "FeedContract",
    "FeedHarness",
    "FeedProbe",
    "LogCapture",
    "decimal_problems",
    "duplicate_problems",
    "object_texts",
    "run_scenario",
    "secret_problems",
    "secrets_of",
]
