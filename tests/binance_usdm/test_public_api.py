"""binance_usdm is built as a third party would build it: the only feedctl it imports is
the public ``feedctl`` package, and only names in ``feedctl.__all__``."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

import feedctl

pytestmark = pytest.mark.unit
PLUGIN = Path(__file__).resolve().parents[2] / "plugins" / "binance_usdm"


def _modules() -> list[Path]:
    paths = sorted(PLUGIN.glob("*.py"))
    assert len(paths) > 5  # the folder moved: this test must not pass on nothing
    return paths


def test_only_the_public_feedctl_package_is_imported() -> None:
    offenders: dict[str, list[str]] = {}
    for path in _modules():
        for node in ast.walk(ast.parse(path.read_text())):
            names: list[str] = []
            if isinstance(node, ast.Import):
                names = [a.name for a in node.names]
            elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                names = [node.module]
            bad = [n for n in names if n.split(".")[0] in ("feedctl", "framework", "plugins",
                                                           "simulator") and n != "feedctl"]
            if bad:
                offenders.setdefault(path.name, []).extend(bad)
    assert offenders == {}


def test_only_names_of_the_public_api_are_used() -> None:
    public = set(feedctl.__all__)
    used: dict[str, set[str]] = {}
    for path in _modules():
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.ImportFrom) and node.level == 0 and node.module == "feedctl":
                used.setdefault(path.name, set()).update(a.name for a in node.names)
            if isinstance(node, ast.Import) and any(a.name == "feedctl" for a in node.names):
                used.setdefault(path.name, set()).add("import feedctl")
    assert used  # it does use the API
    assert {f: sorted(n - public) for f, n in used.items() if n - public} == {}
