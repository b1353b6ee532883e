"""The monitor's event hub: one session stream fanned out to dashboard clients.

The hub reads ``session.events(name="monitor")`` and hands every event, as a ready
Server-Sent-Events frame, to each connected client. ``price`` events are throttled
per position to ``price_interval`` (latest value wins, the last one is always sent) - or
longer when many positions stream (a session of many accounts): all of them together
send at most ``max_price_frames`` price frames per second;
a lifecycle event of a position drops its held price, which it supersedes. A client
that falls more than ``max_pending`` frames behind is disconnected (the browser's
EventSource reconnects and starts again from a fresh snapshot), so a stuck tab never
grows the monitor's memory.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections import deque
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from ..models import EventKind, PositionEvent
from .views import dumps, event_json, is_notable, notable_json

if TYPE_CHECKING:
    from ..session import EventStream, Session

log = logging.getLogger("feedctl.monitor")


def frame(event: str, data: Any) -> bytes:
    """One SSE frame. ``dumps`` redacts secrets and never emits a raw newline."""
    return f"event: {event}\ndata: {dumps(data)}\n\n".encode()


class Client:
    """One connected dashboard: a bounded queue of SSE frames."""

    def __init__(self, max_pending: int, account: str | None = None) -> None:
        self.max_pending = max_pending
        #: The one account this client shows (None: every account).
        self.account = account
        self._frames: deque[bytes] = deque()
        self._wake = asyncio.Event()
        self.closed = False

    def send(self, data: bytes) -> None:
        if self.closed:
            return
        if len(self._frames) >= self.max_pending:
            log.warning("a dashboard client fell %d events behind; disconnecting it",
                        self.max_pending)
            self.close()
            return
        self._frames.append(data)
        self._wake.set()

    def close(self) -> None:
        self.closed = True
        self._wake.set()

    async def next(self, idle: float) -> bytes | None:
        """The next frame; ``b""`` after ``idle`` s of silence; None once closed."""
        if not self._frames and not self.closed:
            self._wake.clear()
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(idle):
                    await self._wake.wait()
        if self._frames:
            return self._frames.popleft()
        return None if self.closed else b""


class EventHub:
    """Owns the monitor's session stream, its pump task and its throttle task."""

    def __init__(self, session: Session, *, price_interval: float = 0.25,
                 max_pending: int = 2000,
                 snapshot: Callable[[str | None], dict[str, Any]] | None = None,
                 ticker: Callable[[str | None], dict[str, Any]] | None = None,
                 tick_interval: float = 1.0) -> None:
        self.session = session
        self.price_interval = price_interval
        #: Price frames per second of every position together, at most.
        self.max_price_frames = 1000
        self.max_pending = max_pending
        self._snapshot = snapshot
        self._ticker = ticker
        self.tick_interval = tick_interval
        self.clients: set[Client] = set()
        self.notable: deque[dict[str, Any]] = deque(maxlen=50)
        self._last_sent: dict[Any, float] = {}
        self._held: dict[Any, PositionEvent] = {}
        self._stream: EventStream | None = None
        self._tasks: list[asyncio.Task[None]] = []

    async def start(self) -> None:
        # every account's events; a client that shows one account gets only its own
        self._stream = self.session.events(name="monitor", replay=False)
        self._tasks = [asyncio.create_task(self._pump(), name="monitor-events"),
                       asyncio.create_task(self._flush(), name="monitor-price-throttle"),
                       asyncio.create_task(self._tick(), name="monitor-feeds-tick")]

    async def stop(self) -> None:
        for c in list(self.clients):
            c.close()
        if self._stream is not None:
            self._stream.close()
        for t in self._tasks:
            t.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        self._tasks = []

    def connect(self, account: str | None = None) -> Client:
        """A new client (of every account, or of ``account``); its first frame is a
        snapshot, taken in the same step as it joins, so it misses no later event."""
        client = Client(self.max_pending, account)
        if self._snapshot is not None:
            client.send(frame("snapshot", self._snapshot(account)))
        self.clients.add(client)
        return client

    def disconnect(self, client: Client) -> None:
        client.close()
        self.clients.discard(client)

    def broadcast(self, name: str, data: Any, account: str | None = None) -> None:
        """To every client, or (``account`` given: the event's account) to the clients
        that show every account or that one."""
        if not self.clients:
            return
        raw = frame(name, data)
        for c in list(self.clients):
            if account is not None and c.account not in (None, account):
                continue
            c.send(raw)
            if c.closed:
                self.clients.discard(c)

    # ---------------------------------------------------------------- internals
    def _on_event(self, ev: Any) -> None:
        if is_notable(ev):
            self.notable.append(notable_json(ev))
        if isinstance(ev, PositionEvent) and not ev.past:
            key = (ev.position.account, ev.feed, ev.position.key)
            if ev.kind is EventKind.PRICE:
                now = time.monotonic()
                if now - self._last_sent.get(key, 0.0) < self._interval():
                    self._held[key] = ev
                    return
                self._last_sent[key] = now
            else:
                self._held.pop(key, None)
                if ev.kind is EventKind.CLOSED:
                    self._last_sent.pop(key, None)
        out = event_json(ev)
        if out is not None:
            self.broadcast(*out, account=getattr(ev, "account", None))

    async def _pump(self) -> None:
        assert self._stream is not None
        try:
            async for ev in self._stream:
                self._on_event(ev)
        except Exception:
            log.exception("the monitor's event stream failed; the dashboard stops updating")
        finally:
            for c in list(self.clients):
                c.close()

    def _interval(self) -> float:
        """Per position: ``price_interval``, stretched so that every position together
        stays under ``max_price_frames`` per second (2,500 positions: 2.5 s each)."""
        return max(self.price_interval, len(self._last_sent) / self.max_price_frames)

    async def _flush(self) -> None:
        while True:
            await asyncio.sleep(self.price_interval / 2)
            now = time.monotonic()
            for key, ev in list(self._held.items()):
                if now - self._last_sent.get(key, 0.0) >= self._interval():
                    del self._held[key]
                    self._last_sent[key] = now
                    self.broadcast("position", ev.model_dump(mode="json"),
                                   account=ev.position.account)

    async def _tick(self) -> None:
        while True:
            await asyncio.sleep(self.tick_interval)
            if self._ticker is not None and self.clients:
                try:  # one tick per filter the clients use
                    for account in {c.account for c in self.clients}:
                        raw = frame("feeds", self._ticker(account))
                        for c in [c for c in self.clients if c.account == account]:
                            c.send(raw)
                            if c.closed:
                                self.clients.discard(c)
                except Exception:  # a plugin's details() bug must not stop the page
                    log.exception("building the dashboard's feed tick failed")
