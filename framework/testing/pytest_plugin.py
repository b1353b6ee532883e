"""The pytest plugin of feedctl's conformance kit.

Installed with feedctl through the ``pytest11`` entry point named after this module,
so every pytest run in an environment with feedctl has it; load it explicitly with
``pytest -p feedctl.testing.pytest_plugin``, disable it with
``pytest -p no:feedctl.testing.pytest_plugin``.

It adds:

* ``--feedctl-timeout-scale=FACTOR``: multiplies every wait of the contract suite
  (for slow CI machines);
* the ``feedctl_contract`` marker, set on every test of a :class:`FeedContract`
  subclass, so ``pytest -m feedctl_contract`` runs just the contract;
* a fallback ``feedctl_harness`` fixture that fails with instructions when a
  ``FeedContract`` subclass has no harness of its own.

The contract suite itself (``feedctl.testing.FeedContract``) also works without the
plugin; the plugin only adds the conveniences above.
"""

from __future__ import annotations

import sys
from typing import Any

import pytest

MARKER = "feedctl_contract"
NO_HARNESS = (
    "no feedctl_harness fixture: define one that returns a feedctl.testing.FeedHarness "
    "for your feed kind, in conftest.py or in your FeedContract subclass "
    "(see docs/plugins.md, 'The conformance kit')"
)


def pytest_addoption(parser: pytest.Parser) -> None:
    group = parser.getgroup("feedctl", "feedctl conformance kit")
    group.addoption("--feedctl-timeout-scale", dest="feedctl_timeout_scale", type=float,
                    default=None, metavar="FACTOR",
                    help="multiply every wait of the feed contract suite (default 1.0)")


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line(
        "markers", f"{MARKER}: a test of feedctl's feed contract suite (feedctl.testing)")


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    contract = sys.modules.get("feedctl.testing.contract")
    if contract is None:  # nobody imported the suite: nothing to mark
        return
    base = contract.FeedContract
    for item in items:
        cls = getattr(item, "cls", None)
        if isinstance(cls, type) and issubclass(cls, base):
            item.add_marker(MARKER)


@pytest.fixture
def feedctl_harness() -> Any:
    """Overridden by the plugin author; see :data:`NO_HARNESS`."""
    pytest.fail(NO_HARNESS, pytrace=False)
