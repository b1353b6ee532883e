"""Repository rules that keep the architecture honest."""

from __future__ import annotations

import ast
import re
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
        str(p.relative_to(REPO)): sorted(
            n for n in _imports(p) if n.startswith(("feedctl.plugins", "feedctl.simulator"))
            or n.split(".")[0] in ("framework", "plugins", "simulator"))
        for p in (REPO / "framework").rglob("*.py")
    }
    assert {k: v for k, v in offenders.items() if v} == {}


def test_plugins_use_only_the_public_framework_names() -> None:
    offenders = {
        str(p.relative_to(REPO)): sorted(n for n in _imports(p) if _private_core(n))
        for p in [*(REPO / "plugins").rglob("*.py"), *(REPO / "simulator").rglob("*.py")]
    }
    assert {k: v for k, v in offenders.items() if v} == {}


def _private_core(name: str) -> bool:
    """A core module other than the public ``feedctl`` (plugins' own packages are theirs)."""
    top = name.split(".")[0]
    if top in ("framework", "plugins", "simulator"):
        return True  # the folders are not import names: only ``feedctl`` is installed
    return top == "feedctl" and name != "feedctl" and not name.startswith(
        ("feedctl.plugins.", "feedctl.simulator"))


def test_ruff_is_clean() -> None:
    ruff = shutil.which("ruff") or str(Path(sys.executable).with_name("ruff"))
    out = subprocess.run([ruff, "check", "--output-format", "concise", "framework", "plugins",
                          "simulator", "tests", "bench", "examples"], cwd=REPO, capture_output=True,
                         text=True)
    assert out.returncode == 0, out.stdout + out.stderr


def test_every_third_party_import_is_a_declared_dependency() -> None:
    """A module the package imports must be installed by `pip install feedctl-positions`
    itself, not by luck through another dependency (orjson and yarl came with ccxt)."""
    import tomllib

    project = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]
    # an optional extra's modules count as declared (imported only where it is used)
    extras = [d for name, deps in project["optional-dependencies"].items() if name != "test"
              for d in deps]
    declared = {re.split(r"[<>=!~\[ ;]", d)[0].lower().replace("-", "_")
                for d in [*project["dependencies"], *extras]}
    dist_of = {"prometheus_client": "prometheus_client"}
    stdlib = set(sys.stdlib_module_names)
    missing: dict[str, str] = {}
    for folder in ("framework", "plugins", "simulator"):
        for path in (REPO / folder).rglob("*.py"):
            if path.is_relative_to(REPO / "framework" / "testing"):
                continue  # the conformance kit runs under the plugin author's pytest
            for node in ast.walk(ast.parse(path.read_text())):
                names = ([a.name for a in node.names] if isinstance(node, ast.Import)
                         else [node.module] if isinstance(node, ast.ImportFrom)
                         and node.module and node.level == 0 else [])
                for name in names:
                    top = name.split(".")[0]
                    if top in stdlib or top in ("feedctl", "framework", "plugins", "simulator"):
                        continue
                    if dist_of.get(top, top).lower() not in declared:
                        missing[top] = str(path.relative_to(REPO))
    assert not missing, missing


def test_mypy_is_clean() -> None:
    """Typed, and checked: the package's code passes mypy (pyproject's [tool.mypy])."""
    out = subprocess.run([sys.executable, "-m", "mypy", "framework", "plugins", "simulator"],
                         cwd=REPO, capture_output=True, text=True, timeout=600)
    assert out.returncode == 0, out.stdout[-3000:] + out.stderr[-2000:]


@pytest.mark.unit
def test_every_package_folder_is_in_the_distribution() -> None:
    """A package folder missing from [tool.setuptools] packages works in an editable
    install and is absent from the wheel: every one is listed, mapped as package-dir."""
    import tomllib

    project = tomllib.loads((REPO / "pyproject.toml").read_text())["tool"]["setuptools"]
    roots = {folder: name for name, folder in project["package-dir"].items()}
    found = set()
    for folder, name in roots.items():
        for init in (REPO / folder).rglob("__init__.py"):
            rel = init.parent.relative_to(REPO / folder).parts
            found.add(".".join((name, *rel)))
    assert sorted(found - set(project["packages"])) == []


@pytest.mark.unit
def test_the_code_bounds_waits_with_asyncio_timeout_not_wait_for() -> None:
    """asyncio.wait_for on Python 3.11 can swallow a cancellation (docs/plugins.md): the
    core, the plugins and the simulator use ``async with asyncio.timeout(...)``."""
    found = [f"{p.relative_to(REPO)}:{n}" for folder in ("framework", "plugins", "simulator")
             for p in (REPO / folder).rglob("*.py")
             for n, line in enumerate(p.read_text().splitlines(), 1)
             if "asyncio.wait_for(" in line]
    assert found == []
