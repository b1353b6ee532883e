"""A session publishes its routed events; a RemoteSession reads them back."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from feedctl import EventKind, PositionEvent, RemoteSession, StatusEvent
from tests.conftest import run_async
from tests.redis_bus.conftest import RedisServer
from tests.redis_bus.helpers import Reader, publishing, wait_until_published
from tests.rollout.conftest import collector, wait_for

pytestmark = [pytest.mark.integration, pytest.mark.timeout(60)]


def test_a_remote_consumer_gets_the_same_json_as_jsonl(tmp_path: Path,
                                                       redis_server: RedisServer) -> None:
    async def main() -> tuple[list[str], list[str]]:
        async with publishing(tmp_path, redis_server.url) as (_, ctl, session), \
                RemoteSession(redis_server.url, accounts=["main"]) as rs:
            local, task = collector(session)
            remote = Reader(rs)
            await wait_for(lambda: remote.events, 5)  # the snapshot has been read
            skip_local = len(local)
            await ctl.set_price("ETHUSDT", "3000")
            await ctl.set_position("ETHUSDT", "Buy", "0.5", entry_price="3000")
            await wait_for(lambda: session.router.delivered, 5)
            await ctl.set_position("ETHUSDT", "Buy", "0.8", entry_price="3000")
            await asyncio.sleep(0.5)
            await ctl.close_position("ETHUSDT")
            await wait_for(lambda: any(e.kind is EventKind.CLOSED for e in remote.lifecycle()),
                           5)
            await wait_until_published(session)
            await asyncio.sleep(0.3)
            task.cancel()
            await remote.close()
            skip_remote = sum(1 for m in remote.metas if m.stream_id is None)
            want = [e.model_dump_json() for e in local[skip_local:]
                    if isinstance(e, StatusEvent) or
                    (isinstance(e, PositionEvent) and e.kind.is_lifecycle)]
            got = [e.model_dump_json() for e in remote.events[skip_remote:]
                   if not (isinstance(e, PositionEvent) and e.kind is EventKind.PRICE)]
            return want, got

    want, got = run_async(main())
    kinds = [e for e in want if '"type":"position"' in e]
    assert len(kinds) >= 3  # opened, changed, closed at least
    assert got == want
