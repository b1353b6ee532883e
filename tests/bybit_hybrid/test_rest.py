"""The REST client against a scripted loopback server (exact answers per request)."""

from __future__ import annotations

import contextlib
import hashlib
import hmac
import logging
import time
from collections.abc import AsyncIterator
from typing import Any

import aiohttp
import orjson
import pytest
from aiohttp import web
from pydantic import SecretStr

from feedctl import Category, FatalFeedError, FeedContext, RetryableFeedError
from feedctl.plugins.bybit_hybrid import HybridSettings
from feedctl.plugins.bybit_hybrid.rest import RestClient
from feedctl.plugins.bybit_hybrid.signing import ServerClock

from .conftest import payload, run

pytestmark = pytest.mark.integration
KEY, SECRET = "XXXXXXXXXX", "s3cr3t-s3cr3t-s3cr3t"
LOG = logging.LoggerAdapter(logging.getLogger("feedctl.test.rest"), {})


@contextlib.asynccontextmanager
async def scripted(answers: dict[str, list[Any]]) -> AsyncIterator[tuple[str, list[web.Request]]]:
    """A server answering each path with the next scripted (status, body, headers)."""
    seen: list[web.Request] = []

    async def handler(request: web.Request) -> web.Response:
        seen.append(request)
        if request.path != "/v5/market/time":  # check every signature like Bybit does
            hdr = request.headers
            ts, window = hdr["X-BAPI-TIMESTAMP"], hdr["X-BAPI-RECV-WINDOW"]
            query = request.rel_url.raw_query_string
            origin = f"{ts}{hdr['X-BAPI-API-KEY']}{window}{query}"
            want = hmac.new(SECRET.encode(), origin.encode(), hashlib.sha256).hexdigest()
            assert request.headers["X-BAPI-SIGN"] == want
        queue = answers[request.path]
        item = queue.pop(0) if len(queue) > 1 else queue[0]
        if callable(item):  # an answer made when asked (one that says the time)
            item = item()
        status, body, headers = item if isinstance(item, tuple) else (200, item, {})
        return web.Response(status=status, body=orjson.dumps(body) if not isinstance(
            body, bytes) else body, headers=headers, content_type="application/json")

    app = web.Application()
    app.router.add_get("/{tail:.*}", handler)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
    try:
        yield f"http://127.0.0.1:{port}", seen
    finally:
        await runner.cleanup()


async def client_call(
    base: str, fn: str, *args: Any, **settings: Any
) -> tuple[Any, dict[str, int]]:
    counts: dict[str, int] = {}
    s = HybridSettings(backoff_base=0.01, backoff_cap=0.05, rest_attempts=3, **settings)
    async with aiohttp.ClientSession() as http:
        rc = RestClient(http, base, SecretStr(KEY), SecretStr(SECRET), ServerClock(), s, LOG,
                        lambda n: counts.__setitem__(n, counts.get(n, 0) + 1))
        result = await getattr(rc, fn)(*args)
    return result, counts


def test_positions_follow_the_cursor_to_the_end() -> None:
    async def go() -> None:
        pages = [payload("rest_position_list_page1.json"), payload("rest_position_list_page2.json")]
        async with scripted({"/v5/position/list": pages}) as (base, seen):
            (rows, as_of), _ = await client_call(base, "positions", [Category.LINEAR], ["USDT"])
        assert [r.symbol for r in rows] == ["BTCUSDT", "ETHUSDT"]
        assert as_of == 1697682318000  # the earliest page's server time
        assert seen[0].query_string == "category=linear&settleCoin=USDT&limit=200"
        assert seen[1].query["cursor"] == "ETHUSDT:1697682317038,ETHUSDT:1697682317038"

    run(go())


def test_sync_clock_reads_time_nano() -> None:
    async def go() -> None:
        async with scripted({"/v5/market/time": [payload("rest_market_time.json")]}) as (base, _):
            offset, _ = await client_call(base, "sync_clock")
        assert offset < -10_000_000  # the recorded server time is in 2023

    run(go())


@pytest.mark.parametrize(
    ("name", "words"),
    [("rest_error_10003.json", ["rejected the API key", "10003", "__ACCOUNT__API_KEY"]),
     ("rest_error_10004.json", ["signature", "10004", "__ACCOUNT__API_SECRET"])],
)
def test_bad_key_or_signature_is_fatal_at_once(name: str, words: list[str]) -> None:
    async def go() -> None:
        body = payload(name)
        body["retMsg"] = body["retMsg"].replace("XXXXXXXXXX", KEY)
        async with scripted({"/v5/position/list": [body]}) as (base, seen):
            with pytest.raises(FatalFeedError) as info:
                await client_call(base, "positions", [Category.LINEAR], ["USDT"])
        assert len(seen) == 1  # no retry storm
        for w in words:
            assert w in str(info.value)
        assert SECRET not in str(info.value) and KEY not in str(info.value)

    run(go())


def test_rate_limit_and_5xx_are_retried() -> None:
    async def go() -> None:
        reset = {"X-Bapi-Limit-Reset-Timestamp": "0"}
        answers = [(200, payload("rest_error_10006.json"), reset), (502, b"bad gateway", {}),
                   payload("rest_position_list_page2.json")]
        async with scripted({"/v5/position/list": answers}) as (base, seen):
            (rows, _), counts = await client_call(base, "positions", [Category.LINEAR], ["USDT"])
        assert len(rows) == 1 and len(seen) == 3 and counts["rest_retries"] == 2

    run(go())


def test_retries_are_bounded_then_retryable_error() -> None:
    async def go() -> None:
        async with scripted({"/v5/position/list": [(503, b"", {})]}) as (base, seen):
            with pytest.raises(RetryableFeedError, match="failed 3 times"):
                await client_call(base, "positions", [Category.LINEAR], ["USDT"])
        assert len(seen) == 3

    run(go())


def test_timestamp_error_remeasures_the_clock() -> None:
    async def go() -> None:
        skew = {"retCode": 10002, "retMsg": "invalid request, please check your server "
                "timestamp or recv_window param", "result": {}, "time": 1}
        answers = {"/v5/position/list": [skew, payload("rest_position_list_page2.json")],
                   "/v5/market/time": [payload("rest_market_time.json")]}
        async with scripted(answers) as (base, seen):
            await client_call(base, "positions", [Category.LINEAR], ["USDT"])
        assert [r.path for r in seen] == ["/v5/position/list", "/v5/market/time",
                                          "/v5/position/list"]

    run(go())


def test_repeated_cursor_is_an_error_not_a_loop() -> None:
    async def go() -> None:
        page = payload("rest_position_list_page1.json")
        async with scripted({"/v5/position/list": [page]}) as (base, _):
            with pytest.raises(RetryableFeedError, match="repeated cursor"):
                await client_call(base, "positions", [Category.LINEAR], ["USDT"])

    run(go())


@pytest.mark.parametrize("result", [None, {}, {"list": None}, {"list": 5}, [1], "x"])
@pytest.mark.parametrize(("path", "fn", "args"), [
    ("/v5/position/list", "positions", ([Category.LINEAR], ["USDT"])),
    ("/v5/execution/list", "fills", ([Category.LINEAR], 0)),
])
def test_an_ok_answer_without_a_list_is_retryable_not_empty(
    result: Any, path: str, fn: str, args: tuple[Any, ...]
) -> None:
    """retCode 0 without result.list: not 'no positions' (that would close them all)."""
    async def go() -> None:
        async with scripted({path: [{"retCode": 0, "result": result, "time": 1}]}) as (base, _):
            with pytest.raises(RetryableFeedError, match=r"without a result\.list"):
                await client_call(base, fn, *args)

    run(go())


@pytest.mark.parametrize("body", [{"retCode": 0, "result": [1]}, {"retCode": 0, "result": "x"},
                                  {"retCode": 0, "result": {"timeNano": [1]}},
                                  {"retCode": 0, "result": {}, "time": True}])
def test_sync_clock_without_a_usable_time_is_retryable(body: dict[str, Any]) -> None:
    async def go() -> None:
        async with scripted({"/v5/market/time": [body]}) as (base, _):
            with pytest.raises(RetryableFeedError, match="without a time"):
                await client_call(base, "sync_clock")

    run(go())


def test_unused_import_guard() -> None:
    assert FeedContext  # the module imports only public framework names


def test_a_401_without_a_json_body_is_fatal_and_names_the_key_settings() -> None:
    async def go() -> None:
        async with scripted({"/v5/position/list": [(401, b"401 Unauthorized", {})]}) as (
                base, seen):
            with pytest.raises(FatalFeedError) as info:
                await client_call(base, "positions", [Category.LINEAR], ["USDT"])
        assert len(seen) == 1 and "401" in str(info.value)
        assert "API_KEY" in str(info.value) and "API_SECRET" in str(info.value)

    run(go())


def test_a_404_is_fatal_and_says_check_the_rest_url_and_the_categories() -> None:
    async def go() -> None:
        async with scripted({"/v5/position/list": [(404, b"<html>404</html>", {})]}) as (
                base, seen):
            with pytest.raises(FatalFeedError) as info:
                await client_call(base, "positions", [Category.INVERSE], ["USDT"])
        assert len(seen) == 1
        assert "ENDPOINTS__REST" in str(info.value) and "categor" in str(info.value)

    run(go())


def test_a_403_stops_every_request_for_the_ban_period() -> None:
    async def go() -> None:
        answers = [(403, b"<html>403 Forbidden</html>", {}),
                   payload("rest_position_list_page2.json")]
        async with scripted({"/v5/position/list": answers}) as (base, seen):
            counts: dict[str, int] = {}
            s = HybridSettings(backoff_base=0.01, backoff_cap=0.05, rest_attempts=3,
                               ip_ban_pause=600)
            async with aiohttp.ClientSession() as http:
                rc = RestClient(http, base, SecretStr(KEY), SecretStr(SECRET), ServerClock(),
                                s, LOG, lambda n: counts.__setitem__(n, counts.get(n, 0) + 1))
                bans: list[float] = []
                rc.on_ban = bans.append
                for _ in range(3):
                    with pytest.raises(RetryableFeedError, match="REST paused until"):
                        await rc.positions([Category.LINEAR], ["USDT"])
                assert bans == [600] and 599 < rc.ban_left() <= 600
        assert len(seen) == 1  # one 403, then nothing for the ban period
        assert counts["rest_banned"] == 1 and counts["rest_banned_skips"] == 2

    run(go())


def test_a_clock_sync_retried_after_a_rate_limit_measures_only_the_answered_request() -> None:
    """/v5/market/time answers 10006 first (the limit resets 0.6 s later), then the true
    time: the offset is the answered request's, not one skewed by half the wait (a signed
    request stamped with such an offset is refused with 10002)."""
    def refused() -> tuple[int, dict[str, Any], dict[str, str]]:
        now = time.time_ns() // 1_000_000
        return 200, {"retCode": 10006, "retMsg": "Too many visits!", "result": {},
                     "time": now}, {"X-Bapi-Limit-Reset-Timestamp": str(now + 600)}

    def answered() -> dict[str, Any]:
        now = time.time_ns()
        return {"retCode": 0, "retMsg": "OK", "time": now // 1_000_000,
                "result": {"timeSecond": str(now // 10**9), "timeNano": str(now)}}

    async def go() -> tuple[int, float | None, int]:
        clock = ServerClock()
        s = HybridSettings(backoff_base=0.01, backoff_cap=1.0, rest_attempts=3)
        async with (scripted({"/v5/market/time": [refused, answered]}) as (base, seen),
                    aiohttp.ClientSession() as http):
            rc = RestClient(http, base, SecretStr(KEY), SecretStr(SECRET), clock, s, LOG,
                            lambda _n: None)
            offset = await rc.sync_clock()
        return offset, clock.rtt_ms, len(seen)

    offset, rtt, requests = run(go())
    assert requests == 2
    assert rtt is not None and rtt < 200, rtt  # the wait for the reset is no round trip
    assert abs(offset) < 100, offset  # loopback: the server's clock is ours
