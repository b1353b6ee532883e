"""REST under `/v5/...`: Bybit's envelope, signature checks, rate limits, REST faults.

The signature is verified over the request exactly as received: the raw query
string of a GET (never re-encoded or sorted) or the raw body of a POST.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass
from urllib.parse import parse_qsl

import orjson
from aiohttp import web

from .account import AccountEngine
from .clock import Clock
from .errors import SimError
from .faults import Faults
from .prices import PriceEngine
from .signing import rest_origin, rest_signature

log = logging.getLogger("feedctl.simulator")

Handler = Callable[["RestContext", dict], dict]
GATEWAY_PAGE = ("<html><head><title>{0}</title></head>"
                "<body><center><h1>{0}</h1></center></body></html>")


@dataclass
class RestContext:
    clock: Clock
    prices: PriceEngine
    account: AccountEngine
    api_key: str


@dataclass
class Route:
    method: str
    path: str
    handler: Handler
    signed: bool


class RestApi:
    def __init__(self, ctx: RestContext, api_secret: str, faults: Faults, rate_limit: int,
                 path_limits: dict[str, int] | None = None) -> None:
        self.ctx = ctx
        self._secret = api_secret
        self.faults = faults
        self.rate_limit = rate_limit
        #: Per-path limits (requests per second) over ``rate_limit`` (Bybit's table).
        self.path_limits = dict(path_limits or {})
        self._windows: dict[str, tuple[int, int]] = {}
        self.requests = 0
        #: Requests answered 10006 by the limit (not by an injected fault).
        self.limited = 0

    def add_routes(self, app: web.Application, routes: list[Route]) -> None:
        for route in routes:
            app.router.add_route(route.method, route.path, self._wrap(route))

    # -- envelope -------------------------------------------------------------------
    def envelope(self, result: dict | None, code: int = 0, msg: str = "OK",
                 headers: dict[str, str] | None = None, status: int = 200) -> web.Response:
        body = {"retCode": code, "retMsg": msg, "result": result if result is not None else {},
                "retExtInfo": {}, "time": self.ctx.clock.now_ms()}
        return web.Response(body=orjson.dumps(body), status=status, headers=headers,
                            content_type="application/json")

    # -- rate limit -----------------------------------------------------------------
    def _limit_headers(self, path: str, count: bool = True) -> tuple[dict[str, str], bool]:
        now = self.ctx.clock.now_ms()
        window = now // 1000
        start, used = self._windows.get(path, (window, 0))
        if start != window:
            start, used = window, 0
        if count:
            used += 1
            self._windows[path] = (start, used)
        limit = self.path_limits.get(path, self.rate_limit)
        remaining = max(0, limit - used)
        headers = {"X-Bapi-Limit": str(limit),
                   "X-Bapi-Limit-Status": str(remaining),
                   "X-Bapi-Limit-Reset-Timestamp": str((window + 1) * 1000)}
        return headers, used > limit

    # -- auth -----------------------------------------------------------------------
    def _authenticate(self, request: web.Request, body: str) -> web.Response | None:
        h = request.headers
        key, sign, ts = h.get("X-BAPI-API-KEY"), h.get("X-BAPI-SIGN"), h.get("X-BAPI-TIMESTAMP")
        if not key or not sign or not ts:
            code, msg = (10003, "API key is invalid.") if not key else (
                10004, "missing X-BAPI-SIGN or X-BAPI-TIMESTAMP header")
            return self.envelope({}, code, msg, status=401)
        if key != self.ctx.api_key:
            raise SimError(10003, "API key is invalid.")
        recv = h.get("X-BAPI-RECV-WINDOW", "5000")
        now = self.ctx.clock.now_ms()
        try:
            ts_ms, window = int(ts), int(recv)
        except ValueError:
            ts_ms, window = -1, 5000
        if not (now - window <= ts_ms < now + 1000):
            raise SimError(10002, "invalid request, please check your server timestamp or "
                           f"recv_window param. req_timestamp[{ts}],server_timestamp[{now}],"
                           f"recv_window[{recv}]")
        raw = request.raw_path
        payload = body if request.method == "POST" else (raw.split("?", 1)[1] if "?" in raw else "")
        expected = rest_signature(self._secret, ts, key, recv, payload)
        if sign.lower() != expected:
            origin = rest_origin(ts, key, recv, payload)
            raise SimError(10004, f"error sign! origin_string[{origin}]")
        return None

    @staticmethod
    def _params(request: web.Request, body: str) -> dict:
        if request.method == "GET":
            raw = request.raw_path
            query = raw.split("?", 1)[1] if "?" in raw else ""
            return dict(parse_qsl(query, keep_blank_values=True))
        if not body.strip():
            return {}
        try:
            params = orjson.loads(body)
        except orjson.JSONDecodeError:
            raise SimError(10001, "Request parameter error: body is not valid JSON") from None
        if not isinstance(params, dict):
            raise SimError(10001, "Request parameter error: body must be a JSON object")
        return params

    def _wrap(self, route: Route):
        async def handler(request: web.Request) -> web.StreamResponse:
            self.requests += 1
            fault = self.faults.take_rest_error(request.path)
            if fault == "rate_limit":
                limited, _ = self._limit_headers(request.path, count=False)
                limited["X-Bapi-Limit-Status"] = "0"
                return self.envelope({}, 10006, "Too many visits!", limited)
            if fault == "malformed":  # HTTP 200, an OK envelope cut in the middle
                text = orjson.dumps({
                    "retCode": 0, "retMsg": "OK", "result": {"list": [], "nextPageCursor": ""},
                    "retExtInfo": {}, "time": self.ctx.clock.now_ms()}).decode()
                return web.Response(status=200, text=text[: len(text) // 2],
                                    content_type="application/json")
            if fault == "401":  # not Bybit's JSON envelope: a gateway's plain text
                return web.Response(status=401, text="401 Unauthorized",
                                    content_type="text/plain")
            if fault:
                title = {"502": "502 Bad Gateway", "503": "503 Service Temporarily Unavailable",
                         "403": "403 Forbidden", "404": "404 Not Found"}
                return web.Response(status=int(fault), text=GATEWAY_PAGE.format(title[fault]),
                                    content_type="text/html")
            body = await request.text() if request.method == "POST" else ""
            headers: dict[str, str] | None = None
            try:
                if route.signed:
                    denied = self._authenticate(request, body)
                    if denied is not None:
                        return denied
                    headers, over = self._limit_headers(route.path)
                    if over:
                        self.limited += 1
                        return self.envelope({}, 10006, "Too many visits!", headers)
                result = route.handler(self.ctx, self._params(request, body))
                return self.envelope(result, headers=headers)
            except SimError as exc:
                if exc.code not in (10001, 110043, 34040):
                    log.info("%s %s -> %s %s", request.method, request.path, exc.code, exc.msg)
                return self.envelope({}, exc.code, exc.msg, headers)

        return handler
