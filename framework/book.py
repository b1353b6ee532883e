"""PositionBook: the merged state of one feed's account, and the events it implies.

A feed hands the book lifecycle states (:class:`PositionUpdate`) and mark prices
(:class:`MarkPrice`). The book

* keeps one view per :class:`PositionKey` (category, symbol, position index);
* drops duplicates and stale reorders: an update older than what the book holds
  (by ``seq``, else by ``exchange_ms``) is ignored, and an update whose lifecycle
  fields equal what the book holds produces no event;
* emits exactly one ``opened`` and one ``closed`` per lifecycle; a flip (long to
  short in one update) is ``closed`` then ``opened``;
* recomputes unrealised PnL on every mark price:
  linear ``(mark - entry) * size``, inverse ``size * (1/entry - 1/mark)`` (in the
  base coin), sign-flipped for shorts.

The book never raises on odd input from a feed; it counts it in :attr:`counters`.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from decimal import Decimal
from typing import NamedTuple

from .models import (
    Category,
    EventKind,
    MarkPrice,
    Position,
    PositionEvent,
    PositionKey,
    PositionUpdate,
    Side,
    now_ns,
    position_event,
    price_event,
    trusted_mark,
)

#: Fields whose change makes a ``changed`` event (mark price changes make ``price``).
LIFECYCLE_FIELDS: tuple[str, ...] = (
    "size",
    "entry_price",
    "leverage",
    "liq_price",
    "take_profit",
    "stop_loss",
    "trailing_stop",
)

_ZERO = Decimal(0)
_ONE = Decimal(1)
_LINEAR = Category.LINEAR
_LONG = Side.LONG
_PRICE = EventKind.PRICE
_tuple_new = tuple.__new__


class _Mark(NamedTuple):
    """A mark as the book's hot path keeps it: :class:`MarkPrice`'s fields, read by
    the same names, without building a model per ticker."""

    category: Category
    symbol: str
    mark_price: Decimal
    exchange_ms: int | None
    received_ns: int


def unrealised_pnl(
    category: Category, side: Side, size: Decimal, entry: Decimal, mark: Decimal | None
) -> Decimal | None:
    """Unrealised PnL of a position at ``mark``; None when it cannot be computed
    (including absurd magnitudes that overflow the decimal context)."""
    if mark is None or size <= 0:
        return None
    try:
        if category is Category.INVERSE:
            if entry <= 0 or mark <= 0:
                return None
            pnl = size * (_ONE / entry - _ONE / mark)
        else:
            pnl = (mark - entry) * size
    except ArithmeticError:
        return None
    return pnl if side is Side.LONG else -pnl


class PositionBook:
    """Merged positions of one feed. Not thread-safe; use from one event loop."""

    def __init__(
        self,
        *,
        exchange: str,
        account: str,
        feed: str,
        emit: Callable[[PositionEvent], None] | None = None,
    ) -> None:
        self.exchange = exchange
        self.account = account
        self.feed = feed
        self._emit = emit
        #: Called, if set, instead of ``emit`` with a price event of the hot path and
        #: its position's key (the session sets the router's ``Router.on_price``).
        self.emit_price: Callable[[PositionEvent, PositionKey], None] | None = None
        self.positions: dict[PositionKey, Position] = {}
        # newest (seq, exchange_ms) seen per key, kept after a close to reject stale replays
        self._versions: dict[PositionKey, tuple[int | None, int | None]] = {}
        #: (category, symbol) -> its newest mark: a MarkPrice, or a :class:`_Mark` (the
        #: same fields, as the hot path stores it; :meth:`mark` returns a MarkPrice)
        self._marks: dict[tuple[Category, str], MarkPrice | _Mark] = {}
        self._by_symbol: dict[tuple[Category, str], set[PositionKey]] = {}
        self._lifecycles: dict[PositionKey, int] = {}
        self._event_seq = 0
        #: Exchange time (ms) of the newest complete snapshot reconciled into the book.
        self.reconciled_as_of_ms: int | None = None
        #: Wall-clock ns the book last reconciled a complete snapshot; None until its
        #: first: until then the book's positions are *unknown*, not flat.
        self.synced_ns: int | None = None
        #: Exchange time (ms) at which each key was last seen flat.
        self.flat_ms: dict[PositionKey, int] = {}
        #: The scope of the newest reconciled snapshot (None: the whole account): only
        #: keys inside it are known flat as of :attr:`reconciled_as_of_ms`.
        self._covers: Callable[[PositionKey], bool] | None = None
        #: Called with a new mark of a symbol this book holds no position of (the router
        #: routes it to what consumers hold from another feed).
        self.on_free_mark: Callable[[MarkPrice], None] | None = None
        self.counters: dict[str, int] = {
            "updates": 0,
            "stale_dropped": 0,
            "duplicates_dropped": 0,
            "marks": 0,
            "marks_dropped": 0,
        }

    # ------------------------------------------------------------------ queries
    def open_symbols(self) -> set[tuple[Category, str]]:
        """(category, symbol) of every open position: what needs a price stream."""
        return {k for k, keys in self._by_symbol.items() if keys}

    def known_flat_as_of(self, key: PositionKey) -> int | None:
        """Exchange time (ms) up to which this book knows ``key`` is flat, if it is."""
        if key in self.positions:
            return None
        snapshot = self.reconciled_as_of_ms
        if snapshot is not None and self._covers is not None and not self._covers(key):
            snapshot = None  # the snapshot never listed this key: it proves nothing
        times = [t for t in (snapshot, self.flat_ms.get(key)) if t is not None]
        return max(times) if times else None

    def knows_flat_after(self, key: PositionKey, ms: int) -> bool:
        """True if this book knows ``key`` was flat at some moment after exchange time
        ``ms``: a close of it at or after ``ms``, or a snapshot covering it taken later
        (one of the same millisecond may predate a state of that millisecond)."""
        if key in self.positions:
            return False
        closed = self.flat_ms.get(key)
        if closed is not None and closed >= ms:
            return True
        snapshot = self.reconciled_as_of_ms
        covered = self._covers is None or self._covers(key)
        return snapshot is not None and covered and snapshot > ms

    def mark(self, category: Category, symbol: str) -> MarkPrice | None:
        m = self._marks.get((category, symbol))
        if type(m) is _Mark:  # kept by the hot path as a tuple: made a MarkPrice once
            m = self._marks[(category, symbol)] = trusted_mark(*m)
        return m  # type: ignore[return-value]

    def get(self, key: PositionKey) -> Position | None:
        return self.positions.get(key)

    # ------------------------------------------------------------------ inputs
    def apply(self, update: PositionUpdate) -> list[PositionEvent]:
        """Merge one lifecycle state; return (and emit) the events it implies."""
        self.counters["updates"] += 1
        key = update.key
        verdict = self._version_verdict(key, update)
        flat_ms = self.flat_ms.get(key)
        if (verdict != "stale" and update.is_open and key not in self.positions
                and flat_ms is not None and update.exchange_ms is not None
                and update.exchange_ms < flat_ms):
            # an open state from before the time the book knows the key was flat (e.g. a
            # delayed push behind a snapshot that closed it): newer seq, but stale
            verdict = "stale"
        if verdict == "stale":
            self.counters["stale_dropped"] += 1
            return []
        self._versions[key] = (
            update.seq if update.seq is not None else self._versions.get(key, (None, None))[0],
            update.exchange_ms
            if update.exchange_ms is not None
            else self._versions.get(key, (None, None))[1],
        )
        if update.mark_price is not None and update.mark_price > 0:
            self._offer_mark(
                MarkPrice(
                    category=update.category,
                    symbol=update.symbol,
                    mark_price=update.mark_price,
                    exchange_ms=update.exchange_ms,
                    received_ns=update.received_ns,
                )
            )
        current = self.positions.get(key)
        events: list[PositionEvent] = []
        if current is None:
            if update.is_open and verdict != "same":
                events.append(self._open(update))
            elif verdict == "same":
                # a copy of a state the book already moved past (e.g. closed by a complete
                # snapshot): never reopen from it
                self.counters["duplicates_dropped"] += 1
        elif not update.is_open:
            events.append(self._close(current, update))
        elif update.side is not current.side:
            events.append(self._close(current, update))
            events.append(self._open(update))
        else:
            changes = tuple(f for f in LIFECYCLE_FIELDS if _differs(current, update, f))
            if changes:
                events.append(self._change(current, update, changes))
            else:
                self.counters["duplicates_dropped"] += 1
        for ev in events:
            self._send(ev)
        return events

    def apply_mark(self, mark: MarkPrice) -> list[PositionEvent]:
        """Merge a mark price; emit a ``price`` event per open position whose mark moved
        (see :meth:`apply_mark_price`)."""
        return self.apply_mark_price(mark.category, mark.symbol, mark.mark_price,
                                     mark.exchange_ms, mark.received_ns, mark)

    def apply_mark_price(self, category: Category, symbol: str, price: Decimal,
                         ms: int | None, received: int, mark: MarkPrice | None = None,
                         ) -> list[PositionEvent]:
        """:meth:`apply_mark` from the mark's values (``price`` a positive, finite
        Decimal the feed has checked), without a :class:`MarkPrice` unless one is needed
        (a symbol watched for consumers only): the hot path of every feed.

        Written for speed, with the same rules as :meth:`_offer_mark`. The book keeps
        the mark as a :class:`_Mark` (a tuple with MarkPrice's fields; :meth:`mark`
        returns a MarkPrice). A price event's position is the held one with only the
        mark, PnL and receive-time fields replaced.
        """
        counters = self.counters
        counters["marks"] += 1
        sym = (category, symbol)
        marks = self._marks
        old = marks.get(sym)
        if old is not None:
            oms = old.exchange_ms
            if (ms is not None and oms is not None and ms < oms) or (
                    oms == ms and old.mark_price == price):
                counters["marks_dropped"] += 1
                return []
        marks[sym] = mark if mark is not None else _tuple_new(
            _Mark, (category, symbol, price, ms, received))
        keys = self._by_symbol.get(sym)
        if not keys:
            if self.on_free_mark is not None:  # a symbol watched for consumers only
                self.on_free_mark(mark if mark is not None else trusted_mark(
                    category, symbol, price, ms, received))
            return []
        events = []
        positions = self.positions
        emit = self._emit
        emit_price = self.emit_price
        feed = self.feed
        for key in keys if len(keys) == 1 else tuple(keys):
            data = positions[key].__dict__
            if data["mark_price"] == price:
                continue
            size = data["size"]
            if data["category"] is _LINEAR and size > _ZERO:  # unrealised_pnl, inlined
                # (a Decimal compared with a Decimal: twice as fast as with the int 0)
                try:
                    pnl: Decimal | None = (price - data["entry_price"]) * size
                except ArithmeticError:
                    pnl = None
                else:
                    if data["side"] is not _LONG:
                        pnl = -pnl  # type: ignore[operator]
            else:
                pnl = unrealised_pnl(data["category"], data["side"], size, data["entry_price"],
                                     price)
            data = data.copy()  # a clone: faster than {**data, ...}
            data["mark_price"] = price
            data["unrealised_pnl"] = pnl
            data["mark_exchange_ms"] = ms
            data["mark_received_ns"] = data["received_ns"] = received
            self._event_seq += 1
            ev = price_event(feed, data, self._event_seq)
            positions[key] = ev.position
            events.append(ev)
            if emit_price is not None:
                emit_price(ev, key)
            elif emit is not None:
                emit(ev)
        return events

    def reconcile(
        self, snapshot: Iterable[PositionUpdate], *, as_of_ms: int | None = None,
        covers: Callable[[PositionKey], bool] | None = None,
        listed_at: Callable[[PositionKey], int | None] | None = None,
    ) -> list[PositionEvent]:
        """Make the book match a *complete* snapshot of the account, or of the part of
        it the snapshot covers.

        Every row is applied like an update (stale rows are ignored). A position the
        book holds but the snapshot lacks is closed — unless the book's view is newer
        than the snapshot (``exchange_ms > as_of_ms``), i.e. a push arrived after the
        snapshot was taken - or as old: exchange times are whole milliseconds, and a
        state of the snapshot's own millisecond cannot be ordered against it - or the
        snapshot does not cover it: ``covers(key)`` says
        whether the snapshot would have listed ``key`` (the categories, settle coins or
        symbols it asked for; None: everything). A key outside that scope is neither
        closed nor known flat from this snapshot. Only call this with a snapshot whose
        pagination was followed to its end.

        ``as_of_ms`` is the exchange time of the snapshot's first answer. A snapshot read
        in several listings (one per category, say) may tell, with ``listed_at(key)``,
        the time of the answer that would have listed ``key``: a key it lacks was flat
        then, so its close carries that time (never one before ``as_of_ms``), not the
        first answer's, which may predate the position's last states.
        """
        events: list[PositionEvent] = []
        seen: set[PositionKey] = set()
        for row in snapshot:
            seen.add(row.key)
            events.extend(self.apply(row))
        # advertised only now: a reader woken by one row's event must not take a later
        # row of this snapshot for flat
        if as_of_ms is not None:
            self.reconciled_as_of_ms = max(as_of_ms, self.reconciled_as_of_ms or 0)
        self._covers = covers
        for key, pos in list(self.positions.items()):
            if key in seen or (covers is not None and not covers(key)):
                continue
            at = as_of_ms
            if listed_at is not None:
                listed = listed_at(key)
                if listed is not None and (at is None or listed > at):
                    at = listed
            if at is not None and pos.exchange_ms is not None and pos.exchange_ms >= at:
                continue  # not older than the snapshot: a state of its own millisecond
                # may be missing from it (a fill just after the rows were read)
            flat = PositionUpdate(
                category=key.category,
                symbol=key.symbol,
                position_idx=key.position_idx,
                side=None,
                size=_ZERO,
                exchange_ms=at,
            )
            ev = self._close(pos, flat)
            events.append(ev)
            self._send(ev)
        self.synced_ns = now_ns()
        return events

    def past_lifecycles(self, states: Iterable[PositionUpdate]) -> list[PositionEvent]:
        """Emit lifecycles that began and ended *before* the book's current state of
        their key — history a feed recovered late (fills of states lost with the socket
        up, overtaken by a newer push): ``states`` in order, from flat, each lifecycle
        ending flat. Events are ``past`` (docs/events.md); the book's positions, versions
        and flat times are untouched. Returns the events (also emitted)."""
        events: list[PositionEvent] = []
        cur: Position | None = None
        for u in states:
            if u.side is not None and u.size > 0:
                if cur is not None and cur.side is not u.side:
                    events.append(self._past(EventKind.CLOSED, cur, u))
                    cur = None
                if cur is None:
                    cur = Position(
                        exchange=self.exchange, account=self.account, feed=self.feed,
                        category=u.category, symbol=u.symbol, position_idx=u.position_idx,
                        side=u.side, size=u.size, entry_price=u.entry_price,
                        leverage=u.leverage, seq=u.seq, exchange_ms=u.exchange_ms,
                        received_ns=u.received_ns, lifecycle=0)
                    events.append(self._past(EventKind.OPENED, cur, None))
                else:
                    cur = cur.model_copy(update={"size": u.size, "entry_price": u.entry_price,
                                                 "seq": u.seq, "exchange_ms": u.exchange_ms,
                                                 "received_ns": u.received_ns})
                    events.append(self._past(EventKind.CHANGED, cur, None, ("size",)))
            elif cur is not None:
                events.append(self._past(EventKind.CLOSED, cur, u))
                cur = None
        if cur is not None:
            raise ValueError("a past lifecycle must end flat")
        for ev in events:
            self._send(ev)
        return events

    def split(self, key: PositionKey, close: PositionUpdate, opened: PositionUpdate
              ) -> list[PositionEvent]:
        """The position the book holds for ``key`` was two lifecycles: the stream lost the
        close (``close``: its seq and exchange time) and the reopen (``opened``: the later
        lifecycle's first state) between two states it delivered as one lifecycle (pushes
        lost with the socket up, recovered from fills). Emits the ``closed`` of the
        earlier one as of ``close``, then the ``opened`` of the one the book holds, at
        its current state; the book's state is untouched but for its lifecycle number.
        Returns the events (also emitted); none if the book holds no open position of
        ``key``, or ``close`` and ``opened`` are not in order before its state.
        """
        cur = self.positions.get(key)
        if (cur is None or close.seq is None or cur.seq is None
                or not 0 <= close.seq < cur.seq
                or (opened.seq is not None and not close.seq <= opened.seq <= cur.seq)):
            return []
        closed = self._past(EventKind.CLOSED, cur, close).model_copy(update={"past": False})
        lifecycle = self._lifecycles.get(key, 0) + 1
        self._lifecycles[key] = lifecycle
        first = cur.model_copy(update={"lifecycle": lifecycle})
        self.positions[key] = first
        reopened = self._event(EventKind.OPENED, first)
        events = [closed, reopened]
        for ev in events:
            self._send(ev)
        return events

    def _past(self, kind: EventKind, pos: Position, closing: PositionUpdate | None,
              changes: tuple[str, ...] = ()) -> PositionEvent:
        if closing is not None:
            pos = pos.model_copy(update={"seq": closing.seq, "exchange_ms": closing.exchange_ms,
                                         "received_ns": closing.received_ns})
        ev = self._event(kind, pos, changes)
        return ev.model_copy(update={"past": True})

    # ------------------------------------------------------------------ internals
    def _version_verdict(self, key: PositionKey, update: PositionUpdate) -> str:
        last = self._versions.get(key)
        if last is None:
            return "new"
        lseq, lms = last
        if update.seq is not None and lseq is not None and update.seq >= 0 and lseq >= 0:
            if update.seq < lseq:
                return "stale"
            if (update.seq == lseq and update.exchange_ms is not None and lms is not None
                    and update.exchange_ms < lms):
                # one seq, an older time: a state from before a settings change the
                # book has (an exchange keeps the seq through one)
                return "stale"
            if update.seq == lseq and update.is_open and key not in self.positions and (
                    update.exchange_ms is not None and lms is not None
                    and update.exchange_ms > lms):
                # the state the book closed, updated later (an exchange may keep the seq
                # through a settings change): the position lives on - the close was wrong (a
                # snapshot row, say, proves it open after the time the book saw it flat)
                return "newer"
            return "same" if update.seq == lseq else "newer"
        if update.exchange_ms is not None and lms is not None:
            if update.exchange_ms < lms:
                return "stale"
            return "same" if update.exchange_ms == lms else "newer"
        return "unknown"

    def _offer_mark(self, mark: MarkPrice) -> bool:
        """Store ``mark`` if it is not older than the stored one; True if stored and new."""
        sym = (mark.category, mark.symbol)
        old = self._marks.get(sym)
        if old is not None:
            if (
                mark.exchange_ms is not None
                and old.exchange_ms is not None
                and mark.exchange_ms < old.exchange_ms
            ):
                return False
            if old.mark_price == mark.mark_price and old.exchange_ms == mark.exchange_ms:
                return False
        self._marks[sym] = mark
        return True

    def _mark_fields(self, category: Category, symbol: str, side: Side, size: Decimal,
                     entry: Decimal) -> dict[str, object]:
        m = self._marks.get((category, symbol))
        if m is None:
            return {"mark_price": None, "unrealised_pnl": None}
        return {
            "mark_price": m.mark_price,
            "unrealised_pnl": unrealised_pnl(category, side, size, entry, m.mark_price),
            "mark_exchange_ms": m.exchange_ms,
            "mark_received_ns": m.received_ns,
        }

    def _open(self, u: PositionUpdate) -> PositionEvent:
        assert u.side is not None
        key = u.key
        lifecycle = self._lifecycles.get(key, 0) + 1
        self._lifecycles[key] = lifecycle
        pos = Position(
            exchange=self.exchange,
            account=self.account,
            feed=self.feed,
            category=u.category,
            symbol=u.symbol,
            position_idx=u.position_idx,
            side=u.side,
            size=u.size,
            entry_price=u.entry_price,
            leverage=u.leverage,
            liq_price=u.liq_price,
            take_profit=u.take_profit,
            stop_loss=u.stop_loss,
            trailing_stop=u.trailing_stop,
            seq=u.seq,
            exchange_ms=u.exchange_ms,
            received_ns=u.received_ns,
            lifecycle=lifecycle,
            **self._mark_fields(u.category, u.symbol, u.side, u.size, u.entry_price),
        )
        self.positions[key] = pos
        self._by_symbol.setdefault((u.category, u.symbol), set()).add(key)
        return self._event(EventKind.OPENED, pos)

    def _change(self, cur: Position, u: PositionUpdate, changes: tuple[str, ...]) -> PositionEvent:
        assert u.side is not None
        pos = cur.model_copy(
            update={
                "size": u.size,
                "entry_price": u.entry_price,
                "leverage": u.leverage,
                "liq_price": u.liq_price,
                "take_profit": u.take_profit,
                "stop_loss": u.stop_loss,
                "trailing_stop": u.trailing_stop,
                "seq": u.seq,
                "exchange_ms": u.exchange_ms,
                "received_ns": u.received_ns,
                **self._mark_fields(u.category, u.symbol, u.side, u.size, u.entry_price),
            }
        )
        self.positions[cur.key] = pos
        return self._event(EventKind.CHANGED, pos, changes)

    def _close(self, cur: Position, u: PositionUpdate) -> PositionEvent:
        m = self._marks.get((cur.category, cur.symbol))
        update: dict[str, object] = {
            "seq": u.seq if u.seq is not None else cur.seq,
            "exchange_ms": u.exchange_ms if u.exchange_ms is not None else cur.exchange_ms,
            "received_ns": u.received_ns,
        }
        if m is not None:
            update["mark_price"] = m.mark_price
            update["unrealised_pnl"] = unrealised_pnl(
                cur.category, cur.side, cur.size, cur.entry_price, m.mark_price
            )
        pos = cur.model_copy(update=update)
        del self.positions[cur.key]
        if u.exchange_ms is not None:
            self.flat_ms[cur.key] = max(u.exchange_ms, self.flat_ms.get(cur.key, 0))
        keys = self._by_symbol.get((cur.category, cur.symbol))
        if keys is not None:
            keys.discard(cur.key)
            if not keys:
                del self._by_symbol[(cur.category, cur.symbol)]
        return self._event(EventKind.CLOSED, pos)

    def _event(
        self, kind: EventKind, pos: Position, changes: tuple[str, ...] = ()
    ) -> PositionEvent:
        self._event_seq += 1
        return position_event(kind, self.feed, pos, changes, self._event_seq)

    def _send(self, ev: PositionEvent) -> None:
        if self._emit is not None:
            self._emit(ev)


def _differs(cur: Position, u: PositionUpdate, field: str) -> bool:
    a, b = getattr(cur, field), getattr(u, field)
    if a is None or b is None:
        return (a is None) != (b is None)
    return bool(a != b)
