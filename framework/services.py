"""Services: things a session runs around its feeds (the embedded exchange, ...)."""

from __future__ import annotations

from typing import Any, Protocol, runtime_checkable


@runtime_checkable
class Service(Protocol):
    """Started before the feeds are built, stopped after they have stopped.

    ``provides`` names the settings sections ``start()`` fills (``"account"``,
    ``"endpoints"``), so ``feedctl check`` can say where they will come from without
    starting anything.
    """

    name: str
    provides: frozenset[str]

    async def start(self) -> dict[str, Any] | None:
        """Start; return settings overrides such as ``{"account": {...}, "endpoints": {...}}``."""
        ...

    async def stop(self) -> None:
        """Stop and release everything started; must not raise."""
        ...
