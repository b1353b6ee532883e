"""``feedctl tail`` and ``feedctl bus status`` as a user runs them (subprocesses)."""

from __future__ import annotations

import asyncio
import json
import sys
from pathlib import Path
from typing import Any

import pytest

from feedctl import PositionEvent, StatusEvent
from tests.conftest import run_async
from tests.redis_bus.conftest import RedisServer
from tests.redis_bus.helpers import publishing, wait_until_published
from tests.rollout.conftest import collector, wait_for

pytestmark = [pytest.mark.integration, pytest.mark.timeout(120)]
FEEDCTL = str(Path(sys.executable).with_name("feedctl"))


async def feedctl(*args: str) -> asyncio.subprocess.Process:
    return await asyncio.create_subprocess_exec(
        FEEDCTL, *args, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE)


def test_tail_prints_the_lines_run_output_jsonl_prints(tmp_path: Path,
                                                       redis_server: RedisServer) -> None:
    async def main() -> tuple[list[str], list[str]]:
        async with publishing(tmp_path, redis_server.url) as (_, ctl, session):
            local, task = collector(session)
            tail = await feedctl("tail", "--redis", redis_server.url, "--account", "main",
                                 "--for", "8")
            assert tail.stdout is not None
            async with asyncio.timeout(10):
                first = await tail.stdout.readline()  # the snapshot has been read
            skip = len(local)
            await ctl.set_position("SOLUSDT", "Sell", "3")
            await wait_for(lambda: session.router.delivered, 15)
            await ctl.close_position("SOLUSDT")
            await wait_for(lambda: not session.router.delivered, 15)
            await wait_until_published(session)
            tail.terminate()
            rest, _ = await tail.communicate()
            task.cancel()
            lines = [first.decode(), *rest.decode().splitlines()]
            want = [e.model_dump_json() for e in local[skip:] if isinstance(e, StatusEvent)
                    or (isinstance(e, PositionEvent) and e.kind.is_lifecycle)]
            return want, lines

    want, lines = run_async(main(), timeout=90)
    lifecycle = [ln.strip() for ln in lines
                 if '"type":"status"' in ln or ('"type":"position"' in ln and
                                                '"kind":"price"' not in ln)]
    assert len([w for w in want if '"type":"position"' in w]) == 2
    assert lifecycle[-len(want):] == want


def test_bus_status_shows_the_lease_the_stream_and_a_groups_lag(
        tmp_path: Path, redis_server: RedisServer) -> None:
    async def main() -> dict[str, Any]:
        async with publishing(tmp_path, redis_server.url) as (_, ctl, session):
            import redis.asyncio as aioredis

            r = aioredis.from_url(redis_server.url)
            await r.xgroup_create("feedctl:events:main", "bots", id="0")
            await r.aclose()
            await ctl.set_position("BTCUSDT", "Buy", "0.1")
            await wait_for(lambda: session.router.delivered, 15)
            await wait_until_published(session)
            proc = await feedctl("bus", "status", "--redis", redis_server.url, "--json")
            out, err = await proc.communicate()
            assert proc.returncode == 0, err.decode()
            text = await feedctl("bus", "status", "--redis", redis_server.url)
            table, _ = await text.communicate()
            return {"json": json.loads(out), "table": table.decode()}

    out = run_async(main(), timeout=90)
    main_ = out["json"]["accounts"]["main"]
    assert main_["lease"]["token"] == 1 and main_["lease"]["ttl_ms"] > 0
    assert main_["open_positions"] == 1
    assert main_["events_length"] >= 2
    (group,) = main_["groups"]
    assert group["group"] == "bots" and group["lag"] == main_["events_length"]
    assert "main" in out["table"] and "bots" in out["table"]
    assert any(k.startswith("feedctl:marks:bybit:") for k in out["json"]["marks"])


def test_a_worker_that_never_reached_redis_exits_1_naming_the_server() -> None:
    """Nothing listens on the port: the worker retries for its run (Redis may come
    back), but a run in which it never answered served nothing and is not a success."""
    import socket
    with socket.socket() as s:  # a free port nothing listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]

    async def main() -> tuple[int, str]:
        proc = await feedctl("worker", "--profile", "sim", "--redis",
                             f"redis://127.0.0.1:{port}", "--for", "2")
        _, err = await proc.communicate()
        return proc.returncode or 0, err.decode()

    code, err = run_async(main(), timeout=60)
    assert code == 1, err
    assert f"ERROR: Redis at redis://127.0.0.1:{port} never answered this worker" in err
