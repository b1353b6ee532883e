"""`BinancePersonality`: the Binance USDⓈ-M face of one `Simulator`.

It is built on the simulator's own clock, price engine, account engine and fault state
(nothing is copied) and adds the Binance routes, hubs and tasks:

    REST        /fapi/...     (rest.py; rest_routes.py: rest_market, rest_account, rest_orders)
                /sapi/v1/capital/config/getall, /sapi/v1/margin/allPairs (rest_wallet.py)
    market      /market/ws[/<streams>], /market/stream?streams=...   (ws_market.py)
                /public/... (opens; mark price is not a public-route stream)
    user data   /private/ws?listenKey=..., /private/stream?listenKey=...   (ws_user.py)
    legacy      /ws[/<streams>], /stream?streams=...: public data only; a listenKey there
                stays silent
    control     /sim/binance/listen-keys, .../listen-keys/expire, .../listen-keys/reject-keepalive,
                .../listen-keys/forget, /sim/binance/account-updates/drop,
                /sim/binance/refuse-handshakes, /sim/binance/rest/object-body,
                /sim/binance/funding
"""

from __future__ import annotations

import time
from collections.abc import Coroutine
from decimal import Decimal
from typing import TYPE_CHECKING, Any

import orjson
from aiohttp import web

from ..faults import check_count, check_seconds, expand_kind
from .ledger import Ledger
from .rest import BinanceContext, BinanceRest
from .rest_routes import ROUTES
from .rest_wallet import ROUTES as WALLET_ROUTES
from .ws_base import BinanceHub
from .ws_market import MarketHub
from .ws_user import UserHub

if TYPE_CHECKING:
    from ..server import Simulator


class BinancePersonality:
    def __init__(self, sim: Simulator) -> None:
        cfg = sim.config.binance
        self.sim = sim
        self.cfg = cfg
        backlog = sim.config.max_ws_backlog
        now = sim.clock.now_ms
        #: USDⓈ-M lists the USDT-settled instruments only (inverse ones are COIN-M's)
        self.symbols = [s for s, i in sim.instruments.items() if i.quote == "USDT"]
        self.market = MarketHub(sim.faults, sim.prices, self.symbols, now, cfg, backlog)
        self.user = UserHub(sim.faults, now, cfg, backlog)
        self.ledger = Ledger(sim.account, self.user.push, self.symbols,
                             cfg.account_update_first)
        self.dual_side = [False]
        ctx = BinanceContext(sim.clock, sim.prices, sim.account, self.ledger, self.user.keys,
                             cfg, self.dual_side, self.symbols)
        self.rest = BinanceRest(ctx, sim.api_key, sim.api_secret, sim.faults)
        sim.faults.on_clear.append(self._clear_faults)

    def _clear_faults(self) -> None:
        """Clearing the faults ends the rejected keepalives too."""
        self.user.keys.reject_keepalives = 0

    def urls(self, base: str) -> dict[str, str]:
        return {"rest": f"http://{base}", "market_ws": f"ws://{base}/market",
                "private_ws": f"ws://{base}/private", "public_ws": f"ws://{base}/public",
                "control": f"http://{base}/sim"}

    def hubs(self, kinds: tuple[str, ...]) -> list[BinanceHub]:
        out: list[BinanceHub] = []
        if "public" in kinds:
            out.append(self.market)
        if "private" in kinds:
            out.append(self.user)
        return out

    def add_routes(self, app: web.Application) -> None:
        self.rest.add_routes(app, ROUTES + WALLET_ROUTES)
        for prefix in ("/market", "/public", ""):
            app.router.add_get(f"{prefix}/ws", self.market.handle)
            app.router.add_get(prefix + "/ws/{streams:.*}", self.market.handle)
            app.router.add_get(f"{prefix}/stream", self.market.handle)
        app.router.add_get("/private/ws", self.user.handle)
        app.router.add_get("/private/stream", self.user.handle)
        app.add_routes(self._control_routes())

    def tasks(self) -> list[tuple[Coroutine[Any, Any, None], str]]:
        out = [(self.market.mark_loop(fast=False), "binance-mark-3s"),
               (self.market.mark_loop(fast=True), "binance-mark-1s"),
               (self.market.ping_loop(), "binance-market-ping"),
               (self.user.ping_loop(), "binance-user-ping"),
               (self.user.key_watchdog(), "binance-listen-keys")]
        if self.cfg.funding_interval is not None:
            out.append((self._funding_loop(self.cfg.funding_interval), "binance-funding"))
        return out

    async def _funding_loop(self, interval: float) -> None:
        import asyncio

        while True:
            await asyncio.sleep(interval)
            self.sim.account.settle_funding()

    def stats(self) -> dict:
        return {"market": {"connections": len(self.market.conns),
                           "accepted": self.market.total_accepted,
                           "messages": self.market.messages},
                "user": {"connections": len(self.user.conns),
                         "accepted": self.user.total_accepted, "pushed": self.user.pushed,
                         "listen_keys_created": self.user.keys.created,
                         "listen_keys_expired": self.user.keys.expired},
                "rest_requests": self.rest.requests,
                "rest_weight_by_path": dict(self.rest.weight_by_path.most_common())}

    # -- control --------------------------------------------------------------------
    def clear_faults(self) -> None:
        """``POST /sim/faults/clear``: the Binance faults end too (a held update is sent)."""
        self.user.flush_held()
        self.user.drop_account_updates = 0
        self.user.keys.reject_keepalives = 0
        self.market.refuse_until = self.user.refuse_until = 0.0
        self.rest.object_bodies = (0, "")

    def _control_routes(self) -> list[web.RouteDef]:
        def answer(data: Any, status: int = 200) -> web.Response:
            return web.Response(body=orjson.dumps(data), status=status,
                                content_type="application/json")

        async def keys(request: web.Request) -> web.Response:
            return answer({"listen_keys": self.user.keys.remaining()})

        async def expire(request: web.Request) -> web.Response:
            expired = self.user.keys.expire()
            self.sim.faults.note("listen_key_expiry", count=len(expired))
            return answer({"expired": len(expired)})

        async def reject_keepalive(request: web.Request) -> web.Response:
            body = await request.json() if request.can_read_body else {}
            try:
                count = check_count(body.get("count", 1) if isinstance(body, dict) else 1)
            except (TypeError, ValueError) as exc:
                return answer({"error": str(exc)}, 400)
            self.user.keys.reject_keepalives = count
            self.sim.faults.note("listen_key_keepalive_reject", count=count)
            return answer({"remaining": count})

        async def counted(request: web.Request) -> tuple[dict, int | web.Response]:
            body = await request.json() if request.can_read_body else {}
            body = body if isinstance(body, dict) else {}
            try:
                return body, check_count(body.get("count", 1))
            except (TypeError, ValueError) as exc:
                return body, answer({"error": str(exc)}, 400)

        async def drop_account_updates(request: web.Request) -> web.Response:
            _body, count = await counted(request)
            if isinstance(count, web.Response):
                return count
            self.user.drop_account_updates = count
            self.sim.faults.note("drop_account_updates", count=count)
            return answer({"remaining": count})

        async def forget(request: web.Request) -> web.Response:
            count = self.user.keys.forget()
            self.sim.faults.note("forget_listen_keys", count=count)
            return answer({"forgotten": count})

        async def refuse(request: web.Request) -> web.Response:
            body = await request.json() if request.can_read_body else {}
            body = body if isinstance(body, dict) else {}
            try:
                seconds = check_seconds(body.get("seconds", 1))
                hubs = self.hubs(expand_kind(body.get("kind", "all")))
            except (TypeError, ValueError) as exc:
                return answer({"error": str(exc)}, 400)
            for hub in hubs:
                hub.refuse_until = time.monotonic() + seconds
            self.sim.faults.note("refuse_handshakes", kind=body.get("kind", "all"),
                                 seconds=seconds)
            return answer({"seconds": seconds})

        async def object_body(request: web.Request) -> web.Response:
            body, count = await counted(request)
            if isinstance(count, web.Response):
                return count
            path = str(body.get("path") or "")
            self.rest.object_bodies = (count, path)
            self.sim.faults.note("object_body", count=count, path=path)
            return answer({"remaining": count})

        async def funding(request: web.Request) -> web.Response:
            body = await request.json() if request.can_read_body else {}
            rate = body.get("rate") if isinstance(body, dict) else None
            try:
                rows = self.sim.account.settle_funding(
                    Decimal(str(rate)) if rate is not None else None)
            except (ArithmeticError, ValueError) as exc:
                return answer({"error": str(exc)}, 400)
            return answer({"settled": rows})

        return [web.get("/sim/binance/listen-keys", keys),
                web.post("/sim/binance/listen-keys/expire", expire),
                web.post("/sim/binance/listen-keys/reject-keepalive", reject_keepalive),
                web.post("/sim/binance/funding", funding),
                web.post("/sim/binance/account-updates/drop", drop_account_updates),
                web.post("/sim/binance/listen-keys/forget", forget),
                web.post("/sim/binance/refuse-handshakes", refuse),
                web.post("/sim/binance/rest/object-body", object_body)]
