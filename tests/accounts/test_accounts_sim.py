"""Many bybit_hybrid accounts in one Session against one simulated exchange: one shared
public socket with reference-counted subscriptions, a failing account isolated, a
public drop degrading every account at once, the connection budget through a mass
reconnect."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from feedctl import FeedState
from feedctl.session import Session
from feedctl.simulator.accounts import MultiAccountSimulator
from tests.accounts.sim_session import mark_of, open_positions, running
from tests.bybit_hybrid.conftest import run

pytestmark = pytest.mark.integration

SYMBOLS = ["BTCUSDT", "ETHUSDT", "SOLUSDT"]


async def until(cond: Callable[[], Any], within: float = 10.0) -> None:
    async with asyncio.timeout(within):
        while not cond():
            await asyncio.sleep(0.02)


def healthy(s: Session, names: list[str] | None = None) -> bool:
    return all(a.feeds["bybit_hybrid"].ctx.state is FeedState.HEALTHY
               for n, a in s.accounts.items() if names is None or n in names)


def public_topics(sim: MultiAccountSimulator) -> list[set[str]]:
    return [set(c.topics) for c in sim.public.conns]


def test_one_public_socket_serves_every_account_and_counts_symbols(
        clean_env: Path) -> None:
    async def main() -> dict[str, Any]:
        out: dict[str, Any] = {}
        async with MultiAccountSimulator(symbols=SYMBOLS, demo=False, accounts=3) as sim:
            open_positions(sim, {0: ["BTCUSDT", "ETHUSDT"], 1: ["BTCUSDT"], 2: ["SOLUSDT"]})
            async with running(clean_env, sim, 3) as s:
                await until(lambda: healthy(s) and all(
                    mark_of(s, a, sym) is not None for a, sym in
                    (("a0", "BTCUSDT"), ("a0", "ETHUSDT"), ("a1", "BTCUSDT"),
                     ("a2", "SOLUSDT"))))
                await until(lambda: sum(len(t) for t in public_topics(sim)) == 3)
                marks = {a: mark_of(s, a, "BTCUSDT") for a in ("a0", "a1")}
                await until(lambda: all(mark_of(s, a, "BTCUSDT") != m  # ticks reach both
                                        for a, m in marks.items()))
                out["sockets"] = len(sim.public.conns)
                out["topics"] = public_topics(sim)
                sim.sim_accounts[0].engine.close_position("BTCUSDT")
                await until(lambda: mark_of(s, "a0", "BTCUSDT") is None)
                await asyncio.sleep(0.3)  # an unsubscribe would have been sent by now
                out["after_first_close"] = public_topics(sim)
                sim.sim_accounts[1].engine.close_position("BTCUSDT")
                await until(lambda: all("tickers.BTCUSDT" not in t
                                        for t in public_topics(sim)))
                out["after_last_close"] = public_topics(sim)
        return out

    out = run(main())
    assert out["sockets"] == 1
    assert out["topics"] == [{"tickers.BTCUSDT", "tickers.ETHUSDT", "tickers.SOLUSDT"}]
    assert out["after_first_close"] == out["topics"]  # a1 still holds BTCUSDT
    assert out["after_last_close"] == [{"tickers.ETHUSDT", "tickers.SOLUSDT"}]


def test_symbols_past_the_args_budget_go_to_a_second_shared_socket(clean_env: Path) -> None:
    """max_args_chars = 100: 'tickers.XXXUSDT' is 15 characters, so 6 fit per socket."""
    symbols = ["BTCUSDT", "ETHUSDT", "SOLUSDT", "XRPUSDT", "ADAUSDT", "DOTUSDT", "LTCUSDT",
               "BNBUSDT"]

    async def main() -> list[set[str]]:
        async with MultiAccountSimulator(symbols=symbols, demo=False, accounts=2) as sim:
            open_positions(sim, {0: symbols[:5], 1: symbols[3:]})
            async with running(clean_env, sim, 2, feed={"max_args_chars": 100}) as s:
                await until(lambda: healthy(s) and sum(len(t) for t in public_topics(sim))
                            == len(symbols))
                return public_topics(sim)

    topics = run(main())
    assert len(topics) == 2
    assert sorted(len(t) for t in topics) == [2, 6]
    assert set().union(*topics) == {"tickers." + s for s in symbols}


def test_a_rejected_key_fails_that_account_while_the_others_run(clean_env: Path) -> None:
    async def main() -> tuple[dict[str, str], bool, bool]:
        async with MultiAccountSimulator(symbols=SYMBOLS, demo=False, accounts=3) as sim:
            open_positions(sim, {0: ["BTCUSDT"], 1: ["BTCUSDT"], 2: ["ETHUSDT"]})
            bad = {1: (sim.sim_accounts[1].api_key, "not-the-secret")}
            async with running(clean_env, sim, 3, keys=bad) as s:
                await until(lambda: s.accounts["a1"].failure is not None
                            and healthy(s, ["a0", "a2"]))
                await until(lambda: mark_of(s, "a0", "BTCUSDT") is not None)
                return s.failed_accounts(), s._done.is_set(), healthy(s, ["a0", "a2"])

    failed, ended, others = run(main())
    assert list(failed) == ["a1"]
    assert not ended and others


def test_a_dead_public_socket_degrades_every_account_at_once_and_restores_them(
        clean_env: Path) -> None:
    async def main() -> tuple[set[str], float]:
        async with MultiAccountSimulator(symbols=SYMBOLS, demo=False, accounts=3) as sim:
            open_positions(sim, {0: ["BTCUSDT"], 1: ["BTCUSDT"], 2: ["ETHUSDT"]})
            async with running(clean_env, sim, 3) as s:
                await until(lambda: healthy(s))
                degraded: set[str] = set()
                stream = s.events(replay=False)

                async def watch() -> None:
                    async for ev in stream:
                        if getattr(ev, "type", "") == "status" and \
                                ev.status.state is FeedState.DEGRADED:
                            degraded.add(ev.account)

                task = asyncio.create_task(watch())
                await sim.public.drop_all()
                await until(lambda: len(degraded) == 3)
                began = asyncio.get_running_loop().time()
                await until(lambda: healthy(s))
                took = asyncio.get_running_loop().time() - began
                stream.close()
                await task
                return degraded, took

    degraded, took = run(main())
    assert degraded == {"a0", "a1", "a2"}
    assert took < 5


def test_the_connection_budget_holds_through_a_mass_reconnect(clean_env: Path) -> None:
    """Time scaled down: the exchange allows 8 new sockets per 2 s from one IP; the
    process's budget allows 5 private ones per 2 s. Six accounts start (6 private + 1
    public) and then lose their private sockets at once: nothing is refused."""
    async def main() -> dict[str, Any]:
        async with MultiAccountSimulator(symbols=SYMBOLS, demo=False, accounts=6,
                                         ws_per_window=8, ws_window=2.0) as sim:
            open_positions(sim, {n: ["BTCUSDT"] for n in range(6)})
            feed = {"connections_per_window": 5, "connection_window": 2.0}
            async with running(clean_env, sim, 6, feed=feed) as s:
                await until(lambda: healthy(s), within=15)
                await asyncio.sleep(2.1)  # a fresh window
                await sim.private.drop_all()
                await until(lambda: not healthy(s))
                await until(lambda: healthy(s), within=15)
                budget = s.accounts["a0"].feeds["bybit_hybrid"].feed.connects
                assert budget is not None
                return {"refused": sim.ws_limit.refused, "admitted": sim.ws_limit.admitted,
                        "max_wait": budget.max_wait}

    out = run(main(), timeout=60)
    assert out["refused"] == 0
    assert out["admitted"] >= 13  # 7 at start, 6 after the drop
    assert out["max_wait"] > 0.5  # the budget, not luck, paced them


def test_without_the_budget_the_exchange_refuses_a_mass_reconnect(clean_env: Path) -> None:
    """The same reconnect with the budget opened up: the simulated exchange refuses."""
    async def main() -> int:
        async with MultiAccountSimulator(symbols=SYMBOLS, demo=False, accounts=6,
                                         ws_per_window=8, ws_window=2.0) as sim:
            open_positions(sim, {n: ["BTCUSDT"] for n in range(6)})
            feed = {"connections_per_window": 500, "connection_window": 2.0,
                    "connection_spacing": 0}
            async with running(clean_env, sim, 6, feed=feed) as s:
                await until(lambda: healthy(s), within=15)
                await sim.private.drop_all()
                await until(lambda: sim.ws_limit.refused > 0)
                return sim.ws_limit.refused

    assert run(main(), timeout=60) > 0


def test_a_reordered_push_goes_to_its_own_account_only(clean_env: Path) -> None:
    """A ``reorder`` fault holds one account's position push back; it goes out after that
    account's next push, or on its own after the hold - never to the sockets of the
    account whose push comes next (each account's book then holds only its own state)."""
    async def main() -> dict[str, Any]:
        sim_ = MultiAccountSimulator(symbols=["BTCUSDT", "ETHUSDT"], demo=False, accounts=2)
        async with sim_ as sim, running(clean_env, sim, 2) as s:
            open_positions(sim, {0: ["BTCUSDT"], 1: ["ETHUSDT"]})
            await until(lambda: all(
                s.accounts[a].router is not None and s.accounts[a].router.delivered
                for a in ("a0", "a1")), 5)
            sim.faults.set_position_fault("reorder", 1)
            # a leverage change is one push: a0's, held back; a1's order comes next
            sim.sim_accounts[0].engine.set_leverage("BTCUSDT", "7", "7")
            open_positions(sim, {1: ["BTCUSDT"]})
            await until(lambda: any(p.leverage == 7 for p in
                                    s.accounts["a0"].router.delivered.values()), 5)
            await asyncio.sleep(0.3)
            return {a: sorted((p.symbol, str(p.leverage))
                              for p in s.accounts[a].router.delivered.values())
                    for a in ("a0", "a1")}

    out = run(main())
    assert [sym for sym, _ in out["a0"]] == ["BTCUSDT"], out
    assert [sym for sym, _ in out["a1"]] == ["BTCUSDT", "ETHUSDT"], out
    assert ("BTCUSDT", "7") not in out["a1"], out  # a0's leverage never reached a1
