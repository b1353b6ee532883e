"""The service recipes in deploy/ say what the program does (exit codes, signals,
commands): checked against the program, so they cannot drift apart."""

from __future__ import annotations

import re
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
