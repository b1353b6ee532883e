"""Repository rules that keep the architecture honest."""

from __future__ import annotations

import ast
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
pytestmark = pytest.mark.unit


def _imports(path: Path) -> set[str]:
    tree = ast.parse(path.read_text())
    names: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names.update(a.name for a in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names.add(node.module)
    return names


def test_core_never_imports_a_plugin_or_the_simulator() -> None:
    offenders = {
        str(p.relative_to(REPO)): sorted(n for n in _imports(p)
                                         if n.split(".")[0] in ("plugins", "simulator"))
        for p in (REPO / "framework").rglob("*.py")
    }
    assert {k: v for k, v in offenders.items() if v} == {}


def test_plugins_use_only_the_public_framework_names() -> None:
    offenders = {
        str(p.relative_to(REPO)): sorted(n for n in _imports(p) if n.startswith("framework."))
        for p in [*(REPO / "plugins").rglob("*.py"), *(REPO / "simulator").rglob("*.py")]
    }
    assert {k: v for k, v in offenders.items() if v} == {}


def test_ruff_is_clean() -> None:
    ruff = shutil.which("ruff") or str(Path(sys.executable).with_name("ruff"))
    out = subprocess.run([ruff, "check", "--output-format", "concise", "framework", "plugins",
                          "simulator", "tests", "bench", "examples"], cwd=REPO, capture_output=True,
                         text=True)
    assert out.returncode == 0, out.stdout + out.stderr
