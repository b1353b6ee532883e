"""A small scripted Binance USDⓈ-M exchange for the plugin's tests.

TO BE MOVED ONTO THE SIMULATOR: the embedded Binance personality (branch ``binsim``,
``simulator/binance/``) is being written in parallel; once it lands, the harness and
the socket/REST tests here run against it and this module goes away. Until then it
speaks just enough of Binance's documented protocol, on real loopback sockets, for the
feed's client code to be exercised for real:

* REST: ``/fapi/v1/time``, ``/fapi/v1/listenKey`` (POST/PUT/DELETE, ``X-MBX-APIKEY``),
  signed ``/fapi/v3/positionRisk``, ``/fapi/v1/positionSide/dual`` and
  ``/fapi/v1/symbolConfig``, ``/fapi/v1/userTrades`` and ``/fapi/v1/income``
  (HMAC over the
  query, ``timestamp`` within ``recvWindow`` else -1021, bad key -2015), public
  ``/fapi/v1/premiumIndex``; every answer carries ``X-MBX-USED-WEIGHT-1M``; scripted
  answers (status, body, headers) can be queued per path.
* WebSocket: ``/private/ws?listenKey=`` (user data: ACCOUNT_UPDATE with only the
  changed positions, ORDER_TRADE_UPDATE, listenKeyExpired), ``/market/ws`` (SUBSCRIBE /
  UNSUBSCRIBE method frames, ``<symbol>@markPrice@1s`` pushes every ``tick`` seconds),
  and the retired ``/ws/<listenKey>`` route that opens but stays silent.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import hmac
import json
import secrets
import time
from collections import deque
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any
from urllib.parse import parse_qsl

from aiohttp import WSMsgType, web


@dataclass
class Pos:
    amount: Decimal = Decimal(0)
    entry: Decimal = Decimal(0)
    update_ms: int = 0


@dataclass
class ScriptedBinance:
    symbols: tuple[str, ...] = ("BTCUSDT", "ETHUSDT")
    api_key: str = field(default_factory=lambda: "k" + secrets.token_hex(16))
    api_secret: str = field(default_factory=lambda: "s" + secrets.token_hex(24))
    tick: float = 0.1
    hedge: bool = False

    def __post_init__(self) -> None:
        self.marks = {s: Decimal("60000") if s.startswith("BTC") else Decimal("3000")
                      for s in self.symbols}
        self.positions: dict[tuple[str, str], Pos] = {}
        self.leverage = {s: 20 for s in self.symbols}
        self.trades: list[dict[str, Any]] = []  # /fapi/v1/userTrades rows, oldest first
        self.listen_keys: set[str] = set()
        self.user_sockets: list[tuple[str, web.WebSocketResponse]] = []
        self.market_sockets: dict[web.WebSocketResponse, set[str]] = {}
        self.outage = False
        self.market_refused = False  # the market route refuses handshakes (REST works)
        self.drop_next_account_updates = 0
        #: send a fill's ORDER_TRADE_UPDATE before its ACCOUNT_UPDATE (both orders occur)
        self.fill_first = False
        self.used_weight = 0
        self.scripted: dict[str, deque[tuple[int, Any, dict[str, str]]]] = {}
        self.requests: list[tuple[str, str]] = []  # (method, path) answered
        self.clock_skew_ms = 0
        self.mark_frames_paused = False
        self._runner: web.AppRunner | None = None
        self._ticker: asyncio.Task[None] | None = None
        self.port = 0

    # ------------------------------------------------------------------ lifecycle
    @property
    def rest(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def market_ws(self) -> str:
        return f"ws://127.0.0.1:{self.port}/market"

    @property
    def private_ws(self) -> str:
        return f"ws://127.0.0.1:{self.port}/private"

    async def start(self) -> None:
        app = web.Application()
        app.router.add_get("/fapi/v1/time", self._time)
        app.router.add_route("*", "/fapi/v1/listenKey", self._listen_key)
        app.router.add_get("/fapi/v3/positionRisk", self._position_risk)
        app.router.add_get("/fapi/v1/positionSide/dual", self._dual)
        app.router.add_get("/fapi/v1/premiumIndex", self._premium)
        app.router.add_get("/fapi/v1/symbolConfig", self._symbol_config)
        app.router.add_get("/fapi/v1/userTrades", self._user_trades)
        app.router.add_get("/fapi/v1/income", self._income)
        app.router.add_get("/private/ws", self._user_ws)
        app.router.add_get("/market/ws", self._market_ws)
        app.router.add_get("/ws/{key}", self._retired_ws)
        self._runner = web.AppRunner(app, access_log=None, handle_signals=False)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0)
        await site.start()
        self.port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
        self._ticker = asyncio.create_task(self._tick())

    async def stop(self) -> None:
        if self._ticker is not None:
            self._ticker.cancel()
            await asyncio.wait([self._ticker])
        await self.drop_sockets()
        if self._runner is not None:
            await self._runner.cleanup()

    # ------------------------------------------------------------------ actions
    def now_ms(self) -> int:
        return time.time_ns() // 1_000_000

    async def trade(self, symbol: str, qty: Decimal, position_side: str = "BOTH") -> None:
        """A market order of signed ``qty`` at the mark price (hedge: on that side)."""
        key = (symbol, position_side)
        pos = self.positions.setdefault(key, Pos())
        price = self.marks[symbol]
        new = pos.amount + qty
        if pos.amount == 0 or (pos.amount > 0) == (qty > 0):
            pos.entry = ((pos.entry * abs(pos.amount) + price * abs(qty)) / abs(new)
                         if new else Decimal(0))
        elif new != 0 and (new > 0) != (pos.amount > 0):
            pos.entry = price  # flipped through zero
        if new == 0:
            pos.entry = Decimal(0)
        pos.amount = new
        t = self.now_ms()
        pos.update_ms = t
        self.trades.append({"symbol": symbol, "id": len(self.trades) + 1, "orderId": 1,
                            "side": "BUY" if qty > 0 else "SELL", "positionSide": position_side,
                            "price": str(price), "qty": str(abs(qty)), "realizedPnl": "0",
                            "commission": "0.01", "commissionAsset": "USDT", "time": t,
                            "buyer": qty > 0, "maker": False})
        if not self.fill_first:
            await self._push_account(symbol, position_side, pos, t)
        await self._push_user({"e": "ORDER_TRADE_UPDATE", "E": t + 1, "T": t, "o": {
            "s": symbol, "c": "x", "S": "BUY" if qty > 0 else "SELL", "o": "MARKET",
            "f": "GTC", "q": str(abs(qty)), "p": "0", "ap": str(price), "sp": "0",
            "x": "TRADE", "X": "FILLED", "i": 1, "l": str(abs(qty)), "z": str(abs(qty)),
            "L": str(price), "T": t, "t": 1, "ps": position_side, "rp": "0"}})
        if self.fill_first:
            await asyncio.sleep(0.2)
            await self._push_account(symbol, position_side, pos, t)

    async def _push_account(self, symbol: str, side: str, pos: Pos, t: int) -> None:
        if self.drop_next_account_updates > 0:
            self.drop_next_account_updates -= 1
            return
        await self._push_user({"e": "ACCOUNT_UPDATE", "E": t + 1, "T": t, "a": {
            "m": "ORDER", "B": [{"a": "USDT", "wb": "1000", "cw": "1000", "bc": "0"}],
            "P": [{"s": symbol, "pa": str(pos.amount), "ep": str(pos.entry), "bep": "0",
                   "cr": "0", "up": "0", "mt": "cross", "iw": "0", "ps": side}]}})

    async def _push_user(self, event: dict[str, Any]) -> None:
        text = json.dumps(event)
        for key, ws in list(self.user_sockets):
            if key in self.listen_keys and not ws.closed:
                with contextlib.suppress(ConnectionError, RuntimeError):
                    await ws.send_str(text)

    async def expire_listen_keys(self) -> None:
        """Every key expires: its sockets get listenKeyExpired, then nothing more."""
        for key, ws in list(self.user_sockets):
            if key in self.listen_keys and not ws.closed:
                with contextlib.suppress(ConnectionError, RuntimeError):
                    await ws.send_str(json.dumps({"e": "listenKeyExpired",
                                                  "E": str(self.now_ms()), "listenKey": key}))
        self.listen_keys.clear()

    async def send_user_raw(self, text: str) -> None:
        for key, ws in list(self.user_sockets):
            if key in self.listen_keys and not ws.closed:
                await ws.send_str(text)

    async def drop_sockets(self) -> None:
        for _key, ws in list(self.user_sockets):
            await ws.close()
        for ws in list(self.market_sockets):
            await ws.close()

    def script(self, path: str, status: int, body: Any, headers: dict[str, str] | None = None,
               times: int = 1) -> None:
        """The next ``times`` requests to ``path`` get this answer instead."""
        q = self.scripted.setdefault(path, deque())
        for _ in range(times):
            q.append((status, body, headers or {}))

    # ------------------------------------------------------------------ REST
    def _answer(self, request: web.Request, body: Any, weight: int) -> web.Response:
        self.used_weight += weight
        self.requests.append((request.method, request.path))
        return web.json_response(body, headers={"X-MBX-USED-WEIGHT-1M": str(self.used_weight)})

    def _gate(self, request: web.Request, signed: bool, keyed: bool) -> web.Response | None:
        if self.outage:
            return web.json_response({"code": -1001, "msg": "Internal error."}, status=503)
        scripted = self.scripted.get(request.path)
        if scripted:
            status, body, headers = scripted.popleft()
            self.requests.append((request.method, request.path))
            return web.json_response(body, status=status, headers=headers)
        if (signed or keyed) and request.headers.get("X-MBX-APIKEY") != self.api_key:
            return web.json_response({"code": -2015, "msg": "Invalid API-key, IP, or "
                                      "permissions for action."}, status=401)
        if signed:
            raw = request.query_string
            query, _, sig = raw.rpartition("&signature=")
            expected = hmac.new(self.api_secret.encode(), query.encode(),
                                hashlib.sha256).hexdigest()
            if not sig or not hmac.compare_digest(sig, expected):
                return web.json_response({"code": -1022, "msg": "Signature for this request "
                                          "is not valid."}, status=400)
            params = dict(parse_qsl(query))
            ts, window = int(params.get("timestamp", 0)), int(params.get("recvWindow", 5000))
            now = self.now_ms() + self.clock_skew_ms
            if ts > now + 1000 or now - ts > window:
                return web.json_response({"code": -1021, "msg": "Timestamp for this request "
                                          "is outside of the recvWindow."}, status=400)
        return None

    async def _time(self, request: web.Request) -> web.Response:
        return self._gate(request, False, False) or self._answer(
            request, {"serverTime": self.now_ms() + self.clock_skew_ms}, 1)

    async def _listen_key(self, request: web.Request) -> web.Response:
        gate = self._gate(request, False, True)
        if gate is not None:
            return gate
        if request.method == "POST":
            key = next(iter(self.listen_keys), None) or secrets.token_urlsafe(48)
            self.listen_keys.add(key)
            return self._answer(request, {"listenKey": key}, 1)
        key = request.query.get("listenKey", "")
        if key not in self.listen_keys:
            return web.json_response({"code": -1125, "msg": "This listenKey does not exist."},
                                     status=400)
        if request.method == "DELETE":
            self.listen_keys.discard(key)
        return self._answer(request, {}, 1)

    async def _position_risk(self, request: web.Request) -> web.Response:
        gate = self._gate(request, True, True)
        if gate is not None:
            return gate
        rows = [{"symbol": s, "positionSide": side, "positionAmt": str(p.amount),
                 "entryPrice": str(p.entry), "breakEvenPrice": "0",
                 "markPrice": str(self.marks[s]), "unRealizedProfit": "0",
                 "liquidationPrice": "0", "isolatedMargin": "0", "notional": "0",
                 "marginAsset": "USDT", "updateTime": p.update_ms}
                for (s, side), p in sorted(self.positions.items()) if p.amount != 0]
        return self._answer(request, rows, 5)

    async def _dual(self, request: web.Request) -> web.Response:
        return self._gate(request, True, True) or self._answer(
            request, {"dualSidePosition": self.hedge}, 30)

    async def _symbol_config(self, request: web.Request) -> web.Response:
        return self._gate(request, True, True) or self._answer(request, [
            {"symbol": s, "marginType": "CROSSED", "isAutoAddMargin": "false",
             "leverage": lev, "maxNotionalValue": "1000000"}
            for s, lev in sorted(self.leverage.items())], 5)

    async def _user_trades(self, request: web.Request) -> web.Response:
        gate = self._gate(request, True, True)
        if gate is not None:
            return gate
        symbol, start = request.query.get("symbol"), int(request.query.get("startTime", 0))
        if not symbol:
            return web.json_response({"code": -1102, "msg": "Mandatory parameter 'symbol' "
                                      "was not sent"}, status=400)
        return self._answer(request, [t for t in self.trades
                                      if t["symbol"] == symbol and t["time"] >= start], 5)

    async def _income(self, request: web.Request) -> web.Response:
        gate = self._gate(request, True, True)
        if gate is not None:
            return gate
        start = int(request.query.get("startTime", 0))
        return self._answer(request, [
            {"symbol": t["symbol"], "incomeType": "COMMISSION", "income": "-0.01",
             "asset": "USDT", "time": t["time"], "tranId": t["id"], "info": "", "tradeId":
             str(t["id"])} for t in self.trades if t["time"] >= start], 30)

    async def _premium(self, request: web.Request) -> web.Response:
        sym = request.query.get("symbol", "")
        gate = self._gate(request, False, False)
        if gate is not None:
            return gate
        return self._answer(request, {"symbol": sym, "markPrice": str(self.marks[sym]),
                                      "time": self.now_ms()}, 1)

    # ------------------------------------------------------------------ sockets
    async def _user_ws(self, request: web.Request) -> web.StreamResponse:
        key = request.query.get("listenKey", "")
        if self.outage:
            return web.Response(status=503)
        if key not in self.listen_keys:
            return web.Response(status=400, text="invalid listenKey")
        ws = web.WebSocketResponse()
        await ws.prepare(request)
        self.user_sockets.append((key, ws))
        try:
            async for _msg in ws:
                pass
        finally:
            self.user_sockets = [(k, w) for k, w in self.user_sockets if w is not ws]
        return ws

    async def _retired_ws(self, request: web.Request) -> web.StreamResponse:
        """The pre-2026-04-23 route: opens, delivers no user data."""
        ws = web.WebSocketResponse()
        await ws.prepare(request)
        async for _msg in ws:
            pass
        return ws

    async def _market_ws(self, request: web.Request) -> web.StreamResponse:
        if self.outage or self.market_refused:
            return web.Response(status=503)
        ws = web.WebSocketResponse()
        await ws.prepare(request)
        streams: set[str] = set()
        self.market_sockets[ws] = streams
        try:
            async for msg in ws:
                if msg.type is not WSMsgType.TEXT:
                    continue
                frame = json.loads(msg.data)
                method, params = frame.get("method"), frame.get("params") or []
                bad = [p for p in params if p.split("@")[0].upper() not in self.marks
                       and not p.startswith("!markPrice@arr")]
                if bad:
                    await ws.send_str(json.dumps({"error": {"code": 2, "msg": f"Invalid "
                                                  f"request: unknown stream {bad[0]}"},
                                                  "id": frame.get("id")}))
                    continue
                if method == "SUBSCRIBE":
                    streams.update(params)
                elif method == "UNSUBSCRIBE":
                    streams.difference_update(params)
                await ws.send_str(json.dumps({"result": None, "id": frame.get("id")}))
        finally:
            self.market_sockets.pop(ws, None)
        return ws

    async def _tick(self) -> None:
        while True:
            await asyncio.sleep(self.tick)
            if self.mark_frames_paused:
                continue
            now = self.now_ms()
            for ws, streams in list(self.market_sockets.items()):
                if any(s.startswith("!markPrice@arr") for s in streams):
                    with contextlib.suppress(ConnectionError, RuntimeError):
                        await ws.send_str(json.dumps([
                            {"e": "markPriceUpdate", "E": now, "s": sym, "p": str(price),
                             "i": str(price), "P": "0", "r": "0.0001", "T": now + 3_600_000}
                            for sym, price in sorted(self.marks.items())]))
                for stream in sorted(s for s in streams if not s.startswith("!")):
                    sym = stream.split("@")[0].upper()
                    with contextlib.suppress(ConnectionError, RuntimeError):
                        await ws.send_str(json.dumps({
                            "e": "markPriceUpdate", "E": now, "s": sym,
                            "p": str(self.marks[sym]), "i": str(self.marks[sym]),
                            "P": "0", "r": "0.0001", "T": now + 3_600_000}))
