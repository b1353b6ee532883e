"""The bus campaign's faults and activity.

* :class:`ProcessFaults` — worker and redis-server faults, one at a time, each followed
  by its recovery: ``worker_kill`` (SIGKILL a worker; a fresh one joins a few seconds
  later), ``worker_pause`` (SIGSTOP a worker past its lease, then SIGCONT: its writes
  must be fenced), ``redis_kill`` (SIGKILL redis-server, restart it N s later from its
  append-only file). Each records the accounts it left unserved and the window during
  which nothing could publish them (:attr:`ProcessFaults.windows`).
* :class:`ExchangeInjector` — the exchange campaign's faults (:mod:`.injector`) against
  every account's sockets, ``reorder`` (held back per account since the simulator's
  a4f4300) and ``reject_auth`` included. The simulator's rejections are not keyed: the
  next ``count`` auths of whichever keys are rejected, by whichever worker makes them.
  A key rejected ``max_auth_failures`` times in a row by one feed is a bad key (fatal,
  by design), so a ``reject_auth`` goes in only when every account's key has a socket
  authenticated since the previous one went in (every feed that was rejected has since
  authenticated) and none is pending, with ``count`` at most ``max_auth_failures - 1``:
  one feed gets at most that many in a row. The one way past it, two live feeds of one
  key (a fenced worker's session not stopped yet beside its successor's), each
  rejected in turn while the other authenticates, needs several such faults inside
  one takeover; the campaign counts a worker that stopped serving as a failure.
* :class:`EngineControl` — the control API's trading calls made on one account's engine
  of a many-accounts simulator (the control API trades the first account only), so the
  campaign's :class:`~.trader.Trader` churns every account.
"""

from __future__ import annotations

import asyncio
import random
import signal
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

from feedctl.simulator import SimControl, SimControlError

from .bus_procs import RedisProc, WorkerProc
from .injector import Injector
from .recorder import _wall_ns

PROCESS_KINDS = ("worker_kill", "worker_pause", "redis_kill")


@dataclass
class Window:
    """A process fault: the accounts it left without a publishing worker, from
    ``start_ns`` until at least ``end_ns`` (wall clock: every one had a holder again;
    the consumer's record of the resyncs says when they were published again)."""

    fault: str
    accounts: tuple[str, ...]
    start_ns: int
    end_ns: int


class ProcessFaults:
    def __init__(self, redis: RedisProc, workers: list[WorkerProc],
                 spawn: Callable[[], Any], owners: Callable[[], Any],
                 rng: random.Random, lease_ttl: float, *,
                 redis_down: tuple[float, float] = (0.5, 4.0),
                 respawn_after: tuple[float, float] = (1.0, 4.0)) -> None:
        self.redis, self.workers, self.rng = redis, workers, rng
        #: ``await spawn()``: start one more worker (a replacement)
        self.spawn = spawn
        #: ``await owners()``: account -> the lease holder's owner name (None: free)
        self.owners = owners
        self.ttl = lease_ttl
        self.redis_down, self.respawn_after = redis_down, respawn_after
        self.injected: Counter[str] = Counter()
        self.log: list[dict[str, Any]] = []
        self.windows: list[Window] = []
        self._order: list[str] = []

    def next_kind(self) -> str:
        """The kinds in a shuffled cycle: every kind once before any twice."""
        if not self._order:
            self._order = list(PROCESS_KINDS)
            self.rng.shuffle(self._order)
        return self._order.pop()

    def _serving(self) -> list[WorkerProc]:
        return [w for w in self.workers if w.alive and not w.paused]

    async def inject(self, kind: str) -> None:
        if kind == "redis_kill":
            await self._redis_kill()
        elif len(self._serving()) < 2:
            self.log.append({"t": _wall_ns(), "fault": kind, "skipped": "one worker serving"})
            return
        elif kind == "worker_kill":
            await self._worker_kill()
        else:
            await self._worker_pause()
        self.injected[kind] += 1

    async def _held_by(self, name: str) -> tuple[str, ...]:
        return tuple(sorted(a for a, o in (await self.owners()).items() if o == name))

    async def _victim(self) -> WorkerProc:
        """A serving worker, one that holds accounts if any does."""
        owners = set((await self.owners()).values())
        serving = self._serving()
        holding = [w for w in serving if w.name in owners]
        return self.rng.choice(holding or serving)

    async def _taken(self, accounts: tuple[str, ...], away_from: str, timeout: float) -> None:
        """Until every account has a holder other than ``away_from`` (or ``timeout``)."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        while loop.time() < deadline:
            owners = await self.owners()
            if all(owners.get(a) not in (None, away_from) for a in accounts):
                return
            await asyncio.sleep(0.1)

    async def _worker_kill(self) -> None:
        victim = await self._victim()
        accounts = await self._held_by(victim.name)
        t0 = _wall_ns()
        await victim.kill()
        await self._taken(accounts, victim.name, self.ttl * 3 + 10)
        t1 = _wall_ns()
        self.windows.append(Window("worker_kill", accounts, t0, t1))
        self.log.append({"t": t0, "fault": "worker_kill", "worker": victim.name,
                         "accounts": list(accounts), "taken_over_s": round((t1 - t0) / 1e9, 2)})
        await asyncio.sleep(self.rng.uniform(*self.respawn_after))
        await self.spawn()

    async def _worker_pause(self) -> None:
        victim = await self._victim()
        accounts = await self._held_by(victim.name)
        seconds = round(self.ttl * self.rng.uniform(1.5, 2.5), 2)
        t0 = _wall_ns()
        victim.send(signal.SIGSTOP)
        try:
            await asyncio.sleep(seconds)
        finally:
            victim.send(signal.SIGCONT)
        t1 = _wall_ns()
        await self._taken(accounts, victim.name, self.ttl * 3 + 10)
        t2 = max(t1, _wall_ns())
        self.windows.append(Window("worker_pause", accounts, t0, t2))
        self.log.append({"t": t0, "fault": "worker_pause", "worker": victim.name,
                         "accounts": list(accounts), "seconds": seconds})

    async def _redis_kill(self) -> None:
        down = round(self.rng.uniform(*self.redis_down), 2)
        accounts = tuple(sorted(await self.owners()))
        t0 = _wall_ns()
        await self.redis.kill()
        try:
            await asyncio.sleep(down)
        finally:
            await self.redis.start()
        t1 = _wall_ns()
        # leases may have run out meanwhile: the window lasts until every account is
        # held again, plus the new holders' start and resync
        await self._taken(accounts, "", self.ttl * 3 + 10)
        t2 = _wall_ns()
        self.windows.append(Window("redis_kill", accounts, t0, t2))
        self.log.append({"t": t0, "fault": "redis_kill", "seconds": down,
                         "held_again_s": round((t2 - t1) / 1e9, 2)})


class ExchangeInjector(Injector):
    """The exchange campaign's faults against every account's sockets, ``reject_auth``
    guarded per key (see the module's doc)."""

    def __init__(self, ctl: SimControl, rng: random.Random, hub: Any,
                 keys: tuple[str, ...], max_auth_failures: int) -> None:
        super().__init__(ctl, None, rng, max_auth_failures)  # type: ignore[arg-type]
        #: the simulator's private hub (``KeyedPrivateHub``: key -> authenticated sockets)
        self.hub = hub
        #: every account's API key
        self.keys = keys
        #: the authenticated sockets when the last ``reject_auth`` went in
        self._before: set[int] = set()

    def _authed(self) -> dict[str, set[int]]:
        return {k: {id(c) for c in conns if c.authed}
                for k, conns in self.hub._by_key.items()}

    def _private_connected(self) -> bool:
        """Every account's key has a socket authenticated since the last rejection."""
        authed = self._authed()
        ok = all(authed.get(k, set()) - self._before for k in self.keys)
        if ok:
            self._before = set().union(*authed.values())
        return ok


class EngineView:
    """What :class:`~.trader.Trader` reads of a simulator, for one account's engine."""

    def __init__(self, engine: Any, prices: Any) -> None:
        self.account, self.prices = engine, prices


class EngineControl:
    """The control API's trading calls on one account's engine (as ``/sim/order`` etc.
    make them on the first account's), refusals raised as :class:`SimControlError`."""

    def __init__(self, engine: Any) -> None:
        self.engine = engine

    def _call(self, fn: Callable[..., Any], *args: Any, **kw: Any) -> Any:
        from feedctl.simulator.errors import SimError

        try:
            return fn(*args, **kw)
        except SimError as exc:
            raise SimControlError(400, exc.msg) from exc
        except (ValueError, KeyError, ArithmeticError) as exc:
            raise SimControlError(400, str(exc)) from exc

    async def place_order(self, symbol: str, side: str, qty: Decimal, *,
                          reduce_only: bool = False, position_idx: int | None = None) -> Any:
        eng = self.engine
        idx = position_idx
        if idx is None:
            idx = 0 if symbol not in eng.hedged else (
                (2 if side == "Buy" else 1) if reduce_only else (1 if side == "Buy" else 2))
        return self._call(eng.place_market_order, symbol, side, Decimal(qty),
                          reduce_only=reduce_only, position_idx=idx, reason="control")

    async def close_position(self, symbol: str, position_idx: int | None = None) -> Any:
        return self._call(self.engine.close_position, symbol, position_idx=position_idx)

    async def set_leverage(self, symbol: str, leverage: str) -> Any:
        return self._call(self.engine.set_leverage, symbol, leverage, leverage)

    async def set_trading_stop(self, symbol: str, **fields: Any) -> Any:
        eng = self.engine
        idx = fields.get("positionIdx")
        if idx is None:
            found = eng.open_side(symbol)
            idx = found.idx if found is not None else eng.indexes(symbol)[0]
        return self._call(eng.set_trading_stop, symbol, take_profit=fields.get("takeProfit"),
                          stop_loss=fields.get("stopLoss"),
                          trailing_stop=fields.get("trailingStop"),
                          active_price=fields.get("activePrice"), position_idx=idx)
