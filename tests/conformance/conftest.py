"""Fixtures of the conformance tests."""

from __future__ import annotations

import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
EXAMPLE = REPO / "examples" / "feedctl-example-exchange"


@pytest.fixture(scope="session")
def example_on_path() -> Iterator[None]:
    """The example plugin importable from its source folder (it is not installed)."""
    sys.path.insert(0, str(EXAMPLE))
    try:
        yield
    finally:
        sys.path.remove(str(EXAMPLE))


@pytest.fixture
def isolated(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Path:
    """No FEEDCTL_ variables from the developer's shell; cwd is an empty folder."""
    import os

    for name in list(os.environ):
        if name.startswith("FEEDCTL_"):
            monkeypatch.delenv(name)
    monkeypatch.chdir(tmp_path)
    return tmp_path
