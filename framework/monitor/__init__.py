"""The read-only monitor: live terminal view, HTTP status API, Prometheus metrics,
live dashboard, and ``feedctl status``.

The monitor only reads a session; it never changes a feed. See docs/monitor.md.

* :class:`Monitor` — ``Monitor(session, settings.monitor)``; ``await start()``,
  ``.url``, ``await stop()``.
* :func:`live_view` — ``await live_view(session)`` draws the terminal view until
  cancelled.
* :data:`status_command` — the click command ``feedctl status``.
"""

from .live import live_view
from .metrics import SessionCollector
from .server import Monitor
from .status_cmd import status_command

__all__ = ["Monitor", "SessionCollector", "live_view", "status_command"]
