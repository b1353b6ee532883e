"""REST under ``/fapi/...``: security types, signatures, weights, errors and REST faults.

Security types: NONE / MARKET_DATA (no key), USER_STREAM (``X-MBX-APIKEY``), TRADE and
USER_DATA (SIGNED: key, ``timestamp``, optional ``recvWindow``, ``signature``). Every
request costs its weight (reported in ``X-MBX-USED-WEIGHT-1M``); order placement counts
against the order limits instead. Errors are ``{"code": <negative>, "msg": ...}`` with
the HTTP status Binance uses.

The REST faults shared with the Bybit personality map to Binance's answers:
``rate_limit`` -> 429 -1003, ``401`` -> 401 -2015, any other HTTP status (502, 503,
403, 404...) -> the gateway's HTML page, ``malformed`` -> HTTP 200 with a body cut in
the middle; ``reject_auth`` -> 401 -2015.

https://developers.binance.com/docs/derivatives/usds-margined-futures/general-info
https://developers.binance.com/docs/derivatives/usds-margined-futures/error-code
"""

from __future__ import annotations

import logging
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass
from http import HTTPStatus
from typing import TYPE_CHECKING, Any
from urllib.parse import parse_qsl

import orjson
from aiohttp import web

from ..clock import Clock
from ..faults import Faults
from .config import BinanceSimConfig
from .errors import (
    BinanceError,
    bad_key_format,
    bad_signature,
    bad_timestamp,
    invalid_param,
    mandatory,
    rejected_key,
)
from .limits import Limits
from .signing import sign, split_signature

if TYPE_CHECKING:
    from ..account import AccountEngine
    from ..prices import PriceEngine
    from .ledger import Ledger
    from .listen_keys import ListenKeys

log = logging.getLogger("feedctl.simulator")
GATEWAY_PAGE = ("<html><head><title>{0}</title></head>"
                "<body><center><h1>{0}</h1></center></body></html>")
NONE, USER_STREAM, SIGNED = "NONE", "USER_STREAM", "SIGNED"
MAX_RECV_WINDOW = 60_000


@dataclass
class BinanceContext:
    clock: Clock
    prices: PriceEngine
    account: AccountEngine
    ledger: Ledger
    keys: ListenKeys
    cfg: BinanceSimConfig
    dual_side: list[bool]
    #: the USDⓈ-M symbols: the USDT-settled instruments (inverse ones are COIN-M's)
    symbols: list[str]


Handler = Callable[[BinanceContext, dict[str, str]], Any]
Weight = Callable[[dict[str, str]], int]


@dataclass
class Route:
    method: str
    path: str
    handler: Handler
    security: str
    weight: Weight
    order: bool = False


def weight(plain: int, without_symbol: int | None = None) -> Weight:
    """A fixed weight, or one that is higher when no ``symbol`` is given."""
    def cost(params: dict[str, str]) -> int:
        if without_symbol is not None and not params.get("symbol"):
            return without_symbol
        return plain
    return cost


class BinanceRest:
    def __init__(self, ctx: BinanceContext, api_key: str, api_secret: str,
                 faults: Faults) -> None:
        self.ctx = ctx
        self._key = api_key
        self._secret = api_secret
        self.faults = faults
        self.limits = Limits(ctx.cfg, ctx.clock.now_ms)
        self.requests = 0
        #: request weight charged per "METHOD path" (who spends the IP's minute)
        self.weight_by_path: Counter[str] = Counter()
        #: the object-body fault: the next N answers on paths starting with the prefix
        #: are HTTP 200 ``{}`` (a JSON object where a list of rows is due)
        self.object_bodies: tuple[int, str] = (0, "")

    def add_routes(self, app: web.Application, routes: list[Route]) -> None:
        for route in routes:
            app.router.add_route(route.method, route.path, self._wrap(route))

    @staticmethod
    def json(data: Any, status: int = 200, headers: dict[str, str] | None = None
             ) -> web.Response:
        return web.Response(body=orjson.dumps(data), status=status, headers=headers,
                            content_type="application/json")

    def _fault(self, path: str) -> web.Response | None:
        count, prefix = self.object_bodies
        if count > 0 and path.startswith(prefix):
            self.object_bodies = (count - 1, prefix) if count > 1 else (0, "")
            return self.json({})
        fault = self.faults.take_rest_error(path)
        if not fault:
            return None
        if fault == "rate_limit":
            return self.json({"code": -1003, "msg": "Too many requests; current limit of IP "
                              f"is {self.ctx.cfg.weight_limit} requests per minute. Please use "
                              "the websocket for live updates to avoid polling the API."}, 429,
                             {"Retry-After": "1"})
        if fault == "malformed":
            text = orjson.dumps([{"symbol": "BTCUSDT", "positionAmt": "0.000"}]).decode()
            return web.Response(status=200, text=text[: len(text) // 2],
                                content_type="application/json")
        if fault == "401":  # Binance answers key problems in its JSON shape
            return self.json(rejected_key().body(), 401)
        status = int(fault)  # any other HTTP fault: the gateway's page
        title = {503: "503 Service Temporarily Unavailable"}.get(
            status, f"{status} {HTTPStatus(status).phrase}")
        return web.Response(status=status, text=GATEWAY_PAGE.format(title),
                            content_type="text/html")

    def _authenticate(self, request: web.Request, security: str, query: str, body: str,
                      params: dict[str, str]) -> None:
        key = request.headers.get("X-MBX-APIKEY")
        if not key or not key.isalnum():
            raise bad_key_format()
        if self.faults.take_reject_auth() or key != self._key:
            raise rejected_key()
        if security != SIGNED:
            return
        ts = params.get("timestamp")
        if not ts:
            raise mandatory("timestamp")
        try:
            ts_ms = int(ts)
        except ValueError:
            raise invalid_param("timestamp") from None
        try:
            window = int(params.get("recvWindow") or 5000)
        except ValueError:
            raise invalid_param("recvWindow") from None
        if not 0 < window <= MAX_RECV_WINDOW:
            raise invalid_param("recvWindow")
        now = self.ctx.clock.now_ms()
        if ts_ms >= now + 1000:
            raise bad_timestamp(ahead=True)
        if now - ts_ms > window:
            raise bad_timestamp(ahead=False)
        query_part, sig_q = split_signature(query)
        body_part, sig_b = split_signature(body)
        signature = sig_q or sig_b
        if not signature:
            raise mandatory("signature")
        if sign(self._secret, query_part + body_part) != signature.lower():
            raise bad_signature()

    def _wrap(self, route: Route) -> Callable[[web.Request], Any]:
        async def handler(request: web.Request) -> web.StreamResponse:
            self.requests += 1
            faulted = self._fault(request.path)
            if faulted is not None:
                return faulted
            raw = request.raw_path
            query = raw.split("?", 1)[1] if "?" in raw else ""
            body = await request.text() if request.method != "GET" else ""
            params = dict(parse_qsl(query, keep_blank_values=True))
            if body:
                params.update(parse_qsl(body, keep_blank_values=True))
            params.pop("signature", None)
            ip = request.remote or "127.0.0.1"
            cost = 0 if route.order else route.weight(params)
            self.weight_by_path[f"{request.method} {request.path}"] += cost
            headers, refused = self.limits.charge(ip, cost)
            if refused is not None:
                return self.json(refused.body(), refused.status, headers)
            try:
                if route.security != NONE:
                    self._authenticate(request, route.security, query, body, params)
                if route.order:
                    order_headers, refused = self.limits.count_order()
                    headers.update(order_headers)
                    if refused is not None:
                        raise refused
                result = route.handler(self.ctx, params)
                return self.json(result, headers=headers)
            except BinanceError as exc:
                if exc.code not in (-1102, -1121, -4059, -4046):
                    log.info("%s %s -> %s %s", request.method, request.path, exc.code, exc.msg)
                return self.json(exc.body(), exc.status, headers)

        return handler
