"""Router: which feed's events reach consumers.

Roles (design.md): the *primary*'s events are delivered; a *standby* takes over when
the primary has been unhealthy for ``failover_after`` seconds (and the standby is
healthy), and hands back once the primary has been healthy for ``failback_after``
(doubled for each flap — a failover within ``flap_window`` of the last failback — up
to ``failback_max``);
*shadow* feeds are only compared with the primary (validator), never delivered.

Across a switch the router reconciles what consumers were last told with the new
feed's book, emitting synthetic ``opened``/``changed``/``price``/``closed`` events so
that consumers see no duplicate ``opened``/``closed`` and no position vanishes
without a ``closed``:

* a position the new feed has and consumers do not: ``opened``; one both have but
  differently: ``changed`` (or ``price``);
* a position consumers have and the new feed lacks is closed only once the new feed
  *knows* it is flat at a time not older than what consumers were told (its last
  complete snapshot, or its own close of that key, by exchange time). A polling
  standby whose last snapshot predates the position leaves it open ("pending") until
  its next snapshot says otherwise.

Every event of the delivering feed then passes a guard against what consumers were
told, so an ``opened`` for a position consumers already hold becomes a ``changed``
(or nothing), and a ``closed`` for one they never saw is dropped. An event carrying an
*older* state than consumers hold (a lagging feed's, by seq, else exchange time) never
takes them back: a ``price`` moves the mark of what they hold, a ``closed`` closes it
only once that feed knows the key flat as of a time not older than it, anything else
is dropped. A ``price`` event of another feed than the one whose state consumers hold,
when neither seq nor exchange time orders the two states (a poller whose rows carry
neither), only moves their mark: it never re-delivers that feed's state. A state
without exchange time is, at the latest, as old as the moment it was received: older
than a close or a state consumers were told with a later exchange time.

A lifecycle the primary recovers that lies wholly *before* what consumers hold for its
key (its ``opened`` older than their last close, or than the later lifecycle they hold:
one the standby's polls never saw) is held until the primary closes it, then delivered
as ``past`` events (``recovered`` too) unless a lifecycle consumers were told had a
state inside its span of exchange time. It never touches the key's current position.
A lifecycle consumers hold from a poller's rows without time was read open when its
open row was received: what the primary recovers from before that receipt is no newer
than what they hold - a close then is an earlier lifecycle's, a same-side open then may
be one (held as above), the other side then does not flip them back.
"""

from __future__ import annotations

import logging
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field

from .book import LIFECYCLE_FIELDS, PositionBook, unrealised_pnl
from .models import (
    Category,
    EventKind,
    FeedState,
    MarkPrice,
    Position,
    PositionEvent,
    PositionKey,
    RouteEvent,
    Side,
    StatusEvent,
)
from .settings import Role

log = logging.getLogger("feedctl.router")
_PRICE = EventKind.PRICE


@dataclass
class _Health:
    state: FeedState = FeedState.STARTING
    since: float = field(default_factory=time.monotonic)


class Router:
    """Routes events of the feeds of one session by role."""

    def __init__(
        self,
        roles: dict[str, Role],
        books: dict[str, PositionBook],
        *,
        deliver: Callable[[object], None],
        deliver_price: Callable[[PositionEvent, PositionKey], None] | None = None,
        on_shadow: Callable[[str, PositionEvent], None] | None = None,
        failover_after: float = 1.0,
        failback_after: float = 3.0,
        failback_max: float = 60.0,
        flap_window: float = 120.0,
        clock: Callable[[], float] = time.monotonic,
        account: str = "",
    ) -> None:
        primaries = [n for n, r in roles.items() if r is Role.PRIMARY]
        standbys = [n for n, r in roles.items() if r is Role.STANDBY]
        if len(primaries) != 1:
            raise ValueError(f"exactly one primary feed is needed, got {primaries}")
        if len(standbys) > 1:
            raise ValueError(f"at most one standby feed is allowed, got {standbys}")
        self.roles = dict(roles)
        #: The account whose feeds these are (its route events name it).
        self.account = account
        self.primary = primaries[0]
        self.standby = standbys[0] if standbys else None
        self.shadows = [n for n, r in roles.items() if r is Role.SHADOW]
        self.books = books
        self.active = self.primary
        self._deliver = deliver
        #: ``deliver`` for a price event of the hot path, with its position's key
        self._deliver_price = deliver_price
        self._on_shadow = on_shadow
        self.failover_after = failover_after
        self.failback_after = failback_after
        self.failback_max = max(failback_max, failback_after)
        self.flap_window = flap_window
        #: The wait before the next failback: ``failback_after``, doubled per flap.
        self.failback_wait = failback_after
        self._last_failback_at: float | None = None
        self._clock = clock
        self._health = {name: _Health(since=clock()) for name in roles}
        #: What consumers were last told, per position key.
        self.delivered: dict[PositionKey, Position] = {}
        #: The keys of ``delivered`` per (category, symbol): a mark is the symbol's, so a
        #: feed's mark moves consumers' positions of the symbol its book does not hold
        #: too (_spread_mark, on_free_mark). ``_multi`` counts the symbols consumers
        #: hold two or more positions of (a two-sided account).
        self._by_symbol: dict[tuple[Category, str], set[PositionKey]] = {}
        self._multi = 0
        self.switches: list[RouteEvent] = []
        #: Keys consumers hold that the active feed lacks but cannot yet call flat.
        self.pending_orphans: set[PositionKey] = set()
        #: Exchange time (ms) of the last close consumers were told, per key: a feed's
        #: open state not newer than that is stale and is never delivered as an open.
        self._closed_ms: dict[PositionKey, int] = {}
        #: Per key, the receipt (ms) of the timeless snapshot a synthetic close about to
        #: be sent rests on (``_closing``): the key was flat by then (F55)
        self._flat_by_ms: dict[PositionKey, int] = {}
        #: Per key, the events of a lifecycle of the primary that lies before what
        #: consumers hold, held until its close completes it (see the module docstring).
        self._past: dict[PositionKey, list[PositionEvent]] = {}
        #: Per (feed, key), a past lifecycle the feed itself delivers, until its close.
        self._fed_past: dict[tuple[str, PositionKey], list[PositionEvent]] = {}
        #: Per key, the exchange times (ms) of the open states consumers were told of
        #: the lifecycle they hold, and the (first, last) of the last ones they saw closed.
        self._open_states: dict[PositionKey, list[int]] = {}
        #: Keys closed by a split of a merged lifecycle, awaiting the later one's open:
        #: the state consumers held, and when to reopen it if no open came.
        self._reopen: dict[PositionKey, tuple[Position, float]] = {}
        self._spans: dict[PositionKey, deque[tuple[int, int, Side]]] = {}
        #: Per key, (side, seq) of the opening state of each lifecycle consumers were
        #: told of (the exchange's seq names a state: a past lifecycle opening at one of
        #: them is that lifecycle, however its feeds' exchange times differ).
        self._opened_seqs: dict[PositionKey, deque[tuple[Side, int]]] = {}
        #: Per key, exchange times (ms) a feed saw it flat (its closes, routed or not):
        #: what tells a merged lifecycle from one seen at different states.
        self._flats: dict[PositionKey, deque[int]] = {}
        self.counters = {"failovers": 0, "failbacks": 0, "delivered": 0, "guarded": 0,
                         "recovered": 0, "marks_superseded": 0, "past_lifecycles": 0,
                         "free_marks": 0,
                         "merged_split": 0, "merged_past": 0}
        #: True while a recovered event of the primary is being delivered.
        self._recovering = False
        #: Per (feed, key), when the feed's state of a position without exchange time (a
        #: poller's row) was received: a price event refreshes the position's
        #: ``received_ns`` with its mark's, which says nothing of the state's age.
        self._state_rx: dict[tuple[str, PositionKey], int] = {}
        #: Per key, when the open of the lifecycle consumers hold was received, if it
        #: came without exchange time: at its close, the span (its open was made at the
        #: latest then) that a past lifecycle a feed recovers overlaps when it is this one.
        self._timeless_open_ms: dict[PositionKey, int] = {}
        #: Per key, (side, seq) of the opening state of the lifecycle consumers hold now.
        self._holding_open: dict[PositionKey, tuple[Side, int]] = {}

    # ---------------------------------------------------------------- inputs
    def on_event(self, feed: str, event: PositionEvent) -> None:
        if event.kind is _PRICE:
            self.on_price(feed, event, event.position.key)
        else:
            self._route(feed, event)

    def on_price(self, feed: str, event: PositionEvent, key: PositionKey) -> None:
        """:meth:`on_event` for a ``price`` event, with its position's key (a book's hot
        path has it at hand)."""
        told = self.delivered.get(key)
        if (not event.past and (told is None or self._multi)):
            self._spread_mark(feed, event.position)
        if (told is not None and feed == self.active and not self._recovering
                and not event.past):
            # the hot path: a price of the delivering feed for a position consumers hold
            # at a state not newer than this one's - the general path (_route) would only
            # check that and send it. Anything else takes the general path.
            pos = event.position
            p, t = pos.__dict__, told.__dict__
            ms = p["exchange_ms"]
            superseded: bool | None = None  # None: the general path
            if (t["seq"] == p["seq"] and t["exchange_ms"] == ms and t["feed"] == p["feed"]
                    and t["side"] is p["side"]):
                # the very state consumers hold, at a new mark (a book's price event):
                # neither older nor unordered; only the marks' ages remain to compare
                tm, pm = t["mark_exchange_ms"], p["mark_exchange_ms"]
                superseded = (tm > pm if tm is not None and pm is not None
                              else _mark_newer(told, pos))
            elif (told.side is pos.side and not self._older(pos, told)
                    and (pos.feed == told.feed or not self._unordered(pos, told))):
                superseded = _mark_newer(told, pos)
            if superseded:
                self.counters["marks_superseded"] += 1
                return
            if superseded is not None:
                states = self._open_states.get(key) if ms is not None else None
                if ms is None or (states is not None and states[-1] == ms):
                    # _send for a price of a state consumers were told of, inlined
                    self.delivered[key] = pos
                    self.counters["delivered"] += 1
                    deliver_price = self._deliver_price
                    if deliver_price is not None:
                        deliver_price(event, key)
                    else:
                        self._deliver(event)
                else:
                    self._send(event)
                if self.pending_orphans:
                    self._settle_orphans()
                return
        self._route(feed, event)

    def _route(self, feed: str, event: PositionEvent) -> None:
        """Every event but the prices :meth:`on_price`'s hot path takes."""
        if event.kind is not _PRICE and event.position.exchange_ms is None:
            if event.kind is EventKind.CLOSED:
                self._state_rx.pop((feed, event.position.key), None)
            else:
                self._state_rx[(feed, event.position.key)] = event.position.received_ns
        if event.kind is EventKind.CLOSED and event.position.exchange_ms is not None:
            flats = self._flats.get(event.position.key)
            if flats is None:
                flats = self._flats[event.position.key] = deque(maxlen=_SPANS_KEPT)
            flats.append(event.position.exchange_ms)
        if event.past:
            if feed == self.primary or feed == self.standby:
                self._feed_past(feed, event)
            return
        if feed == self.primary and self._past_lifecycle(event):
            return
        if feed == self.active:
            if event.kind is EventKind.PRICE:
                told = self.delivered.get(event.position.key)
                if told is not None and _mark_newer(told, event.position):
                    # consumers hold a fresher mark (from the other delivering feed)
                    self.counters["marks_superseded"] += 1
                    return
            self._guarded(event)
            if self.pending_orphans:
                self._settle_orphans()
        elif feed == self.primary or feed == self.standby:
            self._inactive_event(feed, event)
        elif self._on_shadow is not None and feed in self.shadows:
            self._on_shadow(feed, event)

    def on_free_mark(self, feed: str, mark: MarkPrice) -> None:
        """A mark of a symbol ``feed``'s book holds no position of (it streams it because
        consumers hold it, delivered from the other feed): newer than what consumers
        hold, it moves their mark — the primary's public socket keeps prices live for a
        position only the standby has seen open."""
        if feed != self.primary and feed != self.standby:
            return
        held = [self.delivered.get(k)
                for k in self._by_symbol.get((mark.category, mark.symbol), ())]
        for told in held:
            if told is None or told.mark_price == mark.mark_price:
                continue
            newer = (mark.exchange_ms > told.mark_exchange_ms
                     if mark.exchange_ms is not None and told.mark_exchange_ms is not None
                     else mark.received_ns > (told.mark_received_ns or 0))
            if newer:
                self.counters["free_marks"] += 1
                self._send(_synthetic(EventKind.PRICE, feed, _marked(told, mark)))

    def _spread_mark(self, feed: str, pos: Position) -> None:
        """``pos``'s mark, newer than what consumers hold, to their other positions of its
        symbol that ``feed``'s book does not hold (it moves those itself): a hedge side
        delivered from the standby keeps the primary's live marks of the other side, and
        so does a side the standby saw flip while the primary's book still holds the old
        one. (Called when consumers hold two or more positions of a symbol, or none at
        ``pos``'s key: otherwise they hold ``pos``'s key alone, if anything.)"""
        keys = self._by_symbol.get((pos.category, pos.symbol))
        if not keys or pos.mark_price is None:
            return
        book = self.books.get(feed)
        held = book.positions if book is not None else {}
        for key in [k for k in keys if k != pos.key and k not in held]:
            told = self.delivered.get(key)
            if (told is not None and told.mark_price != pos.mark_price
                    and _mark_newer(pos, told)):
                self.counters["free_marks"] += 1
                self._send(_synthetic(EventKind.PRICE, feed, _remarked(told, pos)))

    def _held(self, key: PositionKey) -> None:
        """``key`` joins what consumers hold."""
        keys = self._by_symbol.setdefault((key.category, key.symbol), set())
        keys.add(key)
        if len(keys) == 2:
            self._multi += 1

    def _released(self, key: PositionKey) -> None:
        """``key`` left what consumers hold."""
        sym = (key.category, key.symbol)
        keys = self._by_symbol.get(sym)
        if keys is not None and key in keys:
            keys.discard(key)
            if len(keys) == 1:
                self._multi -= 1
            elif not keys:
                del self._by_symbol[sym]

    def _inactive_event(self, feed: str, event: PositionEvent) -> None:
        """An event of the delivering feed that is not active.

        Marks are routed per symbol from the freshest source: a price the inactive feed
        has that is newer than what consumers hold moves their mark (a private-socket
        outage does not take away the public socket's marks). Lifecycle events of the
        primary while the standby delivers are what the primary recovered: they pass
        the same guards as the active feed's, marked ``recovered``, so a lifecycle the
        standby missed still reaches consumers, once.
        """
        if event.kind is EventKind.PRICE:
            told = self.delivered.get(event.position.key)
            if (told is not None and event.position.mark_price is not None
                    and event.position.mark_price != told.mark_price
                    and _mark_newer(event.position, told)):
                self._send(_synthetic(EventKind.PRICE, feed, _remarked(told, event.position)))
            return
        if feed != self.primary:
            return
        told = self.delivered.get(event.position.key)
        if told is not None and event.kind is EventKind.CHANGED and (
                self._before_timeless_open(event.position, told)):
            # a recovered state from before the poller read the lifecycle consumers
            # hold: of an earlier lifecycle, or an earlier state of theirs - never newer
            self.counters["guarded"] += 1
            return
        if (told is not None and event.kind is not EventKind.CLOSED
                and told.side is not event.position.side
                and self._unordered(event.position, told)):
            # a recovered state of the other side that nothing orders against what
            # consumers hold (the delivering poller's row has neither seq nor time): it
            # may be older (a replay's intermediate state), and a flip back would split
            # their lifecycle. The delivering feed's next poll, or the failback's
            # reconcile, brings a newer side
            self.counters["guarded"] += 1
            return
        before = self.counters["delivered"]
        self._recovering = True
        try:
            if event.kind is EventKind.CHANGED and told is not None:
                # the standby may have delivered this state already: only the difference
                for ev in self._diff(told, event.position, feed):
                    self._send(ev)
            else:
                self._guarded(event)
        finally:
            self._recovering = False
        self.counters["recovered"] += self.counters["delivered"] - before

    # ---------------------------------------------------------------- past lifecycles
    def _past_lifecycle(self, event: PositionEvent) -> bool:
        """True if ``event`` belongs to a lifecycle of the primary that lies before what
        consumers hold (held here, delivered as ``past`` once closed)."""
        key = event.position.key
        kind = event.kind
        held = self._past.get(key)
        if held is not None:
            side = held[0].position.side
            told = self.delivered.get(key)
            if kind is EventKind.PRICE:
                return False  # the usual guards: an older state only moves the mark
            if kind is EventKind.CHANGED and event.position.side is side and (
                    told is None or self._older(event.position, told)
                    or self._before_timeless_open(event.position, told)):
                if len(held) < _PAST_EVENTS_MAX:
                    held.append(event)
                else:
                    held[-1] = event
                return True
            del self._past[key]
            if kind is EventKind.CLOSED and event.position.side is side:
                return self._deliver_past([*held, event])
            # anything else: the held states were not a past lifecycle after all
        if kind is not EventKind.OPENED:
            return False
        told = self.delivered.get(key)
        if told is None:
            before = self._stale_open(event.position)
        else:
            # an open of the other side that nothing orders against what consumers hold
            # (a poller's row) is held too: its close next makes it a past lifecycle,
            # anything else releases it (see _inactive_event)
            before = self._older(event.position, told) or (
                told.side is not event.position.side
                and self._unordered(event.position, told)) or (
                self._before_timeless_open(event.position, told))
        if before and event.position.exchange_ms is not None:
            self._past[key] = [event]
            return True
        return False

    def _feed_past(self, feed: str, event: PositionEvent) -> None:
        """A past lifecycle a delivering feed recovered itself (``ctx.past_lifecycles``):
        held until its close, then delivered unless consumers were told it."""
        key = (feed, event.position.key)
        held = self._fed_past.setdefault(key, [])
        if event.kind is EventKind.OPENED:
            held.clear()
        elif not held:
            return  # the rest of a lifecycle whose open was dropped
        held.append(event)
        if event.kind is EventKind.CLOSED:
            events = list(held)
            del self._fed_past[key]
            self._deliver_past(events, split_held=True)

    def _deliver_past(self, events: list[PositionEvent], *, split_held: bool = False) -> bool:
        """Deliver a complete past lifecycle, unless one consumers were told (or hold) had
        a state inside its span of exchange time and began no earlier than it: then it is
        that one, not a past one. A lifecycle consumers were told that began *before* it
        opened and has states inside it was two merged (a poller saw the close and
        reopen between two polls as a change, F15): this one is delivered as ``past``, so
        that it reaches consumers even after their merged one closed. One whose opening
        seq consumers were told the open of is that one, whatever the times say; if they
        still hold the lifecycle of that open at a state after its close, and the feed
        itself recovered this one as past (``split_held``: its book holds the later
        lifecycle, and no open of it follows), theirs is split (:meth:`_split_held`). The
        primary's own events while it is not delivering go on to the guards instead, which
        split at its close and wait for its open of the later one (``_split_merged``)."""
        key = events[0].position.key
        opened, closed = events[0].position.exchange_ms, events[-1].position.exchange_ms
        if opened is None or closed is None:
            return False
        side = events[0].position.side
        seq = events[0].position.seq
        if side is not None and seq is not None and seq >= 0:
            if (side, seq) in self._opened_seqs.get(key, ()):
                # consumers were told this lifecycle's open: it is that one, unless the
                # one they still hold from that open is two merged (F46)
                return split_held and self._split_held(events)
            self._told_opened(key, side, seq)
        # only a lifecycle of the same side can be this one (a flip's two sides share
        # an instant, to within a millisecond of the exchange's clocks)
        spans = [(f, last) for f, last, s in self._spans.get(key, ()) if s is side]
        states = self._open_states.get(key)
        told = self.delivered.get(key)
        if states and told is not None and told.side is side:
            spans.append((min(states), max(states)))
        rx = self._timeless_open_ms.get(key)
        if rx is not None and told is not None and told.side is side:
            spans.append((rx, rx))  # the one consumers hold, from rows without time
        flats = self._flats.get(key, ())
        # merged: consumers' lifecycle has a state before a moment the key was flat
        # that lies before this one's open (a feed closed it there) - not merely an
        # earlier state of this same lifecycle, seen by one feed and not the other
        merged = any(first < opened <= last and any(first < t <= opened for t in flats)
                     for first, last in spans)
        if not merged and any(first < closed and last >= opened for first, last in spans):
            return False
        if merged:
            self.counters["merged_past"] += 1
        times = [e.position.exchange_ms for e in events[:-1] if e.position.exchange_ms is not None]
        self._told_closed(key, times or [opened], closed, side)
        self.counters["past_lifecycles"] += 1
        for ev in events:
            self.counters["delivered"] += 1
            self.counters["recovered"] += 1
            self._deliver(ev.model_copy(update={"recovered": True, "past": True}))
        return True

    def _split_held(self, events: list[PositionEvent]) -> bool:
        """A past lifecycle opening at the state consumers' held lifecycle opened at, and
        closing before the state they hold now: they hold two lifecycles as one (a
        failback's reconcile took them from the first's open to the second's state as a
        change, when the primary's stream had lost the close and the reopen between, F46).
        Consumers get the first one's close as the feed recovered it, then the open of
        the one they hold, at its state."""
        opening, close = events[0].position, events[-1].position
        key = opening.key
        told = self.delivered.get(key)
        if (told is None or told.side is not opening.side or opening.seq is None
                or self._holding_open.get(key) != (told.side, opening.seq)):
            return False
        if close.seq is not None and told.seq is not None and close.seq >= 0 and told.seq >= 0:
            after = told.seq > close.seq
        else:
            after = (close.exchange_ms is not None and told.exchange_ms is not None
                     and told.exchange_ms > close.exchange_ms)
        if not after:
            return False
        self.counters["merged_split"] += 1
        closed_ms = close.exchange_ms
        states = self._open_states.get(key, [])
        if closed_ms is not None:
            self._open_states[key] = [t for t in states if t <= closed_ms] or states[:1]
        feed = events[-1].feed
        recovering, self._recovering = self._recovering, True
        try:
            self._send(_synthetic(EventKind.CLOSED, feed, _remarked(close, told)))
            self._send(_synthetic(EventKind.OPENED, feed, told))
        finally:
            self._recovering = recovering
        return True

    def on_status(self, event: StatusEvent) -> None:
        h = self._health.get(event.feed)
        if h is not None and event.status.state.is_healthy != h.state.is_healthy:
            h.since = self._clock()
        if h is not None:
            h.state = event.status.state
        self._deliver(event)
        self.evaluate()

    # ---------------------------------------------------------------- switching
    def healthy_for(self, feed: str) -> float:
        """Seconds the feed has been healthy (negative: unhealthy for that long)."""
        h = self._health[feed]
        age = self._clock() - h.since
        return age if h.state.is_healthy else -age

    def evaluate(self) -> None:
        """Fail over or back if the thresholds say so. Called on status changes and ticks."""
        if self.pending_orphans:
            self._settle_orphans()
        if self._reopen:
            now = self._clock()
            for key, (told, due) in list(self._reopen.items()):
                if now >= due:
                    del self._reopen[key]
                    if key not in self.delivered:
                        self._send(_synthetic(EventKind.OPENED, self.active, told))
        if self.standby is None:
            return
        primary = self.healthy_for(self.primary)
        standby_ok = self._health[self.standby].state.is_healthy
        if self.active == self.primary:
            if primary <= -self.failover_after and standby_ok:
                state = self._health[self.primary].state.value
                self._switch(self.standby, f"failover: primary {self.primary!r} {state} "
                                           f"for {-primary:.1f}s")
        else:
            if primary >= self.failback_wait:
                self._switch(self.primary, f"failback: primary {self.primary!r} healthy "
                                           f"for {primary:.1f}s")
            return
        if (self.failback_wait > self.failback_after and self._last_failback_at is not None
                and self._clock() - self._last_failback_at >= self.flap_window):
            self.failback_wait = self.failback_after  # delivered steadily: damping over

    def _switch(self, target: str, reason: str) -> None:
        previous = self.active
        self.active = target
        kind = "failback" if target == self.primary else "failover"
        self.counters[kind + "s"] += 1
        now = self._clock()
        if kind == "failback":
            self._last_failback_at = now
        elif (self._last_failback_at is not None
              and now - self._last_failback_at < self.flap_window):
            # failed again soon after taking over: it flaps, wait longer next time
            self.failback_wait = min(self.failback_wait * 2, self.failback_max)
        else:
            self.failback_wait = self.failback_after
        ev = RouteEvent(account=self.account, active=target, previous=previous, reason=reason)
        self.switches.append(ev)
        log.warning("route switched %s -> %s: %s", previous, target, reason,
                    extra={"active": target, "previous": previous, "cause": kind})
        self._deliver(ev)
        self.pending_orphans = set()
        # a lifecycle of the primary held as past stays held: its close may come after
        # the switch (an audit's repair), and the primary's history does not change
        self._reopen.clear()  # the new feed's book decides, below
        for synthetic in self.reconcile_with(self.books[target]):
            self._send(synthetic)

    def reconcile_with(self, book: PositionBook) -> list[PositionEvent]:
        """Events that take consumers from what they were told to ``book``'s state.

        Keys consumers hold that ``book`` cannot yet call flat go to ``pending_orphans``.
        """
        out: list[PositionEvent] = []
        target = book.positions
        for key, told in list(self.delivered.items()):
            if key in target:
                continue
            if self._knows_flat(book, told):
                out.append(self._closing(book, told))
            else:
                self.pending_orphans.add(key)
        for key, pos in target.items():
            told_pos = self.delivered.get(key)
            if told_pos is None:
                if not self._stale_open(pos):
                    out.append(_synthetic(EventKind.OPENED, book.feed, pos))
            else:
                out.extend(self._diff(told_pos, pos, book.feed))
        return out

    def _knows_flat(self, book: PositionBook, told: Position) -> bool:
        flat_as_of = book.known_flat_as_of(told.key)
        # a state without exchange time (a poller's row) is at the latest as old as its
        # receipt: only flat after that closes it
        at = told.exchange_ms if told.exchange_ms is not None else self._received_ms(told)
        if flat_as_of is None:
            if book.reconciled_as_of_ms is not None or book.flat_ms:
                return False
            # a book whose snapshots tell no time (ccxt's rows without one): its last
            # snapshot lacks the key, but one received before the state consumers hold
            # was made cannot know it flat (F53): its next snapshot decides
            synced = book.synced_ns
            return synced is None or at < synced // 1_000_000
        return book.knows_flat_after(told.key, at)

    def _closing(self, book: PositionBook, told: Position) -> PositionEvent:
        """A ``closed`` of what consumers hold, as of the time ``book`` knows it flat
        (so that a later stale open of it, from a lagging feed, is recognised)."""
        update: dict[str, object] = {}
        mark = book.mark(told.category, told.symbol)
        if mark is not None:
            update["mark_price"] = mark.mark_price
            update["unrealised_pnl"] = unrealised_pnl(
                told.category, told.side, told.size, told.entry_price, mark.mark_price)
        flat_as_of = book.known_flat_as_of(told.key)
        if flat_as_of is not None and (told.exchange_ms is None or flat_as_of > told.exchange_ms):
            update["exchange_ms"] = flat_as_of
        elif (flat_as_of is None and book.synced_ns is not None
              and book.reconciled_as_of_ms is None and not book.flat_ms):
            # a snapshot without time lacks the key: flat by its receipt, as a poller's
            # own close of a row without time is (``_send``); an open state older than
            # that is stale (F55). The close keeps the time of the state it ends: when
            # the exchange closed it is not known
            self._flat_by_ms[told.key] = book.synced_ns // 1_000_000
        pos = told.model_copy(update=update) if update else told
        return _synthetic(EventKind.CLOSED, book.feed, pos)

    def _settle_orphans(self) -> None:
        book = self.books[self.active]
        for key in list(self.pending_orphans):
            told = self.delivered.get(key)
            if told is None or key in book.positions:
                self.pending_orphans.discard(key)
            elif self._knows_flat(book, told):
                self.pending_orphans.discard(key)
                self._send(self._closing(book, told))

    def _stale_open(self, pos: Position) -> bool:
        """True if ``pos`` is an open state older than a close consumers were told (the
        same exchange time is allowed: a flip closes and opens in one update). A state
        without an exchange time (a poller's row that carries none) is at the latest as
        old as the moment it was received."""
        closed = self._closed_ms.get(pos.key)
        if closed is None:
            return False
        if pos.exchange_ms is not None:
            return pos.exchange_ms < closed
        return self._received_ms(pos) < closed

    def _received_ms(self, pos: Position) -> int:
        """When the state of ``pos`` (not its mark) was received (ms): for a state
        without exchange time, its age at the latest."""
        rx = self._state_rx.get((pos.feed, pos.key))
        return (pos.received_ns if rx is None else min(rx, pos.received_ns)) // 1_000_000

    def _guarded(self, event: PositionEvent) -> None:
        """Deliver an event of the active feed, consistent with what consumers hold."""
        key = event.position.key
        told = self.delivered.get(key)
        kind = event.kind
        if kind is EventKind.CLOSED:
            if (told is None or told.side is not event.position.side
                    or self._before_timeless_open(event.position, told)):
                # nothing to close, or the close of a lifecycle consumers already left
                # (one before the lifecycle they hold from a poller's rows)
                self.counters["guarded"] += 1
                return
            if self._older(event.position, told):
                if self._split_merged(told, event):
                    return
                # a lagging feed closes the older state it held: what consumers hold is
                # closed only if that feed knows the key flat as of a time not older than
                # it (else its next snapshot decides, as for an orphan at a switch)
                self.counters["guarded"] += 1
                book = self.books[event.feed]
                if self._knows_flat(book, told):
                    log.debug("%s: %s closes the state consumers hold (seq %s, %s ms): it "
                              "knows the key flat as of %s ms", key, event.feed, told.seq,
                              told.exchange_ms, book.known_flat_as_of(key))
                    self.pending_orphans.discard(key)
                    self._send(self._closing(book, told))
                else:
                    self.pending_orphans.add(key)
                return
        elif kind is EventKind.OPENED:
            if told is None and self._stale_open(event.position):
                self.counters["guarded"] += 1
                return
            if told is not None:
                self.counters["guarded"] += 1
                self.pending_orphans.discard(key)
                for ev in self._diff(told, event.position, event.feed):
                    self._send(ev)
                return
        elif told is None:  # changed/price for a position consumers never saw opened
            self.counters["guarded"] += 1
            if not self._stale_open(event.position):
                self._send(_synthetic(EventKind.OPENED, event.feed, event.position))
            return
        elif kind is EventKind.PRICE and self._unordered(event.position, told):
            # another feed's state that nothing orders against what consumers hold (a
            # poller's rows with neither seq nor exchange time, beside a stream's
            # recovered state): it only moves their mark; that feed's lifecycle events,
            # or the next switch, settle the state
            self.counters["guarded"] += 1
            if event.position.mark_price != told.mark_price:
                self._send(_synthetic(EventKind.PRICE, event.feed,
                                      _remarked(told, event.position)))
            return
        elif self._older(event.position, told):
            # a lagging feed's state: consumers keep the newer one they hold; a price
            # event only moves its mark (F2c in docs/reliability.md)
            self.counters["guarded"] += 1
            if kind is EventKind.PRICE and event.position.mark_price != told.mark_price:
                self._send(_synthetic(EventKind.PRICE, event.feed,
                                      _remarked(told, event.position)))
            return
        elif told.side is not event.position.side:
            # a side change seen as a change (a poller that missed the flip): consumers
            # get the close and the open it was
            self.counters["guarded"] += 1
            for ev in self._diff(told, event.position, event.feed):
                self._send(ev)
            return
        self._send(event)

    def _split_merged(self, told: Position, event: PositionEvent) -> bool:
        """A close, at a time its feed knows the key flat, that falls between the states
        consumers hold of one lifecycle: that was two lifecycles (a poller saw the close
        and reopen as a change). Consumers get the close, then the later lifecycle's open
        (the feed's own, next; else the state they held, after ``_REOPEN_WAIT``)."""
        flat_at = event.position.exchange_ms
        states = self._open_states.get(told.key, [])
        before = [t for t in states if flat_at is not None and t < flat_at]
        after = [t for t in states if flat_at is not None and t >= flat_at]
        if not before or not after:
            return False
        self.counters["merged_split"] += 1
        self._open_states[told.key] = before
        # the close as the feed knows it: its time and its sequence (not the later
        # lifecycle's state consumers held)
        self._send(_synthetic(EventKind.CLOSED, event.feed, told.model_copy(
            update={"exchange_ms": flat_at, "seq": event.position.seq})))
        # the later lifecycle's own events follow from the same feed (its replay): they
        # open it with its real states; if none has within _REOPEN_WAIT (evaluate), the
        # state consumers held is reopened as it was
        self._reopen[told.key] = (told, self._clock() + _REOPEN_WAIT)
        return True

    def _older(self, pos: Position, told: Position) -> bool:
        """True if ``pos`` is an older state of the position than ``told`` (by seq, else by
        exchange time): consumers are never taken back to it. A state without exchange
        time (a poller's row that carries none) is at the latest as old as the moment it
        was received: older than ``told``'s exchange time if that was later."""
        if pos.seq is not None and told.seq is not None and pos.seq >= 0 and told.seq >= 0:
            return pos.seq < told.seq
        if told.exchange_ms is None:
            return False
        if pos.exchange_ms is not None:
            return pos.exchange_ms < told.exchange_ms
        return self._received_ms(pos) < told.exchange_ms

    def _before_timeless_open(self, pos: Position, told: Position) -> bool:
        """True if ``told`` (what consumers hold) is another feed's state that nothing
        orders against ``pos`` (a poller's row: neither seq nor exchange time), of a
        lifecycle whose open, also without time, consumers received after ``pos``'s
        exchange time. The poller read that lifecycle open then: ``pos`` is no newer
        than what consumers hold, and a close at its time is of an earlier lifecycle (a
        lifecycle that closed then is not theirs; one open then may be, seen earlier).
        (The read precedes its receipt by the request's round trip: a close of
        consumers' lifecycle inside that window is taken for an earlier one's.)"""
        if (told.exchange_ms is not None or pos.exchange_ms is None
                or not self._unordered(pos, told)):
            return False
        rx = self._timeless_open_ms.get(told.key)
        return rx is not None and pos.exchange_ms < rx

    @staticmethod
    def _unordered(pos: Position, told: Position) -> bool:
        """True if ``pos`` is another feed's state than ``told`` and neither seq nor
        exchange time orders the two."""
        if pos.feed == told.feed:
            return False
        if pos.seq is not None and told.seq is not None and pos.seq >= 0 and told.seq >= 0:
            return False
        return pos.exchange_ms is None or told.exchange_ms is None

    def _diff(self, told: Position, pos: Position, feed: str) -> list[PositionEvent]:
        if self._older(pos, told) or (told.side is not pos.side
                                      and self._before_timeless_open(pos, told)):
            # (the other side, from before a poller read the lifecycle consumers hold:
            # a stale state, at a failback from a primary that missed the flip)
            self.counters["guarded"] += 1
            return []
        if told.side is not pos.side:
            return [_synthetic(EventKind.CLOSED, feed, told),
                    _synthetic(EventKind.OPENED, feed, pos)]
        changes = tuple(f for f in LIFECYCLE_FIELDS if getattr(told, f) != getattr(pos, f))
        if changes:
            return [_synthetic(EventKind.CHANGED, feed, pos, changes)]
        if pos.mark_price != told.mark_price:
            if not _mark_newer(pos, told):
                # consumers take this feed's state, but a mark older than theirs (a
                # poller's, read seconds before a failover) never takes theirs back
                pos = _remarked(pos, told)
            return [_synthetic(EventKind.PRICE, feed, pos)]
        return []

    # ---------------------------------------------------------------- output
    def _send(self, event: PositionEvent) -> None:
        key = event.position.key
        ms = event.position.exchange_ms
        if event.kind is EventKind.CLOSED:
            held = self.delivered.pop(key, None)
            if held is not None:
                self._released(key)
            if ms is None and not event.synthetic:
                # a feed's close without exchange time (a poller's row gone): the key
                # was flat by its receipt; an open state older than that is stale (one
                # made within the poll's round trip is taken for stale too)
                ms = event.position.received_ns // 1_000_000
            flat_by = self._flat_by_ms.pop(key, None)
            if flat_by is not None and (ms is None or flat_by > ms):
                ms = flat_by  # a synthetic close resting on a snapshot without time
            spanned = self._open_states.pop(key, [])
            rx = self._timeless_open_ms.pop(key, None)
            if not spanned and rx is not None:
                spanned = [rx]  # a lifecycle known only from rows without time
            self._told_closed(key, spanned, ms,
                              held.side if held is not None else event.position.side)
            self._holding_open.pop(key, None)
        else:
            if event.kind is EventKind.OPENED:
                self._reopen.pop(key, None)
                event = self._freshest_mark(event)
                pos = event.position
                if ms is None:
                    self._timeless_open_ms[key] = pos.received_ns // 1_000_000
                else:
                    self._timeless_open_ms.pop(key, None)
                if pos.side is not None and pos.seq is not None and pos.seq >= 0:
                    self._told_opened(key, pos.side, pos.seq)
                    self._holding_open[key] = (pos.side, pos.seq)
                else:
                    self._holding_open.pop(key, None)
            elif event.kind is EventKind.CHANGED:
                told = self.delivered.get(key)
                if told is not None and _mark_newer(told, event.position):
                    # a state change carries its feed's mark, which may be older than the
                    # one consumers hold (a poller's, read seconds before): the mark
                    # never goes back
                    event = event.model_copy(
                        update={"position": _remarked(event.position, told)})
            if ms is not None:
                states = self._open_states.get(key) if key in self.delivered else None
                if states is None:
                    self._open_states[key] = [ms]
                elif ms != states[-1]:
                    states.append(ms)
                    if len(states) > _STATES_KEPT:
                        del states[1]  # the first (the open) and the latest matter most
            if key not in self.delivered:
                self._held(key)
            self.delivered[key] = event.position
        self.counters["delivered"] += 1
        if self._recovering:
            event = event.model_copy(update={"recovered": True})
        self._deliver(event)

    def _freshest_mark(self, event: PositionEvent) -> PositionEvent:
        """``event`` at the freshest mark any feed's book holds for its symbol: a position
        a feed opens from a resync may carry the mark its book had before it watched the
        symbol (seconds old), while another feed streams it."""
        pos = event.position
        best: MarkPrice | None = None
        for book in self.books.values():
            mark = book.mark(pos.category, pos.symbol)
            if mark is not None and mark.exchange_ms is not None and (
                    best is None or (best.exchange_ms or 0) < mark.exchange_ms):
                best = mark
        if (best is None or best.exchange_ms is None or pos.mark_exchange_ms is None
                or best.exchange_ms <= pos.mark_exchange_ms):
            return event
        return event.model_copy(update={"position": _marked(pos, best)})

    def _told_opened(self, key: PositionKey, side: Side, seq: int) -> None:
        seqs = self._opened_seqs.get(key)
        if seqs is None:
            seqs = self._opened_seqs[key] = deque(maxlen=_SPANS_KEPT)
        if (side, seq) not in seqs:
            seqs.append((side, seq))

    def _told_closed(self, key: PositionKey, states: list[int], closed_ms: int | None,
                     side: Side | None) -> None:
        """Consumers were told a lifecycle of ``key`` closed: remember the span of its open
        states (to recognise it later) and the newest close time (to refuse stale opens)."""
        if states:
            spans = self._spans.get(key)
            if spans is None:
                spans = self._spans[key] = deque(maxlen=_SPANS_KEPT)
            if side is not None:
                spans.append((min(states), max(states), side))
        if closed_ms is not None:
            self._closed_ms[key] = max(closed_ms, self._closed_ms.get(key, 0))

    def snapshot(self) -> dict[str, object]:
        return {
            "active": self.active,
            "roles": {n: r.value for n, r in self.roles.items()},
            "health": {
                n: {"state": h.state.value, "for_seconds": round(abs(self.healthy_for(n)), 3)}
                for n, h in self._health.items()
            },
            "counters": dict(self.counters),
            "failback_wait_seconds": self.failback_wait,
            "pending_orphans": sorted(str(k) for k in self.pending_orphans),
            "switches": [s.model_dump(mode="json") for s in self.switches[-20:]],
        }


#: Events of one held past lifecycle kept (beyond it, the latest replaces the last).
_PAST_EVENTS_MAX = 64
#: Seconds a split merged lifecycle waits for its later part's own open (a replay's
#: events follow at once; a poller's within a poll).
_REOPEN_WAIT = 1.0
#: State times kept of the lifecycle consumers hold (to split one a poller merged).
_STATES_KEPT = 256
#: Closed lifecycles remembered per key, to recognise a past one consumers were told.
_SPANS_KEPT = 32


def _synthetic(kind: EventKind, feed: str, pos: Position,
               changes: tuple[str, ...] = ()) -> PositionEvent:
    return PositionEvent(kind=kind, feed=feed, position=pos, changes=changes, seq=0,
                         synthetic=True)


def _mark_newer(a: Position, b: Position) -> bool:
    """True if ``a``'s mark is strictly newer than ``b``'s (exchange time, else receive
    time): the freshest source of a symbol's mark wins. Any mark is newer than none."""
    if b.mark_price is None:
        return a.mark_price is not None
    am, bm = a.mark_exchange_ms, b.mark_exchange_ms
    if am is not None and bm is not None:
        return am > bm
    an, bn = a.mark_received_ns, b.mark_received_ns
    return an is not None and bn is not None and an > bn


def _marked(told: Position, mark: MarkPrice) -> Position:
    """``told`` at ``mark``."""
    return _remarked(told, told.model_copy(update={
        "mark_price": mark.mark_price, "mark_exchange_ms": mark.exchange_ms,
        "mark_received_ns": mark.received_ns}))


def _remarked(told: Position, pos: Position) -> Position:
    """``told`` at ``pos``'s mark price."""
    mark = pos.mark_price
    if mark is None:
        return told
    return told.model_copy(update={
        "mark_price": mark,
        "mark_exchange_ms": pos.mark_exchange_ms,
        "mark_received_ns": pos.mark_received_ns,
        "unrealised_pnl": unrealised_pnl(told.category, told.side, told.size,
                                         told.entry_price, mark),
    })
