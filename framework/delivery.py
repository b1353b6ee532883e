"""Delivery to consumers: one bounded queue per consumer.

* ``price`` events for one position are coalesced latest-value-wins while they wait;
* lifecycle (``opened``/``changed``/``closed``), status and signal events are never
  dropped, coalesced or reordered — a price slot is sealed by a later lifecycle event
  of its position, so a price never jumps ahead of the lifecycle event before it;
* memory is bounded: at most one pending price per position plus ``max_pending``
  other events; a consumer that exceeds it is cut off with
  :class:`ConsumerOverflowError` (losing lifecycle events silently is not an option);
* a consumer whose oldest pending event is older than ``lag_threshold`` is lagging.
"""

from __future__ import annotations

import asyncio
import time
from collections import deque
from typing import Any

from .errors import ConsumerOverflowError
from .models import EventKind, PositionEvent, PositionKey

_PRICE = EventKind.PRICE
_monotonic = time.monotonic


#: A queued event's slot is a list (made per event per consumer: a list literal is about
#: a quarter of a dataclass's construction): ``[event, enqueued, open, key]`` -
#: the event, when it was queued (monotonic), whether a price slot still takes newer
#: prices, and a price slot's key in ``_price_slots`` (None: a lifecycle, status or
#: other event).
_Slot = list[Any]
#: What :meth:`ConsumerQueue.get_nowait` returns when nothing is pending.
EMPTY: Any = object()
_EVENT, _ENQUEUED, _OPEN, _KEY = 0, 1, 2, 3


class ConsumerQueue:
    """A bounded, coalescing event queue for one consumer."""

    def __init__(self, name: str, *, max_pending: int = 100_000, lag_threshold: float = 1.0):
        self.name = name
        self.max_pending = max_pending
        self.lag_threshold = lag_threshold
        self._items: deque[_Slot] = deque()
        self._price_slots: dict[tuple[str, str, PositionKey], _Slot] = {}
        self._lifecycle_pending = 0
        self._waiter: asyncio.Future[None] | None = None
        self.delivered = 0
        self.coalesced = 0
        self.overflowed = False
        self.closed = False

    # ---------------------------------------------------------------- producer
    def put(self, event: Any) -> None:
        """Enqueue without blocking. Never raises; an overflow cuts the consumer off."""
        if self.closed or self.overflowed:
            return
        if type(event) is PositionEvent or isinstance(event, PositionEvent):
            pos = event.position
            slot_key = (event.feed, pos.account, pos.key)
            if event.kind is _PRICE:
                self.put_price(event, slot_key)
                return
            sealed = self._price_slots.pop(slot_key, None)
            if sealed is not None:
                sealed[_OPEN] = False
        if self._lifecycle_pending >= self.max_pending:
            self.overflowed = True
            self._wake()
            return
        self._lifecycle_pending += 1
        self._items.append([event, time.monotonic(), False, None])
        self._wake()

    def put_price(self, event: PositionEvent, slot_key: tuple[str, str, PositionKey]) -> None:
        """:meth:`put` for a ``price`` event whose slot key - (feed, account, position
        key) - the caller has built (once for all the queues it puts the event in)."""
        if self.closed or self.overflowed:
            return
        slots = self._price_slots
        slot = slots.get(slot_key)
        if slot is not None and slot[_OPEN]:
            slot[_EVENT] = event
            self.coalesced += 1
            return
        slot = slots[slot_key] = [event, _monotonic(), True, slot_key]
        self._items.append(slot)
        w = self._waiter
        if w is not None and not w.done():
            w.set_result(None)

    def get_nowait(self) -> Any:
        """The next event if one is pending, else :data:`EMPTY` (also once closed or cut
        off: :meth:`get` then says which)."""
        if self.overflowed or not self._items:
            return EMPTY
        slot = self._items.popleft()
        key = slot[_KEY]
        if key is not None:
            slots = self._price_slots
            if slots.get(key) is slot:
                del slots[key]
        else:
            self._lifecycle_pending -= 1
        self.delivered += 1
        return slot[_EVENT]

    def close(self) -> None:
        """No more events; a waiting ``get`` returns what is left, then ``None``."""
        self.closed = True
        self._wake()

    # ---------------------------------------------------------------- consumer
    async def get(self) -> Any | None:
        """Next event, or None once the queue is closed and drained."""
        while True:
            if self.overflowed:
                raise ConsumerOverflowError(
                    f"consumer {self.name!r} fell more than {self.max_pending} events behind "
                    "and was disconnected; consume faster or raise delivery.max_pending"
                )
            ev = self.get_nowait()
            if ev is not EMPTY:
                return ev
            if self.closed:
                return None
            loop = asyncio.get_running_loop()
            self._waiter = loop.create_future()
            try:
                await self._waiter
            finally:
                self._waiter = None

    # ---------------------------------------------------------------- health
    def __len__(self) -> int:
        return len(self._items)

    @property
    def lag_seconds(self) -> float:
        if not self._items:
            return 0.0
        return time.monotonic() - self._items[0][_ENQUEUED]

    @property
    def lagging(self) -> bool:
        return self.overflowed or self.lag_seconds > self.lag_threshold

    def stats(self) -> dict[str, Any]:
        return {
            "consumer": self.name,
            "pending": len(self._items),
            "delivered": self.delivered,
            "coalesced": self.coalesced,
            "lag_seconds": round(self.lag_seconds, 3),
            "lagging": self.lagging,
            "overflowed": self.overflowed,
        }

    def _wake(self) -> None:
        w = self._waiter
        if w is not None and not w.done():
            w.set_result(None)
