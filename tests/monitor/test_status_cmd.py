"""``feedctl status``: a click command reading a running instance's monitor."""

from __future__ import annotations

import json
import time
import urllib.request

import pytest
from click.testing import CliRunner

from feedctl.monitor import status_command
from tests.monitor.conftest import free_port

pytestmark = pytest.mark.integration

TOKEN = "status-cmd-token-31337"


def wait_for_position(url: str, token: str | None = None) -> None:
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    for _ in range(100):
        req = urllib.request.Request(url + "/api/positions", headers=headers)
        with urllib.request.urlopen(req, timeout=5) as r:
            if json.loads(r.read())["delivered"]:
                return
        time.sleep(0.05)
    raise AssertionError("no position appeared")


def test_status_prints_feeds_and_positions_of_a_running_instance(threaded_monitor: str) -> None:
    wait_for_position(threaded_monitor)
    out = CliRunner().invoke(status_command, ["--url", threaded_monitor])
    assert out.exit_code == 0, out.output
    assert "profile=t mode=production active=main" in out.output
    assert "Symbol" in out.output and "BTCUSDT" in out.output and "long" in out.output
    assert "main *" in out.output and "healthy" in out.output
    assert threaded_monitor in out.output


def test_status_json_is_the_api_answers(threaded_monitor: str) -> None:
    out = CliRunner().invoke(status_command, ["--url", threaded_monitor + "/", "--json"])
    assert out.exit_code == 0, out.output
    data = json.loads(out.output)
    assert data["status"]["profile"] == "t" and "delivered" in data["positions"]


def test_status_exits_1_with_a_clear_message_when_nothing_answers() -> None:
    url = f"http://127.0.0.1:{free_port()}"
    out = CliRunner().invoke(status_command, ["--url", url])
    assert out.exit_code == 1
    assert out.output.startswith(f"ERROR: no feedctl monitor answers at {url}")
    assert "Traceback" not in out.output


def test_status_refuses_a_url_that_is_not_http() -> None:
    out = CliRunner().invoke(status_command, ["--url", "127.0.0.1:8765"])
    assert out.exit_code == 2 and "ERROR: --url must start with http://" in out.output


@pytest.mark.parametrize("threaded_monitor", [TOKEN], indirect=True)
def test_status_with_a_token(threaded_monitor: str, monkeypatch: pytest.MonkeyPatch) -> None:
    runner = CliRunner()
    out = runner.invoke(status_command, ["--url", threaded_monitor])
    assert out.exit_code == 1 and "answered 401: it needs a token (--token)" in out.output
    out = runner.invoke(status_command, ["--url", threaded_monitor, "--token", "wrong"])
    assert out.exit_code == 1 and "the token was refused" in out.output
    out = runner.invoke(status_command, ["--url", threaded_monitor, "--token", TOKEN])
    assert out.exit_code == 0, out.output
    monkeypatch.setenv("FEEDCTL_MONITOR_TOKEN", TOKEN)
    out = runner.invoke(status_command, ["--url", threaded_monitor, "--json"])
    assert out.exit_code == 0 and TOKEN not in out.output
