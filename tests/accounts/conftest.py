from __future__ import annotations

import os
from pathlib import Path

import pytest

from feedctl import build_plugin_manager
from feedctl.manager import FeedctlPluginManager
from tests.accounts import kinds


@pytest.fixture
def pm() -> FeedctlPluginManager:
    return build_plugin_manager([kinds], load_entrypoints=False)


@pytest.fixture
def clean_env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Path:
    """No FEEDCTL_ variables from the developer's shell; cwd is an empty folder."""
    for k in list(os.environ):
        if k.startswith("FEEDCTL_"):
            monkeypatch.delenv(k)
    monkeypatch.chdir(tmp_path)
    return tmp_path


def write(folder: Path, text: str) -> Path:
    path = folder / "settings.toml"
    path.write_text(text)
    return path


#: Three accounts of exchange acctx in mode rest... no: production needs a fallback
#: kind; explicit roles keep the tests on the one kind.
THREE = """
[t]
[t.account]
exchange = "acctx"
[t.feeds.acct_live]
role = "primary"
symbols = ["BTCUSDT", "ETHUSDT"]
[t.accounts.alpha]
[t.accounts.beta]
[t.accounts.gamma.feeds.acct_live]
symbols = ["SOLUSDT"]
"""

SECRETS = """
[t.accounts.alpha]
api_key = "ka"
api_secret = "sa"
[t.accounts.beta]
api_key = "kb"
api_secret = "sb"
[t.accounts.gamma]
api_key = "kg"
api_secret = "sg"
"""
