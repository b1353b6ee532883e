"""The public socket's data callback, the hot path of the feed.

Every ticker frame is checked against the connection's :class:`TickerState` as it is
parsed; a frame that moved the mark is kept as its symbol's *pending* mark. The marks
pending are handed to the book once per burst of frames - at the end of the socket
read that brought them (``read_end``, called by the connection), else in a
``call_soon``: the frames of a read arrive together and nothing runs between them, so
a symbol's earlier marks in the same read are superseded before anyone could see them
— the book applies the newest (it recomputes PnL and emits the ``price`` event), and
consumers run right after. Bookkeeping that need not be per frame — the ``messages``
counter and the liveness stamp — rides on the ``call_soon``. Slow *consumers* are the
core's business: its delivery queues coalesce price events.
"""

from __future__ import annotations

import asyncio
from typing import TYPE_CHECKING, Any, cast

from .constants import TICKERS_PREFIX
from .parse import Problem, Tick, TickerState

if TYPE_CHECKING:
    from .ports import TickSource

_PLEN = len(TICKERS_PREFIX)


class TickHandler:
    """Called with each decoded ticker frame and its receive time (ns)."""

    __slots__ = ("_apply", "_apply_mark", "_category", "_count", "_last_ns", "_loop",
                 "_observe", "_pending", "_scheduled", "_stream")

    def __init__(self, stream: TickSource, tickers: TickerState) -> None:
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

    def __call__(self, msg: dict[str, Any], received_ns: int) -> None:
        res = self._apply(msg, received_ns)
        self._count += 1
        self._last_ns = received_ns
        if not self._scheduled:
            self._scheduled = True
            self._loop.call_soon(self._flush)
        stream = self._stream
        if stream.stale and str(msg.get("topic"))[_PLEN:] in stream.stale:
            stream.wake()
        if res is None:
            return
        if type(res) is Tick:
            self._pending[res.symbol] = res
        else:
            stream.problem(cast("Problem", res))  # type() is: faster than isinstance

    def read_end(self) -> None:
        """The frames of one socket read were handed over: apply their marks now (the
        connection calls this at the end of its read, one loop iteration earlier than
        the ``call_soon``, which then only does the bookkeeping)."""
        if self._pending:
            self._apply_pending()

    def _flush(self) -> None:
        self._scheduled = False
        ctx = self._stream.ctx
        ctx.count("messages", self._count)
        ctx.message_received(self._last_ns)
        self._count = 0
        if self._pending:
            self._apply_pending()

    def _apply_pending(self) -> None:
        ctx = self._stream.ctx
        pending = self._pending
        self._pending = {}
        observe, apply_mark, category = self._observe, self._apply_mark, self._category
        for tick in pending.values():
            observe(tick.exchange_ms, tick.received_ns)
            try:
                apply_mark(category, tick.symbol, tick.mark, tick.exchange_ms, tick.received_ns)
            except Exception:  # a bug downstream must not cost the other symbols' marks
                ctx.count("handler_errors")
                ctx.log.exception("error applying the mark of %s", tick.symbol)
