"""Shared test helpers. Area-specific fixtures live in each test folder's conftest."""

from __future__ import annotations

import asyncio
import gc
import warnings
from collections.abc import Coroutine
from typing import Any, TypeVar

T = TypeVar("T")


def run_async(coro: Coroutine[Any, Any, T], timeout: float = 60) -> T:
    """Run ``coro`` in a fresh event loop and fail if it leaves tasks pending."""

    async def guarded() -> T:
        async with asyncio.timeout(timeout):
            result = await coro
        current = asyncio.current_task()
        leftover = [t for t in asyncio.all_tasks() if t is not current and not t.done()]
        assert not leftover, f"tasks left pending: {leftover}"
        return result

    with warnings.catch_warnings():
        warnings.simplefilter("error", ResourceWarning)
        result = asyncio.run(guarded())
        gc.collect()
    return result
