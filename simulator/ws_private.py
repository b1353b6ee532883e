"""Private WebSocket (`/v5/private`): auth, and the position/execution/order/wallet topics."""

from __future__ import annotations

import asyncio
import logging
import re
import uuid

from aiohttp import web

from .faults import Faults
from .signing import ws_signature_ok
from .ws_common import Conn, Hub, dumps

log = logging.getLogger("feedctl.simulator")

# subscribed name -> (the account topic it carries, the one category it carries or "")
PRIVATE_TOPICS: dict[str, tuple[str, str]] = {
    "position": ("position", ""), "position.linear": ("position", "linear"),
    "position.inverse": ("position", "inverse"), "position.option": ("position", "option"),
    "execution": ("execution", ""), "execution.linear": ("execution", "linear"),
    "execution.inverse": ("execution", "inverse"), "execution.fast": ("execution", ""),
    "execution.fast.linear": ("execution", "linear"),
    "execution.fast.inverse": ("execution", "inverse"),
    "order": ("order", ""), "order.linear": ("order", "linear"),
    "order.inverse": ("order", "inverse"),
    "wallet": ("wallet", ""), "greeks": ("greeks", ""),
}
REORDER_HOLD_S = 1.0


def parse_active_time(value: str) -> float:
    """`max_active_time`: 30s..600s, or 1m..10m."""
    match = re.fullmatch(r"(\d+)([sm])", value.strip())
    if not match:
        raise ValueError(value)
    seconds = int(match.group(1)) * (60 if match.group(2) == "m" else 1)
    if not 30 <= seconds <= 600:
        raise ValueError(value)
    return float(seconds)


class PrivateHub(Hub):
    kind = "private"

    def __init__(self, faults: Faults, now_ms, api_key: str, api_secret: str,
                 idle_timeout: float, max_backlog: int, ack_delay_ms: int = 0) -> None:
        super().__init__(faults, idle_timeout, max_backlog, ack_delay_ms)
        self.now_ms = now_ms
        self._api_key = api_key
        self._api_secret = api_secret
        self._held: dict | None = None
        self._held_timer: asyncio.TimerHandle | None = None
        self.pushed = {"position": 0, "execution": 0, "order": 0, "wallet": 0}

    def conn_idle_timeout(self, request: web.Request) -> float:
        raw = request.query.get("max_active_time")
        if raw is None:
            return self.idle_timeout
        try:
            return parse_active_time(raw)
        except ValueError:
            raise web.HTTPBadRequest(text=f"invalid max_active_time: {raw}") from None

    # -- requests -------------------------------------------------------------------
    def on_text(self, conn: Conn, text: str) -> None:
        req = self.parse(text)
        op = req.get("op") if req is not None else None
        if op == "ping":
            answer = self.with_req_id({}, req)
            answer.update({"op": "pong", "args": [str(self.now_ms())], "conn_id": conn.conn_id})
            conn.pong(answer)
        elif op == "auth":
            assert req is not None
            self._auth(conn, req)
        elif op in ("subscribe", "unsubscribe"):
            assert req is not None
            self._subscription(conn, req, op)
        else:
            answer = {"success": False, "ret_msg": "error:invalid op", "conn_id": conn.conn_id}
            conn.send_obj(self.with_req_id(answer, req))

    def _auth(self, conn: Conn, req: dict) -> None:
        error = self._auth_error(req.get("args"))
        if error:
            log.info("private auth rejected on %s: %s", conn.conn_id, error)
        else:
            conn.authed = True
        answer = self.with_req_id({"success": not error, "ret_msg": error}, req)
        answer.update({"op": "auth", "conn_id": conn.conn_id})
        conn.answer(answer)

    def _auth_error(self, args: object) -> str:
        if self.faults.take_reject_auth():
            return "error:USVC1111"
        if not isinstance(args, list) or len(args) != 3:
            return "Params Error"
        key, expires, signature = args
        if isinstance(expires, bool) or not isinstance(expires, (int, str)):
            return "Params Error"
        try:
            expires_ms = int(expires)
        except ValueError:
            return "Params Error"
        if expires_ms <= self.now_ms():
            return "Params Error"
        if key != self._api_key:
            return "error:USVC1111"
        if not isinstance(signature, str) or not ws_signature_ok(
                self._api_secret, str(expires), signature):
            return "error:USVC1111"
        return ""

    def _subscription(self, conn: Conn, req: dict, op: str) -> None:
        args = req.get("args")

        def answer(error: str = "") -> None:
            out = {"success": not error, "ret_msg": error, "op": op, "conn_id": conn.conn_id}
            conn.answer(self.with_req_id(out, req))

        if not isinstance(args, list) or not args or not all(isinstance(a, str) for a in args):
            answer("error:args invalid")
            return
        if op == "unsubscribe":
            conn.topics.difference_update(args)
            answer()
            return
        if not conn.authed:
            answer("Request not authorized")
            return
        for topic in args:
            if topic not in PRIVATE_TOPICS:
                answer(f"error:handler not found,topic:{topic}")
                return
            if topic in conn.topics:
                answer(f"error:already subscribed,topic:{topic}")
                return
        # Bybit: the all-in-one topic and a categorised one cannot share one request
        # (position.linear with position.inverse can)
        for topic in args:
            if "." not in topic and any(t.startswith(topic + ".") for t in args):
                answer(f"error:{topic} and its categorised variant cannot share one request")
                return
        conn.topics.update(args)
        answer()

    # -- pushes from the account engine ---------------------------------------------
    def on_account_event(self, topic: str, rows: list[dict]) -> None:
        envelope = {"id": f"{uuid.uuid4().hex[:16]}-{uuid.uuid4()}", "topic": topic,
                    "creationTime": self.now_ms(), "data": rows}
        if topic != "position":
            self._deliver(envelope)
            return
        if self._held is not None:  # a reorder in progress: newer first, then the held one
            held, self._held = self._held, None
            if self._held_timer is not None:
                self._held_timer.cancel()
                self._held_timer = None
            self._deliver(envelope)
            self._deliver(held)
            return
        fault = self.faults.take_position_fault() if self._has_subscriber("position") else ""
        if fault == "reorder":
            self._held = envelope
            loop = asyncio.get_running_loop()
            self._held_timer = loop.call_later(REORDER_HOLD_S, self.flush_held)
            return
        self._deliver(envelope)
        if fault == "duplicate":
            self._deliver(envelope)

    def flush_held(self) -> None:
        self._held_timer = None
        held, self._held = self._held, None
        if held is not None:
            self._deliver(held)

    def _has_subscriber(self, base: str) -> bool:
        return any(PRIVATE_TOPICS.get(t, ("", ""))[0] == base
                   for c in self.conns for t in c.topics)

    def _deliver(self, envelope: dict) -> None:
        """Send ``envelope`` to every subscriber of its topic; a categorised topic
        (``position.inverse``) carries only its category's rows, or nothing."""
        base = envelope["topic"]
        encoded: dict[str, bytes | None] = {}
        for conn in self.conns:
            if not conn.authed:
                continue
            for name in conn.topics:
                carried, category = PRIVATE_TOPICS.get(name, ("", ""))
                if carried != base:
                    continue
                if name not in encoded:
                    rows = envelope["data"]
                    if category:
                        rows = [r for r in rows if r.get("category", category) == category]
                    encoded[name] = (dumps(envelope | {"topic": name, "data": rows})
                                     if rows else None)
                data = encoded[name]
                if data is not None:
                    conn.send(data)
        if any(encoded.values()):
            self.pushed[base] = self.pushed.get(base, 0) + 1

    async def shutdown(self) -> None:
        if self._held_timer is not None:
            self._held_timer.cancel()
            self._held_timer = None
        await super().shutdown()
