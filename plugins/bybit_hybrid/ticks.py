"""The public socket's data callback, the hot path of the feed.

Every ticker frame is merged into the connection's :class:`TickerState` and, when it
moved the mark, handed to the book at once (the book recomputes PnL and emits the
``price`` event). Bookkeeping that need not be per frame — the ``messages`` counter
and the liveness stamp — is batched into one ``call_soon`` per burst of frames.
Slow *consumers* are the core's business: its delivery queues coalesce price events.
"""

from __future__ import annotations

import asyncio
from typing import TYPE_CHECKING, Any

from .constants import TICKERS_PREFIX
from .parse import Tick, TickerState, mark_price

if TYPE_CHECKING:
    from .public import PublicStream

_PLEN = len(TICKERS_PREFIX)


class TickHandler:
    """Called with each decoded ticker frame and its receive time (ns)."""

    __slots__ = ("_apply", "_apply_mark", "_category", "_count", "_last_ns", "_loop",
                 "_observe", "_scheduled", "_stream")

    def __init__(self, stream: PublicStream, tickers: TickerState) -> None:
        self._stream = stream
        self._apply = tickers.apply
        self._category = tickers.category
        self._apply_mark = stream.ctx.apply_mark
        self._observe = stream.ctx.observe_latency
        self._loop = asyncio.get_running_loop()
        self._scheduled = False
        self._count = 0
        self._last_ns = 0

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
            self._observe(res.exchange_ms, received_ns)
            self._apply_mark(mark_price(self._category, res))
        else:
            stream.feed.report(res, stream.name)  # type: ignore[arg-type]

    def _flush(self) -> None:
        self._scheduled = False
        ctx = self._stream.ctx
        ctx.count("messages", self._count)
        ctx.message_received(self._last_ns)
        self._count = 0
