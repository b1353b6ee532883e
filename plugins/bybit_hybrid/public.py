"""The public socket of one category: ``tickers.{symbol}`` for every open position.

The feed tells the stream which symbols it wants (``want``); the stream subscribes and
unsubscribes in batches, merges snapshot and delta tickers, and hands each new mark
price to the book. Data liveness is per symbol: a wanted symbol without a ticker for
``stale_after`` — since it was wanted, since its subscribe was answered, since the socket
opened, or since its last ticker, whichever is latest — is stale, whether its subscribe
was answered or is still waiting (the check runs while requests are pending). A stale
subscribed ticker is resubscribed; still stale after that, every symbol stale at once,
or every symbol stale while a subscribe waits for its answer (a stalled socket) → the
socket is reconnected. Planned reconnects open and subscribe the new socket before the
old one closes; they fall due at a per-socket offset within the lifetime's last quarter
(``staggered``). Every new socket draws from the feed's per-IP connection budget, a
planned one only from its unreserved half.

Quiet symbols: Bybit pushes a ticker delta only when a field changed, so a symbol whose
market is quiet can go seconds without one. A subscribed symbol silent for
``stale_after`` is first *suspect*, not stale: the feed reads its mark from REST (the
stale-marks loop), and a REST mark equal to the last one streamed proves the symbol quiet
and the stream right (``quiet_confirmed``; it is fresh again as of that read). A REST mark
that differs proves the topic dead (a change was not pushed): the symbol is stale at once
and resubscribed. A suspect without a REST answer within another ``stale_after`` is stale
too. So a quiet symbol never turns the feed degraded, and a dead topic still does. Every
subscribed symbol silent at once (two or more) is a stalled socket, not a quiet market:
stale at once, no REST verdict awaited.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from typing import Any

from feedctl import Backoff, Category, staggered

from .constants import ALREADY_SUBSCRIBED, TICKERS_PREFIX
from .parse import Problem, TickerState
from .ports import PublicHost
from .ticks import TickHandler
from .util import batches
from .ws import Conn, ConnectionLost, RequestRejected, RequestTimedOut

_PLEN = len(TICKERS_PREFIX)


class _Session:
    """One public socket and the subscriptions it carries."""

    def __init__(self, conn: Conn, tickers: TickerState, swap_at: float | None) -> None:
        self.conn, self.tickers = conn, tickers
        #: symbol -> wall-clock ns of its (re)subscribe ack: the staleness reference
        self.subscribed: dict[str, int] = {}
        self.resubscribed: set[str] = set()
        #: symbol -> wall-clock ns a REST read proved it quiet (a staleness reference)
        self.quiet_ns: dict[str, int] = {}
        #: symbol -> wall-clock ns it went silent while subscribed (awaiting a REST read)
        self.suspect_ns: dict[str, int] = {}
        self.swap_at = swap_at
        self.opened_ns = time.time_ns()


class PublicStream:
    """Owns the public socket(s) of one category; ``run()`` until cancelled."""

    def __init__(self, feed: PublicHost, category: Category, url: str,
                 stagger_key: str | None = None) -> None:
        self.feed, self.category, self.url = feed, category, url
        self.ctx, self.s = feed.ctx, feed.settings
        self.name = f"public-{category.value}"
        #: What spreads this socket's planned reconnects among many (``staggered``).
        self.stagger_key = stagger_key or f"{feed.ctx.account.name}:{self.name}:{url}"
        self.wanted: set[str] = set()
        #: symbol -> wall-clock ns it became wanted (a staleness reference)
        self._wanted_ns: dict[str, int] = {}
        self.rejected: set[str] = set()
        self.stale: frozenset[str] = frozenset()
        self.down: str | None = None
        self.session: _Session | None = None
        self._wake = asyncio.Event()
        self._backoff = Backoff(self.s.backoff_base, self.s.backoff_cap)
        self._overflow_logged = False

    def wake(self) -> None:
        """Let the supervisor re-measure now (a stale symbol spoke again)."""
        self._wake.set()

    def problem(self, problem: Problem) -> None:
        """A frame the ticker callback could not use: counted and logged by the feed."""
        self.feed.report(problem, self.name)

    def want(self, symbols: set[str]) -> None:
        if symbols != self.wanted:
            now = time.time_ns()
            self._wanted_ns = {s: self._wanted_ns.get(s, now) for s in symbols}
            self.wanted = set(symbols)
            self.rejected &= self.wanted
            self._wake.set()

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
                        new, why = await self._replace(sess)  # the old one still serves
                    except (ConnectionLost, RequestRejected) as exc:
                        sess.swap_at = time.monotonic() + self._backoff.next()
                        self.ctx.log.warning("planned %s reconnect failed: %s", self.name, exc)
                        continue
                    if new is not None:
                        old, sess = sess, new
                        self.session = new
                        await old.conn.close()
                        self.ctx.count("planned_reconnects")
                        self.ctx.log.info("%s socket replaced (planned, age %.0fs)",
                                          self.name, old.conn.age())
                        continue
                    # the old socket died or went stale while its successor waited
                    assert why is not None  # _replace gives the one or the other
                    reason = why
                lived = sess.conn.age()
                # a socket that got its subscribe answered and tickers flowing proved the
                # server up: what ended it (a stall, a drop) says little of the next one.
                # Living stale_after at least keeps a server that drops every socket at
                # once from being hammered (the connection budget is shared)
                proved = (bool(sess.subscribed) and bool(sess.tickers.last_seen_ns)
                          and lived >= self.s.stale_after)
                await sess.conn.close()
                sess = self.session = None
                self.ctx.count("reconnects")
                self._set_down(reason)
                if lived >= self.s.backoff_reset_after or proved:
                    self._backoff.reset()
                await asyncio.sleep(self._backoff.next())
        finally:
            self.session = None
            if sess is not None:
                await sess.conn.close()

    async def _replace(self, sess: _Session) -> tuple[_Session | None, str | None]:
        """A planned successor of ``sess``, opened while ``sess`` goes on being watched: a
        planned open may wait long for the connection budget's headroom, and the old
        socket dying or going stale meanwhile must be seen at once (reported, replaced as
        a loss), not hidden behind a wait. (the new session, None), or (None, why the
        old one is done for) with the open abandoned."""
        making = asyncio.ensure_future(self._open(report=False))
        check = self._check_every()
        reason: str | None = None
        handed = False
        try:
            while reason is None:
                waits: set[asyncio.Future[Any]] = {making, sess.conn.closed}
                done, _ = await asyncio.wait(waits, timeout=check)
                if making in done:
                    handed = True
                    return making.result(), None
                if sess.conn.closed.done():
                    reason = sess.conn.closed.result()
                else:
                    reason = await self._check_stale(sess)
            return None, reason
        finally:
            if not making.done():
                making.cancel()
            await asyncio.wait([making])  # never swallows a cancel of this task
            if not handed and not making.cancelled() and making.exception() is None:
                # made just as the old one failed, or as we were cancelled: nobody
                # else owns it
                await making.result().conn.close()

    def _set_down(self, reason: str) -> None:
        first = self.down is None
        self.down = reason
        self.ctx.log.warning("%s socket down: %s", self.name, reason,
                             extra={"socket": self.name})
        if first:
            self.feed.public_changed(reason="reconnect")

    def _set_up(self) -> None:
        if self.down is not None:
            self.down = None
            self.feed.public_changed(reason="fresh")

    async def _open(self, *, report: bool = True) -> _Session:
        tickers = TickerState(self.category)
        handler = self._handler(tickers)
        conn = Conn(
            name=self.name, url=self.url, on_data=handler, on_read_end=handler.read_end,
            on_raw=handler.raw,
            ping_interval=self.s.ping_interval, pong_timeout=self.s.pong_timeout,
            request_timeout=self.s.request_timeout, log=self.ctx.log,
            count=self.ctx.count, report=self.feed.report,
            pong_overdue_after=self.s.pong_overdue_after,
            server_offset_ms=self.feed.clock.known_offset_ms,
        )
        lifetime = self.s.max_connection_lifetime
        sess = _Session(conn, tickers, None)
        try:
            connects = self.feed.connects
            if connects is not None:  # the process's per-IP budget of new sockets
                await connects.acquire(planned=not report)
            await conn.open()
            if lifetime is not None:
                sess.swap_at = time.monotonic() + staggered(lifetime, self.stagger_key)
            reason = await self._synced(sess, self._check_every(), report=report)
            if reason is not None:
                raise ConnectionLost(reason)
        except BaseException:
            await conn.close()
            raise
        return sess

    async def _serve(self, sess: _Session) -> str | None:
        """Keep ``sess`` subscribed and fresh; its death or staleness reason, or None
        when its planned lifetime is over."""
        closed = sess.conn.closed
        closed.add_done_callback(lambda _f: self._wake.set())
        check = self._check_every()
        while True:
            if closed.done():
                return closed.result()
            now = time.monotonic()
            if sess.swap_at is not None and now >= sess.swap_at:
                return None
            self._wake.clear()
            try:
                reason = await self._synced(sess, check)
                if reason is None:
                    reason = await self._check_stale(sess)
            except ConnectionLost as exc:
                return str(exc)
            if reason is not None:
                return reason
            timeout = check if sess.swap_at is None else max(0.0, min(check, sess.swap_at - now))
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(timeout):
                    await self._wake.wait()

    def _check_every(self) -> float:
        return max(0.02, min(self.s.stale_after / 4, 1.0))

    async def _synced(self, sess: _Session, check: float, *, report: bool = True
                      ) -> str | None:
        """``_sync`` while measuring staleness every ``check`` seconds: a stall that starts
        while a subscribe waits for its answer is seen after ``stale_after``, not after the
        request timeout. The stall reason, or None once the requests are answered."""
        sync = asyncio.ensure_future(self._sync(sess))
        began = time.monotonic()
        try:
            while True:
                waits: set[asyncio.Future[Any]] = {sync, sess.conn.closed}
                done, _ = await asyncio.wait(waits, timeout=check)
                if sync in done:
                    sync.result()  # its ConnectionLost is the caller's
                    return None
                if sess.conn.closed.done():
                    return sess.conn.closed.result()
                stale = self._measure(sess, report=report)
                wanted = self.wanted - self.rejected
                if (wanted and stale >= wanted
                        and time.monotonic() - began > self.s.stale_after):
                    return (f"{self.name} stalled: a subscribe unanswered and no ticker for "
                            f"any of {len(wanted)} symbols in {self.s.stale_after:g}s")
        finally:
            if not sync.done():
                sync.cancel()
                await asyncio.wait([sync])  # never swallows a cancel of this task
            if not sync.cancelled():
                sync.exception()  # retrieved: the caller got its reason another way

    # ----------------------------------------------------------------- subscriptions
    async def _sync(self, sess: _Session) -> None:
        subs, tickers = sess.subscribed, sess.tickers
        remove = [s for s in subs if s not in self.wanted]
        for batch in batches((TICKERS_PREFIX + s for s in remove), self.s.max_topics_per_request):
            try:
                await sess.conn.request("unsubscribe", batch)
            except RequestRejected as exc:
                self.ctx.log.warning("%s: unsubscribe %s rejected: %s", self.name, batch, exc)
            for topic in batch:
                subs.pop(topic[_PLEN:], None)
                tickers.forget(topic[_PLEN:])
                sess.resubscribed.discard(topic[_PLEN:])
        used = sum(len(TICKERS_PREFIX) + len(s) for s in subs)
        add: list[str] = []
        for sym in sorted(self.wanted):
            if sym in subs or sym in self.rejected:
                continue
            if used + len(TICKERS_PREFIX) + len(sym) > self.s.max_args_chars:
                self.ctx.count("subscription_overflow")
                if not self._overflow_logged:
                    self._overflow_logged = True
                    self.ctx.log.error("%s: topic budget of %d characters exhausted; %s and "
                                       "later symbols get no price", self.name,
                                       self.s.max_args_chars, sym)
                continue
            used += len(TICKERS_PREFIX) + len(sym)
            add.append(sym)
        for batch in batches(add, self.s.max_topics_per_request):
            await self._subscribe(sess, batch)

    async def _subscribe(self, sess: _Session, symbols: list[str]) -> None:
        sess.tickers.symbols.update(symbols)  # frames may beat the ack
        try:
            await self._request_resending(sess, [TICKERS_PREFIX + s for s in symbols])
        except RequestRejected as exc:
            if len(symbols) > 1:  # one bad topic fails the whole request: split it
                for sym in symbols:
                    await self._subscribe(sess, [sym])
                return
            if (exc.answer.ret_msg or "").startswith(ALREADY_SUBSCRIBED):
                # an earlier send of this subscribe got through; its answer was late
                sess.subscribed[symbols[0]] = time.time_ns()
                return
            self.rejected.add(symbols[0])
            sess.tickers.forget(symbols[0])
            self.ctx.count("subscribe_rejected")
            self.ctx.log.warning("%s: subscribe tickers.%s rejected: %s", self.name,
                                 symbols[0], exc.answer.ret_msg)
            return
        now = time.time_ns()
        for sym in symbols:
            sess.subscribed[sym] = now

    async def _request_resending(self, sess: _Session, topics: list[str]) -> None:
        """``subscribe`` ``topics``, sent again every ``_check_every()`` seconds while
        unanswered, up to the request timeout: a server that stalls reads requests but
        drops them, so a subscribe sent just before the stall ended is never answered -
        the next send is, at once, where waiting for the first would cost ``stale_after``
        and a reconnect. A later send of a subscribe that did get through is answered
        "already subscribed" (see ``_subscribe``)."""
        deadline = time.monotonic() + self.s.request_timeout
        every = self._check_every()
        while True:
            left = deadline - time.monotonic()
            try:
                await sess.conn.request("subscribe", topics, answer_within=min(every, left))
                return
            except RequestTimedOut:
                if left <= every:
                    raise
                self.ctx.count("subscribes_resent")

    def _measure(self, sess: _Session, *, report: bool = True) -> set[str]:
        """The wanted symbols without a ticker for ``stale_after`` (subscribed or not: a
        symbol waiting for its subscribe's answer, or beyond the topic budget, has no
        price either); reported to the feed when the set changes."""
        now = time.time_ns()
        limit = int(self.s.stale_after * 1e9)
        seen = sess.tickers.last_seen_ns
        stale: set[str] = set()
        silent: list[str] = []
        for sym in self.wanted - self.rejected:
            ref = max(sess.subscribed.get(sym, 0), self._wanted_ns.get(sym, 0),
                      sess.opened_ns, seen.get(sym, 0), sess.quiet_ns.get(sym, 0))
            if now - ref <= limit:
                sess.resubscribed.discard(sym)
                sess.suspect_ns.pop(sym, None)
            else:
                silent.append(sym)
        # every subscribed symbol silent at once is a stalled socket, not a quiet market
        stalled = len(sess.subscribed) >= 2 and all(s in silent for s in sess.subscribed)
        quiet_check = self.s.stale_mark_interval > 0 and not stalled
        if stalled:
            sess.suspect_ns.clear()
        for sym in silent:
            if quiet_check and sym in sess.subscribed and sess.tickers.mark_text(sym):
                # silent but it had a mark: quiet or dead? a REST read decides
                since = sess.suspect_ns.setdefault(sym, now)
                if now - since <= limit:
                    continue
            stale.add(sym)
        current = frozenset(stale | (self.rejected & self.wanted))
        if report and current != self.stale:
            fresh = not current
            self.stale = current
            self.feed.public_changed(reason="fresh" if fresh else "stale")
        return stale

    @property
    def suspect(self) -> frozenset[str]:
        """Subscribed symbols silent for ``stale_after`` that a REST read must judge."""
        sess = self.session
        return frozenset(sess.suspect_ns) if sess is not None else frozenset()

    def judge_quiet(self, symbol: str, rest_mark: str) -> bool:
        """A REST read of a suspect symbol's mark: equal to the last one streamed, the
        symbol is quiet (fresh as of now, True); different, its topic missed a change and
        it is stale at once (False)."""
        sess = self.session
        if sess is None or symbol not in sess.suspect_ns:
            return False
        streamed = sess.tickers.mark_text(symbol)
        if streamed is not None and _same_number(streamed, rest_mark):
            del sess.suspect_ns[symbol]
            sess.quiet_ns[symbol] = time.time_ns()
            self.ctx.count("quiet_confirmed")
            return True
        sess.suspect_ns[symbol] = 0  # judged: stale at the next measure
        self.ctx.count("quiet_refuted")
        self._measure(sess)
        return False

    async def _check_stale(self, sess: _Session) -> str | None:
        stale = self._measure(sess) & set(sess.subscribed)
        if not stale:
            return None
        if len(sess.subscribed) >= 2 and len(stale) == len(sess.subscribed):
            return (f"{self.name} stalled: no ticker for any of {len(stale)} symbols "
                    f"in {self.s.stale_after:g}s")
        again = stale & sess.resubscribed
        if again:
            return f"{self.name}: tickers still stale after resubscribe: {sorted(again)}"
        timeout = self.s.stale_after
        for batch in batches((TICKERS_PREFIX + s for s in sorted(stale)),
                             self.s.max_topics_per_request):
            self.ctx.count("resubscribes", len(batch))
            self.ctx.log.warning("%s: stale tickers, resubscribing %s", self.name, batch)
            for op in ("unsubscribe", "subscribe"):
                try:
                    await sess.conn.request(op, batch, answer_within=timeout)
                except RequestRejected as exc:
                    self.ctx.log.warning("%s: %s %s rejected: %s", self.name, op, batch, exc)
            at = time.time_ns()
            for topic in batch:
                sess.subscribed[topic[_PLEN:]] = at
                sess.resubscribed.add(topic[_PLEN:])
        return None

    # ----------------------------------------------------------------- data
    def _handler(self, tickers: TickerState) -> TickHandler:
        return TickHandler(self, tickers)

    def details(self) -> dict[str, Any]:
        sess = self.session
        return {
            "url": self.url,
            "connected": bool(sess and sess.conn.alive),
            "age_s": round(sess.conn.age(), 3) if sess else None,
            "subscriptions": sorted(TICKERS_PREFIX + s for s in sess.subscribed) if sess else [],
            "wanted": sorted(self.wanted),
            "rejected": sorted(self.rejected),
            "stale": sorted(self.stale),
            "down": self.down,
        }


def _same_number(a: str, b: str) -> bool:
    from decimal import Decimal, InvalidOperation

    try:
        return Decimal(a) == Decimal(b)
    except InvalidOperation:
        return False
