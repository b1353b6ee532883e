"""One account's outbox: what is waiting for Redis, and what Redis is believed to hold.

A primed account (a takeover: its feeds recover from the snapshot, :mod:`.prior`) flags
what they recover: a lifecycle event whose exchange time lies before the takeover (what
happened while no worker published the account) goes out ``recovered``, as the core's
router flags what the primary recovered while the standby delivered, so a remote
consumer can tell it arrived late (``position.exchange_ms`` says when it happened). Not
``past``: it comes in exchange order after the state consumers hold and moves it.

Bounded and coalescing: lifecycle and status events wait in order, at most
``outbox_max``; price events wait one per position (latest wins). Past the bound —
or while the account cannot be written — the account is *dirty*. Past the bound (Redis
slow or down while this process keeps the lease), the account keeps its lifecycles'
boundaries (the *trail*, :meth:`fold`): per position, every ``opened`` and ``closed``
(and ``past`` event) in order, each run of ``changed`` coalesced into its latest, at
most ``TRAIL_FACTOR * outbox_max`` items; status events are dropped (the resync
publishes the feeds' current statuses). Once Redis is back, if its snapshot is what this
outbox last wrote, the trail is published: every lifecycle that opened and closed
meanwhile, each close and reopen, none merged (:meth:`from_trail`). Otherwise (Redis
lost data, another writer wrote, the lease was lost, the trail outgrew its bound) the
differences between the Redis snapshot and the book are published instead
(:meth:`diff`): lifecycles that began and ended meanwhile are lost then, and so is a
close and reopen on one side (one change).
"""

from __future__ import annotations

import json
import time
from collections import deque
from dataclasses import dataclass, field
from typing import Any

from feedctl import EventKind, Position, PositionEvent, RouteEvent, StatusEvent

#: The trail of a dirty account holds at most this many times ``outbox_max`` items.
TRAIL_FACTOR = 4

#: The fields that make a position's state: equal signatures are the same state,
#: whichever worker's book (feed, receive time, mark) they came from.
SIG_FIELDS = ("side", "size", "entry_price", "leverage", "liq_price", "take_profit",
              "stop_loss", "trailing_stop")


def signature(pos: Position) -> str:
    return json.dumps(pos.model_dump(mode="json", include=set(SIG_FIELDS)), sort_keys=True)


def changed_fields(a: Position, b: Position) -> tuple[str, ...]:
    return tuple(f for f in SIG_FIELDS if getattr(a, f) != getattr(b, f))


@dataclass
class Told:
    """What the account's snapshot holds for one position key."""

    present: bool = False
    lc: int = 0
    n: int = 0
    sig: str | None = None
    body: str | None = None

    @property
    def expect(self) -> str:
        return f"{int(self.present)}:{self.lc}:{self.n}"


@dataclass(slots=True)
class Item:
    typ: str  # "lifecycle", "status" or "past"
    key: str
    event: Any
    at: float = field(default_factory=time.monotonic)


@dataclass
class Planned:
    """An item as the publish script gets it, and the snapshot state it leads to."""

    item: Item
    args: list[str]
    after: Told | None  # None for status and past events


class AccountOutbox:
    def __init__(self, exchange: str, account: str, limit: int) -> None:
        self.exchange, self.account, self.limit = exchange, account, limit
        self.items: deque[Item] = deque()
        self.marks: dict[str, tuple[PositionEvent, float]] = {}
        self.told: dict[str, Told] = {}
        self.dirty = True  # until the snapshot has been read and compared with the book
        #: primed with the snapshot the feeds recover from (:meth:`prime`): events wait,
        #: kept, until the publisher knows whether the book's events lead from it
        self.priming = False
        #: a takeover's wall-clock ms (:meth:`prime`): lifecycle events that happened on
        #: the exchange before it are what the feeds recovered (flagged ``recovered``)
        self.recovered_before_ms: int | None = None
        self.overflows = 0
        #: a dirty account's lifecycle boundaries since it went dirty, by position key
        #: (None: not kept - the resync diffs the book)
        self.trail: dict[str, list[Item]] | None = None
        self.trail_len = 0
        #: trails given up (outgrown, or Redis no longer held what this outbox wrote)
        self.trails_dropped = 0
        #: items at the head of ``items`` a write has in flight (kept when it goes dirty:
        #: the write's result pops them)
        self.inflight = 0

    def __len__(self) -> int:
        return len(self.items) + len(self.marks)

    def offer(self, event: Any) -> None:
        if isinstance(event, PositionEvent):
            key = str(event.position.key)
            if event.kind is EventKind.PRICE:
                if not event.past:
                    self.marks[key] = (event, time.monotonic())
                return
            if (not event.recovered and self.recovered_before_ms is not None
                    and event.position.exchange_ms is not None
                    and event.position.exchange_ms < self.recovered_before_ms):
                event = event.model_copy(update={"recovered": True})
            item = Item("past" if event.past else "lifecycle", key, event)
        elif isinstance(event, StatusEvent):
            item = Item("status", event.feed, event)
        elif isinstance(event, RouteEvent):
            item = Item("status", "route", event)
        else:
            return
        if self.dirty:
            if self.trail is not None and item.typ != "status":
                self.fold(item)
            return  # else the resync publishes the book's state instead
        self.items.append(item)
        if len(self.items) > self.limit:
            self.overflow()

    def overflow(self) -> None:
        self.overflows += 1
        self.make_dirty(keep_trail=True)

    def make_dirty(self, keep_trail: bool = False) -> None:
        """Stop writing events; the next resync publishes the book's state. With
        ``keep_trail`` (an overflow: this outbox still knows what Redis holds) the
        waiting lifecycle events start the trail."""
        if keep_trail and not self.dirty and not self.priming:
            self.trail, self.trail_len = {}, 0
            for item in list(self.items)[self.inflight:]:
                if item.typ != "status":
                    self.fold(item)
        elif not keep_trail:
            self.trail = None
        self.dirty = True
        self.priming = False
        while len(self.items) > self.inflight:
            self.items.pop()

    def fold(self, item: Item) -> None:
        """Add a lifecycle event to the trail: a ``changed`` after a ``changed`` of the
        same position replaces it (the changes of both listed)."""
        assert self.trail is not None
        steps = self.trail.setdefault(item.key, [])
        last = steps[-1] if steps else None
        ev = item.event
        if (item.typ == "lifecycle" and ev.kind is EventKind.CHANGED and last is not None
                and last.typ == "lifecycle" and last.event.kind is EventKind.CHANGED):
            changes = tuple(dict.fromkeys((*last.event.changes, *ev.changes)))
            steps[-1] = Item(item.typ, item.key, ev.model_copy(update={"changes": changes}),
                             last.at)
            return
        steps.append(item)
        self.trail_len += 1
        if self.trail_len > TRAIL_FACTOR * self.limit:
            self.trail = None
            self.trails_dropped += 1

    def from_trail(self, statuses: list[StatusEvent]) -> None:
        """Replace what waits with the trail (Redis holds what this outbox last wrote:
        the trail leads from there), after what a failed write left, then the feeds'
        statuses."""
        assert self.trail is not None
        left = list(self.items)
        self.items.clear()
        self.marks.clear()
        for item in left:
            if item.typ != "status":
                self.items.append(item)
        for steps in self.trail.values():
            self.items.extend(steps)
        for st in statuses:
            self.items.append(Item("status", st.feed, st))
        self.trail, self.trail_len = None, 0
        self.dirty = False

    def expects(self) -> dict[str, str]:
        """What this outbox believes each position's snapshot state is."""
        return {k: t.expect for k, t in self.told.items() if t.expect != "0:0:0"}

    def prime(self, snapshot: dict[str, str], at_ms: int | None = None) -> None:
        """Start from ``snapshot`` (read before the feeds started, the state they were
        told consumers hold, at wall-clock ``at_ms``): events are kept from the first, in
        order, to be written against it - the steps from that state to the exchange's,
        none lost; those that happened before ``at_ms`` flagged ``recovered``."""
        self.load(snapshot)
        self.dirty = False
        self.priming = True
        self.trail = None
        self.recovered_before_ms = at_ms

    def plan(self, items: list[Item]) -> list[Planned | None]:
        """Script arguments for ``items`` in order (None: nothing to write, e.g. an
        ``opened`` the snapshot already holds in that state)."""
        told = dict(self.told)
        out: list[Planned | None] = []
        for item in items:
            p = self._plan_one(item, told)
            if p is not None and p.after is not None:
                told[item.key] = p.after
            out.append(p)
        return out

    def _plan_one(self, item: Item, told: dict[str, Told]) -> Planned | None:
        ev = item.event
        if item.typ == "status":
            body = ev.model_dump_json()
            base = f"{self.exchange}:{self.account}:status:{item.key}"
            return Planned(item, ["status", item.key, ev.type, "", base, body, ""], None)
        pos: Position = ev.position
        idbase = (f"{self.exchange}:{self.account}:{pos.category}:{pos.symbol}:"
                  f"{pos.position_idx}")
        if item.typ == "past":
            eid = f"{idbase}:past:{pos.exchange_ms}:{ev.kind.value}"
            return Planned(item, ["past", item.key, ev.kind.value, "", eid,
                                  ev.model_dump_json(), ""], None)
        t = told.get(item.key) or Told()
        sig = signature(pos)
        kind = ev.kind
        if kind is EventKind.OPENED and t.present:
            if t.sig == sig:
                return None
            kind = EventKind.CHANGED
        elif kind is EventKind.CHANGED and not t.present:
            kind = EventKind.OPENED
        elif kind is EventKind.CLOSED and not t.present:
            return None
        if kind is not ev.kind:
            ev = ev.model_copy(update={"kind": kind})
        body = ev.model_dump_json()
        if kind is EventKind.OPENED:
            after = Told(True, t.lc + 1, 0, sig, body)
        elif kind is EventKind.CLOSED:
            after = Told(False, t.lc, t.n + 1)
        else:
            after = Told(True, t.lc, t.n + 1, sig, body)
        return Planned(item, ["lifecycle", item.key, kind.value, t.expect, idbase, body, sig],
                       after)

    def load(self, snapshot: dict[str, str]) -> None:
        """Take what the account's snapshot hash holds as what Redis has."""
        told: dict[str, Told] = {}
        for name, value in snapshot.items():
            kind, _, key = name.partition(":")
            if kind in ("p", "lc", "n", "g"):
                t = told.setdefault(key, Told())
                if kind == "p":
                    t.present, t.body = True, value
                elif kind == "lc":
                    t.lc = int(value)
                elif kind == "n":
                    t.n = int(value)
                else:
                    t.sig = value
        self.told = told

    def diff(self, book: dict[str, Position], statuses: list[StatusEvent]) -> None:
        """Replace what waits with the events that take the snapshot to ``book`` (the
        positions consumers in the process were told, by key) and the feeds' statuses."""
        self.items.clear()
        self.marks.clear()
        for key, pos in book.items():
            t = self.told.get(key)
            if t is None or not t.present:
                self.items.append(Item("lifecycle", key, PositionEvent(
                    kind=EventKind.OPENED, feed=pos.feed, position=pos, synthetic=True)))
            elif t.sig != signature(pos):
                held = _stored_position(t)
                if held is not None and held.side != pos.side:
                    # a position does not change sides: it closed and another opened (a
                    # flip, or a close and reopen while nothing published the account)
                    self.items.append(Item("lifecycle", key, PositionEvent(
                        kind=EventKind.CLOSED, feed=held.feed, position=held,
                        synthetic=True)))
                    self.items.append(Item("lifecycle", key, PositionEvent(
                        kind=EventKind.OPENED, feed=pos.feed, position=pos, synthetic=True)))
                    continue
                changes = changed_fields(held, pos) if held is not None else ()
                self.items.append(Item("lifecycle", key, PositionEvent(
                    kind=EventKind.CHANGED, feed=pos.feed, position=pos, changes=changes,
                    synthetic=True)))
        for key, t in self.told.items():
            if t.present and key not in book:
                held = _stored_position(t)
                if held is not None:
                    self.items.append(Item("lifecycle", key, PositionEvent(
                        kind=EventKind.CLOSED, feed=held.feed, position=held, synthetic=True)))
        for st in statuses:
            self.items.append(Item("status", st.feed, st))
        self.trail, self.trail_len = None, 0
        self.dirty = False


def _stored_position(t: Told) -> Position | None:
    if t.body is None:
        return None
    return PositionEvent.model_validate_json(t.body).position
