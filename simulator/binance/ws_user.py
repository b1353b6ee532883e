"""The user data stream on ``/private``: ``/private/ws?listenKey=<key>[&events=<E1>/<E2>]``
(raw events) and ``/private/stream?listenKey=...`` (each frame ``{"stream": <listenKey>,
"data": <event>}``). A connection gets the events of the account while its listenKey is
valid; ``events`` keeps only the named event types.

- a listenKey that expires sends ``listenKeyExpired`` (``E`` a string, as documented) on
  its connections; they stay open and silent until a valid key is used;
- DELETE of a listenKey closes its connections;
- the connection is cut at ``connection_lifetime`` (24 h), like every stream;
- faults: ``drop-account-updates`` (lose the next N), ``duplicate`` / ``reorder`` apply
  to ACCOUNT_UPDATEs that carry positions, ``stall`` / ``delay`` / ``drop`` /
  ``malformed`` to the socket (kind ``private``).

The legacy routes (``/ws/<listenKey>``, ``/stream?streams=<listenKey>``) belong to the
market hub and stay silent for user data (Binance's change notice, 2026-04-23).

https://developers.binance.com/docs/derivatives/usds-margined-futures/user-data-streams/Connect
https://developers.binance.com/docs/derivatives/usds-margined-futures/user-data-streams/Event-User-Data-Stream-Expired
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any

from ..faults import Faults
from ..ws_common import Conn
from .config import BinanceSimConfig
from .listen_keys import ListenKeys
from .ws_base import BinanceHub, ConnState, method_error

REORDER_HOLD_S = 1.0


def split_list(values: list[str]) -> list[str]:
    out: list[str] = []
    for value in values:
        out += [v for v in value.replace(",", "/").split("/") if v]
    return out


class UserHub(BinanceHub):
    def __init__(self, faults: Faults, now_ms: Callable[[], int], cfg: BinanceSimConfig,
                 max_backlog: int) -> None:
        super().__init__("private", faults, now_ms, cfg, max_backlog)
        self.keys = ListenKeys(cfg.listen_key_validity, self._expired, self._deleted)
        self.pushed: dict[str, int] = {}
        self._held: dict | None = None
        self._held_timer: asyncio.TimerHandle | None = None
        #: the drop-account-updates fault: the next N position ACCOUNT_UPDATEs are lost
        #: (the order updates of the same fill still arrive)
        self.drop_account_updates = 0
        self.dropped = 0

    def make_state(self, conn: Conn) -> ConnState:
        query = conn.request.query
        st = ConnState(route="private", combined=conn.request.path.startswith(
            "/private/stream"))
        st.streams = split_list(query.getall("listenKey", []))
        events = split_list(query.getall("events", []))
        st.extra["events"] = set(events) if events else None
        return st

    def on_method(self, conn: Conn, st: ConnState, method: str, params: Any,
                  req_id: object) -> None:
        if method in ("SET_PROPERTY", "GET_PROPERTY"):
            conn.send_obj(method_error(0, "Unknown property", req_id))
            return
        super().on_method(conn, st, method, params, req_id)

    # -- listenKey lifecycle --------------------------------------------------------
    def _conns_on(self, key: str) -> list[Conn]:
        return [c for c, st in self.state.items() if key in st.streams]

    def _expired(self, key: str) -> None:
        event = {"e": "listenKeyExpired", "E": str(self.now_ms()), "listenKey": key}
        for conn in self._conns_on(key):
            self._send(conn, key, event)

    def _deleted(self, key: str) -> None:
        for conn in self._conns_on(key):
            asyncio.get_running_loop().create_task(conn.close(1000, b"listenKey closed"))

    async def key_watchdog(self) -> None:
        interval = min(1.0, self.cfg.listen_key_validity / 4)
        while True:
            await asyncio.sleep(interval)
            self.keys.reap()

    # -- pushes ---------------------------------------------------------------------
    def _send(self, conn: Conn, key: str, event: dict) -> None:
        st = self.state.get(conn)
        if st is None:
            return
        conn.send_obj({"stream": key, "data": event} if st.combined else event)

    def push(self, event: dict) -> None:
        """An account event from the ledger; faults apply to position updates."""
        if event.get("e") == "ACCOUNT_UPDATE" and event["a"]["P"]:
            if self.drop_account_updates > 0 and self.state:
                self.drop_account_updates -= 1
                self.dropped += 1
                return
            if self._held is not None:
                held, self._held = self._held, None
                if self._held_timer is not None:
                    self._held_timer.cancel()
                    self._held_timer = None
                self._deliver(event)
                self._deliver(held)
                return
            fault = self.faults.take_position_fault() if self.state else ""
            if fault == "reorder":
                self._held = event
                loop = asyncio.get_running_loop()
                self._held_timer = loop.call_later(REORDER_HOLD_S, self.flush_held)
                return
            self._deliver(event)
            if fault == "duplicate":
                self._deliver(event)
            return
        self._deliver(event)

    def flush_held(self) -> None:
        self._held_timer = None
        held, self._held = self._held, None
        if held is not None:
            self._deliver(held)

    def _deliver(self, event: dict) -> None:
        kind = event["e"]
        delivered = False
        raw: bytes | None = None
        for conn, st in list(self.state.items()):
            events = st.extra.get("events")
            if events is not None and kind not in events:
                continue
            for key in st.streams:
                if not self.keys.valid(key):
                    continue
                if st.combined:
                    conn.send(self.encode({"stream": key, "data": event}))
                else:
                    if raw is None:
                        raw = self.encode(event)
                    conn.send(raw)
                delivered = True
                break
        if delivered:
            self.pushed[kind] = self.pushed.get(kind, 0) + 1

    async def shutdown(self) -> None:
        if self._held_timer is not None:
            self._held_timer.cancel()
            self._held_timer = None
        await super().shutdown()
