from __future__ import annotations

from pathlib import Path

import pytest

from feedctl import build_plugin_manager
from feedctl.manager import FeedctlPluginManager
from tests.core import scripted


@pytest.fixture
def pm() -> FeedctlPluginManager:
    """A plugin manager with only the scripted test feed kind (no entry points)."""
    return build_plugin_manager([scripted], load_entrypoints=False)


@pytest.fixture
def clean_env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Path:
    """No FEEDCTL_ variables from the developer's shell; cwd is an empty folder."""
    import os

    for k in list(os.environ):
        if k.startswith("FEEDCTL_"):
            monkeypatch.delenv(k)
    monkeypatch.chdir(tmp_path)
    return tmp_path


SCRIPTED_PROFILE = """
[t]
[t.feeds.main]
kind = "scripted"
role = "primary"
"""
