"""Pure checks over what a probe recorded: each returns a list of problems (empty = fine).

They are public so a plugin author can reuse them in tests of their own.
"""

from __future__ import annotations

import json
import logging
import traceback
from collections.abc import Iterable, Mapping
from decimal import Decimal
from typing import Any

from pydantic import SecretStr

from ..models import EventKind, PositionEvent

#: Position fields that are prices or sizes: Decimal (or None), never float.
DECIMAL_FIELDS = ("size", "entry_price", "mark_price", "unrealised_pnl", "leverage",
                  "liq_price", "take_profit", "stop_loss", "trailing_stop")

_LEAKS = ("unclosed", "was destroyed but it is pending", "never retrieved", "never awaited",
          "release all resources")
_STANDARD = set(logging.LogRecord("x", 0, "x", 0, "x", None, None).__dict__) | {
    "message", "asctime", "taskName"}


def leak_words(text: str) -> bool:
    """Whether a loop complaint or warning reports a leaked resource or lost task."""
    low = text.lower()
    return any(word in low for word in _LEAKS)


def decimal_problems(events: Iterable[PositionEvent]) -> list[str]:
    """Every price and size of every event is a finite Decimal (or None)."""
    out: list[str] = []
    for ev in events:
        for name in DECIMAL_FIELDS:
            value = getattr(ev.position, name)
            if value is None:
                continue
            if type(value) is not Decimal:
                out.append(f"{ev.kind.value} {ev.position.symbol}: {name} is "
                           f"{type(value).__name__} {value!r}, not Decimal")
            elif not value.is_finite():
                out.append(f"{ev.kind.value} {ev.position.symbol}: {name} is {value}")
    return out


def duplicate_problems(events: Iterable[PositionEvent]) -> list[str]:
    """No ``opened`` for an open position, no ``closed`` (or ``changed``) for a flat one."""
    out: list[str] = []
    open_: dict[tuple[str, str], bool] = {}
    for ev in events:
        key = (ev.feed, str(ev.key))
        is_open = open_.get(key, False)
        if ev.kind is EventKind.OPENED:
            if is_open:
                out.append(f"duplicate opened for {ev.key} (event #{ev.seq})")
            open_[key] = True
        elif ev.kind is EventKind.CLOSED:
            if not is_open:
                out.append(f"closed for {ev.key}, which was not open (event #{ev.seq})")
            open_[key] = False
        elif not is_open:
            out.append(f"{ev.kind.value} for {ev.key}, which was not open (event #{ev.seq})")
    return out


def secrets_of(account: Any) -> dict[str, str]:
    """The plain values of an AccountSettings' key and secret (4 characters or more),
    by what they are (``"the API key"``, ``"the API secret"``)."""
    out = {}
    for name, label in (("api_key", "the API key"), ("api_secret", "the API secret")):
        value = getattr(account, name, None)
        plain = value.get_secret_value() if isinstance(value, SecretStr) else value
        if isinstance(plain, str) and len(plain) >= 4:
            out[label] = plain
    return out


def secret_problems(texts: Mapping[str, str], secrets: Mapping[str, str]) -> list[str]:
    """``texts`` maps where a text came from (``"repr(feed)"``...) to the text;
    ``secrets`` maps what a secret is to its value."""
    out = []
    for where, text in texts.items():
        for label, value in secrets.items():
            if value and value in text:
                out.append(f"{label} appears in {where}: {_around(text, value)}")
    return out


def _around(text: str, value: str) -> str:
    at = text.index(value)
    snippet = text[max(0, at - 40):at] + "<SECRET>" + text[at + len(value):at + len(value) + 40]
    return repr(snippet)


def object_texts(label: str, obj: Any) -> dict[str, str]:
    """``repr``/``str`` of ``obj`` and the repr of each of its attributes (one level;
    plain strings and bytes are data the object holds, not something it prints)."""
    out = {f"repr({label})": repr(obj), f"str({label})": str(obj)}
    for name, value in sorted(getattr(obj, "__dict__", {}).items()):
        if isinstance(value, str | bytes):
            continue
        try:
            out[f"repr({label}.{name})"] = repr(value)
        except Exception as exc:  # a broken repr is not our finding here
            out[f"repr({label}.{name})"] = f"<repr failed: {type(exc).__name__}>"
    return out


def json_text(value: Any) -> str:
    return json.dumps(value, default=str, sort_keys=True)


def record_text(record: logging.LogRecord) -> str:
    """Everything a formatter could print from ``record``: message, extra fields,
    exception and stack."""
    try:
        parts = [record.getMessage()]
    except Exception:
        parts = [str(record.msg), repr(record.args)]
    for k, v in record.__dict__.items():
        if k not in _STANDARD and not k.startswith("_"):
            parts.append(f"{k}={_str(v)}")
    if record.exc_info and record.exc_info[1] is not None:
        parts.append("".join(traceback.format_exception(*record.exc_info)))
    if record.stack_info:
        parts.append(record.stack_info)
    return " ".join(parts)


def _str(value: Any) -> str:
    try:
        return str(value)
    except Exception:  # a dead weakref proxy (websockets' "websocket" field)...
        return "<unprintable>"


class LogCapture(logging.Handler):
    """Keeps every log record a feed emits (``feedctl.*`` at DEBUG, others at their
    configured level), except those of loggers named in ``exclude`` (prefixes)."""

    def __init__(self, exclude: Iterable[str] = ()) -> None:
        super().__init__(logging.DEBUG)
        self.records: list[logging.LogRecord] = []
        self._exclude = tuple(exclude)
        self._undo: list[Any] = []

    def emit(self, record: logging.LogRecord) -> None:
        name = record.name
        if any(name == p or name.startswith(p + ".") for p in self._exclude):
            return
        self.records.append(record)

    def install(self) -> None:
        root, ours = logging.getLogger(), logging.getLogger("feedctl")
        root.addHandler(self)
        self._undo.append(lambda: root.removeHandler(self))
        if not ours.propagate:  # configure_logging() stops propagation at "feedctl"
            ours.addHandler(self)
            self._undo.append(lambda: ours.removeHandler(self))
        level = ours.level
        ours.setLevel(logging.DEBUG)
        self._undo.append(lambda: ours.setLevel(level))

    def remove(self) -> None:
        for undo in reversed(self._undo):
            undo()
        self._undo.clear()

    def texts(self) -> dict[str, str]:
        return {f"log record {i} ({r.name}, {r.levelname})": record_text(r)
                for i, r in enumerate(self.records)}
