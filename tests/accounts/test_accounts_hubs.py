"""Shared public hubs keyed by what their sockets are (exchange, category, URL, public
settings), never by which account asked first; every socket - public and private -
drawn from the per-IP connection budget; planned reconnects staggered."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import pytest

from feedctl import Category, staggered
from feedctl.plugins.bybit_hybrid.public_hub import PublicHub, PublicLease
from feedctl.session import Session
from feedctl.simulator.accounts import MultiAccountSimulator
from tests.accounts.sim_session import mark_of, open_positions, running
from tests.accounts.test_accounts_sim import healthy, until
from tests.bybit_hybrid.conftest import run

pytestmark = pytest.mark.integration

SYMBOLS = ["BTCUSDT", "ETHUSDT", "SOLUSDT"]


def hub_of(s: Session, account: str) -> PublicHub:
    lease = s.accounts[account].feeds["bybit_hybrid"].feed.publics[Category.LINEAR]
    assert isinstance(lease, PublicLease)
    return lease.hub


def test_accounts_with_different_public_endpoints_get_separate_hubs(clean_env: Path) -> None:
    """a0 and a2 share a URL; a1 has its own (the same server, another URL): two hubs,
    two public sockets, and each account's marks from its own."""
    async def main() -> dict[str, Any]:
        async with MultiAccountSimulator(symbols=SYMBOLS, demo=False, accounts=3) as sim:
            open_positions(sim, {0: ["BTCUSDT"], 1: ["BTCUSDT"], 2: ["ETHUSDT"]})
            other = {1: {"public_ws": sim.urls["public_ws"] + "?hub=b"}}
            async with running(clean_env, sim, 3, endpoints=other) as s:
                await until(lambda: healthy(s) and all(
                    mark_of(s, a, sym) is not None for a, sym in
                    (("a0", "BTCUSDT"), ("a1", "BTCUSDT"), ("a2", "ETHUSDT"))))
                await until(lambda: sum(len(c.topics) for c in sim.public.conns) == 3)
                hubs = {a: hub_of(s, a) for a in ("a0", "a1", "a2")}
                return {"same": hubs["a0"] is hubs["a2"],
                        "apart": hubs["a0"] is not hubs["a1"],
                        "urls": {a: h.url for a, h in hubs.items()},
                        "sockets": len(sim.public.conns),
                        "topics": sorted(sorted(c.topics) for c in sim.public.conns)}

    out = run(main())
    assert out["same"] and out["apart"]
    assert out["urls"]["a1"].endswith("?hub=b") and not out["urls"]["a0"].endswith("?hub=b")
    assert out["sockets"] == 2
    assert out["topics"] == [["tickers.BTCUSDT"], ["tickers.BTCUSDT", "tickers.ETHUSDT"]]


def test_a_hub_runs_by_its_own_settings_whichever_account_asked_first(
        clean_env: Path) -> None:
    """a0 (stale_after 0.4 s) and a1 (stale_after 0.9 s) on one URL: two hubs, each with
    its accounts' setting - not the first account's for both."""
    async def main() -> dict[str, Any]:
        async with MultiAccountSimulator(symbols=SYMBOLS, demo=False, accounts=3) as sim:
            open_positions(sim, {0: ["BTCUSDT"], 1: ["BTCUSDT"], 2: ["BTCUSDT"]})
            slow = {1: {"stale_after": 0.9}}
            async with running(clean_env, sim, 3, per_account=slow) as s:
                await until(lambda: healthy(s))
                hubs = {a: hub_of(s, a) for a in ("a0", "a1", "a2")}
                return {"stale_after": {a: h.settings.stale_after for a, h in hubs.items()},
                        "shared": hubs["a0"] is hubs["a2"], "hubs": len(set(hubs.values())),
                        "sockets": len(sim.public.conns)}

    out = run(main())
    assert out["stale_after"] == {"a0": 0.4, "a1": 0.9, "a2": 0.4}
    assert out["shared"] and out["hubs"] == 2 and out["sockets"] == 2


def test_every_socket_public_and_private_draws_from_the_connection_budget(
        clean_env: Path) -> None:
    """The exchange allows 7 new sockets per 2 s; the budget 5. Four accounts start (4
    private + 1 public), then, inside the same window, every socket drops at once: 5
    more, which the budget holds back past the window - none refused, and every socket
    the exchange saw was drawn from the budget."""
    async def main() -> dict[str, Any]:
        async with MultiAccountSimulator(symbols=SYMBOLS, demo=False, accounts=4,
                                         ws_per_window=7, ws_window=2.0) as sim:
            open_positions(sim, {n: ["BTCUSDT"] for n in range(4)})
            feed = {"connections_per_window": 5, "connection_window": 2.0}
            async with running(clean_env, sim, 4, feed=feed) as s:
                await until(lambda: healthy(s), within=15)
                # within the start's window: 5 + 5 > 7
                await asyncio.gather(sim.private.drop_all(), sim.public.drop_all())
                await until(lambda: not healthy(s))
                await until(lambda: healthy(s), within=15)
                budget = s.accounts["a0"].feeds["bybit_hybrid"].feed.connects
                assert budget is not None and hub_of(s, "a0").connects is budget
                return {"refused": sim.ws_limit.refused, "admitted": sim.ws_limit.admitted,
                        "acquired": budget.acquired, "max_wait": budget.max_wait}

    out = run(main(), timeout=60)
    assert out["refused"] == 0
    assert out["admitted"] == 10
    assert out["acquired"] == out["admitted"]
    assert out["max_wait"] > 0.5


def test_planned_reconnects_of_accounts_that_started_together_are_staggered(
        clean_env: Path) -> None:
    """Six accounts connect together with a 4 s lifetime: their private sockets are
    replaced at their own offsets in the lifetime's last quarter (make-before-break,
    drawn from the budget as planned), not all at once."""
    lifetime = 4.0

    async def main() -> dict[str, Any]:
        async with MultiAccountSimulator(symbols=SYMBOLS, demo=False, accounts=6) as sim:
            open_positions(sim, {n: ["BTCUSDT"] for n in range(6)})
            feed = {"max_connection_lifetime": lifetime, "connection_spacing": 0}
            async with running(clean_env, sim, 6, feed=feed) as s:
                await until(lambda: healthy(s), within=15)
                swapped: dict[str, float] = {}
                loop = asyncio.get_running_loop()
                t0 = loop.time()
                # the private socket object of each account (the public hub's planned
                # swap counts in every account's counters: not a private one)
                first = {n: a.feeds["bybit_hybrid"].feed.private.conn
                         for n, a in s.accounts.items()}

                def seen() -> bool:
                    for name, acc in s.accounts.items():
                        conn = acc.feeds["bybit_hybrid"].feed.private.conn
                        if name not in swapped and conn is not None and conn is not first[name]:
                            swapped[name] = loop.time() - t0
                    return len(swapped) == 6

                await until(seen, within=lifetime + 3)
                budget = s.accounts["a0"].feeds["bybit_hybrid"].feed.connects
                assert budget is not None
                return {"at": swapped, "planned": budget.planned,
                        "refused": sim.ws_limit.refused}

    out = run(main(), timeout=60)
    at = out["at"]
    assert max(at.values()) - min(at.values()) > 0.4  # spread, not one burst
    expected = {f"a{n}": staggered(lifetime, f"a{n}:private") for n in range(6)}
    assert all(lifetime * 0.75 <= v <= lifetime for v in expected.values())
    first, last = min(expected, key=expected.__getitem__), max(expected, key=expected.__getitem__)
    assert at[first] < at[last]  # in the order of their offsets
    assert out["planned"] >= 6 and out["refused"] == 0
