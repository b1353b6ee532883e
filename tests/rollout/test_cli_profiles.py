"""`feedctl run --profile mainnet` pointed at a simulator through environment
variables: the same code path a user with real keys takes."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest

pytestmark = pytest.mark.integration


@pytest.fixture
def standalone_sim() -> Iterator[dict[str, str]]:
    proc = subprocess.Popen([sys.executable, "-m", "feedctl.cli", "sim", "--seed", "5"],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    assert proc.stdout is not None
    info = json.loads(proc.stdout.readline())
    try:
        yield info
    finally:
        proc.send_signal(signal.SIGINT)
        proc.communicate(timeout=15)
        assert proc.returncode == 0


def control(info: dict[str, str], path: str, body: dict[str, str]) -> None:
    req = urllib.request.Request(info["control"] + path, data=json.dumps(body).encode(),
                                 headers={"Content-Type": "application/json"}, method="POST")
    with urllib.request.urlopen(req, timeout=5) as answer:
        assert answer.status == 200


def run_mainnet(info: dict[str, str], tmp_path: Path, *extra: str,
                secret: str | None = None) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("FEEDCTL_")}
    env.update({
        "FEEDCTL_MAINNET__ENDPOINTS__REST": info["rest"],
        "FEEDCTL_MAINNET__ENDPOINTS__PUBLIC_WS": info["public_ws"],
        "FEEDCTL_MAINNET__ENDPOINTS__PRIVATE_WS": info["private_ws"],
        "FEEDCTL_MAINNET__ACCOUNT__API_KEY": info["api_key"],
        "FEEDCTL_MAINNET__ACCOUNT__API_SECRET": secret or info["api_secret"],
        "FEEDCTL_MAINNET__FEEDS__REST_POLLING__INTERVAL": "1s",
    })
    return subprocess.run([sys.executable, "-m", "feedctl.cli", "run", "--profile", "mainnet",
                           "--for", "4s", "--output", "jsonl", *extra], cwd=tmp_path, env=env,
                          capture_output=True, text=True, timeout=60)


def test_mainnet_profile_runs_against_endpoints_from_the_environment(
    standalone_sim: dict[str, str], tmp_path: Path
) -> None:
    control(standalone_sim, "/position", {"symbol": "BTCUSDT", "side": "Buy", "size": "0.01"})
    out = run_mainnet(standalone_sim, tmp_path)
    assert out.returncode == 0, out.stderr
    events = [json.loads(line) for line in out.stdout.splitlines()]
    positions = [e for e in events if e["type"] == "position"]
    assert positions[0]["kind"] == "opened" and positions[0]["feed"] == "bybit_hybrid"
    assert sum(e["kind"] == "price" for e in positions) >= 10
    assert "profile=mainnet mode=production" in out.stderr
    assert standalone_sim["api_secret"] not in out.stdout + out.stderr


def test_a_rejected_secret_fails_with_a_clear_message_and_exit_1(
    standalone_sim: dict[str, str], tmp_path: Path
) -> None:
    out = run_mainnet(standalone_sim, tmp_path, "--mode", "rest", secret="wrong-secret-value")
    assert out.returncode == 1, out.stderr
    errors = [ln for ln in out.stderr.splitlines() if ln.startswith("ERROR:")]
    assert len(errors) == 1 and "FEEDCTL_MAINNET__ACCOUNT__API" in errors[0]
    assert "wrong-secret-value" not in out.stdout + out.stderr


def test_a_run_whose_delivering_feeds_were_never_healthy_exits_1_saying_why(
    standalone_sim: dict[str, str], tmp_path: Path
) -> None:
    import socket
    with socket.socket() as s:  # a port nothing listens on: every feed stays down
        s.bind(("127.0.0.1", 0))
        dead = s.getsockname()[1]
    info = {**standalone_sim, "rest": f"http://127.0.0.1:{dead}",
            "public_ws": f"ws://127.0.0.1:{dead}/v5/public/linear",
            "private_ws": f"ws://127.0.0.1:{dead}/v5/private"}
    out = run_mainnet(info, tmp_path)
    assert out.returncode == 1, out.stderr
    errors = [ln for ln in out.stderr.splitlines() if ln.startswith("ERROR:")]
    assert len(errors) == 1, out.stderr
    assert "no delivering feed was ever healthy" in errors[0]
    assert "bybit_hybrid" in errors[0] and "rest_polling" in errors[0]
    assert "run summary" in out.stderr


def test_a_healthy_run_ends_with_a_summary_of_what_it_delivered(
    standalone_sim: dict[str, str], tmp_path: Path
) -> None:
    control(standalone_sim, "/position", {"symbol": "BTCUSDT", "side": "Buy", "size": "0.01"})
    out = run_mainnet(standalone_sim, tmp_path)
    assert out.returncode == 0, out.stderr
    summary = out.stderr[out.stderr.index("run summary"):]
    assert "lifecycles delivered: opened 1" in summary
    assert "longest without a new mark" in summary and "BTCUSDT" in summary
    assert "reconnecting -> reconnecting" not in out.stderr
