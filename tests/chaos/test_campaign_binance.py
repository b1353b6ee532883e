"""The short chaos campaign against the Binance USDⓈ-M personality
(``bench/chaos.py --short --exchange binanceusdm``): binance_usdm is the primary,
rest_polling on ccxt's binanceusdm the standby (production) or the shadow (parallel).

One campaign run (both modes) serves both tests: the first holds what the system keeps
today - nothing duplicated or invented, nothing crashed or failed for good; the second
holds the rest of the Bybit campaign's verdicts (nothing lost, split or closed early,
nothing diverged at the end), which the Binance side does not meet yet (an xfail, not
strict: it passes in some runs; the marker goes when it passes every run)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from tests.chaos.conftest import HEAVY, bench_module
from tests.conftest import run_async

chaos = bench_module("chaos")
pytestmark = [pytest.mark.integration, pytest.mark.slow, HEAVY]


# session, not module: an xdist worker may run other heavy tests between this module's
# two, which would tear a module fixture down and run the campaign again
@pytest.fixture(scope="session")
def report(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    """The raw records stay in the fixture's directory for an investigation
    (``python bench/chaos.py --reanalyse <dir>/*.json``)."""
    dump: Path = tmp_path_factory.mktemp("chaos-binance")
    cfg = chaos.CampaignConfig.short(seed=20240601, exchange="binanceusdm",
                                     dump_dir=str(dump))
    out: dict[str, Any] = run_async(chaos.campaign(cfg), timeout=230)
    print("\n" + chaos.table(out["results"]))
    return out


@pytest.mark.timeout(240)
def test_binance_campaign_duplicates_and_invents_nothing_and_nothing_crashes(
        report: dict[str, Any]) -> None:
    for mode, r in report["results"].items():
        assert r["primary"] == "binance_usdm", mode
        assert r["faults_total"] >= 80, (mode, r["faults"])
        assert r["faults"].get("listen_key_expiry", 0) + r["faults"].get(
            "keepalive_reject", 0) > 0, (mode, r["faults"])
        assert r["exchange_lifecycles_completed"] >= 20, mode
        assert r["duplicates"] == 0, (mode, r["duplicate_detail"])
        assert r["phantom_states"] == 0, (mode, r["phantom_detail"])
        assert r["crashes"] == r["handler_errors"] == r["task_exceptions"] == 0, mode
        assert not r["fatal_feeds"] and not r["exchange_anomalies"], mode


@pytest.mark.timeout(240)
# not strict: it passes now and then (3 of 20 suite runs on binance5), and a strict
# xfail that passes fails the suite - the intermittent CI failure issue 18 is about
@pytest.mark.xfail(strict=False, reason=(
    "on branch binance8 (F50-F52) 7 of 8 production seeds 6001-6008 and 8 of 8 "
    "parallel seeds 6101-6108 pass (on 304e145: 0 of 8 and 6 of 8; production lost "
    "0/2/6 min/median/max, split 0/0/1, 28 consumer lifecycles matching no exchange one; "
    "now lost 0/0/2, split 0/0/1, none unmatched). Left: 6007's merged short (the "
    "primary's gap replay closed a long at a short's close, the flip's fill not "
    "replayed; not traced), a split at a switch on this test's seed (F2b's signature, "
    "not traced), and, on the code before F52, 6008's split and early close at a "
    "failover (ccxt's binanceusdm poller reconciles without an as-of time, so the "
    "router takes it to know every key it lacks flat): docs/reliability.md F50-F52"))
def test_binance_campaign_loses_splits_closes_early_and_diverges_nothing(
        report: dict[str, Any]) -> None:
    for mode, r in report["results"].items():
        assert r["lost"] == 0, (mode, r["lost_detail"])
        assert r["split"] == 0, (mode, r["split_detail"])
        assert r["premature_closes"] == 0, (mode, r["premature_detail"])
        assert r["unmatched_consumer_lifecycles"] == 0, (mode, r["unmatched_detail"])
        assert r["diverged"] == 0, (mode, r["diverged_detail"])
