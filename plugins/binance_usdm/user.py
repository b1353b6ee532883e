"""The user data stream: listenKey lifecycle, ACCOUNT_UPDATE pushes, resync from REST.

Cycle: POST listenKey → connect ``{private_ws}/ws?listenKey=...`` → start buffering →
REST snapshot (position mode, positionRisk) → replay the gap's fills → apply the
buffered events in (T, E) order → ``ctx.reconcile`` → healthy. The stream opens before
the snapshot, so nothing pushed while the snapshot is in flight is lost, and the pushes
go to the book before the snapshot (which outranks what they show only where it is
newer), so a close and a reopen pushed meanwhile stay two lifecycles. At the first
sync the snapshot comes first (the book is empty; older pushes are dropped).

The listenKey lives 60 minutes from its creation or last keepalive: a PUT every
``keepalive_interval`` keeps it. A ``listenKeyExpired`` event or a keepalive answered
-1125 means the key is gone and the socket silent: a new key is created and the
stream reconnects and resyncs (counter ``listen_key_recreated``).

Ahead of Binance's 24-hour cut (``max_connection_lifetime``) a second socket is opened
on the key (POST returns the active key and extends it) before the old one closes:
both deliver meanwhile, the book drops the copies, no resync is needed.

A fill (ORDER_TRADE_UPDATE, ``x == TRADE``) whose position push has not arrived
``fill_confirm_after`` later means that push was lost with the socket up: the feed
resyncs in place (counter ``position_push_missing``). A push its fills do not account
for (fills.py: the fills since the key's last push do not take the book's amount to the
push's, or close and reopen it) follows a push lost with the socket up: the feed
resyncs in place before applying it (counter ``push_gaps``).
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Iterable, Mapping
from decimal import Decimal
from typing import TYPE_CHECKING, Any
from urllib.parse import quote

from feedctl import (
    Backoff,
    FatalFeedError,
    Position,
    PositionKey,
    PositionUpdate,
    PriorState,
    RetryableFeedError,
    Side,
)

from .constants import EVENT_ACCOUNT, EVENT_CONFIG, EVENT_EXPIRED, EVENT_ORDER, IGNORED_EVENTS
from .fills import FillLedger
from .gap import Trade, lost_lifecycles, replay
from .parse import (
    SEQ_PER_MS,
    Fill,
    Leverage,
    Problem,
    account_update,
    config_leverage,
    expired,
    order_fill,
    push_seq,
    user_order,
)
from .rest import ListenKeyGone, NotServed
from .ws import Conn, ConnectionLost

if TYPE_CHECKING:
    from .feed import BinanceFeed

#: A resync replays fills since the last snapshot, but not from longer ago than this
#: (the audit moves the floor every ``audit_interval``; without it, a bound on requests).
REPLAY_LOOKBACK_MS = 600_000

#: An ACCOUNT_UPDATE of a key with ``T`` at most this much before a fill's ``T``
#: confirms it (both are matching-engine times of one trade; allow for rounding).
FILL_MATCH_MS = 1000

#: Pushed states remembered per key (to recognise a lifecycle whose pushes came late).
_HISTORY_KEPT = 64

_RESYNC = "resync requested"
_EXPIRED = "listenKey expired"


def _signed(u: PositionUpdate) -> Decimal:
    """A state's amount, signed as Binance's ``positionAmt`` (short negative)."""
    if u.side is None:
        return Decimal(0)
    return u.size if u.side is Side.LONG else -u.size


def push_of_fill(history: list[tuple[PositionUpdate, bool]], fill_ms: int
                 ) -> PositionUpdate | None:
    """The pushed state of a fill made at ``fill_ms`` among a key's pushed states: the
    first one whose ``T`` is at or after the fill's, within ``FILL_MATCH_MS``; None if
    none is. Binance stamps ``T`` in each service (the fill on ORDER_TRADE_UPDATE, the
    position on ACCOUNT_UPDATE): the two may share it or be a millisecond or more apart.
    A push before the fill's ``T`` is the state the fill started from, never its own."""
    for u, _late in history:
        if u.exchange_ms is not None and fill_ms <= u.exchange_ms <= fill_ms + FILL_MATCH_MS:
            return u
    return None


def _changed_symbols(positions: Mapping[PositionKey, Position],
                     rows: list[PositionUpdate]) -> set[str]:
    """Symbols whose snapshot rows differ from the book (side, size, entry, presence)."""
    by_key = {r.key: r for r in rows}
    out: set[str] = set()
    for key in set(positions) | set(by_key):
        pos, row = positions.get(key), by_key.get(key)
        if pos is None or row is None or (pos.side, pos.size, pos.entry_price) != (
                row.side, row.size, row.entry_price):
            out.add(key.symbol)
    return out


class UserStream:
    """Owns the user-data socket(s) and the listenKey of one feed; ``run()`` until
    cancelled."""

    def __init__(self, feed: BinanceFeed) -> None:
        self.feed = feed
        self.ctx, self.s = feed.ctx, feed.settings
        self.conn: Conn | None = None
        self.listen_key: str | None = None
        self._buffer: list[dict[str, Any]] | None = None
        self._backoff = Backoff(self.s.backoff_base, self.s.backoff_cap)
        self._wake: asyncio.Future[str] | None = None
        #: what REST and ACCOUNT_CONFIG_UPDATE said (a push carries neither)
        self.leverage: dict[str, Decimal] = {}
        self.liq: dict[PositionKey, Decimal] = {}
        #: the account's position mode from the last snapshot (None: not read yet)
        self.hedge: bool | None = None
        #: newest ``T`` of a push per key (the audit skips keys pushed after its snapshot)
        self.last_push_ms: dict[PositionKey, int] = {}
        #: fills waiting for their ACCOUNT_UPDATE: key -> (fill T, monotonic deadline)
        self.pending_fills: dict[PositionKey, tuple[int, float]] = {}
        #: the fills each push is to account for (a push they do not follows a lost one)
        self.fill_ledger = FillLedger()
        #: Trade ids the book has accounted for (pushed fills, replayed fills) and each
        #: one's time: a clean audit checks the exchange's fills since the fill floor
        #: against them before moving the floor past them (F57)
        self.seen_trades: dict[int, int] = {}
        #: server ms up to which every fill is in the book (the last snapshot); a resync
        #: replays the fills after it (None before the first snapshot)
        self.fills_floor_ms: int | None = None
        #: optional endpoints the exchange answered 404 for: not asked again
        self._not_served: set[str] = set()
        #: user-data events received (the last tie-breaker of a state's seq)
        self.arrivals = 0
        #: newest event time ``E`` received on the current socket: every event up to it
        #: has arrived (one socket delivers in order), so the audit may move the fill
        #: floor up to it, not past pushes still on their way
        self.last_event_ms: int | None = None
        #: per key, the pushed states in seq order (late ones too): a push older than
        #: the newest one of its key that falls between two flat states is a lifecycle
        #: the book never saw (pushes delivered out of order)
        self._history: dict[PositionKey, list[tuple[PositionUpdate, bool]]] = {}
        #: per key, the exchange-time spans of the past lifecycles handed to the book
        self._past_spans: dict[PositionKey, list[tuple[int, int]]] = {}
        #: reducing fills on keys the book held flat (see unseen_loop)
        self.unseen: asyncio.Queue[Fill] = asyncio.Queue()
        #: the position mode is read again at the next resync (it changes only while the
        #: account is flat: read at the first sync and when a push or audit contradicts it)
        self.mode_suspect = True
        #: the first resync resumes from what the account's consumers last knew
        #: (``ctx.take_prior``), if the core has it
        self._first_resync = True

    # ----------------------------------------------------------------- supervisor
    async def run(self) -> None:
        conn: Conn | None = None
        try:
            while True:
                if conn is not None and conn.closed.done():  # died while we swapped
                    await self._lost(conn, conn.closed.result())
                    conn = None
                swapping = conn is not None
                old_key = self.listen_key
                try:
                    new = await self._connect(buffer=not swapping)
                except (ConnectionLost, RetryableFeedError) as exc:
                    if swapping:
                        self.ctx.log.warning("planned user-stream reconnect failed: %s", exc)
                    else:
                        self.feed.user_trouble(str(exc))
                    await self._sleep(conn, self._backoff.next())
                    continue
                old, conn = conn, new
                self.conn = new
                if old is not None and self.listen_key != old_key:
                    # the old key died before the swap: its socket was silent since then
                    self.ctx.log.warning("planned user-stream reconnect got a new listenKey: "
                                         "the old one had expired; resyncing")
                    old.finish("listenKey replaced")
                if old is None or old.closed.done():
                    if old is not None:  # the old socket died during the swap: a gap
                        await old.close()
                        self._start_buffer()
                    if not await self._resynced(new):
                        conn = self.conn = None
                        continue
                else:
                    await old.close()
                    self.ctx.count("planned_reconnects")
                    self.ctx.log.info("user-stream socket replaced (planned, age %.0fs)",
                                      old.age())
                while True:
                    reason = await self._watch(conn)
                    if reason != _RESYNC:
                        break
                    self._start_buffer(keep=True)
                    if not await self._resynced(conn):
                        conn = None
                        break
                if conn is None or reason is None:
                    continue  # planned swap (or the resync failed and closed it)
                await self._lost(conn, reason)
                conn = None
        finally:
            self._buffer = None
            self.conn = None
            if conn is not None:
                await conn.close()

    async def _resynced(self, conn: Conn) -> bool:
        try:
            await self._resync()
        except RetryableFeedError as exc:
            await conn.close()
            self.conn = None
            self.feed.user_lost(f"resync failed: {exc}", count=False)
            await asyncio.sleep(self._backoff.next())
            return False
        return True

    async def _lost(self, conn: Conn, reason: str) -> None:
        lived = conn.age()
        await conn.close()
        self.conn = None
        self.feed.user_lost(reason)
        if lived >= self.s.backoff_reset_after:
            self._backoff.reset()
        await asyncio.sleep(0 if reason == _EXPIRED else self._backoff.next())

    async def _sleep(self, conn: Conn | None, delay: float) -> None:
        """Sleep ``delay``, cut short if the still-serving old socket dies."""
        if conn is None or conn.closed.done():
            await asyncio.sleep(delay)
            return
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(delay):
                await asyncio.shield(conn.closed)

    async def _watch(self, conn: Conn) -> str | None:
        """Until ``conn`` dies (its reason), a resync is wanted (``_RESYNC``), or its
        planned lifetime is over (None)."""
        loop = asyncio.get_running_loop()
        self._wake = wake = loop.create_future()
        timeout = max(0.0, self.s.max_connection_lifetime - conn.age())
        try:
            async with asyncio.timeout(timeout):
                done, _ = await asyncio.wait({conn.closed, wake},
                                             return_when=asyncio.FIRST_COMPLETED)
        except TimeoutError:
            return None
        finally:
            self._wake = None
        return (wake if wake in done else conn.closed).result()

    def _start_buffer(self, *, keep: bool = False) -> None:
        """Hold pushes from now until the resync has applied its snapshot (``keep``: with
        what is held already - a push held back for the resync, ``_gap_before``)."""
        if not keep or self._buffer is None:
            self._buffer = []

    def _signal(self, reason: str) -> None:
        wake = self._wake
        if reason == _EXPIRED and self.conn is not None:
            self.conn.finish(reason)
        elif wake is not None and not wake.done():
            wake.set_result(reason)

    # ----------------------------------------------------------------- listenKey
    def key_gone(self, why: str) -> None:
        """The listenKey no longer exists: the socket on it is silent. Drop it."""
        self.ctx.count("listen_key_recreated")
        self.ctx.log.warning("listenKey gone (%s): creating a new one", why)
        self.listen_key = None
        self._signal(_EXPIRED)

    async def keepalive_loop(self) -> None:
        """PUT the listenKey every ``keepalive_interval`` (sooner after a failure)."""
        interval = self.s.keepalive_interval
        delay = interval
        while True:
            await asyncio.sleep(delay)
            key = self.listen_key
            if key is None:
                delay = interval
                continue
            try:
                await self.feed.rest.keepalive(key)
            except ListenKeyGone:
                if self.listen_key == key:
                    self.key_gone("keepalive answered -1125")
                delay = interval
                continue
            except RetryableFeedError as exc:
                self.ctx.count("keepalive_failures")
                self.ctx.log.warning("listenKey keepalive failed: %s", exc)
                delay = min(interval, 60.0)
                continue
            self.ctx.count("keepalives")
            delay = interval

    async def fills_loop(self) -> None:
        """Resync when a fill's position push is overdue."""
        step = min(0.5, self.s.fill_confirm_after / 2)
        while True:
            await asyncio.sleep(step)
            now = time.monotonic()
            late = [k for k, (_t, deadline) in self.pending_fills.items() if deadline <= now]
            if not late or self.feed.phase != "synced":
                continue
            for k in late:
                self.pending_fills.pop(k, None)
            self.ctx.count("position_push_missing", len(late))
            self.ctx.log.warning("no position push for fills of %s within %gs: resyncing",
                                 sorted(k.symbol for k in late), self.s.fill_confirm_after)
            self._signal(_RESYNC)

    # ----------------------------------------------------------------- one socket
    def url(self, listen_key: str) -> str:
        base = self.feed.endpoints.private_ws.rstrip("/")
        return f"{base}/ws?listenKey={quote(listen_key, safe='')}"

    async def _connect(self, *, buffer: bool) -> Conn:
        rest = self.feed.rest
        try:
            # POST also extends an active key: planned swaps reuse it
            key = self.listen_key = await rest.create_listen_key()
        except ListenKeyGone as exc:
            raise RetryableFeedError(str(exc)) from None
        clock = self.feed.clock
        conn = Conn(name="user", url=self.url(key), on_data=self._on_data,
                    ping_interval=self.s.ping_interval, pong_timeout=self.s.pong_timeout,
                    request_timeout=self.s.request_timeout, log=self.ctx.log,
                    report=self.feed.report,
                    pong_lost_after=(self.s.pong_overdue,
                                     lambda: clock.now_ms() + clock.error_ms()))
        if buffer:
            self._start_buffer()
        self.last_event_ms = None
        try:
            await conn.open()
        except BaseException:
            if buffer:
                self._buffer = None
            await conn.close()
            raise
        if self.listen_key != key:
            # declared gone while the socket opened (a keepalive's -1125, or
            # listenKeyExpired on it): no socket is watched yet, so nothing else would
            # close this one, and on a dead key it stays open and silent
            if buffer:
                self._buffer = None
            await conn.close()
            raise RetryableFeedError("the listenKey expired while its socket opened")
        return conn

    async def _resync(self) -> None:
        ctx, rest = self.ctx, self.feed.rest
        self.feed.user_resyncing()
        if self._first_resync:
            self._first_resync = False
            self._resume(ctx.take_prior())
        await self._read_leverage()
        try:
            if self.hedge is None or self.mode_suspect:
                self.hedge = await rest.hedge_mode()  # weight 30: not on every resync
                self.mode_suspect = False
            rows, as_of = await rest.positions(self.hedge, self.leverage)
        except BaseException:
            self._buffer = None  # the next resync covers what it held
            raise
        if not await self._socket_answers():
            # the socket died (or stalled) while the snapshot was read: the buffer lacks
            # the pushes after its death, and the snapshot alone would merge a close and
            # reopen made since (past what a later replay can split) and move the fill
            # floor over lifecycles made since. Given up: the next resync replays the
            # fills from the book's state (what it has applied so far is true). Asked
            # with a ping, not by ``conn.closed``: a close frame the reader has not
            # reached yet, or a server that reads and answers nothing (a stall: its
            # pushes are lost), leaves ``closed`` unset; a pong later than
            # ``pong_overdue`` counts as none (it may answer a later ping, the stall
            # having swallowed ours and the pushes after the snapshot). Asked before the
            # gap replay: a resync given up spends none of its request weight
            self._buffer = None
            raise RetryableFeedError("the user-data socket died or stalled during the "
                                     "resync")
        resync = self.fills_floor_ms is not None
        if self.s.replay_gaps and resync:
            await self._replay_gap(rows, as_of)
        for row in rows:
            if row.liq_price is not None:
                self.liq[row.key] = row.liq_price
            if row.leverage is not None:
                self.leverage.setdefault(row.symbol, row.leverage)
        buffered, self._buffer = self._buffer or [], None
        if resync:
            # the book holds every state the replay found before the snapshot (less the
            # clock's error): the buffered pushes, in order, carry the lifecycle
            # boundaries after it, which the snapshot alone merges (a close and a reopen
            # of the same side read as a size change; pushes the replay already applied
            # are older than its states and dropped); the snapshot then settles the rest
            self._drain(buffered, rows)
        # the snapshot's time is the server-corrected send time: the server served it
        # no earlier than that less the clock's error (F52). Stamped later, its flat
        # knowledge would outrank a close and reopen made just after it was served, or
        # close a position opened then that the rows could not list
        ctx.reconcile(rows, as_of_ms=as_of - self.feed.clock.error_ms())
        self._snapshot_known(rows, as_of)
        self.fill_ledger.clear()  # the snapshot and the replay account for every fill
        # the snapshot reflects every fill before it: none of those waits for a push
        self.pending_fills = {k: v for k, v in self.pending_fills.items() if v[0] > as_of}
        # the snapshot's time is the server's only within the clock's error: the floor
        # sits that much lower, so a fill just after the snapshot is never under it
        self.fills_floor_ms = as_of - self.feed.clock.error_ms()
        if not resync:
            self._drain(buffered)  # the first sync: the snapshot is the book's start
        ctx.count("resyncs")
        ctx.log.info("resynced %d open positions from REST (+%d buffered events, %s mode)",
                     len(rows), len(buffered), "hedge" if self.hedge else "one-way",
                     extra={"as_of_ms": as_of})
        self.feed.user_synced()

    async def _socket_answers(self) -> bool:
        """Whether the user socket answers a ping promptly now (``Conn.answers_ping``);
        counted as a resync given up when it does not."""
        conn = self.conn
        if conn is not None and await conn.answers_ping(self.s.pong_timeout,
                                                        self.s.pong_overdue):
            return True
        self.ctx.count("resyncs_given_up")
        return False

    def _resume(self, prior: PriorState | None) -> None:
        """Start from what the account's consumers last knew (another process served it
        until now): the book holds its open positions and the fill floor sits at its
        oldest state (each known key's own state time as that key's floor), so the
        resync's gap replay delivers every fill since - a lifecycle that opened and
        closed meanwhile, a close and reopen on one side - and never a fill twice."""
        if prior is None or (prior.as_of_ms is None and not prior.positions):
            return
        floors: list[int] = []
        for key, state in prior.positions.items():
            if state.exchange_ms is not None:
                self.last_push_ms[key] = max(self.last_push_ms.get(key, 0), state.exchange_ms)
                floors.append(state.exchange_ms)
            if state.is_open:
                self.ctx.apply(state)
        as_of = prior.as_of_ms if prior.as_of_ms is not None else self.feed.clock.now_ms()
        self.fills_floor_ms = min([as_of, *floors])
        self.ctx.count("resumed_from_prior")
        self.ctx.log.info("resuming from what consumers last knew: %d keys (%d open)",
                          len(prior.positions),
                          sum(s.is_open for s in prior.positions.values()))

    def _drain(self, buffered: list[dict[str, Any]],
               rows: list[PositionUpdate] | None = None) -> None:
        """Handle buffered events in (T, E, arrival) order. ``rows`` (a resync's
        snapshot): a row older than a buffered push of its key goes to the book before
        that push, in exchange-time order (F54). The gap replay leaves a row's own state
        to the row (it stops before the row's ``updateTime``), and the reconcile comes
        after the pushes: a push newer than the row - a close made after the snapshot
        was read - would otherwise move the book on from the state before the row (a
        flip the stream lost: the short the book held closed, the long never seen), and
        the row, older than that push, be dropped."""
        due = {r.key: r for r in rows or () if r.exchange_ms is not None}
        for event in sorted(buffered, key=user_order):
            if due and event.get("e") == EVENT_ACCOUNT:
                updates, _problems, _reason = account_update(
                    event, int(event.get("_received_ns", time.time_ns())), self.leverage,
                    self.liq)
                for u in updates:
                    row = due.get(u.key)
                    if (row is not None and row.exchange_ms is not None
                            and u.exchange_ms is not None and row.exchange_ms < u.exchange_ms):
                        del due[u.key]
                        self.ctx.apply(row)
            self._handle(event, int(event.get("_received_ns", time.time_ns())),
                         int(event.get("_arrival", 0)))

    async def _replay_gap(self, rows: list[PositionUpdate], as_of: int) -> None:
        """Apply the states of fills made since the fill floor that the stream never
        delivered (see gap.py). Best effort: if the fills cannot be read, the snapshot
        alone repairs the book and lifecycles wholly inside the gap stay unseen
        (counter ``gap_replay_failures``)."""
        assert self.fills_floor_ms is not None
        ctx, rest = self.ctx, self.feed.rest
        since = max(self.fills_floor_ms, as_of - REPLAY_LOOKBACK_MS)
        positions = ctx.positions()
        # every fill pays a commission: with the income since the gap, only its symbols
        # and those whose snapshot differs from the book can hold fills of the gap
        # (userTrades is one call of weight 5 per symbol); without it, every known one
        changed = _changed_symbols(positions, rows)
        symbols = {k.symbol for k in positions} | {r.symbol for r in rows}
        if "income" not in self._not_served:
            try:
                symbols = await rest.income_symbols(since) | changed
            except (RetryableFeedError, FatalFeedError) as exc:
                if isinstance(exc, NotServed):
                    self._not_served.add("income")
                ctx.count("income_unavailable")
                ctx.log.warning("income since the gap not read (only known symbols' fills "
                                "are replayed): %s", exc)
        trades: list[Trade] = []
        try:
            for symbol in sorted(symbols):
                trades.extend(await rest.trades(symbol, since))
        except (RetryableFeedError, FatalFeedError) as exc:
            ctx.count("gap_replay_failures")
            ctx.log.warning("fills of the gap not read; the snapshot alone repairs the book: "
                            "%s", exc)
            return
        after = {t.key: since for t in trades}
        for key, pos in positions.items():
            after[key] = max(after.get(key, since), pos.exchange_ms or 0)
        for key, ms in self.last_push_ms.items():
            after[key] = max(after.get(key, since), ms)
        # every fill the snapshot reflects, not only those from before the stream's
        # start: a socket stalled at (or after) its start lost their pushes while up,
        # and a ping answered later does not show it (a fill also pushed into the buffer
        # is the same state twice). Not up to ``as_of`` itself: the snapshot's time is
        # the server's only within the clock's error, and a fill made after the server
        # read the positions, replayed under the snapshot, would be closed by it at once
        cap = as_of - self.feed.clock.error_ms()
        before = {t.key: cap for t in trades}
        before.update({r.key: min(r.exchange_ms or as_of, cap) for r in rows})
        for t in trades:  # the snapshot and this replay account for them
            self.seen_trades[t.trade_id] = t.time_ms
        states = replay(trades, positions, after, before, time.time_ns(), self.leverage)
        for update in states:
            ctx.apply(update)
            self._known(update)
        if states:
            ctx.count("gap_replayed", len(states))
            ctx.log.info("replayed %d position states from %d fills of the gap",
                         len(states), len(trades))

    async def _read_leverage(self) -> None:
        """Best effort: without it positions show no leverage (until a leverage change is
        pushed); nothing delivered depends on it."""
        if "symbolConfig" in self._not_served:
            return
        try:
            self.leverage.update(await self.feed.rest.leverages())
        except (RetryableFeedError, FatalFeedError) as exc:
            if isinstance(exc, NotServed):
                self._not_served.add("symbolConfig")
            self.ctx.count("leverage_unavailable")
            self.ctx.log.warning("symbol leverages not read (positions show none): %s", exc)

    # ----------------------------------------------------------------- data
    def _on_data(self, msg: Any, received_ns: int) -> None:
        ctx = self.ctx
        ctx.message_received(received_ns)
        ctx.count("messages")
        if not isinstance(msg, dict):
            self.feed.report(Problem("malformed", "user-data frame is not an object"), "user")
            return
        if "data" in msg and isinstance(msg.get("data"), dict):  # combined-stream wrapper
            msg = msg["data"]
        kind = msg.get("e")
        if kind == EVENT_EXPIRED:
            exp = expired(msg)
            self.key_gone(f"listenKeyExpired at {exp.event_ms}")
            return
        self.arrivals += 1
        e = msg.get("E")
        if type(e) is int and (self.last_event_ms is None or e > self.last_event_ms):
            self.last_event_ms = e
        if self._buffer is not None:
            self._buffer.append({**msg, "_received_ns": received_ns,
                                 "_arrival": self.arrivals})
            return
        self._handle(msg, received_ns, self.arrivals, live=True)

    def _handle(self, msg: dict[str, Any], received_ns: int, arrival: int,
                live: bool = False) -> None:
        kind = msg.get("e")
        if kind == EVENT_ACCOUNT:
            t = msg.get("T")
            if type(t) is int:
                self.ctx.observe_latency(msg.get("E") if type(msg.get("E")) is int else t,
                                         received_ns)
            updates, problems, _reason = account_update(msg, received_ns, self.leverage,
                                                        self.liq, arrival)
            for p in problems:
                self.feed.report(p, "user")
            if self.hedge is not None and any(
                    (u.position_idx != 0) != self.hedge for u in updates):
                # a side of the other position mode: the mode changed (while flat)
                self.mode_suspect = True
                self._signal(_RESYNC)
            if live and _reason == "ORDER" and self._gap_before(updates):
                self._buffer = [{**msg, "_received_ns": received_ns, "_arrival": arrival}]
                self._signal(_RESYNC)
                return
            for u in updates:
                self._apply(u)
            if updates:
                self.feed.sync_subscriptions()
        elif kind == EVENT_ORDER:
            fill = order_fill(msg)
            if isinstance(fill, Problem):
                self.feed.report(fill, "user")
            elif isinstance(fill, Fill):
                self.ctx.count("fills")
                if fill.trade_id:
                    self.seen_trades[fill.trade_id] = fill.trade_ms
                self._expect(fill)
                if fill.signed_qty:
                    self.fill_ledger.fill(fill.key, fill.trade_ms, fill.signed_qty,
                                          self.last_push_ms.get(fill.key, 0))
                if fill.reduced and self._flat_before(fill):
                    self.unseen.put_nowait(fill)
        elif kind == EVENT_CONFIG:
            lev = config_leverage(msg)
            if isinstance(lev, Problem):
                self.feed.report(lev, "user")
            elif isinstance(lev, Leverage):
                self._new_leverage(lev, msg.get("T"), msg.get("E"), arrival)
        elif kind in IGNORED_EVENTS:
            return
        else:
            self.feed.report(Problem("unexpected_event", f"event {str(kind)[:40]!r}"), "user")

    def _gap_before(self, updates: list[PositionUpdate]) -> bool:
        """Whether a live push's states follow a state lost with the socket up (its fills
        do not account for them, fills.py): then it is held back for a resync in place,
        whose replay of the fills applies the lost states first. Judged only while the
        socket is watched (a resync can be asked for)."""
        wake = self._wake
        if wake is None or wake.done() or self._buffer is not None:
            return False
        positions = self.ctx.positions()
        for u in updates:
            if u.exchange_ms is None or u.exchange_ms <= self.last_push_ms.get(u.key, 0):
                continue  # a copy, or older than the book's: dropped there
            pos = positions.get(u.key)
            before = Decimal(0) if pos is None or pos.side is None else (
                pos.size if pos.side is Side.LONG else -pos.size)
            why = self.fill_ledger.gap(u.key, u.exchange_ms, before, _signed(u))
            # onto a key the book holds flat, a lost lifecycle is recovered from its
            # reducing fill as a past one (unseen_loop): not handed twice
            if why is not None and before != 0:
                self.ctx.count("push_gaps")
                self.ctx.log.warning("%s: a push follows a lost one (%s): resyncing before "
                                     "applying it", u.symbol, why,
                                     extra={"symbol": u.symbol})
                return True
        return False

    def _flat_before(self, fill: Fill) -> bool:
        """Whether the book held ``fill``'s key flat before the fill (by its pushes): a
        fill that reduces a position the book never saw open means its pushes (and
        fills) were lost with the socket up."""
        if fill.key in self.ctx.positions() or self.fills_floor_ms is None:
            return False  # the book holds it (from a push, a snapshot or a replay)
        hist = self._history.get(fill.key)
        if not hist:
            return True
        at = fill.trade_ms * SEQ_PER_MS
        before = [u for u, _late in hist if (u.seq or 0) < at]
        return bool(before) and not before[-1].is_open

    async def unseen_loop(self) -> None:
        """Recover lifecycles whose pushes were lost with the socket up, found by a
        reducing fill on a key the book held flat: the key's fills since its last flat
        push replayed from flat; the lifecycles that ended by the fill go to
        ``ctx.past_lifecycles`` (the router delivers them unless consumers were told)."""
        while True:
            fill = await self.unseen.get()
            hist = self._history.get(fill.key, [])
            flats = [u.exchange_ms for u, _l in hist
                     if not u.is_open and u.exchange_ms is not None
                     and u.exchange_ms < fill.trade_ms]
            since = max([fill.trade_ms - REPLAY_LOOKBACK_MS, *flats,
                         *([self.fills_floor_ms] if self.fills_floor_ms else [])])
            try:
                trades = await self.feed.rest.trades(fill.key.symbol, since + 1)
            except (RetryableFeedError, FatalFeedError) as exc:
                self.ctx.count("gap_replay_failures")
                self.ctx.log.warning("fills of %s not read: a lifecycle lost with the socket "
                                     "up stays unseen: %s", fill.key.symbol, exc)
                continue
            states, amount = lost_lifecycles([t for t in trades if t.key == fill.key
                                              and t.time_ms <= fill.trade_ms],
                                             time.time_ns(), self.leverage)
            # the exchange's push of that fill (it follows the fill, its T within
            # FILL_MATCH_MS of the fill's: two services stamp them): the replay must end
            # where it does. Waited for as long as a push may be late before it counts as
            # missing (then the resync repairs the book and nothing is handed here)
            deadline = time.monotonic() + self.s.fill_confirm_after
            pushed = push_of_fill(self._history.get(fill.key, []), fill.trade_ms)
            while pushed is None and states and time.monotonic() < deadline:
                await asyncio.sleep(0.05)
                pushed = push_of_fill(self._history.get(fill.key, []), fill.trade_ms)
            if not states or pushed is None or _signed(pushed) != amount:
                # the replay from flat does not end where the exchange's push of that
                # fill does (it began inside a lifecycle): nothing is invented
                continue
            if not self._past(states):
                continue
            # the fills up to its close are accounted for: no replay or resync for them
            end = states[-1].exchange_ms or fill.trade_ms
            self.last_push_ms[fill.key] = max(self.last_push_ms.get(fill.key, 0), end)
            pending = self.pending_fills.get(fill.key)
            if pending is not None and pending[0] <= end:
                del self.pending_fills[fill.key]
            self.ctx.count("unseen_lifecycles")
            self.ctx.log.warning("%s: a lifecycle's pushes were lost with the socket up: "
                                 "recovered from its fills as a past lifecycle",
                                 fill.key.symbol, extra={"symbol": fill.key.symbol})

    def _past(self, states: list[PositionUpdate]) -> bool:
        """Hand complete lifecycles of one key to ``ctx.past_lifecycles``, unless one
        handed before overlaps them in exchange time (the late pushes and the fills can
        both find one); True if handed."""
        times = [u.exchange_ms for u in states if u.exchange_ms is not None]
        if not times:
            return False
        key, first, last = states[0].key, min(times), max(times)
        spans = self._past_spans.setdefault(key, [])
        if any(a <= last and first <= b for a, b in spans):
            return False
        try:
            self.ctx.past_lifecycles(states)
        except ValueError:
            return False
        spans.append((first, last))
        del spans[:-_HISTORY_KEPT]
        return True

    def audit_floor(self, as_of: int) -> int | None:
        """How far an audit that found the book in line with its snapshot (taken at
        ``as_of``) may move the fill floor: not past the pushes still on their way."""
        if self.last_event_ms is None:
            return None
        return min(as_of - self.feed.clock.error_ms(), self.last_event_ms - FILL_MATCH_MS)

    async def unseen_fills(self, since_ms: int, upto_ms: int) -> list[Trade]:
        """The account's fills after ``since_ms`` and up to ``upto_ms`` that the book never
        accounted for (no push showed them, no replay read them): a stall that held no
        ping lost their pushes with the socket up, and a lifecycle opened and closed in
        it leaves the book as flat as the exchange - an audit of positions cannot see it
        (F57). Symbols from the income history (every fill pays a commission), else
        every symbol the book knows. Raises what the REST calls raise."""
        rest = self.feed.rest
        symbols = {k.symbol for k in self.ctx.positions()}
        if "income" not in self._not_served:
            try:
                symbols = await rest.income_symbols(since_ms + 1)
            except NotServed:
                self._not_served.add("income")
        out: list[Trade] = []
        for symbol in sorted(symbols):
            out.extend(t for t in await rest.trades(symbol, since_ms + 1)
                       if t.time_ms <= upto_ms and t.trade_id not in self.seen_trades)
        floor = since_ms - REPLAY_LOOKBACK_MS  # forget what no replay reads any more
        for tid in [i for i, ms in self.seen_trades.items() if ms < floor]:
            del self.seen_trades[tid]
        return sorted(out, key=lambda t: (t.time_ms, t.trade_id))

    def resync_for(self, why: str) -> None:
        """Resync in place (the gap replay from the fill floor applies what was lost)."""
        self.ctx.log.warning("%s: resyncing", why)
        self._signal(_RESYNC)

    def repaired(self, keys: Iterable[PositionKey], as_of: int) -> None:
        """An audit set the book's state of ``keys`` from a snapshot the server served at
        ``as_of``: every fill of theirs made before it, less the clock's error, is in
        that state. A later gap replay starts those keys there, as it starts a key the
        book holds at its state's time: replayed onto the repaired state, a fill it
        already reflects (the close of a position the audit found flat, its push lost)
        would count twice - a long out of a short's close (F56)."""
        ms = as_of - self.feed.clock.error_ms()
        for key in keys:
            if ms > self.last_push_ms.get(key, 0):
                self.last_push_ms[key] = ms

    def _known(self, update: PositionUpdate) -> None:
        """Keep a state the book learned other than from a push (a replayed fill's, a
        snapshot's) in its key's history, in order: it bounds the lifecycles the pushes
        show (a late push after it is told apart from the lifecycle it ends or holds),
        and is never itself handed as a late lifecycle."""
        if update.seq is None:
            return
        hist = self._history.setdefault(update.key, [])
        hist.append((update, False))
        hist.sort(key=lambda h: h[0].seq or 0)
        if len(hist) > _HISTORY_KEPT:
            del hist[0]

    def _snapshot_known(self, rows: list[PositionUpdate], as_of: int) -> None:
        """What a reconciled snapshot taught the book, into the keys' histories: each
        row's state, and flat as of the snapshot for every key with a history that the
        snapshot lacks and the book holds flat (a close the pushes never showed: its
        push lost, or made while no socket was up). Flat as of the snapshot's time less
        the clock's error, so no push the snapshot may not reflect sorts before it."""
        for row in rows:
            self._known(row)
        listed = {r.key for r in rows}
        held = self.ctx.positions()
        ms = as_of - self.feed.clock.error_ms()
        for key in list(self._history):
            if key in listed or key in held:
                continue
            self._known(PositionUpdate(
                category=key.category, symbol=key.symbol, position_idx=key.position_idx,
                side=None, size=Decimal(0), seq=ms * SEQ_PER_MS, exchange_ms=ms))

    def _track(self, update: PositionUpdate, applied: bool = False) -> None:
        """Keep a pushed state in its key's history. A push older than the newest state
        of its key (pushed, replayed or snapshot) that the book did not apply is late; a
        late open state between two flat ones, with no state of that
        span having arrived in order, belongs to a lifecycle the book never saw (its
        pushes came after its close and were dropped as stale): it is handed, with the
        other late states of the span and the flat state that ended it, to
        ``ctx.past_lifecycles`` (the router delivers it unless consumers were told)."""
        seq = update.seq
        if seq is None:
            return
        hist = self._history.setdefault(update.key, [])
        late = not applied and bool(hist) and seq < max(h[0].seq or 0 for h in hist)
        hist.append((update, late))
        hist.sort(key=lambda h: h[0].seq or 0)
        if len(hist) > _HISTORY_KEPT:
            del hist[0]
        if not late or not update.is_open:
            return
        i = next(n for n, h in enumerate(hist) if h[0] is update)
        side = update.side
        start, end = i, i
        while start > 0 and hist[start - 1][0].side is side:
            start -= 1
        while end < len(hist) and hist[end][0].side is side:
            end += 1
        if end == len(hist) or (start == 0 and len(hist) >= _HISTORY_KEPT):
            return  # no state after it yet, or what came before is forgotten
        if start > 0 and hist[start - 1][0].is_open:
            return  # it began with a flip from a lifecycle the book held
        if not all(was_late for _u, was_late in hist[start:end]):
            return  # part of it arrived in order: the book saw that lifecycle
        after = hist[end][0]
        if after.is_open:  # a flip ended it: flat as of the flip
            after = after.model_copy(update={
                "side": None, "size": Decimal(0), "entry_price": Decimal(0),
                "leverage": None, "liq_price": None, "mark_price": None,
                "seq": None if after.seq is None else after.seq - 1})
        if not self._past([u for u, _late in hist[start:end]] + [after]):
            return
        self.ctx.count("late_lifecycles")
        self.ctx.log.warning("%s: a lifecycle's pushes arrived after its close: delivered as "
                             "a past lifecycle", update.symbol, extra={"symbol": update.symbol})

    def _apply(self, update: PositionUpdate) -> None:
        key = update.key
        ms = update.exchange_ms or 0
        if ms > self.last_push_ms.get(key, 0):
            self.last_push_ms[key] = ms
        pending = self.pending_fills.get(key)
        if pending is not None and ms >= pending[0] - FILL_MATCH_MS:
            del self.pending_fills[key]
        self._track(update, applied=bool(self.ctx.apply(update)))

    def _expect(self, fill: Fill) -> None:
        if self.last_push_ms.get(fill.key, 0) >= fill.trade_ms - FILL_MATCH_MS:
            return  # its ACCOUNT_UPDATE came first
        if fill.key not in self.pending_fills:
            self.pending_fills[fill.key] = (fill.trade_ms,
                                            time.monotonic() + self.s.fill_confirm_after)

    def _new_leverage(self, lev: Leverage, t: Any, e: Any, arrival: int) -> None:
        self.leverage[lev.symbol] = lev.leverage
        for key, pos in self.ctx.positions().items():
            if key.symbol != lev.symbol or pos.leverage == lev.leverage:
                continue
            ms = t if type(t) is int else None
            if ms is not None and pos.exchange_ms is not None and ms < pos.exchange_ms:
                continue
            seq = None if ms is None else push_seq(ms, e if type(e) is int else None, arrival)
            if seq is not None and pos.seq is not None and seq <= pos.seq:
                seq = pos.seq + 1  # after the state of its millisecond it changes
            self.ctx.apply(PositionUpdate(
                category=pos.category, symbol=pos.symbol, position_idx=pos.position_idx,
                side=pos.side, size=pos.size, entry_price=pos.entry_price,
                leverage=lev.leverage, liq_price=pos.liq_price, seq=seq, exchange_ms=ms))

    def details(self) -> dict[str, Any]:
        conn = self.conn
        return {
            "connected": bool(conn and conn.alive),
            "age_s": round(conn.age(), 3) if conn else None,
            "listen_key": None if self.listen_key is None else f"...{self.listen_key[-4:]}",
            "buffering": self._buffer is not None,
            "hedge_mode": self.hedge,
            "pending_fills": len(self.pending_fills),
        }
