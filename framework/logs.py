"""Structured logging to stderr, one event per line, secrets redacted.

``configure_logging(format="kv"|"json")`` installs one handler on the ``feedctl``
logger. Fields passed with ``extra={...}`` are rendered as ``key=value`` pairs (or
JSON members). Every registered secret (``register_secret``) is replaced by ``***``
in the final line, whatever path it took into the message — a last line of defence
behind SecretStr and careful messages.
"""

from __future__ import annotations

import json
import logging
import sys
import threading
import time
from typing import IO, Any

from pydantic import SecretStr

_STANDARD = set(logging.LogRecord("x", 0, "x", 0, "x", None, None).__dict__) | {
    "message", "asctime", "taskName",
}
_secrets: set[str] = set()
_lock = threading.Lock()
REDACTED = "***"


def register_secret(value: str | None) -> None:
    """Never print ``value`` in a log line (values shorter than 4 chars are ignored)."""
    if value and len(value) >= 4:
        with _lock:
            _secrets.add(value)


def redact(text: str, *extra: SecretStr | str | None) -> str:
    """``text`` with every registered secret, and every ``extra`` one (a SecretStr or
    its value), replaced by ``***``: for logs, errors and exchange messages that echo
    what was sent. The one redaction helper of the core and the plugins."""
    values = [e.get_secret_value() if isinstance(e, SecretStr) else e for e in extra]
    for s in (*_secrets, *(v for v in values if v)):
        if s in text:
            text = text.replace(s, REDACTED)
    return text


def _fields(record: logging.LogRecord) -> dict[str, Any]:
    return {
        k: v for k, v in record.__dict__.items() if k not in _STANDARD and not k.startswith("_")
    }


def _ts(record: logging.LogRecord) -> str:
    t = time.gmtime(record.created)
    return time.strftime("%Y-%m-%dT%H:%M:%S", t) + f".{int(record.msecs):03d}Z"


def _kv_value(v: Any) -> str:
    s = str(v)
    if s == "" or any(c in s for c in ' "=\n\t'):
        return json.dumps(s)
    return s


class KeyValueFormatter(logging.Formatter):
    """``ts=... level=info logger=feedctl.x msg="..." key=value ...``"""

    def format(self, record: logging.LogRecord) -> str:
        parts = [
            f"ts={_ts(record)}",
            f"level={record.levelname.lower()}",
            f"logger={record.name}",
            f"msg={_kv_value(record.getMessage())}",
        ]
        parts += [f"{k}={_kv_value(v)}" for k, v in _fields(record).items()]
        line = " ".join(parts)
        if record.exc_info:
            line += "\n" + self.formatException(record.exc_info)
        return redact(line)


class JsonFormatter(logging.Formatter):
    """One JSON object per line."""

    def format(self, record: logging.LogRecord) -> str:
        obj: dict[str, Any] = {
            "ts": _ts(record),
            "level": record.levelname.lower(),
            "logger": record.name,
            "msg": record.getMessage(),
        }
        obj.update({k: v if isinstance(v, int | float | bool | type(None)) else str(v)
                    for k, v in _fields(record).items()})
        if record.exc_info:
            obj["exc"] = self.formatException(record.exc_info)
        return redact(json.dumps(obj, ensure_ascii=False))


_handler: logging.Handler | None = None


def configure_logging(
    format: str = "kv", level: str = "INFO", stream: IO[str] | None = None
) -> logging.Handler:
    """Send ``feedctl.*`` logs (and warnings of libraries) to stderr in ``format``."""
    global _handler
    root = logging.getLogger("feedctl")
    if _handler is not None:
        root.removeHandler(_handler)
        logging.getLogger().removeHandler(_handler)
    handler = logging.StreamHandler(stream or sys.stderr)
    handler.setFormatter(JsonFormatter() if format == "json" else KeyValueFormatter())
    root.addHandler(handler)
    root.setLevel(level)
    root.propagate = False
    # libraries (websockets, ccxt, aiohttp, asyncio): warnings and worse only
    lib = logging.getLogger()
    lib.addHandler(handler)
    if lib.level == logging.NOTSET or lib.level > logging.WARNING:
        lib.setLevel(logging.WARNING)
    logging.captureWarnings(True)
    _handler = handler
    return handler
