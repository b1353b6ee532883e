"""docs/events.md documents every field of every event feedctl emits (issue 13, point 8)."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from pydantic import BaseModel

from feedctl.models import FeedStatus, Position, PositionEvent, RouteEvent, StatusEvent
from feedctl.validator import Disagreement, ValidationReport

pytestmark = pytest.mark.unit

DOC = Path(__file__).resolve().parents[2] / "docs" / "events.md"


def _documented() -> set[str]:
    """The names in the first column of the doc's tables, each as written and with the
    prefix of the row's first name (`position.seq`, `exchange_ms` -> position.exchange_ms;
    `mark_deviation_bps_p50`, `_p99` -> mark_deviation_bps_p99)."""
    names: set[str] = set()
    for line in DOC.read_text("utf-8").splitlines():
        if not line.startswith("| `"):
            continue
        cells = re.findall(r"`([^`]+)`", line.split(" | ")[0])
        first = cells[0]
        prefix = first.rpartition(".")[0]
        for name in cells:
            if name.startswith("_"):  # a suffix of the first name's stem
                name = first.rsplit("_", 1)[0] + name
            elif "." not in name and prefix:
                name = f"{prefix}.{name}"
            names.add(name)
    return names


@pytest.mark.parametrize(("model", "prefix"), [
    (PositionEvent, ""), (Position, "position."), (StatusEvent, ""),
    (FeedStatus, "status."), (RouteEvent, ""), (ValidationReport, ""),
    (Disagreement, "current[]."),
])
def test_every_field_of_every_event_is_documented(model: type[BaseModel],
                                                  prefix: str) -> None:
    documented = _documented()
    missing = [f for f in model.model_fields
               if f"{prefix}{f}" not in documented and f not in documented
               and f != "type"]
    assert not missing, (model.__name__, missing)
