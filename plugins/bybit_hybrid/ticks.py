"""The public socket's data callback, the hot path of the feed.

Every ticker frame is checked against the connection's :class:`TickerState` as it is
parsed; a frame that moved the mark becomes its symbol's *pending* mark (a newer frame
of a symbol still pending replaces it in its place: the book would only supersede it).
Pending marks are handed to the book at the end of the socket read that brought them
(``read_end``, called by the connection), else in a ``call_soon`` - at most
:attr:`TickHandler.chunk` of them per turn of the event loop, oldest first; the rest
wait for the next turn, after the consumers the first ones woke. A large read (a
backlog after a stall: hundreds of frames) no longer holds its first frame's event
back until its last frame is applied. Bookkeeping that need not be per frame - the
``messages`` counter and the liveness stamp - is done once per read too: at its end for
frames taken by the fast path (:meth:`TickHandler.raw`, only called for frames a read
hands over), in the ``call_soon`` for the others (no extra turn of the loop per read
on the fast path). Slow *consumers* are the core's business: its delivery queues
coalesce price events.
"""

from __future__ import annotations

import asyncio
from collections import OrderedDict
from typing import TYPE_CHECKING, Any, cast

from .constants import TICKERS_PREFIX
from .parse import DECLINED, Problem, Tick, TickerState

if TYPE_CHECKING:
    from .ports import TickSource

_PLEN = len(TICKERS_PREFIX)


class TickHandler:
    """Called with each decoded ticker frame and its receive time (ns)."""

    __slots__ = ("_apply", "_apply_mark", "_apply_raw", "_category", "_count", "_draining",
                 "_last_ns", "_loop", "_pending", "_scheduled", "_stream")

    #: Marks handed to the book per turn of the event loop (consumers run in between).
    chunk = 16

    def __init__(self, stream: TickSource, tickers: TickerState) -> None:
        self._stream = stream
        self._apply = tickers.apply
        self._apply_raw = tickers.apply_raw
        self._category = tickers.category
        #: latency and mark in one call per tick (FeedContext.apply_streamed_mark)
        self._apply_mark = stream.ctx.apply_streamed_mark
        self._loop = asyncio.get_running_loop()
        self._scheduled = False
        #: a turn of the pending marks is scheduled (``call_soon``)
        self._draining = False
        self._count = 0
        self._last_ns = 0
        #: symbol -> its newest mark not yet applied, oldest first
        self._pending: OrderedDict[str, Tick] = OrderedDict()

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

    def raw(self, raw: bytes | bytearray | memoryview | str, received_ns: int) -> bool:
        """:meth:`__call__` from the frame's bytes (the connection's fast path): True if
        the frame was a ticker push it took (:meth:`TickerState.apply_raw`), False to
        leave it to the general path (decoded to a dict, then :meth:`__call__`) - as it
        does every frame while a stale symbol waits to be woken. Only for frames a socket
        read hands over: their marks and bookkeeping wait for its end (:meth:`read_end`),
        no ``call_soon`` is scheduled."""
        stream = self._stream
        if stream.stale:
            return False
        res = self._apply_raw(raw, received_ns)
        if res is DECLINED:
            return False
        self._count += 1  # counted at the read's end (read_end)
        self._last_ns = received_ns
        if res is None:
            return True
        if type(res) is Tick:
            self._pending[res.symbol] = res
        else:
            stream.problem(cast("Problem", res))
        return True

    def read_end(self) -> None:
        """The frames of one socket read were handed over: apply their marks now, a
        :attr:`chunk` at a time, then count them and stamp the liveness (the connection
        calls this at the end of its read, one loop iteration earlier than the
        ``call_soon`` of the general path's frames)."""
        if self._pending and not self._draining:
            self._apply_pending()
        if self._count:
            self._keep_books()

    def _flush(self) -> None:
        self._scheduled = False
        if self._pending and not self._draining:
            self._apply_pending()
        if self._count:
            self._keep_books()

    def _keep_books(self) -> None:
        """The ``messages`` counter and the liveness stamp, for the frames since the last
        time."""
        ctx = self._stream.ctx
        ctx.count("messages", self._count)
        ctx.message_received(self._last_ns)
        self._count = 0

    def _apply_pending(self) -> None:
        """Apply up to :attr:`chunk` pending marks, oldest first; the rest in the next
        turn of the loop, after the consumers these woke (scheduled before it)."""
        pending = self._pending
        pop = pending.popitem
        apply_mark, category = self._apply_mark, self._category
        for _ in range(min(self.chunk, len(pending))):
            symbol, mark, exchange_ms, received_ns = pop(last=False)[1]
            try:
                apply_mark(category, symbol, mark, exchange_ms, received_ns)
            except Exception:  # a bug downstream must not cost the other symbols' marks
                ctx = self._stream.ctx
                ctx.count("handler_errors")
                ctx.log.exception("error applying the mark of %s", symbol)
        self._draining = bool(pending)
        if pending:
            self._loop.call_soon(self._apply_pending)
