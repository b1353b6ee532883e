"""`Simulator`: one aiohttp server on one loopback port, its engines and its tasks."""

from __future__ import annotations

import asyncio
import logging
import socket
import statistics
from collections import deque
from typing import Any

from aiohttp import web

from .account import AccountEngine
from .binance.personality import BinancePersonality
from .clock import Clock
from .config import SimConfig
from .control import SimControl
from .control_api import control_routes
from .demo import DemoTrader
from .faults import Faults
from .instruments import make_instruments
from .prices import PriceEngine
from .rest import RestApi, RestContext
from .rest_market import ROUTES as MARKET_ROUTES
from .rest_trade import ROUTES as TRADE_ROUTES
from .ws_common import Hub
from .ws_private import PrivateHub
from .ws_public import PublicHub

log = logging.getLogger("feedctl.simulator")


class Simulator:
    """A Bybit V5-compatible exchange, or with ``exchange="binanceusdm"`` a Binance
    USDⓈ-M one on the same engines.  Use `async with Simulator(cfg) as sim:`."""

    def __init__(self, config: SimConfig | None = None, **overrides: Any) -> None:
        cfg = config if config is not None else SimConfig(**overrides)
        if config is not None and overrides:
            cfg = config.model_copy(update=overrides)
        self.config = cfg
        self.clock = Clock()
        self.faults = Faults(self.clock)
        self.instruments = make_instruments(cfg.symbols, cfg.inverse_symbols)
        self.prices = PriceEngine(self.instruments, cfg.seed, cfg.volatility_bps)
        for name in cfg.quiet_symbols:
            self.prices.set_quiet(name, int(cfg.quiet_interval * 1000))
        self.account = AccountEngine(
            self.instruments, self.prices, self.clock.now_ms, spread_bps=cfg.spread_bps,
            fee_rate=cfg.taker_fee_rate, balance=cfg.initial_balance,
            default_leverage=cfg.default_leverage, log_size=cfg.transition_log_size,
            coin_balance=cfg.coin_balance)
        idle, backlog, ack = cfg.idle_timeout, cfg.max_ws_backlog, cfg.ack_delay_ms
        now = self.clock.now_ms
        self.public = PublicHub(self.faults, self.prices, now, "linear", idle, backlog, ack)
        self.public_inverse = PublicHub(self.faults, self.prices, now, "inverse", idle, backlog,
                                        ack)
        self.private = PrivateHub(self.faults, now, self.api_key, self.api_secret, idle, backlog,
                                  ack)
        self.binance: BinancePersonality | None = None
        if cfg.exchange == "binanceusdm":
            self.binance = BinancePersonality(self)
        else:
            self.account.listeners.append(self.private.on_account_event)
        for hub in self.hubs():
            hub.compress = cfg.ws_compress
        self.rest = RestApi(RestContext(self.clock, self.prices, self.account, self.api_key),
                            self.api_secret, self.faults, cfg.rest_rate_limit)
        self.demo: DemoTrader | None = None
        self._tasks: set[asyncio.Task] = set()
        self._runner: web.AppRunner | None = None
        self._sock: socket.socket | None = None
        self.port = 0
        self.running = False
        self.ticks = 0
        self.skipped_ticks = 0
        self._lateness: deque[float] = deque(maxlen=2000)
        self._tick_cost: deque[float] = deque(maxlen=2000)

    # -- identity -------------------------------------------------------------------
    @property
    def api_key(self) -> str:
        return str(self.config.api_key)

    @property
    def api_secret(self) -> str:
        return str(self.config.api_secret)

    def __repr__(self) -> str:
        return f"<Simulator {self.config.host}:{self.port} symbols={len(self.instruments)}>"

    @property
    def urls(self) -> dict[str, str]:
        base = f"{self.config.host}:{self.port}"
        if self.binance is not None:
            return self.binance.urls(base)
        return {"rest": f"http://{base}", "public_ws": f"ws://{base}/v5/public/linear",
                "private_ws": f"ws://{base}/v5/private", "control": f"http://{base}/sim",
                "public_ws_inverse": f"ws://{base}/v5/public/inverse"}

    def engines(self) -> list[AccountEngine]:
        """Every account engine (one here; see accounts.MultiAccountSimulator)."""
        return [self.account]

    def hubs(self, kinds: tuple[str, ...] = ("public", "private")) -> list[Hub]:
        out: list[Hub] = []
        if self.binance is not None:
            out += self.binance.hubs(kinds)
            return out
        if "public" in kinds:
            out += [self.public, self.public_inverse]
        if "private" in kinds:
            out.append(self.private)
        return out

    async def control_client(self) -> SimControl:
        return SimControl(self.urls["control"])

    # -- lifecycle ------------------------------------------------------------------
    def _app(self) -> web.Application:
        app = web.Application()
        if self.binance is not None:
            self.binance.add_routes(app)
        else:
            self.rest.add_routes(app, MARKET_ROUTES + TRADE_ROUTES)
            app.router.add_get("/v5/public/linear", self.public.handle)
            app.router.add_get("/v5/public/inverse", self.public_inverse.handle)
            app.router.add_get("/v5/private", self.private.handle)
        app.add_routes(control_routes(self))
        return app

    async def start(self) -> Simulator:
        if self.running:
            return self
        cfg = self.config
        self._runner = web.AppRunner(self._app(), access_log=None, handle_signals=False,
                                     shutdown_timeout=2.0)
        await self._runner.setup()
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind((cfg.host, cfg.port))
        except OSError:
            sock.close()
            await self._runner.cleanup()
            raise
        self._sock = sock
        self.port = sock.getsockname()[1]
        await web.SockSite(self._runner, sock).start()
        self.running = True
        self._spawn(self._tick_loop(), "tick")
        self._spawn(self._watchdog(), "idle-watchdog")
        if self.binance is not None:
            for coro, name in self.binance.tasks():
                self._spawn(coro, name)
        if cfg.demo:
            self.demo = DemoTrader(self.account, self.prices, seed=cfg.seed,
                                   interval=cfg.demo_interval)
            self._spawn(self.demo.run(), "demo")
        log.info("simulator (%s) listening on %s (%d symbols, demo=%s)", cfg.exchange,
                 self.urls["rest"], len(self.instruments), cfg.demo)
        return self

    def _spawn(self, coro: Any, name: str) -> None:
        task = asyncio.get_running_loop().create_task(coro, name=f"simulator-{name}")
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def stop(self) -> None:
        if not self.running and self._runner is None:
            return
        self.running = False
        tasks = list(self._tasks)
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        for hub in self.hubs():
            await hub.shutdown()
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None
        if self._sock is not None:
            self._sock.close()
            self._sock = None
        log.info("simulator stopped")

    async def __aenter__(self) -> Simulator:
        return await self.start()

    async def __aexit__(self, *exc: object) -> None:
        await self.stop()

    # -- tasks ----------------------------------------------------------------------
    async def _tick_loop(self) -> None:
        loop = asyncio.get_running_loop()
        interval = self.config.tick_interval
        due = loop.time() + interval
        while True:
            wait = due - loop.time()
            if wait > 0:
                await asyncio.sleep(wait)
            started = loop.time()
            self._lateness.append(started - due)
            try:
                deltas = self.prices.step(self.clock.now_ms())
                for engine in self.engines():
                    engine.on_tick()
                now_ms = self.clock.now_ms()  # ts = send time
                self.public.publish(deltas, now_ms)
                self.public_inverse.publish(deltas, now_ms)
            except Exception:
                log.exception("tick failed")
            self.ticks += 1
            self._tick_cost.append(loop.time() - started)
            due += interval
            if loop.time() - due > interval:  # fell more than a tick behind: do not burst
                self.skipped_ticks += 1
                due = loop.time() + interval

    async def _watchdog(self) -> None:
        while True:
            await asyncio.sleep(self.config.check_interval)
            for hub in self.hubs():
                try:
                    await hub.reap_idle()
                except Exception:
                    log.exception("idle watchdog failed")

    # -- numbers --------------------------------------------------------------------
    def stats(self, reset: bool = False) -> dict:
        """Counters and tick timing; `reset` starts a new timing window after reading."""
        def summary(values: deque[float]) -> dict:
            data = sorted(v * 1000 for v in values)
            if not data:
                return {"n": 0}
            return {"n": len(data), "p50_ms": round(statistics.median(data), 3),
                    "p99_ms": round(data[min(len(data) - 1, int(len(data) * 0.99))], 3),
                    "max_ms": round(data[-1], 3)}

        out = {
            "ticks": self.ticks, "skipped_ticks": self.skipped_ticks,
            "tick_lateness": summary(self._lateness), "tick_cost": summary(self._tick_cost),
            "public": {"connections": len(self.public.conns) + len(self.public_inverse.conns),
                       "accepted": self.public.total_accepted + self.public_inverse.total_accepted,
                       "messages": self.public.messages + self.public_inverse.messages},
            "private": {"connections": len(self.private.conns),
                        "accepted": self.private.total_accepted, "pushed": self.private.pushed},
            "rest_requests": self.rest.requests,
        }
        if self.binance is not None:
            out["binance"] = self.binance.stats()
        if reset:
            self._lateness.clear()
            self._tick_cost.clear()
        return out
