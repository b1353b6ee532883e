"""Resources the feeds of one session share across its accounts (``ctx.shared``).

A plugin that can serve many accounts from one object — one set of public market-data
sockets per (exchange, category, URL), one rate limiter per IP — asks for it by key::

    hub = ctx.shared(("public", category, url), lambda: PublicHub(url))

The first caller's factory makes it; every later caller with an equal key gets the same
object; the session closes it when it stops (``aclose()`` or ``close()``, awaited if it
returns an awaitable), after every feed has stopped. The core knows nothing of what the
objects are.
"""

from __future__ import annotations

import inspect
import logging
from collections.abc import Callable, Hashable
from typing import Any, TypeVar

T = TypeVar("T")
log = logging.getLogger("feedctl.shared")


class SharedResources:
    """One object per key, made on first use, closed in reverse order of making."""

    def __init__(self) -> None:
        self._items: dict[Hashable, Any] = {}
        self.closed = False

    def get(self, key: Hashable, factory: Callable[[], T]) -> T:
        if self.closed:
            raise RuntimeError(f"shared resource {key!r} asked for after the session stopped")
        try:
            return self._items[key]
        except KeyError:
            obj = self._items[key] = factory()
            return obj

    def __contains__(self, key: Hashable) -> bool:
        return key in self._items

    def __len__(self) -> int:
        return len(self._items)

    async def close(self) -> None:
        """Close every object (newest first); a failing close is logged, never raised."""
        self.closed = True
        items, self._items = list(self._items.items()), {}
        for key, obj in reversed(items):
            closer = getattr(obj, "aclose", None) or getattr(obj, "close", None)
            if closer is None:
                continue
            try:
                result = closer()
                if inspect.isawaitable(result):
                    await result
            except Exception:
                log.exception("shared resource %r failed to close", key)
