"""The short chaos campaign (bench/chaos.py --short): a fixed seed, a few hundred
faults, production and parallel modes, against the simulator. Nothing may be lost at the
seams, and nothing may happen that the known findings (docs/reliability.md) do not
explain."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.chaos.conftest import HEAVY, bench_module
from tests.conftest import run_async

chaos = bench_module("chaos")

# ------------------------------------------------------------------ the short campaign
@HEAVY
@pytest.mark.integration
@pytest.mark.slow
@pytest.mark.timeout(240)
def test_short_campaign_loses_nothing(capsys: pytest.CaptureFixture[str],
                                      tmp_path: Path) -> None:
    """A few hundred faults in production and parallel mode (fixed seed), with hedge-mode
    sides and inverse contracts traded and late pongs among the faults: no lifecycle
    lost, duplicated, split or invented, nothing diverged, crashed or failed for good.
    The raw records are kept in ``tmp_path`` for an investigation
    (``python bench/chaos.py --reanalyse <tmp_path>/*.json``)."""
    cfg = chaos.CampaignConfig.short(seed=20240601, dump_dir=str(tmp_path))
    report = run_async(chaos.campaign(cfg), timeout=220)
    with capsys.disabled():
        print("\n" + chaos.table(report["results"]))
    total = 0
    for mode, r in report["results"].items():
        total += r["faults_total"]
        assert r["faults_total"] >= 80, (mode, r["faults"])
        assert r["exchange_lifecycles_completed"] >= 20, mode
        # hedge-mode sides, inverse contracts and late pongs are part of the campaign
        assert r["hedge_lifecycles"] >= 3 and r["inverse_lifecycles"] >= 3, mode
        assert r["faults"].get("late_pong", 0) >= 1, (mode, r["faults"])
        assert r["unexplained"] == 0, (mode, r["unexplained_detail"])
        assert r["diverged"] == 0, (mode, r["diverged_detail"])
        # and the primary, delivering again, holds what the exchange holds
        assert r["feeds"]["bybit_hybrid"]["diverged_from_exchange"] == 0, mode
        assert r["crashes"] == r["handler_errors"] == r["task_exceptions"] == 0, mode
        assert not r["fatal_feeds"] and not r["exchange_anomalies"], mode
        # nothing lost at the seams (issue 12): every exchange lifecycle reaches consumers
        assert r["lost"] == 0 and not r["lost_detail"], (mode, r["lost_detail"])
        assert r["duplicates"] == r["split"] == r["phantom_states"] == 0, mode
        assert r["premature_closes"] == r["unmatched_consumer_lifecycles"] == 0, mode
    assert total >= 200
