"""``feedctl run --profile binsim``: the profile the embedded exchange ships runs the
binance_usdm feed (primary) and rest_polling on ccxt's binanceusdm (standby) against the
embedded Binance personality and its demo trader, from any directory."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.integration


def test_binsim_profile_runs_both_feeds_healthy_and_delivers_positions_and_marks(
        tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("FEEDCTL_")}
    env["FEEDCTL_BINSIM__SIMULATOR__DEMO_INTERVAL"] = "1"
    out = subprocess.run([sys.executable, "-m", "feedctl.cli", "run", "--profile", "binsim",
                          "--for", "10s", "--output", "jsonl"], cwd=tmp_path, env=env,
                         capture_output=True, text=True, timeout=90)
    assert out.returncode == 0, out.stderr
    assert "roles=\"binance_usdm=primary,rest_polling=standby\"" in out.stderr
    events = [json.loads(line) for line in out.stdout.splitlines()]
    healthy = {e["feed"] for e in events
               if e["type"] == "status" and e["status"]["state"] == "healthy"}
    assert healthy == {"binance_usdm", "rest_polling"}
    positions = [e for e in events if e["type"] == "position"]
    assert {e["feed"] for e in positions} == {"binance_usdm"}
    kinds = {e["kind"] for e in positions}
    assert "opened" in kinds and "price" in kinds, kinds
