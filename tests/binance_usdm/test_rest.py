"""The REST client on the scripted exchange (loopback; to be moved onto the simulator):
error codes, clock skew, 429 / 418, weights, listenKey calls."""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from typing import Any

import aiohttp
import pytest
from pydantic import SecretStr

from feedctl import FatalFeedError, FeedState, RetryableFeedError
from feedctl.plugins.binance_usdm.config import BinanceSettings
from feedctl.plugins.binance_usdm.rest import (
    Banned,
    ListenKeyGone,
    NotServed,
    RestClient,
    Weights,
)
from feedctl.plugins.binance_usdm.signing import ServerClock
from feedctl.testing import FeedProbe, run_scenario

from .harness import FAST, BinanceHarness
from .scripted_exchange import ScriptedBinance

pytestmark = pytest.mark.integration
LOG = logging.LoggerAdapter(logging.getLogger("test.binance.rest"), {})


class Counts(dict[str, int]):
    def __call__(self, name: str) -> None:
        self[name] = self.get(name, 0) + 1


@asynccontextmanager
async def client(secret: str | None = None, **settings: Any
                 ) -> AsyncIterator[tuple[RestClient, ScriptedBinance, Counts]]:
    ex = ScriptedBinance()
    await ex.start()
    counts = Counts()
    s = BinanceSettings(**{**FAST, "backoff_base": 0.01, "backoff_cap": 0.05, **settings})
    try:
        async with aiohttp.ClientSession() as http:
            yield (RestClient(http, ex.rest, SecretStr(ex.api_key),
                              SecretStr(secret or ex.api_secret), ServerClock(), s, LOG,
                              counts, profile="bin"), ex, counts)
    finally:
        await ex.stop()


def run(body: Callable[[RestClient, ScriptedBinance, Counts], Awaitable[None]],
        **kw: Any) -> None:
    async def main() -> None:
        async with client(**kw) as (rest, ex, counts):
            async with asyncio.timeout(20):
                await body(rest, ex, counts)
    asyncio.run(main())


def test_an_invalid_key_is_fatal_and_names_the_variable() -> None:
    async def body(rest: RestClient, ex: ScriptedBinance, counts: Counts) -> None:
        ex.api_key = "another"
        with pytest.raises(FatalFeedError, match=r"-2015.*FEEDCTL_BIN__ACCOUNT__API_KEY"):
            await rest.positions(False, {})
    run(body)


def test_a_bad_signature_is_fatal_and_names_the_secret() -> None:
    async def body(rest: RestClient, ex: ScriptedBinance, counts: Counts) -> None:
        with pytest.raises(FatalFeedError, match="FEEDCTL_BIN__ACCOUNT__API_SECRET") as info:
            await rest.positions(False, {})
        assert "wrong-secret" not in str(info.value)
    run(body, secret="wrong-secret")


def test_timestamp_outside_recv_window_remeasures_the_clock_and_retries() -> None:
    async def body(rest: RestClient, ex: ScriptedBinance, counts: Counts) -> None:
        ex.clock_skew_ms = 30_000  # the server runs 30 s ahead of us
        rows, _ = await rest.positions(False, {})
        assert rows == [] and counts["rest_retries"] == 1
        assert 29_000 < rest.clock.offset_ms < 31_000
    run(body)


def test_429_waits_retry_after_then_succeeds() -> None:
    async def body(rest: RestClient, ex: ScriptedBinance, counts: Counts) -> None:
        ex.script("/fapi/v3/positionRisk", 429, {"code": -1003, "msg": "Too many requests"},
                  {"Retry-After": "0.4"})
        began = time.monotonic()
        await rest.positions(False, {})
        assert time.monotonic() - began >= 0.4 and counts["rate_limited"] == 1
    run(body)


def test_418_stops_every_call_for_the_ban() -> None:
    async def body(rest: RestClient, ex: ScriptedBinance, counts: Counts) -> None:
        ex.script("/fapi/v3/positionRisk", 418, {"code": -1003, "msg": "banned"},
                  {"Retry-After": "30"})
        with pytest.raises(Banned):
            await rest.positions(False, {})
        sent = len(ex.requests)
        with pytest.raises(Banned, match="banned"):
            await rest.hedge_mode()
        assert len(ex.requests) == sent  # nothing was sent during the ban
    run(body)


def test_keepalive_of_a_gone_key_is_listen_key_gone() -> None:
    async def body(rest: RestClient, ex: ScriptedBinance, counts: Counts) -> None:
        key = await rest.create_listen_key()
        await rest.keepalive(key)
        ex.listen_keys.clear()
        with pytest.raises(ListenKeyGone):
            await rest.keepalive(key)
    run(body)


def test_a_position_answer_that_is_not_a_list_is_retryable_not_empty() -> None:
    async def body(rest: RestClient, ex: ScriptedBinance, counts: Counts) -> None:
        ex.script("/fapi/v3/positionRisk", 200, {"rows": []}, times=2)
        with pytest.raises(RetryableFeedError, match="not a list"):
            await rest.positions(False, {})
    run(body, rest_attempts=1)


def test_the_used_weight_header_is_read() -> None:
    async def body(rest: RestClient, ex: ScriptedBinance, counts: Counts) -> None:
        ex.used_weight = 100
        await rest.hedge_mode()
        assert rest.weights.used == 130
    run(body)


@pytest.mark.unit
def test_a_call_past_the_weight_budget_waits_for_the_next_minute() -> None:
    w = Weights(reserve=600)  # budget 1800 of 2400
    minute = 29_000_000 * 60_000
    w.note("1797", minute + 20_000)
    assert w.wait_for(1, minute + 20_000) == 0
    assert 40 < w.wait_for(5, minute + 20_000) <= 40.1
    assert w.wait_for(5, minute + 60_000) == 0  # a new minute: the count restarts


def test_the_feed_fails_named_when_binance_rejects_the_key() -> None:
    class BadKey(BinanceHarness):
        async def start(self) -> Any:
            access = await super().start()
            self.exchange.api_key = "rotated"
            return access

    async def scenario(probe: FeedProbe) -> None:
        task = probe.task
        assert task is not None
        await asyncio.wait([task], timeout=probe.timeout)  # run() ends by itself

    probe = run_scenario(BadKey(), scenario, limit=30)
    assert probe.outcome.startswith("ended: FatalFeedError")
    assert probe.ctx.state is FeedState.FAILED
    assert probe.statuses[-1].reason == "auth_failed"
    assert "FEEDCTL_<PROFILE>__ACCOUNT__API_KEY" in probe.ctx.status.detail


def test_an_optional_endpoint_the_exchange_lacks_is_not_fatal() -> None:
    async def body(rest: RestClient, ex: ScriptedBinance, counts: Counts) -> None:
        ex.script("/fapi/v1/symbolConfig", 404, {"code": -1, "msg": "no such path"})
        with pytest.raises(NotServed):
            await rest.leverages()
        ex.script("/fapi/v3/positionRisk", 404, {"code": -1, "msg": "no such path"})
        with pytest.raises(FatalFeedError, match="FEEDCTL_BIN__ENDPOINTS__REST"):
            await rest.positions(False, {})
    run(body)
