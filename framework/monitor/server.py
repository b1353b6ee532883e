"""The monitor server: a read-only HTTP view of one session (aiohttp).

Routes (docs/monitor.md): ``/`` the dashboard, ``/static/*`` its files,
``/api/status``, ``/api/positions``, ``/api/subscriptions``, ``/api/validation``,
``/api/events`` (Server-Sent Events) and ``/metrics`` (Prometheus).

Guards, in order: only GET and HEAD (else 405); when the monitor listens on
loopback, only loopback ``Host`` names (a DNS-rebinding page cannot read it);
the bearer token when one is configured (else 401; compared in constant time;
a browser may pass ``?token=`` once and gets a same-site cookie); and every body
goes through :func:`feedctl.logs.redact`.
"""

from __future__ import annotations

import errno
import hmac
import ipaddress
import logging
from importlib import resources
from typing import TYPE_CHECKING, Any

from aiohttp import web

from ..config import env_var_name
from ..errors import ConfigError
from ..logs import redact, register_secret
from ..models import now_ns
from ..settings import MonitorSettings
from .hub import EventHub
from .metrics import SessionCollector, build_registry, exposition
from .views import (
    RateTracker,
    account_feed_rows,
    accounts_payload,
    accounts_unknown,
    dumps,
    feed_rows,
    instruments_payload,
    positions_payload,
    readiness,
    subscriptions_payload,
    unknown_reason,
    unknown_summary,
)

if TYPE_CHECKING:
    from ..session import Session

log = logging.getLogger("feedctl.monitor")

COOKIE = "feedctl_monitor_token"
_LOOPBACK_NAMES = {"localhost", "127.0.0.1", "::1"}
_STATIC = {"dashboard.js": "application/javascript", "dashboard.css": "text/css"}
#: Probe endpoints a supervisor calls without the token (they show no positions).
_PROBES = frozenset({"/healthz", "/readyz"})
_SECURITY_HEADERS = {
    "Cache-Control": "no-store",
    "X-Content-Type-Options": "nosniff",
    "X-Frame-Options": "DENY",
    "Referrer-Policy": "no-referrer",
    "Content-Security-Policy": "default-src 'self'; img-src 'self' data:; "
                               "frame-ancestors 'none'",
}


def _static(name: str) -> bytes:
    return (resources.files(__package__) / "static" / name).read_bytes()


def _is_loopback(host: str) -> bool:
    if host in _LOOPBACK_NAMES:
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


class Monitor:
    """Serves the read-only monitor of ``session``. Owns its runner and tasks."""

    def __init__(self, session: Session, settings: MonitorSettings | None = None, *,
                 price_interval: float = 0.25) -> None:
        self.session = session
        self.settings = settings or MonitorSettings()
        token = self.settings.token.get_secret_value() if self.settings.token else ""
        self._token = token.encode()
        if token:
            register_secret(token)
        self.rates = RateTracker()
        self.hub = EventHub(session, price_interval=price_interval, snapshot=self.snapshot,
                            ticker=self.feeds_tick)
        self._registry = build_registry(SessionCollector(
            session.status, lambda: positions_payload(self.session)["delivered"],
            accounts=self._account_statuses if session.multi else None), session)
        self._runner: web.AppRunner | None = None
        self.url: str | None = None

    # ---------------------------------------------------------------- lifecycle
    async def start(self) -> None:
        app = web.Application(middlewares=[self._guard])
        app.router.add_get("/", self._index)
        app.router.add_get("/static/{name}", self._static_file)
        app.router.add_get("/api/status", self._json(
            lambda account: self.session.status(account)))
        app.router.add_get("/api/positions", self._json(
            lambda account: positions_payload(self.session, account)))
        app.router.add_get("/api/accounts", self._json(
            lambda account: accounts_payload(self.session, account)))
        app.router.add_get("/api/feeds", self._json(
            lambda account: {"feeds": account_feed_rows(self.session, account),
                             "now_ns": now_ns()}))
        app.router.add_get("/api/subscriptions", self._json(
            lambda account: self._per_account(account, lambda name: subscriptions_payload(
                self.session.status(name, rows=False)))))
        app.router.add_get("/api/validation", self._json(
            lambda account: self._per_account(
                account, lambda name: self.session.status(name, rows=False)["validation"])))
        app.router.add_get("/api/events", self._events)
        app.router.add_get("/metrics", self._metrics)
        app.router.add_get("/healthz", self._healthz)
        app.router.add_get("/readyz", self._readyz)
        self._runner = web.AppRunner(app, access_log=None, shutdown_timeout=1.0)
        await self._runner.setup()
        try:
            site = web.TCPSite(self._runner, self.settings.host, self.settings.port)
            try:
                await site.start()
            except OSError as exc:
                raise self._bind_error(exc) from None
            await self.hub.start()
        except BaseException:
            await self.stop()
            raise
        addr = self._runner.addresses[0]
        host = f"[{addr[0]}]" if ":" in addr[0] else addr[0]
        self.url = f"http://{host}:{addr[1]}"
        log.info("monitor listening on %s", self.url, extra={"url": self.url,
                                                             "auth": bool(self._token)})
        if not self._token and not _is_loopback(self.settings.host):
            log.warning("the monitor listens on %s without a token: anyone who can reach "
                        "it can read positions; set monitor.token", self.settings.host)

    def _bind_error(self, exc: OSError) -> ConfigError:
        """The setting to fix (the port when it is taken, else the host) and where its
        value came from."""
        s = self.settings
        key = "monitor.port" if exc.errno == errno.EADDRINUSE else "monitor.host"
        loaded = getattr(getattr(self.session, "plan", None), "loaded", None)
        where = loaded.source_of(key) if loaded is not None else "built-in default"
        if where.startswith("environment ("):
            origin = f" (from {where.removeprefix('environment (').removesuffix(')')})"
        elif where != "built-in default":
            origin = f" (from {where})"
        elif loaded is not None:
            origin = (f" (not in the settings files; set {key} there or "
                      f"{env_var_name(loaded.name, key)})")
        else:
            origin = ""
        fix = ("choose another port; 0 picks a free one" if key == "monitor.port"
               else "use an address of this machine (127.0.0.1: this machine only)")
        return ConfigError(f"{key}: cannot listen on {s.host}:{s.port}: "
                           f"{exc.strerror or exc}{origin}; {fix}", setting=key)

    async def stop(self) -> None:
        await self.hub.stop()
        if self._runner is not None:
            runner, self._runner = self._runner, None
            await runner.cleanup()

    async def __aenter__(self) -> Monitor:
        await self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.stop()

    def _accounts(self, status: dict[str, Any]) -> list[dict[str, Any]]:
        """The accounts table's rows: every account when the session has many."""
        return list(status.get("accounts") or []) if self.session.multi else []

    def _account_statuses(self) -> list[tuple[str, dict[str, Any]]]:
        return [(name, self.session.status(name, rows=False)) for name in self.session.accounts]

    def _per_account(self, account: str | None, build: Any) -> Any:
        """``build(account)``; for every account (by name) when the session has many and
        none is asked for."""
        if account is None and self.session.multi:
            return {name: build(name) for name in self.session.accounts}
        return build(account)

    # ---------------------------------------------------------------- payloads
    def snapshot(self, account: str | None = None) -> dict[str, Any]:
        """The first SSE frame: everything the page draws - of every account, or of
        ``account`` (the page's filter)."""
        status = self.session.status(account)
        positions = positions_payload(self.session, account)
        return {"profile": status["profile"], "mode": status["mode"],
                "positions": positions["delivered"],
                "positions_unknown": positions["unknown_reason"],
                "accounts_unknown": positions.get("unknown") or {},
                "instruments": positions["instruments"],
                "feeds": self._feed_rows(status, account),
                "router": status["router"],
                "validation": status["validation"], "notable": list(self.hub.notable),
                "account": status["account"], "filter": account,
                "accounts": self._accounts(status), "now_ns": now_ns()}

    def feeds_tick(self, account: str | None = None) -> dict[str, Any]:
        status = self.session.status(account)
        every = account is None and self.session.multi
        unknown = accounts_unknown(self.session) if every else {}
        return {"feeds": self._feed_rows(status, account),
                "router": status["router"], "validation": status["validation"],
                "positions_unknown": (unknown_summary(unknown) if every else unknown_reason(
                    (status.get("router") or {}).get("active"), status["feeds"])),
                "accounts_unknown": unknown,
                "instruments": instruments_payload(self.session, account),
                "account": status["account"], "filter": account,
                "accounts": self._accounts(status), "now_ns": now_ns()}

    def _feed_rows(self, status: dict[str, Any], account: str | None) -> list[dict[str, Any]]:
        """The feeds table: every account's feeds (each row naming its account) in a
        session of many, else the one account's."""
        if self.session.multi:
            return account_feed_rows(self.session, account, self.rates)
        return feed_rows(status, self.rates.update(status["feeds"]))

    # ---------------------------------------------------------------- handlers
    @web.middleware
    async def _guard(self, request: web.Request, handler: Any) -> web.StreamResponse:
        if request.method not in ("GET", "HEAD"):
            return self._finish(web.Response(status=405, text="read-only: GET and HEAD only\n",
                                             headers={"Allow": "GET, HEAD"}))
        if _is_loopback(self.settings.host) and not _is_loopback(request.url.host or ""):
            return self._finish(web.Response(status=403, text="host not allowed\n"))
        if self._token and request.path not in _PROBES:
            given = self._given_token(request)
            if given is None or not hmac.compare_digest(given, self._token):
                return self._finish(web.Response(
                    status=401, text="a bearer token is required\n",
                    headers={"WWW-Authenticate": 'Bearer realm="feedctl"'}))
            if "token" in request.query:  # a browser's first visit: keep it out of the URL
                resp = web.Response(status=303, headers={"Location": request.path})
                resp.set_cookie(COOKIE, self._token.decode(), httponly=True,
                                samesite="Strict", path="/")
                return self._finish(resp)
        try:
            resp = await handler(request)
        except web.HTTPException as exc:  # 404s and friends get the same headers
            return self._finish(web.Response(status=exc.status,
                                             text=f"{exc.status}: {exc.reason}\n"))
        if isinstance(resp, web.Response) and not resp.prepared:
            self._finish(resp)
        return resp

    def _given_token(self, request: web.Request) -> bytes | None:
        auth = request.headers.get("Authorization", "")
        if auth.lower().startswith("bearer "):
            return auth[7:].strip().encode()
        if "token" in request.query:
            return request.query["token"].encode()
        if COOKIE in request.cookies:
            return request.cookies[COOKIE].encode()
        return None

    @staticmethod
    def _finish(resp: web.Response) -> web.Response:
        for k, v in _SECURITY_HEADERS.items():
            resp.headers.setdefault(k, v)
        body = resp.body
        if isinstance(body, bytes) and body:
            clean = redact(body.decode("utf-8", "replace")).encode()
            if clean != body:
                resp.body = clean
        return resp

    def _json(self, build: Any) -> Any:
        """A JSON handler; ``build(account)`` gets the ``?account=`` filter (None: the
        first account, the whole session in the single-account form)."""
        async def handler(request: web.Request) -> web.Response:
            account = request.query.get("account") or None
            if account is not None and account not in self.session.accounts:
                known = ", ".join(self.session.accounts)
                return web.Response(status=404, text=dumps(
                    {"error": f"no account {account!r}; accounts: {known}"}),
                    content_type="application/json")
            return web.Response(text=dumps(build(account)), content_type="application/json")
        return handler

    async def _healthz(self, request: web.Request) -> web.Response:
        """Liveness: the process serves. 200 always, with the session's phase."""
        return web.Response(text=dumps({"alive": True, "profile": self.session.plan.loaded.name,
                                        "now_ns": now_ns()}),
                            content_type="application/json")

    async def _readyz(self, request: web.Request) -> web.Response:
        """Readiness: 200 while the delivering feed is healthy and has synced (its
        positions are known and live); else 503 with the reason."""
        body = readiness(self.session.status())
        return web.Response(status=200 if body["ready"] else 503, text=dumps(body),
                            content_type="application/json")

    async def _index(self, request: web.Request) -> web.Response:
        return web.Response(body=_static("index.html"), content_type="text/html",
                            charset="utf-8")

    async def _static_file(self, request: web.Request) -> web.Response:
        name = request.match_info["name"]
        if name not in _STATIC:
            raise web.HTTPNotFound()
        return web.Response(body=_static(name), content_type=_STATIC[name], charset="utf-8")

    async def _metrics(self, request: web.Request) -> web.Response:
        return web.Response(body=exposition(self._registry),
                            headers={"Content-Type": "text/plain; version=0.0.4; charset=utf-8"})

    async def _events(self, request: web.Request) -> web.StreamResponse:
        headers = {"Content-Type": "text/event-stream", "Cache-Control": "no-store",
                   "X-Content-Type-Options": "nosniff", "X-Accel-Buffering": "no"}
        account = request.query.get("account") or None
        if account is not None and account not in self.session.accounts:
            known = ", ".join(self.session.accounts)
            return web.Response(status=404, content_type="application/json",
                                text=dumps({"error": f"no account {account!r}; "
                                            f"accounts: {known}"}))
        if request.method == "HEAD":
            return web.Response(headers=headers)
        resp = web.StreamResponse(headers=headers)
        await resp.prepare(request)
        client = self.hub.connect(account)
        try:
            await resp.write(b"retry: 1000\n\n")
            while True:
                data = await client.next(idle=15.0)
                if data is None:
                    break
                await resp.write(data or b": keep-alive\n\n")
        except (ConnectionResetError, ConnectionError):
            pass  # the browser went away
        finally:
            self.hub.disconnect(client)
        return resp
