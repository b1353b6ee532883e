"""Secrets never leave the process: not on stdout, stderr, or any monitor answer.

A real process runs a session whose account key and secret are known (from the
environment, as in production), with a careless feed that logs the key and puts
the secret in its details; every byte it writes and every endpoint it serves is
searched for both.
"""

from __future__ import annotations

import subprocess
import time
import urllib.error
import urllib.request
from pathlib import Path

import pytest

from tests.monitor.conftest import start_app, write_settings

pytestmark = [pytest.mark.integration, pytest.mark.slow]

KEY = "KnownApiKey-4f1c9e2b7a"
SECRET = "KnownApiSecret-8d3e6a1f5c0b"

PROFILE = """
[t]
[t.monitor]
enabled = true
port = 0
[t.feeds.main]
kind = "walk"
role = "primary"
leak = true
[t.feeds.script]
kind = "scripted"
role = "shadow"
"""

ENDPOINTS = ["/", "/static/dashboard.js", "/static/dashboard.css", "/api/status",
             "/api/positions", "/api/subscriptions", "/api/validation", "/metrics",
             "/api/nothing-here", "/static/../../etc/passwd"]


def get(url: str, method: str = "GET", timeout: float = 5) -> bytes:
    req = urllib.request.Request(url, method=method)
    try:
        with urllib.request.urlopen(req, timeout=timeout) as r:
            return bytes(r.headers) + r.read()
    except urllib.error.HTTPError as exc:  # error answers are answers too
        return bytes(exc.headers) + exc.read()


def read_sse(url: str, seconds: float) -> bytes:
    out = b""
    with urllib.request.urlopen(url, timeout=seconds + 5) as r:
        end = time.monotonic() + seconds
        while time.monotonic() < end:
            line = r.readline()
            if not line:
                break
            out += line
    return out


def test_known_key_and_secret_appear_in_no_captured_byte(clean_env: Path) -> None:
    write_settings(clean_env, PROFILE)
    url_file = clean_env / "monitor.url"
    proc = start_app(clean_env, "--monitor", str(url_file), "--jsonl", "--for", "3",
                     env={"FEEDCTL_T__ACCOUNT__API_KEY": KEY,
                          "FEEDCTL_T__ACCOUNT__API_SECRET": SECRET},
                     stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    answers: list[bytes] = []
    try:
        for _ in range(200):
            if url_file.exists() and url_file.read_text():
                break
            assert proc.poll() is None, proc.communicate()
            time.sleep(0.02)
        url = url_file.read_text()
        time.sleep(0.5)  # a position is open and prices move
        for path in ENDPOINTS:
            answers.append(get(url + path))
            answers.append(get(url + path, method="HEAD"))
            answers.append(get(url + path, method="POST"))
        answers.append(read_sse(url + "/api/events", 1.5))
        out, err = proc.communicate(timeout=20)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.communicate()
    assert proc.returncode == 0, err.decode()[-2000:]
    captured = {"stdout": out, "stderr": err, "http": b"\n".join(answers)}
    for where, data in captured.items():
        for secret in (KEY, SECRET):
            assert secret.encode() not in data, f"{secret} leaked on {where}"
    # the run really exercised the leaks, and they were caught
    assert b"careless plugin logs its key ***" in err
    assert b'"oops":"***"' in captured["http"]
    assert b'"symbol":"BTCUSDT"' in out and b"event: position" in captured["http"]
