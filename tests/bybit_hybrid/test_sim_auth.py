"""Auth failures, secrets hygiene and shutdown against the simulator."""

from __future__ import annotations

import asyncio
import logging
import time

import pytest

from feedctl import (
    AccountSettings,
    Endpoints,
    FatalFeedError,
    FeedContext,
    FeedState,
    PositionBook,
)
from feedctl.plugins.bybit_hybrid import HybridSettings, make_feed

from .conftest import FAST, CaptureAll, harness, run, wait_until

pytestmark = pytest.mark.integration


@pytest.mark.parametrize(
    ("override", "words"),
    [
        ({"api_secret": "wrong-secret-wrong-secret-123"},
         ["signature", "10004", "FEEDCTL_<PROFILE>__ACCOUNT__API_SECRET"]),
        ({"api_key": "WRONGKEYWRONGKEY12"},
         ["rejected the API key", "10003", "FEEDCTL_<PROFILE>__ACCOUNT__API_KEY"]),
    ],
)
def test_bad_credentials_fail_fast_with_a_clear_message(override: dict[str, str],
                                                        words: list[str]) -> None:
    async def go() -> None:
        async with harness(start=False, **override) as h:
            t0 = time.monotonic()
            with pytest.raises(FatalFeedError) as info:
                await h.task
            assert time.monotonic() - t0 < 2
            for w in words:
                assert w in str(info.value)
            assert h.ctx.state is FeedState.FAILED
            assert h.statuses[-1].reason == "auth_failed"
            assert h.sim.stats()["private"]["accepted"] <= 1  # no retry storm

    run(go())


def test_a_transient_auth_rejection_is_retried() -> None:
    async def go() -> None:
        async with harness() as h:
            await h.ctl.reject_auth(1)
            await h.ctl.drop("private")
            await wait_until(lambda: h.ctx.counters.get("auth_failures", 0) == 1)
            await h.healthy()
            assert ("reconnecting", "auth_failed") in h.states()

    run(go())


def test_persistent_auth_rejection_is_fatal_with_the_exchange_message() -> None:
    async def prepare(ctl: object) -> None:
        await ctl.reject_auth(50)  # type: ignore[attr-defined]

    async def go() -> None:
        async with harness(start=False, prepare=prepare, max_auth_failures=2) as h:
            with pytest.raises(FatalFeedError) as info:
                await h.task
            msg = str(info.value)
            assert "WebSocket auth 2 times" in msg and "error:USVC1111" in msg
            assert "__ACCOUNT__API_KEY" in msg and "__ACCOUNT__API_SECRET" in msg
            assert h.sim.stats()["private"]["accepted"] == 2

    run(go())


def test_missing_credentials_are_fatal() -> None:
    async def go() -> None:
        book = PositionBook(exchange="bybit", account="main", feed="h")
        ctx = FeedContext(name="h", kind="bybit_hybrid", role=None, account=AccountSettings(),
                          endpoints=Endpoints(rest="http://127.0.0.1:9", public_ws="ws://127.0.0.1:9",
                                          public_ws_inverse="ws://127.0.0.1:9",
                                          private_ws="ws://127.0.0.1:9"), book=book)
        with pytest.raises(FatalFeedError, match=r"API_KEY and .*API_SECRET"):
            await make_feed(ctx, HybridSettings()).run()
        assert ctx.state is FeedState.FAILED

    run(go())


def test_secret_never_in_logs_errors_reprs_or_status(capture_all: CaptureAll) -> None:
    captured: list[str] = []

    async def go() -> None:
        async with harness(audit_interval=0.2) as h:
            secret = h.sim.api_secret
            await h.ctl.place_order("BTCUSDT", "Buy", "0.01")
            await h.ctl.reject_auth(1)
            await h.ctl.drop("all")
            await h.ctl.malformed("all", 2)
            await h.ctl.rest_errors("rate_limit", 2)
            await h.ctl.clock_skew(-20_000, 0.5)
            await wait_until(lambda: h.ctx.counters.get("auth_failures", 0) >= 1)
            await h.healthy(5)
            await asyncio.sleep(0.5)
            captured.extend([repr(h.feed), repr(h.ctx), repr(h.feed.settings),
                             str(h.feed.details()), h.ctx.status.model_dump_json(),
                             repr(h.ctx.account), str(h.ctx.account.model_dump())])
            captured.extend(s.model_dump_json() for s in h.statuses)
        async with harness(start=False, api_secret="x" * 30) as h2:
            with pytest.raises(FatalFeedError) as info:
                await h2.task
            captured.append(str(info.value))
            captured.append(h.sim.api_key)
            captured.append(secret)  # the markers the checks below look for
        assert len(captured) > 3

    run(go())
    secret, key = captured.pop(), captured.pop()
    assert secret and len(capture_all.texts) > 20
    assert any("auth frame, redacted" in t for t in capture_all.texts)
    debug = [r for r in capture_all.records if r.levelno == logging.DEBUG]
    assert debug  # DEBUG records were captured too
    for text in [*captured, *capture_all.texts]:
        assert secret not in text
        assert key not in text  # the key is a SecretStr too (websockets logs frames)
        assert "x" * 30 not in text


def test_cancel_while_connecting_closes_everything_quickly() -> None:
    async def prepare(ctl: object) -> None:
        await ctl.stall("private", 5)  # auth never answered: the feed is mid-connect

    async def go() -> None:
        async with harness(start=False, prepare=prepare) as h:
            await asyncio.sleep(0.3)
            assert h.ctx.state in (FeedState.CONNECTING, FeedState.STARTING)
            t0 = time.monotonic()
            h.task.cancel()
            with pytest.raises(asyncio.CancelledError):
                await h.task
            assert time.monotonic() - t0 < 1.5
        # harness and run() assert: no task left, no unclosed session reported

    run(go())


def test_settings_fast_profile_is_valid() -> None:
    assert HybridSettings(**FAST).ping_interval == 0.5


def test_a_failed_planned_swap_keeps_the_old_socket_and_the_state() -> None:
    async def go() -> None:
        async with harness(max_connection_lifetime=1.0) as h:
            n = len(h.statuses)
            await h.ctl.reject_auth(1)  # the swap's new socket is refused once
            await wait_until(lambda: h.ctx.counters.get("auth_failures", 0) == 1, 3)
            await wait_until(lambda: h.ctx.counters.get("planned_reconnects", 0) >= 3, 4)
            assert h.statuses[n:] == [] and h.ctx.state is FeedState.HEALTHY
            assert h.ctx.counters.get("reconnects", 0) == 0

    run(go())


def test_cancel_at_any_moment_stops_the_feed_and_leaves_nothing() -> None:
    """Cancellation must never be swallowed (e.g. by a close in progress or a timeout
    racing it): cancel at random moments of start-up, swaps and reconnects."""
    import random

    rng = random.Random(7)

    async def go() -> None:
        for i in range(12):
            async with harness(start=False, max_connection_lifetime=1.0) as h:
                if i % 3 == 1:
                    await asyncio.sleep(0.2)
                    await h.ctl.drop("all")
                elif i % 3 == 2:
                    await h.ctl.place_order("BTCUSDT", "Buy", "0.01")
                await asyncio.sleep(rng.uniform(0, 1.3))
                # the harness cancels here and checks: stopped within 5 s, no task left

    run(go(), timeout=60)
