"""The short bus campaign (``bench/chaos.py --short --bus``): three ``feedctl worker``
processes share four accounts through a real redis-server; among the exchange faults,
workers are SIGKILLed, SIGSTOPped past their lease then SIGCONTed, and redis-server is
SIGKILLed and restarted. Per account, a remote consumer (``RemoteSession``) gets every
lifecycle once: nothing duplicated (by lifecycle or by event id), split, closed early or
invented, nothing diverged at the end, no gap; and nothing lost but what B1 names (a
boundary while no worker could publish the account, docs/redis.md)."""

from __future__ import annotations

from typing import Any

import pytest

from tests.chaos.conftest import bench_module, bench_package
from tests.conftest import run_async

chaos = bench_module("chaos")
bus = bench_package("chaoslib.bus")
pytestmark = [pytest.mark.integration, pytest.mark.slow]


@pytest.fixture(scope="module")
def report() -> dict[str, Any]:
    cfg = bus.bus_campaign_config(True, seed=20240601)
    out: dict[str, Any] = run_async(bus.run_bus(cfg, bus.BusConfig.short()), timeout=150)
    print("\n" + bus.bus_table(out))
    return out


@pytest.mark.timeout(170)
def test_every_fault_kind_ran_against_the_workers_and_redis(report: dict[str, Any]) -> None:
    faults = report["faults"]
    for kind in ("worker_kill", "worker_pause", "redis_kill"):
        assert faults.get(kind, 0) >= 1, faults
    assert report["faults_total"] >= 40, faults
    assert report["exchange_lifecycles_completed"] >= 20
    # a killed worker's or a paused one's accounts passed to peers
    assert any(f.get("accounts") for f in report["process_faults"]
               if f["fault"] in ("worker_kill", "worker_pause")), report["process_faults"]


@pytest.mark.timeout(170)
def test_the_remote_consumer_gets_every_lifecycle_once_per_account(
        report: dict[str, Any]) -> None:
    r = report
    assert r["duplicates"] == r["duplicate_event_ids"] == 0, [
        a["duplicate_detail"] for a in r["per_account"].values()]
    assert r["split"] == r["premature_closes"] == r["phantom_states"] == 0, r["per_account"]
    assert r["unmatched_consumer_lifecycles"] == 0, r["per_account"]
    assert r["diverged"] == 0, [a["diverged_detail"] for a in r["per_account"].values()]
    assert r["gaps"] == 0, r["gap_detail"]
    # every loss has a name (B1, or one of the exchange campaign's limits)
    assert r["unexplained"] == 0, [a["unexplained_detail"] for a in r["per_account"].values()]
    assert not r["workers_exited_by_themselves"]
    assert None not in r["lease_holders_at_end"].values()
    assert r["ok"], r["failures"]
