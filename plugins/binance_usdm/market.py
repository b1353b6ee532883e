"""The market-data socket: ``<symbol>@markPrice[@1s]`` for every open position's symbol
(or, with ``mark_stream = "all"``, the one ``!markPrice@arr[@1s]`` stream of every symbol,
filtered to the open ones).

The feed says which symbols it wants (``want``); the stream sends ``SUBSCRIBE`` /
``UNSUBSCRIBE`` method frames in batches, paced under Binance's 10 incoming messages
per second, and hands each mark price to the book. Data liveness is per symbol: a
wanted symbol without a mark for ``stale_limit`` — since it was wanted, since its
subscribe was answered, since the socket opened, or since its last mark, whichever is
latest — is stale (the feed is degraded). A stale symbol is resubscribed once; every
subscribed symbol stale at once, or one still stale after its resubscribe, reconnects
the socket. A symbol no longer wanted stays subscribed for ``mark_linger`` (its marks
keep the book's mark fresh, so a reopen does not start from the mark it had when it
closed). After ``max_connection_lifetime`` a new socket is opened and subscribed
before the old one closes (make-before-break, ahead of the 24-hour cut).
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections import deque
from typing import TYPE_CHECKING, Any

from feedctl import Backoff

from .constants import MAX_STREAMS_PER_CONNECTION
from .parse import Problem, mark_prices
from .ws import Conn, ConnectionLost, RequestRejected

if TYPE_CHECKING:
    from .feed import BinanceFeed

#: Streams per SUBSCRIBE frame.
PER_REQUEST = 50
#: A symbol is stale after at least this many push periods of its stream without a mark.
PERIODS_BEFORE_STALE = 1.5


class _Session:
    def __init__(self, conn: Conn) -> None:
        self.conn = conn
        #: symbol -> wall-clock ns of its (re)subscribe answer
        self.subscribed: dict[str, int] = {}
        self.resubscribed: set[str] = set()
        self.opened_ns = time.time_ns()
        #: ``mark_stream = "all"``: the all-market stream is subscribed
        self.all_stream = False


class MarketStream:
    """Owns the market socket(s) of one feed; ``run()`` until cancelled."""

    def __init__(self, feed: BinanceFeed) -> None:
        self.feed = feed
        self.ctx, self.s = feed.ctx, feed.settings
        self.wanted: set[str] = set()
        self._wanted_ns: dict[str, int] = {}
        self.last_mark_ns: dict[str, int] = {}
        self.stale: frozenset[str] = frozenset()
        self.rejected: set[str] = set()
        self.down: str | None = None
        self.session: _Session | None = None
        self._wake = asyncio.Event()
        self._backoff = Backoff(self.s.backoff_base, self.s.backoff_cap)
        self._overflow = 0
        #: symbol -> wall-clock ns it stopped being wanted (see :meth:`lingering`)
        self._unwanted_ns: dict[str, int] = {}
        #: the stream's push period as observed: the shortest of the recent intervals
        #: between two marks of one symbol (by ``E``); a stall lengthens none of them
        self._last_e: dict[str, int] = {}
        self._intervals: deque[int] = deque(maxlen=64)
        self.period_s: float | None = None
        self._warned_period = False

    def url(self) -> str:
        return self.feed.endpoints.market_ws.rstrip("/") + "/ws"

    def stream_of(self, symbol: str) -> str:
        return symbol.lower() + self.s.mark_suffix

    def want(self, symbols: set[str]) -> None:
        if symbols != self.wanted:
            now = time.time_ns()
            for sym in self.wanted - symbols:
                self._unwanted_ns[sym] = now
            for sym in symbols:
                self._unwanted_ns.pop(sym, None)
            self._wanted_ns = {s: self._wanted_ns.get(s, now) for s in symbols}
            self.wanted = set(symbols)
            self.rejected &= self.wanted
            self._wake.set()

    def lingering(self) -> set[str]:
        """Symbols no longer wanted that stay subscribed for ``mark_linger``: a reopen
        finds a fresh mark in the book instead of the one from before it closed."""
        limit = int(self.s.mark_linger * 1e9)
        now = time.time_ns()
        for sym in [s for s, at in self._unwanted_ns.items() if now - at > limit]:
            del self._unwanted_ns[sym]
        return set(self._unwanted_ns)

    # ----------------------------------------------------------------- supervisor
    async def run(self) -> None:
        sess: _Session | None = None
        try:
            while True:
                if sess is None:
                    try:
                        sess = await self._open()
                    except (ConnectionLost, RequestRejected) as exc:
                        self._set_down(str(exc))
                        await asyncio.sleep(self._backoff.next())
                        continue
                    self.session = sess
                    self._set_up()
                reason = await self._serve(sess)
                if reason is None:  # planned: make the new socket, then break the old
                    try:
                        new = await self._open()
                    except (ConnectionLost, RequestRejected) as exc:
                        self.ctx.log.warning("planned market reconnect failed: %s", exc)
                        await asyncio.sleep(self._backoff.next())
                        continue
                    old, sess = sess, new
                    self.session = new
                    await old.conn.close()
                    self.ctx.count("planned_reconnects")
                    continue
                lived = sess.conn.age()
                await sess.conn.close()
                sess = self.session = None
                self.ctx.count("reconnects")
                self._set_down(reason)
                if lived >= self.s.backoff_reset_after:
                    self._backoff.reset()
                await asyncio.sleep(self._backoff.next())
        finally:
            self.session = None
            if sess is not None:
                await sess.conn.close()

    def _set_down(self, reason: str) -> None:
        first = self.down is None
        self.down = reason
        self.ctx.log.warning("market socket down: %s", reason, extra={"socket": "market"})
        if first:
            self.feed.market_changed("reconnect")

    def _set_up(self) -> None:
        if self.down is not None:
            self.down = None
            self.feed.market_changed("fresh")

    async def _open(self) -> _Session:
        conn = Conn(name="market", url=self.url(), on_data=self._on_data,
                    ping_interval=self.s.ping_interval, pong_timeout=self.s.pong_timeout,
                    request_timeout=self.s.request_timeout, log=self.ctx.log,
                    report=self.feed.report)
        sess = _Session(conn)
        try:
            await conn.open()
            await self._sync(sess)
        except BaseException:
            await conn.close()
            raise
        return sess

    async def _serve(self, sess: _Session) -> str | None:
        """Keep ``sess`` subscribed and fresh: its death or staleness reason, or None
        when its planned lifetime is over."""
        closed = sess.conn.closed
        closed.add_done_callback(lambda _f: self._wake.set())
        check = max(0.05, min(self.stale_limit() / 4, 1.0))
        while True:
            if closed.done():
                return closed.result()
            left = self.s.max_connection_lifetime - sess.conn.age()
            if left <= 0:
                return None
            self._wake.clear()
            try:
                await self._sync(sess)
                reason = await self._check_stale(sess)
            except ConnectionLost as exc:
                return str(exc)
            if reason is not None:
                return reason
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(min(check, left)):
                    await self._wake.wait()

    # ----------------------------------------------------------------- subscriptions
    async def _sync(self, sess: _Session) -> None:
        if self.s.mark_stream == "all":
            await self._sync_all(sess)
            return
        subs = sess.subscribed
        keep = self.lingering()
        if len(self.wanted | keep) > MAX_STREAMS_PER_CONNECTION:
            keep = set()  # the wanted symbols need the room
        remove = sorted(s for s in subs if s not in self.wanted and s not in keep)
        for i in range(0, len(remove), PER_REQUEST):
            batch = remove[i:i + PER_REQUEST]
            try:
                await sess.conn.request("UNSUBSCRIBE", [self.stream_of(s) for s in batch])
            except RequestRejected as exc:
                self.ctx.log.warning("market: UNSUBSCRIBE %s rejected: %s", batch, exc)
            for sym in batch:
                subs.pop(sym, None)
                sess.resubscribed.discard(sym)
        add = sorted(s for s in self.wanted if s not in subs and s not in self.rejected)
        room = MAX_STREAMS_PER_CONNECTION - len(subs)
        over = max(0, len(add) - room)
        if over and over != self._overflow:  # Binance's per-connection limit
            self.ctx.count("subscription_overflow", over)
            self.ctx.log.error("market: %d streams wanted beyond the %d one connection may "
                               "hold; %s and later get no price (mark_stream = \"all\" "
                               "has no such limit)", over, MAX_STREAMS_PER_CONNECTION,
                               add[room])
        self._overflow = over
        add = add[:max(0, room)]
        for i in range(0, len(add), PER_REQUEST):
            await self._subscribe(sess, add[i:i + PER_REQUEST])

    async def _sync_all(self, sess: _Session) -> None:
        """One ``!markPrice@arr[@1s]`` stream while any symbol is wanted; each wanted
        symbol counts as subscribed from the stream's answer (or its own wanting)."""
        stream, subs = self.s.all_stream, sess.subscribed
        want = bool(self.wanted - self.rejected)
        if want and not sess.all_stream:
            try:
                await sess.conn.request("SUBSCRIBE", [stream])
            except RequestRejected as exc:
                self.rejected |= self.wanted
                self.ctx.count("subscribe_rejected")
                self.ctx.log.warning("market: SUBSCRIBE %s rejected: %s", stream, exc)
                return
            sess.all_stream = True
        elif not want and sess.all_stream:
            with contextlib.suppress(RequestRejected):
                await sess.conn.request("UNSUBSCRIBE", [stream])
            sess.all_stream = False
        now = time.time_ns()
        keep = self.lingering()
        for sym in [s for s in subs if s not in self.wanted and s not in keep]:
            subs.pop(sym, None)
            sess.resubscribed.discard(sym)
        if sess.all_stream:
            for sym in self.wanted - self.rejected:
                subs.setdefault(sym, now)

    async def _subscribe(self, sess: _Session, symbols: list[str]) -> None:
        try:
            await sess.conn.request("SUBSCRIBE", [self.stream_of(s) for s in symbols])
        except RequestRejected as exc:
            if len(symbols) > 1:  # isolate the stream the server refuses
                for sym in symbols:
                    await self._subscribe(sess, [sym])
                return
            self.rejected.add(symbols[0])
            self.ctx.count("subscribe_rejected")
            self.ctx.log.warning("market: SUBSCRIBE %s rejected: %s",
                                 self.stream_of(symbols[0]), exc)
            return
        now = time.time_ns()
        for sym in symbols:
            sess.subscribed[sym] = now

    def stale_limit(self) -> float:
        """``stale_after`` (or its default), but never under 1.5 push periods of the
        stream: Binance pushes ``@markPrice@1s`` once a second, so a shorter limit would
        count every symbol stale between two pushes (warned once)."""
        limit = self.s.stale_limit
        period = self.period_s
        if period is not None and limit < period * PERIODS_BEFORE_STALE:
            if not self._warned_period:
                self._warned_period = True
                self.ctx.log.warning(
                    "stale_after %gs is shorter than %g periods of the mark stream (it pushes "
                    "every %gs): a symbol counts as stale after %gs; set stale_after to at "
                    "least that", limit, PERIODS_BEFORE_STALE, period,
                    period * PERIODS_BEFORE_STALE)
            limit = period * PERIODS_BEFORE_STALE
        return limit

    def measure(self) -> set[str]:
        """Wanted symbols without a mark for the stale limit; reported on change."""
        sess = self.session
        now = time.time_ns()
        limit = int(self.stale_limit() * 1e9)
        stale: set[str] = set()
        for sym in self.wanted - self.rejected:
            ref = max(self._wanted_ns.get(sym, 0), self.last_mark_ns.get(sym, 0),
                      sess.subscribed.get(sym, 0) if sess else 0,
                      sess.opened_ns if sess else 0)
            if now - ref > limit:
                stale.add(sym)
            elif sess is not None:
                sess.resubscribed.discard(sym)
        current = frozenset(stale | (self.rejected & self.wanted))
        if current != self.stale:
            fresh = not current
            self.stale = current
            self.feed.market_changed("fresh" if fresh else "stale")
        return stale

    async def _check_stale(self, sess: _Session) -> str | None:
        stale = self.measure() & set(sess.subscribed)
        if not stale:
            return None
        if len(sess.subscribed) >= 2 and len(stale) == len(sess.subscribed):
            return (f"market stalled: no mark price for any of {len(stale)} symbols in "
                    f"{self.stale_limit():g}s")
        again = stale & sess.resubscribed
        if again:
            return f"market: mark prices still stale after resubscribe: {sorted(again)}"
        batch = sorted(stale)
        self.ctx.count("resubscribes", len(batch))
        self.ctx.log.warning("market: stale mark prices, resubscribing %s", batch)
        streams = ([self.s.all_stream] if self.s.mark_stream == "all"
                   else [self.stream_of(s) for s in batch])
        for method in ("UNSUBSCRIBE", "SUBSCRIBE"):
            try:
                await sess.conn.request(method, streams)
            except RequestRejected as exc:
                self.ctx.log.warning("market: %s %s rejected: %s", method, batch, exc)
        at = time.time_ns()
        for sym in batch:
            sess.subscribed[sym] = at
            sess.resubscribed.add(sym)
        return None

    # ----------------------------------------------------------------- data
    def _on_data(self, msg: Any, received_ns: int) -> None:
        ctx = self.ctx
        ctx.message_received(received_ns)
        ctx.count("messages")
        if isinstance(msg, dict) and "stream" in msg and "data" in msg:  # combined wrapper
            msg = msg["data"]
        if isinstance(msg, dict) and msg.get("e") != "markPriceUpdate":
            self.feed.report(Problem("unexpected_event", f"market event {msg.get('e')!r}"),
                             "market")
            return
        wanted = self.wanted | self._unwanted_ns.keys() if self._unwanted_ns else self.wanted
        if isinstance(msg, list):  # the all-market array: only the open symbols matter
            msg = [m for m in msg if not isinstance(m, dict) or m.get("s") in wanted]
        marks, problems = mark_prices(msg)
        for p in problems:
            self.feed.report(p, "market")
        wake = False
        for mark, event_ms in marks:
            sym = mark.symbol
            last = self._last_e.get(sym)
            if last is not None and event_ms > last:
                self._intervals.append(event_ms - last)
                self.period_s = min(self._intervals) / 1000
            self._last_e[sym] = event_ms
            if sym not in wanted:
                continue  # the all-market array, or an unsubscribe in flight
            self.last_mark_ns[sym] = received_ns
            if sym in self.stale:
                wake = True
            ctx.observe_latency(event_ms, received_ns)
            ctx.apply_mark(mark)
        if wake:
            self._wake.set()

    def _subscriptions(self, sess: _Session | None) -> list[str]:
        if sess is None:
            return []
        if self.s.mark_stream == "all":
            return [self.s.all_stream] if sess.all_stream else []
        return sorted(self.stream_of(s) for s in sess.subscribed)

    def details(self) -> dict[str, Any]:
        sess = self.session
        return {
            "url": self.url(),
            "connected": bool(sess and sess.conn.alive),
            "age_s": round(sess.conn.age(), 3) if sess else None,
            "subscriptions": self._subscriptions(sess),
            "wanted": sorted(self.wanted),
            "rejected": sorted(self.rejected),
            "stale": sorted(self.stale),
            "down": self.down,
        }
