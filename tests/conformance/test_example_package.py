"""The example third-party plugin as its users get it: pip-installed, listed by
``feedctl plugins``, named in settings.toml and run by ``feedctl run`` against a
simulator started with ``feedctl sim`` — endpoints and keys given through
``FEEDCTL_<PROFILE>__...`` variables."""

from __future__ import annotations

import ast
import json
import os
import queue
import shutil
import subprocess
import sys
import threading
import time
import urllib.request
from collections.abc import Callable, Iterator
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest

REPO = Path(__file__).resolve().parents[2]
EXAMPLE = REPO / "examples" / "feedctl-example-exchange"
SOURCE = "feedctl-example-exchange 0.1.0 (entry point feedctl_example_exchange.plugin)"

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The example package, pip-installed (without dependencies) into a folder of its own."""
    target = tmp_path_factory.mktemp("site")
    src = tmp_path_factory.mktemp("src") / "example"
    shutil.copytree(EXAMPLE, src, ignore=shutil.ignore_patterns("__pycache__", "*.egg-info"))
    subprocess.run([sys.executable, "-m", "pip", "install", "-q", "--no-deps", "--target",
                    str(target), str(src)], check=True, timeout=300)
    return target


def environ(site: Path, **extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("FEEDCTL_")}
    env["PYTHONPATH"] = os.pathsep.join([str(site), str(REPO)])
    env.update(extra)
    return env


def feedctl(*args: str, cwd: Path, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "feedctl.cli", *args], cwd=cwd, env=env,
                          capture_output=True, text=True, timeout=60)


def test_the_installed_example_shows_up_in_feedctl_plugins(tmp_path: Path, site: Path) -> None:
    out = feedctl("plugins", cwd=tmp_path, env=environ(site))
    assert out.returncode == 0, out.stderr
    assert f"example_exchange  [{SOURCE}]\n    feed kinds: example_exchange\n" in out.stdout
    assert "    hooks: feedctl_feed_kinds" in out.stdout


def test_load_plugins_and_disable_autoload_switches(tmp_path: Path, site: Path) -> None:
    only = feedctl("plugins", cwd=tmp_path, env=environ(
        site, FEEDCTL_LOAD_PLUGINS="example_exchange"))
    assert only.returncode == 0, only.stderr
    assert [ln for ln in only.stdout.splitlines() if not ln.startswith(" ")] == [
        f"example_exchange  [{SOURCE}]"]
    none = feedctl("plugins", cwd=tmp_path, env=environ(
        site, FEEDCTL_DISABLE_PLUGIN_AUTOLOAD="1"))
    assert none.returncode == 0, none.stderr
    assert "example_exchange" not in none.stdout and "feed kinds" not in none.stdout


# --------------------------------------------------------------------- feedctl run
class Lines:
    """A process's stdout lines, read by a thread so the test never blocks on them."""

    def __init__(self, proc: subprocess.Popen[str]) -> None:
        self.queue: queue.Queue[str] = queue.Queue()
        self.seen: list[str] = []
        assert proc.stdout is not None
        stream = proc.stdout

        def pump() -> None:
            for line in stream:
                self.queue.put(line)

        threading.Thread(target=pump, daemon=True).start()

    def wait_for(self, check: Callable[[dict[str, Any]], bool], what: str,
                 within: float = 15) -> dict[str, Any]:
        deadline = time.monotonic() + within
        while time.monotonic() < deadline:
            try:
                line = self.queue.get(timeout=0.1)
            except queue.Empty:
                continue
            self.seen.append(line)
            event = json.loads(line)
            if check(event):
                return event
        raise AssertionError(f"no {what} within {within}s; got {self.seen}")


@pytest.fixture
def sim(tmp_path: Path) -> Iterator[dict[str, str]]:
    """``feedctl sim`` in a subprocess; its first stdout line is its URLs and keys."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("FEEDCTL_")}
    env["PYTHONPATH"] = str(REPO)
    proc = subprocess.Popen([sys.executable, "-m", "feedctl.cli", "sim", "--symbols",
                             "BTCUSDT,ETHUSDT", "--seed", "5"], cwd=tmp_path, env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        assert proc.stdout is not None
        yield json.loads(proc.stdout.readline())
    finally:
        proc.terminate()
        proc.communicate(timeout=15)


def control(sim: dict[str, str], path: str, **body: Any) -> Any:
    request = urllib.request.Request(sim["control"] + path, data=json.dumps(body).encode(),
                                     headers={"Content-Type": "application/json"})
    with urllib.request.urlopen(request, timeout=10) as answer:
        return json.loads(answer.read())


def is_position(kind: str, **position: str) -> Callable[[dict[str, Any]], bool]:
    """Matches a position event of ``kind`` whose fields equal ``position`` (numbers as
    Decimals: the wire form keeps the exchange's digits, "65432.10")."""
    def same(have: Any, want: str) -> bool:
        return have == want or (want[:1].isdigit() and have is not None
                                and Decimal(have) == Decimal(want))

    def check(event: dict[str, Any]) -> bool:
        return event.get("type") == "position" and event["kind"] == kind and all(
            same(event["position"][k], v) for k, v in position.items())
    return check


@pytest.mark.slow
def test_feedctl_run_drives_the_installed_example_end_to_end(
        tmp_path: Path, site: Path, sim: dict[str, str]) -> None:
    (tmp_path / "settings.toml").write_text(
        "[ex.feeds.example]\nkind = 'example_exchange'\nrole = 'primary'\n"
        "mark_interval = '200ms'\n")
    env = environ(site, FEEDCTL_EX__ENDPOINTS__REST=sim["rest"],
                  FEEDCTL_EX__ENDPOINTS__PRIVATE_WS=sim["private_ws"],
                  FEEDCTL_EX__ACCOUNT__API_KEY=sim["api_key"],
                  FEEDCTL_EX__ACCOUNT__API_SECRET=sim["api_secret"])
    control(sim, "/price", symbol="BTCUSDT", price="65000")
    control(sim, "/order", symbol="BTCUSDT", side="Buy", qty="0.004")  # open before start
    proc = subprocess.Popen([sys.executable, "-m", "feedctl.cli", "run", "--profile", "ex",
                             "--for", "6s", "--output", "jsonl"], cwd=tmp_path, env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        lines = Lines(proc)
        lines.wait_for(is_position("opened", symbol="BTCUSDT", size="0.004", side="long"),
                       "'opened' from the start-up snapshot")
        control(sim, "/price", symbol="BTCUSDT", price="65432.1")
        lines.wait_for(is_position("price", mark_price="65432.1"), "the new mark price")
        control(sim, "/order", symbol="ETHUSDT", side="Sell", qty="0.5")
        lines.wait_for(is_position("opened", symbol="ETHUSDT", side="short"), "a live open")
        control(sim, "/position/close", symbol="BTCUSDT")
        lines.wait_for(is_position("closed", symbol="BTCUSDT"), "a live close")
        _, err = proc.communicate(timeout=20)  # --for ends the run
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.communicate()
    assert proc.returncode == 0, err
    statuses = [json.loads(ln) for ln in lines.seen if '"type": "status"' in ln
                or '"type":"status"' in ln]
    assert any(s["status"]["state"] == "healthy" and s["feed"] == "example" for s in statuses)
    assert "Traceback" not in err and "Task was destroyed" not in err, err
    for secret in (sim["api_key"], sim["api_secret"]):
        assert secret not in err and secret not in "".join(lines.seen)


# --------------------------------------------------------------------- the template
def test_the_example_reaches_feedctl_only_through_public_names() -> None:
    offenders = {}
    for path in (EXAMPLE / "feedctl_example_exchange").rglob("*.py"):
        tree = ast.parse(path.read_text())
        names = {n.module for n in ast.walk(tree) if isinstance(n, ast.ImportFrom)
                 and n.module and n.level == 0}
        names |= {a.name for n in ast.walk(tree) if isinstance(n, ast.Import) for a in n.names}
        # the kit and the embedded exchange (a test tool) are public; core modules are not
        bad = sorted(n for n in names if (n.startswith("feedctl.")
                     and n != "feedctl.testing" and not n.startswith("feedctl.simulator"))
                     or n.split(".")[0] in ("framework", "plugins", "simulator"))
        if bad:
            offenders[path.name] = bad
    assert offenders == {}


@pytest.mark.slow
def test_the_example_projects_own_suite_passes(tmp_path: Path, site: Path) -> None:
    """What the plugin's own CI runs, with the kit loaded explicitly: its unit tests and
    (a sample of) the contract — the whole contract runs in-process in
    test_example_kind.py."""
    shutil.copytree(EXAMPLE / "tests", tmp_path / "tests")
    shutil.copy(EXAMPLE / "pyproject.toml", tmp_path)
    out = subprocess.run([sys.executable, "-m", "pytest", "-p", "feedctl.testing.pytest_plugin",
                          "-p", "no:cacheprovider", "-q", "-k",
                          "parse or well_formed or open_add_close or resync"],
                         cwd=tmp_path, env=environ(site), capture_output=True, text=True,
                         timeout=180)
    assert out.returncode == 0, out.stdout[-3000:] + out.stderr[-2000:]
    assert "13 passed" in out.stdout, out.stdout[-2000:]
