"""A remote reader stops when it is cancelled, whatever the Redis client was doing."""

from __future__ import annotations

import asyncio
import random

import pytest

from feedctl import RemoteSession
from tests.conftest import run_async

from .conftest import RedisServer

pytestmark = pytest.mark.integration


def test_a_reader_blocked_in_a_read_stops_at_once_when_cancelled(
        redis_server: RedisServer) -> None:
    """Cancelled at 40 random moments of its blocking reads (an empty stream: every read
    blocks for the whole `block`), the reader's task ends within a second each time -
    the client may turn the cancellation into a connection error or finish the read,
    never keep the reader going."""

    async def main() -> list[float]:
        rng = random.Random(7)
        took: list[float] = []
        async with RemoteSession(redis_server.url, accounts=["main"], block=0.5) as rs:
            for _ in range(40):
                stream = rs.events()

                async def pump(s: object = stream) -> None:
                    async for _ in s:  # type: ignore[attr-defined]
                        pass

                task = asyncio.create_task(pump())
                await asyncio.sleep(rng.uniform(0.0, 0.6))
                task.cancel()
                loop = asyncio.get_running_loop()
                t0 = loop.time()
                async with asyncio.timeout(5):
                    await asyncio.gather(task, return_exceptions=True)
                took.append(loop.time() - t0)
                assert task.cancelled()
        return took

    took = run_async(main(), timeout=120)
    assert max(took) < 1.0, sorted(took)[-5:]
