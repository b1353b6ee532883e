"""The REST client on the simulator's Binance personality (loopback): error codes,
clock skew, 429 / 418, weights, listenKey calls."""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass
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
from feedctl.simulator import SimConfig, SimControl, Simulator
from feedctl.testing import ExchangeAccess, FeedProbe, run_scenario

from .sim_harness import FAST, SimBinanceHarness

pytestmark = pytest.mark.integration
LOG = logging.LoggerAdapter(logging.getLogger("test.binance.rest"), {})


class Counts(dict[str, int]):
    def __call__(self, name: str) -> None:
        self[name] = self.get(name, 0) + 1


@dataclass
class Ex:
    sim: Simulator
    ctl: SimControl

    def rest_requests(self) -> int:
        return int(self.sim.binance.rest.requests)


@asynccontextmanager
async def client(key: str | None = None, secret: str | None = None,
                 binance: dict[str, Any] | None = None, **settings: Any
                 ) -> AsyncIterator[tuple[RestClient, Ex, Counts]]:
    sim = Simulator(SimConfig(symbols=["BTCUSDT", "ETHUSDT"], exchange="binanceusdm",
                              binance=binance or {}))
    await sim.start()
    counts = Counts()
    s = BinanceSettings(**{**FAST, "backoff_base": 0.01, "backoff_cap": 0.05, **settings})
    try:
        async with aiohttp.ClientSession() as http, SimControl(sim.urls["control"]) as ctl:
            yield (RestClient(http, sim.urls["rest"], SecretStr(key or sim.api_key),
                              SecretStr(secret or sim.api_secret), ServerClock(), s, LOG,
                              counts, profile="bin"), Ex(sim, ctl), counts)
    finally:
        await sim.stop()


def run(body: Callable[[RestClient, Ex, Counts], Awaitable[None]], **kw: Any) -> None:
    async def main() -> None:
        async with client(**kw) as (rest, ex, counts):
            async with asyncio.timeout(20):
                await body(rest, ex, counts)
    asyncio.run(main())


def test_an_invalid_key_is_fatal_and_names_the_variable() -> None:
    async def body(rest: RestClient, ex: Ex, counts: Counts) -> None:
        with pytest.raises(FatalFeedError, match=r"-2015.*FEEDCTL_BIN__ACCOUNT__API_KEY"):
            await rest.positions(False, {})
    run(body, key="another0key0the0exchange0does0not0know")


def test_a_bad_signature_is_fatal_and_names_the_secret() -> None:
    async def body(rest: RestClient, ex: Ex, counts: Counts) -> None:
        with pytest.raises(FatalFeedError, match="FEEDCTL_BIN__ACCOUNT__API_SECRET") as info:
            await rest.positions(False, {})
        assert "wrong-secret" not in str(info.value)
    run(body, secret="wrong-secret")


def test_timestamp_outside_recv_window_remeasures_the_clock_and_retries() -> None:
    async def body(rest: RestClient, ex: Ex, counts: Counts) -> None:
        await ex.ctl.clock_skew(30_000, 20)  # the server runs 30 s ahead of us
        rows, _ = await rest.positions(False, {})
        assert rows == [] and counts["rest_retries"] == 1
        assert 29_000 < rest.clock.offset_ms < 31_000
    run(body)


def test_429_waits_retry_after_then_succeeds() -> None:
    async def body(rest: RestClient, ex: Ex, counts: Counts) -> None:
        await ex.ctl.rest_errors("rate_limit", 1, "/fapi/v3/positionRisk")  # Retry-After: 1
        began = time.monotonic()
        await rest.positions(False, {})
        assert time.monotonic() - began >= 1.0 and counts["rate_limited"] == 1
    run(body)


def test_a_snapshot_is_as_of_the_attempt_that_answered() -> None:
    """The rows of a retried positionRisk were served by the last attempt: a fill made
    while the first waited is in them, so the snapshot's time is not the first's."""
    async def body(rest: RestClient, ex: Ex, counts: Counts) -> None:
        await ex.ctl.rest_errors("rate_limit", 1, "/fapi/v3/positionRisk")  # Retry-After: 1
        first = rest.clock.now_ms()
        _rows, as_of = await rest.positions(False, {})
        assert as_of >= first + 1000 and counts["rate_limited"] == 1
    run(body)


def test_418_stops_every_call_for_the_ban() -> None:
    """Past the weight limit, a second refusal in the window bans the IP (418): the
    client then sends nothing until the ban ends."""
    async def body(rest: RestClient, ex: Ex, counts: Counts) -> None:
        with pytest.raises(RetryableFeedError, match="429"):
            await rest.hedge_mode()  # weight 30 > 20: 429
        with pytest.raises(Banned):
            await rest.hedge_mode()  # the second refusal: 418
        sent = ex.rest_requests()
        with pytest.raises(Banned, match="banned"):
            await rest.positions(False, {})
        assert ex.rest_requests() == sent  # nothing was sent during the ban
    run(body, binance={"weight_limit": 20, "ban_after": 1}, rest_attempts=1)


def test_keepalive_of_a_gone_key_is_listen_key_gone() -> None:
    async def body(rest: RestClient, ex: Ex, counts: Counts) -> None:
        key = await rest.create_listen_key()
        await rest.keepalive(key)
        await ex.ctl.expire_listen_keys()
        with pytest.raises(ListenKeyGone):
            await rest.keepalive(key)
    run(body)


def test_a_position_answer_that_is_not_a_list_is_retryable_not_empty() -> None:
    async def body(rest: RestClient, ex: Ex, counts: Counts) -> None:
        await ex.ctl.object_bodies(2, "/fapi/v3/positionRisk")  # HTTP 200 {}
        with pytest.raises(RetryableFeedError, match="not a list"):
            await rest.positions(False, {})
    run(body, rest_attempts=1)


def test_the_used_weight_header_is_read() -> None:
    async def body(rest: RestClient, ex: Ex, counts: Counts) -> None:
        await rest.positions(False, {})  # weight 5
        await rest.hedge_mode()  # weight 30
        assert rest.weights.used == 35
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
    class BadKey(SimBinanceHarness):
        async def start(self) -> ExchangeAccess:
            access = await super().start()
            rotated = access.account.model_copy(
                update={"api_key": SecretStr("rotated0key0binance0does0not0know")})
            return ExchangeAccess(account=rotated, endpoints=access.endpoints)

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
    async def body(rest: RestClient, ex: Ex, counts: Counts) -> None:
        await ex.ctl.rest_errors("404", 1, "/fapi/v1/symbolConfig")
        with pytest.raises(NotServed):
            await rest.leverages()
        await ex.ctl.rest_errors("404", 1, "/fapi/v3/positionRisk")
        with pytest.raises(FatalFeedError, match="FEEDCTL_BIN__ENDPOINTS__REST"):
            await rest.positions(False, {})
    run(body)
