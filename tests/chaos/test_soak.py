"""Soak smoke: bench/soak.py for under a minute — 100 symbols at 10 Hz, position churn,
a socket dropped every 15 s — and nothing may grow (its criterion) or crash."""

from __future__ import annotations

import pytest

from tests.chaos.conftest import HEAVY, bench_module
from tests.conftest import run_async

soak = bench_module("soak")


@pytest.mark.unit
def test_the_criterion_flags_growth_and_accepts_noise() -> None:
    flat = [soak.Sample(t=i * 2.0, rss_mb=100 + (i % 3) * 0.5, fds=12, tasks=20,
                        lag_p99_ms=3.0, lag_max_ms=9.0, events=i, messages=i, state="healthy")
            for i in range(30)]
    assert all(v["ok"] for v in soak.judge(flat).values())
    leaking = [soak.Sample(t=s.t, rss_mb=100 + s.t * 0.2, fds=12 + int(s.t // 5),
                           tasks=20 + int(s.t), lag_p99_ms=3.0, lag_max_ms=9.0, events=0,
                           messages=0, state="healthy") for s in flat]
    verdicts = soak.judge(leaking)
    assert not verdicts["rss_mb"]["ok"] and not verdicts["fds"]["ok"]
    assert not verdicts["tasks"]["ok"] and verdicts["lag_p99_ms"]["ok"]


@HEAVY
@pytest.mark.integration
@pytest.mark.slow
@pytest.mark.timeout(150)
def test_soak_smoke_nothing_grows(capsys: pytest.CaptureFixture[str]) -> None:
    cfg = soak.SoakConfig(minutes=0.8, symbols=100, sample=2.0, drop_every=15.0)
    report = run_async(soak.soak(cfg), timeout=130)
    with capsys.disabled():
        print("\n" + soak.table(report))
    assert report["ok"], report["verdicts"]
    assert report["crashes"] == 0 and report["hybrid"].get("crashes", 0) == 0
    assert report["counts"]["trades"] >= 20 and report["counts"]["drops"] >= 2
    assert report["samples"][-1]["messages"] >= 100 * 10 * 20  # ~10 tickers/s each
