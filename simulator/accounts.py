"""Many accounts on one simulated exchange, and the per-IP limits Bybit applies to them.

:class:`MultiAccountSimulator` is a :class:`~.server.Simulator` whose accounts are keyed
by API key: each has its own account engine (positions, orders, wallet), REST handlers
and per-endpoint rate limits (Bybit's limits are per UID: one account here is one UID),
and its private pushes go only to sockets authenticated with its key. Prices and the
public sockets are the exchange's, shared by all.

Per source IP it enforces what Bybit's rate-limit page says:

* WebSocket: at most ``ws_per_window`` (500) new connections within ``ws_window``
  (5 minutes); past that the handshake is refused (HTTP 403, "access too frequent":
  the page says what not to do, not how a refusal looks; this is the HTTP IP limit's
  answer);
* HTTP: at most ``rest_per_window`` (600) requests within ``rest_window`` (5 s); past
  that HTTP 403 "access too frequent";
* per UID (account) and endpoint: ``uid_limits`` requests per second (e.g.
  :data:`BYBIT_UID_LIMITS`, 50/s for the position list), else the config's
  ``rest_rate_limit``; past that retCode 10006 "Too many visits!" (counted in
  ``stats()["uid_limited"]``).

Both windows are rolling. Tests and benchmarks may scale them down (the same factor on
both sides keeps the arithmetic).
"""

from __future__ import annotations

import asyncio
import time
from collections import deque
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

from aiohttp import web

from .account import AccountEngine
from .config import SimConfig
from .control_api import control_routes
from .demo import DemoTrader
from .rest import RestApi, RestContext
from .rest_market import ROUTES as MARKET_ROUTES
from .rest_trade import ROUTES as TRADE_ROUTES
from .server import Simulator
from .ws_common import Conn, Hub
from .ws_private import REORDER_HOLD_S, PrivateHub

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]

#: Per-UID limits (requests per second) of the endpoints a position feed reads, from
#: Bybit's rate-limit table (``uid_limits=BYBIT_UID_LIMITS``).
BYBIT_UID_LIMITS: dict[str, int] = {"/v5/position/list": 50, "/v5/execution/list": 50}


class RollingLimit:
    """At most ``limit`` admissions per key (a source IP) in any rolling ``window``."""

    def __init__(self, limit: int, window: float,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.limit, self.window, self._clock = limit, window, clock
        self._seen: dict[str, deque[float]] = {}
        self.admitted = 0
        self.refused = 0

    def admit(self, key: str) -> bool:
        now = self._clock()
        seen = self._seen.setdefault(key, deque())
        while seen and now - seen[0] >= self.window:
            seen.popleft()
        if len(seen) >= self.limit:
            self.refused += 1
            return False
        seen.append(now)
        self.admitted += 1
        return True

    def used(self, key: str) -> int:
        seen = self._seen.get(key, deque())
        now = self._clock()
        return sum(1 for t in seen if now - t < self.window)


@dataclass
class SimAccount:
    """One account (one UID) of the simulated exchange."""

    name: str
    api_key: str
    api_secret: str
    engine: AccountEngine
    rest: RestApi


class KeyedPrivateHub(PrivateHub):
    """The private socket endpoint of many accounts: a socket authenticates with one of
    their keys and then gets that account's pushes only."""

    def __init__(self, sim: MultiAccountSimulator) -> None:
        cfg = sim.config
        super().__init__(sim.faults, sim.clock.now_ms, sim.api_key, sim.api_secret,
                         cfg.idle_timeout, cfg.max_ws_backlog, cfg.ack_delay_ms)
        self._sim = sim
        self._owner: dict[Conn, str] = {}
        #: API key -> its authenticated sockets
        self._by_key: dict[str, set[Conn]] = {}
        #: The account whose event is being delivered (set around ``on_account_event``).
        self._current: str | None = None
        #: API key -> the push a ``reorder`` fault holds back for it, and its timer
        self._held_by: dict[str, tuple[dict | None, asyncio.TimerHandle | None]] = {}

    def _auth(self, conn: Conn, req: dict) -> None:
        args = req.get("args")
        account = (self._sim.by_key.get(args[0]) if isinstance(args, list) and args
                   and isinstance(args[0], str) else None)
        if account is not None:  # the parent checks key and signature against these
            self._api_key, self._api_secret = account.api_key, account.api_secret
        try:
            super()._auth(conn, req)
        finally:
            self._api_key, self._api_secret = self._sim.api_key, self._sim.api_secret
        if conn.authed and account is not None:
            self._forget(conn)
            self._owner[conn] = account.api_key
            self._by_key.setdefault(account.api_key, set()).add(conn)

    def _forget(self, conn: Conn) -> None:
        owner = self._owner.pop(conn, None)
        if owner is not None:
            self._by_key.get(owner, set()).discard(conn)

    def on_close(self, conn: Conn) -> None:
        self._forget(conn)
        super().on_close(conn)

    def listener(self, api_key: str) -> Callable[[str, list[dict]], None]:
        def on_event(topic: str, rows: list[dict]) -> None:
            self._current = api_key
            try:
                self.on_account_event(topic, rows)
            finally:
                self._current = None
        return on_event

    def on_account_event(self, topic: str, rows: list[dict]) -> None:
        """The parent's, with a push held back by a ``reorder`` fault kept per account:
        it goes out after that account's next push (or on its own after the hold),
        never to another account's sockets."""
        key = self._current or ""
        self._held, self._held_timer = self._held_by.pop(key, (None, None))
        try:
            super().on_account_event(topic, rows)
        finally:
            if self._held is not None:  # newly held (the parent's timer knows no account)
                if self._held_timer is not None:
                    self._held_timer.cancel()
                timer = asyncio.get_running_loop().call_later(
                    REORDER_HOLD_S, self._flush_account, key)
                self._held_by[key] = (self._held, timer)
            self._held, self._held_timer = None, None

    def _flush_account(self, key: str) -> None:
        held, _ = self._held_by.pop(key, (None, None))
        if held is None:
            return
        current, self._current = self._current, key
        try:
            self._deliver(held)
        finally:
            self._current = current

    async def shutdown(self) -> None:
        for _, timer in self._held_by.values():
            if timer is not None:
                timer.cancel()
        self._held_by.clear()
        await super().shutdown()

    def _deliver(self, envelope: dict) -> None:
        """The parent's delivery, to the sockets of the account whose event it is."""
        every = self.conns
        self.conns = self._by_key.get(self._current or "", set())
        try:
            super()._deliver(envelope)
        finally:
            self.conns = every


class MultiAccountSimulator(Simulator):
    """A simulated exchange serving ``accounts`` accounts (keys ``<prefix><n>``), with
    per-IP connection and request limits."""

    def __init__(self, config: SimConfig | None = None, *, accounts: int = 1,
                 ws_per_window: int = 500, ws_window: float = 300.0,
                 rest_per_window: int = 600, rest_window: float = 5.0,
                 uid_limits: dict[str, int] | None = None,
                 **overrides: Any) -> None:
        super().__init__(config, **overrides)
        cfg = self.config
        #: Per-UID limits by path (requests per second per account), over the config's
        #: ``rest_rate_limit``: e.g. Bybit's ``BYBIT_UID_LIMITS``.
        self.uid_limits = dict(uid_limits or {})
        self.rest.path_limits = dict(self.uid_limits)
        first = SimAccount("acct0", self.api_key, self.api_secret, self.account, self.rest)
        self.sim_accounts: list[SimAccount] = [first]
        for n in range(1, accounts):
            key, secret = f"{self.api_key}-{n}", f"{self.api_secret}-{n}"
            engine = AccountEngine(
                self.instruments, self.prices, self.clock.now_ms, spread_bps=cfg.spread_bps,
                fee_rate=cfg.taker_fee_rate, balance=cfg.initial_balance,
                default_leverage=cfg.default_leverage, log_size=cfg.transition_log_size,
                coin_balance=cfg.coin_balance)
            rest = RestApi(RestContext(self.clock, self.prices, engine, key), secret,
                           self.faults, cfg.rest_rate_limit, self.uid_limits)
            self.sim_accounts.append(SimAccount(f"acct{n}", key, secret, engine, rest))
        self.by_key = {a.api_key: a for a in self.sim_accounts}
        self.private = KeyedPrivateHub(self)
        self.private.compress = cfg.ws_compress
        for a in self.sim_accounts:
            a.engine.listeners[:] = [self.private.listener(a.api_key)]
        self.demos: list[DemoTrader] = []
        self.ws_limit = RollingLimit(ws_per_window, ws_window)
        self.rest_limit = RollingLimit(rest_per_window, rest_window)

    async def start(self) -> MultiAccountSimulator:
        await super().start()
        cfg = self.config
        if cfg.demo:  # the first account's trader is the parent's; one per other account
            self.demos = [DemoTrader(a.engine, self.prices, seed=cfg.seed + n,
                                     interval=cfg.demo_interval)
                          for n, a in enumerate(self.sim_accounts[1:], start=1)]
            for n, demo in enumerate(self.demos, start=1):
                self._spawn(demo.run(), f"demo-{n}")
        return self

    def engines(self) -> list[AccountEngine]:
        return [a.engine for a in self.sim_accounts]

    def _app(self) -> web.Application:
        app = web.Application()
        for route in MARKET_ROUTES + TRADE_ROUTES:
            handlers = {a.api_key: a.rest._wrap(route) for a in self.sim_accounts}
            app.router.add_route(route.method, route.path,
                                 self._by_key_handler(handlers, handlers[self.api_key]))
        app.router.add_get("/v5/public/linear", self._ws(self.public))
        app.router.add_get("/v5/public/inverse", self._ws(self.public_inverse))
        app.router.add_get("/v5/private", self._ws(self.private))
        app.add_routes(control_routes(self))
        return app

    def _by_key_handler(self, handlers: dict[str, Handler], default: Handler) -> Handler:
        async def handler(request: web.Request) -> web.StreamResponse:
            if not self.rest_limit.admit(request.remote or ""):
                return web.Response(status=403, text="access too frequent\n")
            # an unknown key goes to the first account's handler, which refuses it
            chosen = handlers.get(request.headers.get("X-BAPI-API-KEY", ""), default)
            return await chosen(request)
        return handler

    def _ws(self, hub: Hub) -> Handler:
        async def handler(request: web.Request) -> web.StreamResponse:
            ip = request.remote or ""
            if not self.ws_limit.admit(ip):
                return web.Response(
                    status=403, text=f"access too frequent: more than {self.ws_limit.limit} "
                    f"connections within {self.ws_limit.window:g}s from {ip}\n")
            return await hub.handle(request)
        return handler

    def stats(self, reset: bool = False) -> dict:
        out = super().stats(reset)
        out["accounts"] = len(self.sim_accounts)
        out["ws_limit"] = {"admitted": self.ws_limit.admitted,
                           "refused": self.ws_limit.refused}
        out["rest_limit"] = {"admitted": self.rest_limit.admitted,
                             "refused": self.rest_limit.refused}
        out["uid_limited"] = sum(a.rest.limited for a in self.sim_accounts)
        return out
