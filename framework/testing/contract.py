"""The contract suite: :class:`FeedContract`, collected once per feed kind.

::

    from feedctl.testing import FeedContract

    class TestMyFeed(FeedContract):
        pass        # with a `feedctl_harness` fixture in scope (conftest.py or the class)

Each test runs the feed in a fresh event loop against the harness's exchange and, on
the way out, checks that cancelling the feed left no task pending and no resource
unclosed. Test names are stable; docs/plugins.md lists them.
"""

from __future__ import annotations

from .contract_faults import FaultContract
from .contract_lifecycle import LifecycleContract


class FeedContract(LifecycleContract, FaultContract):
    """Contract tests every feed kind must pass. Subclass it (the subclass's name must
    start with ``Test``) and provide a ``feedctl_harness`` fixture returning a
    :class:`~feedctl.testing.FeedHarness`."""
