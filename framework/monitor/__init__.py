"""The read-only monitor: live terminal view, HTTP status API, Prometheus metrics,
live dashboard, and ``feedctl status``.

The monitor only reads a session; it never changes a feed. See docs/monitor.md.

* :class:`Monitor` — ``Monitor(session, settings.monitor)``; ``await start()``,
  ``.url``, ``await stop()``.
* :func:`live_view` — ``await live_view(session)`` draws the terminal view until
  cancelled.
* :data:`status_command` — the click command ``feedctl status``.

Each name loads its module on first use (aiohttp and rich are not needed to start
``feedctl --version`` or ``check``).
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from .live import live_view
    from .metrics import SessionCollector
    from .server import Monitor
    from .status_cmd import status_command

__all__ = ["Monitor", "SessionCollector", "live_view", "status_command"]
_HOME = {"Monitor": ".server", "SessionCollector": ".metrics", "live_view": ".live",
         "status_command": ".status_cmd"}


def __getattr__(name: str) -> Any:
    if name in _HOME:
        return getattr(importlib.import_module(_HOME[name], __name__), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
