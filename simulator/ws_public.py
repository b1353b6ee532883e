"""Public WebSocket (`/v5/public/linear`, `/v5/public/inverse`): `tickers.{symbol}`."""

from __future__ import annotations

from .faults import Faults
from .prices import PriceEngine
from .ws_common import Conn, Hub, dumps

MAX_ARGS_CHARS = 21_000


class PublicHub(Hub):
    kind = "public"

    def __init__(self, faults: Faults, prices: PriceEngine, now_ms, category: str,
                 idle_timeout: float, max_backlog: int, ack_delay_ms: int = 0) -> None:
        super().__init__(faults, idle_timeout, max_backlog, ack_delay_ms)
        self.prices = prices
        self.now_ms = now_ms
        self.category = category
        self.valid_topics = {f"tickers.{s}" for s in prices.symbols_of(category)}
        self.subscribers: dict[str, set[Conn]] = {}
        self.ticks = 0
        self.messages = 0

    # -- requests -------------------------------------------------------------------
    def on_text(self, conn: Conn, text: str) -> None:
        req = self.parse(text)
        op = req.get("op") if req is not None else None
        if op == "ping":
            pong = {"success": True, "ret_msg": "pong", "conn_id": conn.conn_id}
            conn.pong(self.with_req_id(pong, req) | {"op": "ping"})
        elif op in ("subscribe", "unsubscribe"):
            assert req is not None
            self._subscription(conn, req, op)
        else:
            answer = {"success": False, "ret_msg": "error:invalid op", "conn_id": conn.conn_id}
            answer = self.with_req_id(answer, req)
            if isinstance(op, str):
                answer["op"] = op
            conn.send_obj(answer)

    def _answer(self, conn: Conn, req: dict, op: str, error: str = "") -> None:
        answer = {"success": not error, "ret_msg": error, "conn_id": conn.conn_id}
        conn.answer(self.with_req_id(answer, req) | {"op": op})

    def _subscription(self, conn: Conn, req: dict, op: str) -> None:
        args = req.get("args")
        if not isinstance(args, list) or not args or not all(isinstance(a, str) for a in args):
            self._answer(conn, req, op, "error:args invalid")
            return
        if op == "unsubscribe":
            for topic in args:
                conn.topics.discard(topic)
                subs = self.subscribers.get(topic)
                if subs is not None:
                    subs.discard(conn)
            self._answer(conn, req, op)
            return
        total = sum(len(t) for t in conn.topics) + sum(len(t) for t in args)
        if total > MAX_ARGS_CHARS:
            self._answer(conn, req, op,
                         f"error:args length {total} exceeds the limit of {MAX_ARGS_CHARS}")
            return
        for topic in args:
            if topic not in self.valid_topics:
                self._answer(conn, req, op, f"error:handler not found,topic:{topic}")
                return
            if topic in conn.topics or args.count(topic) > 1:
                self._answer(conn, req, op, f"error:already subscribed,topic:{topic}")
                return
        self._answer(conn, req, op)
        now = self.now_ms()
        for topic in args:
            conn.topics.add(topic)
            self.subscribers.setdefault(topic, set()).add(conn)
            data, cs = self.prices.snapshot(topic[len("tickers."):], now)
            conn.send(dumps({"topic": topic, "type": "snapshot", "data": data, "cs": cs,
                             "ts": now}))

    def on_close(self, conn: Conn) -> None:
        for topic in conn.topics:
            subs = self.subscribers.get(topic)
            if subs is not None:
                subs.discard(conn)
        conn.topics.clear()

    # -- the tick fan-out -----------------------------------------------------------
    def publish(self, deltas: list[tuple[str, dict, int]], now: int) -> int:
        """Encode each delta once and queue the same bytes for every subscriber."""
        sent = 0
        subscribers = self.subscribers
        for symbol, delta, cs in deltas:
            topic = "tickers." + symbol
            subs = subscribers.get(topic)
            if not subs:
                continue
            data = dumps({"topic": topic, "type": "delta", "data": delta, "cs": cs, "ts": now})
            for conn in subs:
                conn.send(data)
            sent += len(subs)
        self.ticks += 1
        self.messages += sent
        return sent
