"""Shared machinery of the contract suite's test classes."""

from __future__ import annotations

from typing import Any

import pytest

from .harness import FeedHarness
from .probe import ContractError, FeedProbe, Scenario, run_scenario


def scale_of(request: pytest.FixtureRequest) -> float:
    value = request.config.getoption("feedctl_timeout_scale", default=None)
    return float(value) if value else 1.0


def checked(harness: Any) -> FeedHarness:
    if not isinstance(harness, FeedHarness):
        raise ContractError(f"the feedctl_harness fixture returned {harness!r}, not a "
                            "feedctl.testing.FeedHarness")
    return harness


def expect(problems: list[str], what: str, probe: FeedProbe | None = None) -> None:
    if problems:
        tail = f"\n  ({probe.history()})" if probe is not None else ""
        raise ContractError(f"{what}:\n  " + "\n  ".join(problems) + tail)


class ContractBase:
    """Runs one scenario of a contract test (see :func:`run_scenario`)."""

    def run(self, harness: FeedHarness, request: pytest.FixtureRequest, scenario: Scenario,
            **kwargs: Any) -> FeedProbe:
        return run_scenario(harness, scenario, scale=scale_of(request), **kwargs)


def describe_book(book: dict[str, Any]) -> str:
    return ", ".join(f"{s} {p.side.value} {p.size}" for s, p in book.items()) or "nothing"
