"""Helpers for the reliability tests: the campaign and soak modules (bench/ is not a
package; the campaign's own package is bench/chaoslib), and the hybrid harness of
tests/bybit_hybrid with longer intervals.

pytest-asyncio is not used: tests are sync functions calling ``tests.conftest.run_async``.
"""

from __future__ import annotations

import contextlib
import importlib
import importlib.util
import sys
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest

from tests.bybit_hybrid.conftest import Harness, harness

#: the CPU-heavy campaign and soak tests: one xdist worker runs them one after the other
#: (``--dist loadgroup``), so two never compete for the 2 cores and a module's shared
#: campaign run is made once
HEAVY = pytest.mark.xdist_group("heavy")

ROOT = Path(__file__).resolve().parents[2]

#: Short intervals: reconnects and resyncs within a fraction of a second.
FAST_HYBRID: dict[str, Any] = dict(
    ping_interval=1.0, pong_timeout=1.0, stale_after=1.0, audit_interval=0,
    backoff_base=0.02, backoff_cap=0.2, request_timeout=2.0, expires_margin=5,
    max_connection_lifetime=None,
)


def bench_module(name: str) -> ModuleType:
    """``bench/<name>.py`` as a module (registered once, so dataclasses resolve)."""
    key = f"feedctl_bench_{name}"
    if key in sys.modules:
        return sys.modules[key]
    spec = importlib.util.spec_from_file_location(key, ROOT / "bench" / f"{name}.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[key] = module
    spec.loader.exec_module(module)
    return module


def bench_package(name: str) -> ModuleType:
    """A package under ``bench/`` or one of its modules (``"chaoslib.analysis"``), imported
    with ``bench/`` on ``sys.path`` the way ``bench/chaos.py`` imports it (so the modules
    are the ones ``bench_module("chaos")`` uses)."""
    bench = str(ROOT / "bench")
    if bench not in sys.path:
        sys.path.insert(0, bench)
    return importlib.import_module(name)


def hybrid(symbols: list[str] | None = None, **settings: Any
           ) -> contextlib.AbstractAsyncContextManager[Harness]:
    """The hybrid tests' simulator harness with the reliability tests' intervals."""
    return harness(symbols, **{**FAST_HYBRID, **settings})
