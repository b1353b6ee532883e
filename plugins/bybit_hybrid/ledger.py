"""The loss ledger: what the book was given, so that a fill replay knows what is lost.

Pure state, no I/O. The private stream (pushes, resyncs) and the audit (snapshots) both
write it; the fill replay (:mod:`.recovery`) reads it:

* ``last_seq`` / ``last_push_ms``: the newest seq and exchange time per key - a replay
  starts after the seq, the audit leaves keys pushed after its snapshot alone;
* the fill floor (``fills_floor_ms``) and per-key floors (``key_floor_ms``): up to them
  every fill is reflected in the book, so a replay starts after them;
* ``seen`` / ``states``: every state's seq since the floor (and the state itself) - a
  later fill whose seq is missing here and older than the book's was lost with the
  socket up and overtaken (docs/reliability.md, L1);
* ``unrecoverable``: the newest such losses that could not be delivered.
"""

from __future__ import annotations

from bisect import bisect_left
from collections import deque
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

from feedctl import PositionKey, PositionUpdate, Side

#: States remembered per key between snapshots for the unrecoverable-loss check.
SEEN_PER_KEY = 2000


@dataclass(frozen=True, slots=True)
class State:
    """What a seen state was (a fill replay starts from it)."""

    side: Side | None
    size: Decimal
    entry_price: Decimal
    leverage: Decimal | None = None


FLAT = State(None, Decimal(0), Decimal(0))


class LossLedger:
    def __init__(self) -> None:
        #: newest exchange time of a push per key (the audit skips keys pushed after it)
        self.last_push_ms: dict[PositionKey, int] = {}
        #: newest seq applied per key (gap replay starts after it)
        self.last_seq: dict[PositionKey, int] = {}
        #: server ms up to which every fill is reflected in the book (the last snapshot)
        self.fills_floor_ms: int | None = None
        #: server ms up to which a key's fills are reflected, for keys a snapshot closed
        #: after ``fills_floor_ms`` (a listing has no seq for a key it no longer lists)
        self.key_floor_ms: dict[PositionKey, int] = {}
        #: per key, seq -> exchange ms of every state the book was given (push, snapshot
        #: row, replay) after the fill floor
        self.seen: dict[PositionKey, dict[int, int]] = {}
        #: per key, seq -> the seen state itself (a replay of fills lost between two
        #: seen states starts from the first)
        self.states: dict[PositionKey, dict[int, State]] = {}
        #: keys whose oldest seen states were dropped (SEEN_PER_KEY): a replay cannot
        #: assume them flat before the oldest one kept
        self.trimmed: set[PositionKey] = set()
        #: the newest losses that cannot be delivered in order: status and audit
        self.unrecoverable: deque[dict[str, Any]] = deque(maxlen=100)

    # ----------------------------------------------------------------- states
    def admit(self, update: PositionUpdate) -> bool:
        """Record a pushed (or replayed) state about to be applied; False if it is stale:
        a settings change keeps the last fill's seq (Bybit), so of two states with one
        seq the one with the older updatedTime, arriving last, is dropped."""
        key = update.key
        last_ms = self.last_push_ms.get(key)
        if (update.seq is not None and update.seq == self.last_seq.get(key)
                and update.exchange_ms is not None and last_ms is not None
                and update.exchange_ms < last_ms):
            return False
        if update.exchange_ms is not None and update.exchange_ms > (last_ms or 0):
            self.last_push_ms[key] = update.exchange_ms
        last = self.last_seq.get(key)
        if update.seq is not None and last is not None and update.seq < last:
            # late: the book keeps its newer state and never reflects this one. Not
            # seen, so the fills still tell what it meant (a reordered pre-order push of
            # a flip the stall dropped, behind the close's push: the flip's lifecycle)
            return True
        self.note(update)
        return True

    def note(self, update: PositionUpdate) -> None:
        """The book was given ``update`` (a push, a snapshot row or a replayed state)."""
        key = update.key
        if update.seq is None:
            return
        seen = self.seen.setdefault(key, {})
        seen[update.seq] = update.exchange_ms or 0
        self.states.setdefault(key, {})[update.seq] = State(
            update.side if update.size > 0 else None, update.size, update.entry_price,
            update.leverage)
        if len(seen) > SEEN_PER_KEY:  # no snapshot for long (audit off): keep the newest
            self.seen[key] = dict(sorted(seen.items())[SEEN_PER_KEY // 2:])
            self._prune(key)
            self.trimmed.add(key)  # what came before the oldest kept state is unknown
        if update.seq > self.last_seq.get(key, -1):
            self.last_seq[key] = update.seq

    # ----------------------------------------------------------------- snapshots
    def note_snapshot(self, rows: list[PositionUpdate], floor_ms: int | None) -> None:
        """The book now holds a snapshot: its rows' seqs, and every fill up to
        ``floor_ms`` (server time), are accounted for; a replay starts after them."""
        for row in rows:
            self.note(row)
        if floor_ms is None:
            return
        floor = self.fills_floor_ms = max(self.fills_floor_ms or floor_ms, floor_ms)
        self.key_floor_ms = {k: ms for k, ms in self.key_floor_ms.items() if ms > floor}
        # a state's fills are not later than the state: none after the floor now. A
        # listed key's row stays, as where a replay of later lost states starts; a key
        # the snapshot does not list was flat then (no state before: flat)
        listed = {row.key: row.seq for row in rows if row.seq is not None}
        self.trimmed.clear()
        for key, seqs in list(self.seen.items()):
            kept = {seq: ms for seq, ms in seqs.items() if ms > floor}
            base = listed.get(key)
            if base is not None and base in seqs and base in self.states.get(key, {}):
                kept[base] = seqs[base]
            if kept:
                self.seen[key] = kept
                self._prune(key)
            else:
                del self.seen[key]
                self.states.pop(key, None)

    def _prune(self, key: PositionKey) -> None:
        """Keep ``states`` to the seqs ``seen`` still holds."""
        kept = self.seen.get(key, {})
        self.states[key] = {q: st for q, st in self.states.get(key, {}).items() if q in kept}

    def note_closed(self, keys: set[PositionKey], as_of_ms: int | None) -> None:
        """A snapshot taken at ``as_of_ms`` closed ``keys``: every fill of theirs up to
        then is reflected (the flat book); a replay of one would reopen a phantom."""
        if as_of_ms is None:
            return
        for key in keys:
            self.key_floor_ms[key] = max(self.key_floor_ms.get(key, as_of_ms), as_of_ms)

    # ----------------------------------------------------------------- losses
    def floor_of(self, key: PositionKey, since_ms: int) -> int:
        """Fills of ``key`` at or before this (server ms) are reflected in the book."""
        floor = self.fills_floor_ms if self.fills_floor_ms is not None else since_ms
        return max(floor, self.key_floor_ms.get(key, floor))

    def lost_states(self, seqs: list[tuple[PositionKey, int, int]]
                    ) -> dict[PositionKey, dict[int, int]]:
        """Of (key, seq, exec ms) of fills, the states the book never got although a
        newer one reached it: per key, seq -> newest exec ms."""
        lost: dict[PositionKey, dict[int, int]] = {}
        for key, seq, ms in seqs:
            if seq <= self.last_seq.get(key, -1) and seq not in self.seen.get(key, {}):
                states = lost.setdefault(key, {})
                states[seq] = max(states.get(seq, 0), ms)
        return lost

    def brackets(self, key: PositionKey, lost: list[int]
                 ) -> list[tuple[int | None, int, list[int]]]:
        """The (sorted) lost seqs in runs between two seen states with nothing seen
        between: (seq seen before, seq seen after, the run) for each run that has a seen
        state after it. No state seen before (None): the book never held the key before
        the run - it was flat (a snapshot listing it would have left its row here)."""
        seen = sorted(self.seen.get(key, {}))
        out: list[tuple[int | None, int, list[int]]] = []
        runs: dict[tuple[int | None, int], list[int]] = {}
        for seq in lost:
            i = bisect_left(seen, seq)
            if i == len(seen) or seen[i] == seq or (i == 0 and key in self.trimmed):
                continue
            runs.setdefault((seen[i - 1] if i else None, seen[i]), []).append(seq)
        for (a, b), run in sorted(runs.items(), key=lambda kv: kv[0][1]):
            out.append((a, b, run))
        return out

    def state_at(self, key: PositionKey, seq: int | None) -> State | None:
        """The seen state at ``seq``; None (no state before): flat."""
        if seq is None:
            return FLAT
        return self.states.get(key, {}).get(seq)

    def mark_seen(self, key: PositionKey, states: dict[int, int]) -> None:
        self.seen.setdefault(key, {}).update(states)

    def record_unrecoverable(self, key: PositionKey, states: dict[int, int]) -> list[int]:
        """Keep a report of states that cannot be delivered; their seqs, sorted."""
        seqs = sorted(states)
        self.unrecoverable.append({
            "category": key.category.value, "symbol": key.symbol, "seqs": seqs,
            "from_ms": min(states.values()), "to_ms": max(states.values())})
        return seqs
