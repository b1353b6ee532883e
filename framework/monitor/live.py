"""The live terminal view of ``feedctl run`` (rich), for when stdout is a terminal.

It redraws in place every ``refresh`` seconds from the session's state (no scrolling,
no per-event flicker), and lists failovers and trailing-stop signals as they come
from its own event stream. Log lines written to a terminal stderr appear above the
view instead of tearing it.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import sys
from collections import deque
from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

from rich.console import Console
from rich.live import Live

from .render import dashboard
from .views import (
    RateTracker,
    account_feed_rows,
    feed_rows,
    is_notable,
    notable_json,
    positions_payload,
)

if TYPE_CHECKING:
    from ..session import Session


class LiveModel:
    """What the live view draws, collected from one session."""

    def __init__(self, session: Session, keep: int = 8, source: str = "") -> None:
        self.session = session
        self.source = source
        self.rates = RateTracker()
        self.notable: deque[dict[str, Any]] = deque(maxlen=keep)

    def on_event(self, event: Any) -> None:
        if is_notable(event):
            self.notable.append(notable_json(event))

    def render(self) -> Any:
        status = self.session.status()
        payload = positions_payload(self.session)
        if self.session.multi:  # every account: its positions and feeds, a summary row each
            rows = account_feed_rows(self.session, None, self.rates)
            return dashboard(status, payload["delivered"], rows, list(self.notable),
                             source=self.source, instruments=payload["instruments"],
                             unknown=payload["unknown_reason"], every_account=True)
        rows = feed_rows(status, self.rates.update(status["feeds"]))
        return dashboard(status, payload["delivered"], rows, list(self.notable),
                         source=self.source, instruments=payload["instruments"])


async def live_view(session: Session, *, refresh: float = 0.5, console: Console | None = None,
                    monitor_url: str | None = None) -> None:
    """Render the live view of ``session`` until cancelled (or the session's event
    stream ends). Owns its event stream and task; cleans both up on exit.
    ``monitor_url``, when the monitor runs, is shown in the header."""
    model = LiveModel(session, source=f"dashboard {monitor_url}" if monitor_url else "")
    stream = session.events(name="live-view", replay=False)

    async def pump() -> None:
        async for ev in stream:
            model.on_event(ev)

    console = console or Console()
    redirect = console.is_terminal and sys.stderr.isatty()
    task = asyncio.create_task(pump(), name="live-view-events")
    try:
        with Live(model.render(), console=console, auto_refresh=False, transient=False,
                  redirect_stdout=False, redirect_stderr=redirect) as live, \
                _logs_through(redirect):
            while not task.done():
                await asyncio.sleep(refresh)
                live.update(model.render(), refresh=True)
    finally:
        stream.close()
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)


@contextlib.contextmanager
def _logs_through(active: bool) -> Iterator[None]:
    """Point log handlers that write to the terminal's stderr at ``sys.stderr`` (which
    the Live display has replaced with a proxy that prints above it)."""
    if not active:
        yield
        return
    swapped: list[tuple[logging.StreamHandler[Any], Any]] = []
    for logger in (logging.getLogger("feedctl"), logging.getLogger()):
        for h in logger.handlers:
            if (isinstance(h, logging.StreamHandler) and h.stream is sys.__stderr__
                    and all(h is not s for s, _ in swapped)):
                swapped.append((h, h.setStream(sys.stderr)))
    try:
        yield
    finally:
        for h, old in swapped:
            h.setStream(old)
