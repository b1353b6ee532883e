"""The service recipes in deploy/ say what the program does (exit codes, signals,
commands): checked against the program, so they cannot drift apart."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from feedctl.cli import ExitCode, cli

pytestmark = pytest.mark.unit

REPO = Path(__file__).resolve().parents[1]
UNIT = REPO / "deploy" / "feedctl.service"
CONTAINER = REPO / "deploy" / "Containerfile"


def unit_settings() -> dict[str, list[str]]:
    out: dict[str, list[str]] = {}
    for line in UNIT.read_text().splitlines():
        if "=" in line and not line.startswith(("#", "[")):
            key, _, value = line.partition("=")
            out.setdefault(key.strip(), []).append(value.strip())
    return out


def test_the_unit_runs_check_then_run_with_options_the_cli_has() -> None:
    s = unit_settings()
    (pre,) = s["ExecStartPre"]
    (start,) = s["ExecStart"]
    assert pre.split()[1:3] == ["check", "--settings"] and "--profile %i" in pre
    assert start.split()[1] == "run" and "--profile %i" in start
    run_options = {o for p in cli.commands["run"].params for o in getattr(p, "opts", [])}
    for option in re.findall(r"(--[a-z-]+)", start):
        assert option in run_options, option
    output = re.search(r"--output (\w+)", start)
    assert output and output.group(1) in cli.commands["run"].params[
        [p.name for p in cli.commands["run"].params].index("output")].type.choices


def test_the_unit_restarts_on_runtime_failures_only_and_stops_with_sigterm() -> None:
    s = unit_settings()
    assert s["Restart"] == ["on-failure"]
    assert s["RestartPreventExitStatus"] == [str(int(ExitCode.USAGE))]
    assert s["KillSignal"] == ["SIGTERM"]
    assert "EnvironmentFile" in s and "User" in s


def test_the_container_runs_unprivileged_and_stops_with_sigterm() -> None:
    text = CONTAINER.read_text()
    assert re.search(r"^FROM python:3\.1[1-9]", text, re.M)
    assert re.search(r"^USER feedctl$", text, re.M)
    assert re.search(r"^STOPSIGNAL SIGTERM$", text, re.M)
    assert '"feedctl"' in re.search(r"^ENTRYPOINT (.+)$", text, re.M).group(1)  # type: ignore[union-attr]
    for copied in re.findall(r"^COPY (\S+)", text, re.M):
        assert (REPO / copied).exists(), copied  # the recipe builds from this checkout


def test_docs_service_lists_the_exit_codes_the_cli_uses() -> None:
    doc = (REPO / "docs" / "service.md").read_text()
    for code in ExitCode:
        assert f"| exit `{int(code)}` |" in doc, code


@pytest.mark.integration
@pytest.mark.skipif(shutil.which("systemd-analyze") is None, reason="needs systemd-analyze")
def test_systemd_accepts_the_unit_with_no_warning(tmp_path: Path) -> None:
    """systemd's own check of the unit (keys, sections, commands), with the unit's
    feedctl pointed at this environment's (the unit's /opt/feedctl is not installed)."""
    feedctl = shutil.which("feedctl")
    assert feedctl is not None
    unit = tmp_path / "feedctl@mainnet.service"
    unit.write_text(UNIT.read_text().replace("/opt/feedctl/bin/feedctl", feedctl))
    out = subprocess.run(["systemd-analyze", "verify", str(unit)], capture_output=True,
                         text=True, timeout=60)
    assert out.returncode == 0 and out.stdout + out.stderr == "", out.stdout + out.stderr


@pytest.mark.integration
@pytest.mark.slow
def test_what_the_container_copies_installs_and_checks_the_sim_profile(
        tmp_path: Path) -> None:
    """The Containerfile's steps without a container engine: the files it COPYs, and only
    those, `pip install`ed, then the image's command checked (`check --profile sim`)."""
    text = CONTAINER.read_text()
    context = tmp_path / "context"
    for src, dest in re.findall(r"^COPY (.+) (\S+)$", text, re.M):
        for item in src.split():
            target = context / dest / Path(item).name if dest.endswith("/") else context / dest
            if (REPO / item).is_dir():
                shutil.copytree(REPO / item, target,
                                ignore=shutil.ignore_patterns("__pycache__"))
            else:
                target.parent.mkdir(parents=True, exist_ok=True)
                shutil.copy(REPO / item, target)
    site = tmp_path / "site"
    subprocess.run([sys.executable, "-m", "pip", "install", "-q", "--no-deps", "--target",
                    str(site), str(context)], check=True, capture_output=True, timeout=300)
    env = {k: v for k, v in os.environ.items() if not k.startswith("FEEDCTL_")}
    env["PYTHONPATH"] = str(site)  # the installed copy, not this checkout
    env["FEEDCTL_SETTINGS"] = str(context / "settings.toml")  # as the image sets it
    out = subprocess.run([sys.executable, "-c", "import sys, feedctl.cli as c; "
                          "print(c.__file__); sys.argv = ['feedctl', 'check', '--profile', "
                          "'sim']; c.main()"], cwd=tmp_path, env=env, capture_output=True,
                         text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    assert out.stdout.splitlines()[0].startswith(str(site))
    assert "service: simulator" in out.stdout
