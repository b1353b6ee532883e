"""Docs kept honest by tests (the datasette pattern): every hook has a heading with its
exact signature in docs/plugins.md and a test somewhere under tests/; the public names
and the conformance tests the page lists are the real ones."""

from __future__ import annotations

import inspect
import re
from pathlib import Path
from typing import Any

import pytest

import feedctl
import feedctl.testing
from feedctl import hookspecs
from feedctl.testing import FeedContract

REPO = Path(__file__).resolve().parents[1]
PLUGINS_MD = REPO / "docs" / "plugins.md"
TESTS = REPO / "tests"

pytestmark = pytest.mark.unit


def hooks() -> dict[str, Any]:
    return {name: fn for name, fn in vars(hookspecs).items()
            if callable(fn) and hasattr(fn, "feedctl_spec")}


HOOKS = sorted(hooks())


def signature(name: str) -> str:
    params = inspect.signature(hooks()[name]).parameters
    return f"{name}({', '.join(params)})"


def docs() -> str:
    return PLUGINS_MD.read_text()


def section(name: str) -> str:
    """The text under a hook's heading, up to the next heading."""
    text = docs()
    start = text.index(f"### {signature(name)}\n")
    end = text.find("\n#", start + 4)
    return text[start:end if end != -1 else None]


def test_hookspecs_are_found() -> None:
    assert "feedctl_feed_kinds" in HOOKS and len(HOOKS) >= 10


@pytest.mark.parametrize("hook", HOOKS)
def test_plugin_hooks_are_documented(hook: str) -> None:
    headings = re.findall(r"^### (feedctl_\w+\(.*\))$", docs(), re.MULTILINE)
    assert signature(hook) in headings, (
        f"docs/plugins.md needs a heading '### {signature(hook)}'")


def test_documented_hooks_exist() -> None:
    documented = set(re.findall(r"^### (feedctl_\w+)\(", docs(), re.MULTILINE))
    assert documented == set(HOOKS)


@pytest.mark.parametrize("hook", HOOKS)
def test_plugin_hook_docs_say_when_and_what_is_returned(hook: str) -> None:
    text = " ".join(section(hook).split())
    assert "*When:*" in text and "*Returns:*" in text
    firstresult = hooks()[hook].feedctl_spec.get("firstresult")
    assert ("Stops at the first non-None result" in text) if firstresult else (
        "Every implementation is called" in text)


@pytest.mark.parametrize("hook", HOOKS)
def test_plugin_hooks_have_tests(hook: str) -> None:
    mentions = [p for p in TESTS.rglob("*.py")
                if p.name != "test_docs.py" and hook in p.read_text()]
    assert any(p.name.startswith("test_") for p in mentions), (
        f"no test under tests/ mentions {hook}")


def test_public_names_are_documented() -> None:
    text = docs()
    missing = [n for n in feedctl.__all__ if f"`{n}`" not in text]
    assert missing == [], f"docs/plugins.md does not mention feedctl.{missing}"


def test_testing_names_are_documented() -> None:
    text = docs()
    missing = [n for n in feedctl.testing.__all__ if f"`{n}`" not in text]
    assert missing == []


def test_every_contract_test_is_listed() -> None:
    contract = sorted(n for n in dir(FeedContract) if n.startswith("test_"))
    listed = sorted(re.findall(r"^\| `(test_\w+)` \|", docs(), re.MULTILINE))
    assert listed == contract


def test_switches_and_entry_point_group_are_documented() -> None:
    text = docs()
    for needle in ("FEEDCTL_LOAD_PLUGINS", "FEEDCTL_DISABLE_PLUGIN_AUTOLOAD",
                   "[project.entry-points.feedctl]", "API_VERSION", "pytest11",
                   "-p feedctl.testing.pytest_plugin"):
        assert needle in text, needle
