"""The kit as a plugin author uses it: ``pytest -p feedctl.testing.pytest_plugin`` in a
project of their own, one ``feedctl_harness`` fixture, one ``FeedContract`` subclass."""

from __future__ import annotations

import os
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest

from feedctl.testing.pytest_plugin import NO_HARNESS

REPO = Path(__file__).resolve().parents[2]
PLUGIN = "feedctl.testing.pytest_plugin"


CONFTEST = """
import pytest
from feedctl.testing.fake_exchange import FakeHarness

@pytest.fixture
def feedctl_harness():
    return FakeHarness()
"""

TESTS = """
from feedctl.testing import FeedContract

class TestFakeFeed(FeedContract):
    pass

def test_something_else():
    pass
"""


def pytest_in(folder: Path, *args: str) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("FEEDCTL_", "PYTEST_"))}
    env["PYTHONPATH"] = str(REPO)
    return subprocess.run([sys.executable, "-m", "pytest", "-p", PLUGIN, "-p", "no:cacheprovider",
                           "-q", "-rs", *args], cwd=folder, env=env, capture_output=True,
                          text=True, timeout=120)


@pytest.mark.integration
def test_a_plugin_project_runs_the_contract_with_one_fixture(tmp_path: Path) -> None:
    (tmp_path / "conftest.py").write_text(CONFTEST)
    (tmp_path / "test_feed.py").write_text(TESTS)
    out = pytest_in(tmp_path, "-m", "feedctl_contract", "--feedctl-timeout-scale", "2")
    assert out.returncode == 0, out.stdout + out.stderr
    assert "10 passed, 1 deselected" in out.stdout, out.stdout


@pytest.mark.integration
def test_without_a_harness_fixture_the_kit_says_what_to_write(tmp_path: Path) -> None:
    (tmp_path / "test_feed.py").write_text(TESTS)
    out = pytest_in(tmp_path, "-k", "lifecycle_open_add_close or something_else")
    assert out.returncode == 1
    assert NO_HARNESS in out.stdout, out.stdout
    assert "1 passed, 9 deselected, 1 error" in out.stdout, out.stdout


@pytest.mark.unit
def test_feedctl_registers_the_plugin_for_pytest() -> None:
    """Installing feedctl makes the kit available. The entry point is named after the
    module, so an explicit ``-p feedctl.testing.pytest_plugin`` does not register the
    same module twice (pytest refuses that with a ValueError)."""
    meta = tomllib.loads((REPO / "pyproject.toml").read_text())
    group = meta["project"].get("entry-points", {}).get("pytest11", {})
    assert group == {PLUGIN: PLUGIN}
