"""The public socket's data callback, the hot path of the feed.

Every ticker frame is checked against the connection's :class:`TickerState` as it is
parsed; a frame that moved the mark is kept as its symbol's *pending* mark. The marks
pending are handed to the book in one ``call_soon`` per burst of frames (one socket
read): the frames of a read arrive together and nothing runs between them, so a
symbol's earlier marks in the same read are superseded before anyone could see them —
the book applies the newest (it recomputes PnL and emits the ``price`` event). A
callback applies at most ``BATCH`` marks and leaves the rest to the next one, so
consumers run between slices of a large burst. Bookkeeping that need not be per
frame — the ``messages`` counter and the liveness stamp — rides on the same callback.
Slow *consumers* are the core's business: its delivery queues coalesce price events.
"""

from __future__ import annotations

import asyncio
from typing import TYPE_CHECKING, Any

from .constants import TICKERS_PREFIX
from .parse import Tick, TickerState

if TYPE_CHECKING:
    from .public import PublicStream

_PLEN = len(TICKERS_PREFIX)
#: Marks applied per callback: a burst of many symbols reaches consumers in slices, so the
#: first symbols' events are consumed while the book still works through the others.
BATCH = 32


class TickHandler:
    """Called with each decoded ticker frame and its receive time (ns)."""

    __slots__ = ("_apply", "_apply_mark", "_batch", "_category", "_count", "_last_ns", "_loop",
                 "_observe", "_pending", "_scheduled", "_stream")

    def __init__(self, stream: PublicStream, tickers: TickerState) -> None:
        self._stream = stream
        self._apply = tickers.apply
        self._category = tickers.category
        self._apply_mark = stream.ctx.apply_mark_price
        self._observe = stream.ctx.observe_latency
        self._loop = asyncio.get_running_loop()
        self._scheduled = False
        self._count = 0
        self._last_ns = 0
        #: symbol -> its newest mark of the current burst, not yet applied
        self._pending: dict[str, Tick] = {}
        #: marks of an earlier burst still to apply (beyond BATCH per callback)
        self._batch: list[Tick] = []

    def __call__(self, msg: dict[str, Any], received_ns: int) -> None:
        res = self._apply(msg, received_ns)
        self._count += 1
        self._last_ns = received_ns
        if not self._scheduled:
            self._scheduled = True
            self._loop.call_soon(self._flush)
        stream = self._stream
        if stream.stale and str(msg.get("topic"))[_PLEN:] in stream.stale:
            stream._wake.set()
        if res is None:
            return
        if type(res) is Tick:
            self._pending[res.symbol] = res
        else:
            stream.feed.report(res, stream.name)  # type: ignore[arg-type]

    def _flush(self) -> None:
        self._scheduled = False
        ctx = self._stream.ctx
        if self._count:
            ctx.count("messages", self._count)
            ctx.message_received(self._last_ns)
            self._count = 0
        batch = self._batch
        if not batch:
            if not self._pending:
                return
            batch = list(self._pending.values())
            self._pending = {}
        if len(batch) > BATCH:
            # the rest in a callback of its own: consumers woken by these events run first
            batch, self._batch = batch[:BATCH], batch[BATCH:]
            self._scheduled = True
            self._loop.call_soon(self._flush)
        else:
            self._batch = []
        observe, apply_mark, category = self._observe, self._apply_mark, self._category
        for tick in batch:
            observe(tick.exchange_ms, tick.received_ns)
            try:
                apply_mark(category, tick.symbol, tick.mark, tick.exchange_ms, tick.received_ns)
            except Exception:  # a bug downstream must not cost the other symbols' marks
                ctx.count("handler_errors")
                ctx.log.exception("error applying the mark of %s", tick.symbol)
