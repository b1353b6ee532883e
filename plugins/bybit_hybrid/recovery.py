"""Putting back what the stream did not deliver: the fill replay, used alike by the
private stream's resync (after a gap) and by the audit (pushes lost with the socket up).

It reads fills from REST (/v5/execution/list), places hedge-mode fills on their side,
leaves out what the book already reflects (the :class:`~.ledger.LossLedger`'s floors
and seqs), applies the states the fills imply (:func:`.gap.replay`) and reports the
states that cannot be put back in order. Every state reaches the book through
:meth:`FillReplay.apply`, which records it in the ledger first.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from decimal import Decimal
from typing import TYPE_CHECKING

from feedctl import (
    Category,
    FatalFeedError,
    FeedContext,
    PositionKey,
    PositionUpdate,
    PriorState,
    RetryableFeedError,
)

from .gap import Fill, hedge_key, replay
from .ledger import LossLedger, State
from .lost import lost_boundaries, merged_and_closed

if TYPE_CHECKING:
    from .config import HybridSettings
    from .rest import RestClient


#: Keys the consumers were never told of replay fills from this long before the prior
#: state's time (the previous holder may have died with their events unpublished).
RESUME_LOOKBACK_MS = 600_000
#: A resume never reads fills older than this (Bybit keeps executions for a while; a
#: position open for longer resumes from its state, its older fills are in it).
RESUME_MAX_MS = 24 * 3600 * 1000


class FillReplay:
    """The fill replay of one feed, and the one way states enter its book."""

    def __init__(self, ctx: FeedContext, settings: HybridSettings,
                 rest: Callable[[], RestClient], ledger: LossLedger) -> None:
        self.ctx, self.s, self._rest, self.ledger = ctx, settings, rest, ledger
        #: (category, symbol) -> hedge mode? as rows, pushes and REST told (fills carry
        #: no positionIdx: the replay needs it to put a fill on its side)
        self.modes: dict[tuple[Category, str], bool] = {}
        #: The last leverage a state of each key carried: fills carry none, and Bybit
        #: keeps a position's leverage across its lifecycles, so a replayed open of a key
        #: the snapshot no longer lists takes it from here rather than from nowhere.
        self.leverage: dict[PositionKey, Decimal] = {}

    def apply(self, update: PositionUpdate) -> None:
        """Hand a pushed or replayed state to the book, through the ledger."""
        key = update.key
        self.modes[(key.category, key.symbol)] = key.position_idx != 0
        if update.leverage is not None:
            self.leverage[key] = update.leverage
        if not self.ledger.admit(update):
            self.ctx.count("stale_same_seq")
            return
        self.ctx.apply(update)

    @staticmethod
    def resume_since(prior: PriorState) -> int:
        """The server ms a replay from ``prior`` (what the account's consumers last knew:
        another process served the account until now) reads fills from: each known key's
        state time, and for keys never told the prior state's time less the lookback."""
        now_ms = int(time.time() * 1000)
        as_of = prior.as_of_ms if prior.as_of_ms is not None else now_ms
        floors = [s.exchange_ms for s in prior.positions.values() if s.exchange_ms is not None]
        return max(min([*floors, as_of - RESUME_LOOKBACK_MS]), now_ms - RESUME_MAX_MS)

    def _resume(self, prior: PriorState) -> None:
        """Start the book from ``prior``: its open positions applied, each known key's seq
        and exchange time as where the replay starts (a flat key's from its last close).
        Called with no await before the replay's states: no consumer acts on a prior
        position the replay is about to move."""
        ledger = self.ledger
        for key, state in prior.positions.items():
            if state.exchange_ms is not None:
                # fills up to the state's time are in it (a state is not older than its
                # fills): only later ones are replayed, none published twice
                ledger.key_floor_ms[key] = max(ledger.key_floor_ms.get(key, 0),
                                               state.exchange_ms)
            if state.is_open:
                self.apply(state)
            else:
                ledger.note(state)
        self.ctx.count("resumed_from_prior")
        self.ctx.log.info("resuming from what consumers last knew: %d keys (%d open)",
                          len(prior.positions),
                          sum(s.is_open for s in prior.positions.values()))

    async def replay_fills(
        self, rows: list[PositionUpdate], since_ms: int, until_ms: int | None,
        flat_until_ms: int | None = None, prior: PriorState | None = None,
    ) -> int:
        """Apply the states of fills the stream never delivered (see gap.py): fills
        after the floor and up to ``until_ms`` - for keys ``rows`` does not list (flat
        in the snapshot), up to ``flat_until_ms`` if given - with a seq newer than the
        book's. Returns how many states were applied. A transient failure to read the
        fills raises ``RetryableFeedError``: the caller must not move the fill floor past
        them; a refusal (``FatalFeedError``: the key may not read executions) skips the
        replay. ``prior``: the book starts from it first (:meth:`resume_since` gives the
        ``since_ms``), once the fills are read (refused: applied all the same)."""
        if not self.s.replay_gaps:
            return 0
        try:
            fills = await self._rest().fills(self.s.categories, since_ms)
        except RetryableFeedError:
            self.ctx.count("gap_replay_failures")
            raise
        except FatalFeedError as exc:
            self.ctx.count("gap_replay_failures")
            self.ctx.log.warning("fill replay skipped (fills refused): %s", exc)
            if prior is not None:  # from what consumers knew all the same: the snapshot
                self._resume(prior)  # then moves it, as a change where fills would tell more
            return 0
        ledger = self.ledger
        book = self.ctx.positions()
        current: set[tuple[Category, str]] = set()
        for k in [*book, *(r.key for r in rows)]:
            self.modes[(k.category, k.symbol)] = k.position_idx != 0
            current.add((k.category, k.symbol))
        # a prior key is not in the book yet: its mode is read (it may have changed)
        fills = await self._on_their_sides(fills, current)
        if prior is not None:  # no await from here to the replay's states
            self._resume(prior)
            book = self.ctx.positions()
        listed = {r.key for r in rows}

        def due(f: Fill) -> bool:
            if until_ms is None or f.exec_ms <= until_ms:
                return True
            return flat_until_ms is not None and f.key not in listed and f.exec_ms <= flat_until_ms

        fills = [f for f in fills if f.exec_ms > ledger.floor_of(f.key, since_ms) and due(f)]
        self._report_unrecoverable(fills)
        final = {r.key: r.seq for r in rows if r.seq is not None}
        leverage: dict[PositionKey, Decimal | None] = dict(self.leverage)
        leverage.update({r.key: r.leverage for r in rows if r.leverage is not None})
        updates = replay(fills, book, ledger.last_seq, final, leverage, time.time_ns())
        for update in updates:
            self.apply(update)
        if updates:
            self.ctx.count("gap_replayed", len(updates))
            self.ctx.log.warning("replayed %d position states from %d fills the stream did "
                                 "not deliver", len(updates), len(fills))
        return len(updates)

    async def _on_their_sides(self, fills: list[Fill],
                              current: set[tuple[Category, str]]) -> list[Fill]:
        """``fills`` keyed by their position: hedge-mode symbols' fills on the side that
        moved (gap.hedge_key). The mode of a symbol neither the book nor the snapshot
        holds now is looked up (REST: it may have been switched while flat); one that
        cannot be is left out of the replay (counted) rather than replayed on the wrong
        key."""
        unknown: dict[Category, set[str]] = {}
        for f in fills:
            if (f.key.category, f.key.symbol) not in current:
                self.modes.pop((f.key.category, f.key.symbol), None)
                unknown.setdefault(f.key.category, set()).add(f.key.symbol)
        for category, symbols in unknown.items():
            try:
                found = await self._rest().hedged(category, sorted(symbols))
            except (RetryableFeedError, FatalFeedError) as exc:
                self.ctx.log.warning("position modes of %s not read: %s", sorted(symbols), exc)
                continue
            self.modes.update({(category, sym): hedged for sym, hedged in found.items()})
        out: list[Fill] = []
        for f in fills:
            mode = self.modes.get((f.key.category, f.key.symbol))
            if mode is None:
                self.ctx.count("gap_replay_mode_unknown")
                continue
            out.append(hedge_key(f) if mode else f)
        return out

    def _report_unrecoverable(self, fills: list[Fill]) -> None:
        """Fills after the floor whose states never reached the book although a newer
        state did: lost while the socket stayed up (docs/reliability.md, L1). What they
        mean for lifecycles is delivered (:mod:`.lost`: lifecycles that opened and
        closed unseen as ``past`` history, two lifecycles the book merged split); what
        cannot be is reported, once."""
        lost = self.ledger.lost_states([(f.key, f.seq, f.exec_ms) for f in fills])
        for key, states in lost.items():
            recovered = self._recover_lost(key, sorted(states), fills)
            self.ledger.mark_seen(key, states)
            if recovered:
                self.ctx.count("states_recovered_past", len(recovered))
                self.ctx.log.warning(
                    "%s: %d position states (seq %d..%d) never arrived and a newer one did; "
                    "their fills were replayed: lifecycles they opened and closed are "
                    "delivered as past, and one the book merged is split",
                    key.symbol, len(recovered), min(recovered), max(recovered),
                    extra={"symbol": key.symbol})
                for seq in recovered:
                    states.pop(seq, None)
            if not states:
                continue
            seqs = self.ledger.record_unrecoverable(key, states)
            self.ctx.count("states_unrecoverable", len(seqs))
            self.ctx.log.warning(
                "%s: %d position states (seq %d..%d) never arrived and a newer one did: "
                "they cannot be delivered in order and are skipped (pushes lost with the "
                "socket up)", key.symbol, len(seqs), seqs[0], seqs[-1],
                extra={"symbol": key.symbol, "seqs": seqs})

    def _recover_lost(self, key: PositionKey, lost: list[int], fills: list[Fill]) -> set[int]:
        """The lost seqs whose meaning for lifecycles was delivered: per run of them
        between two seen states, the fills replayed from the first (see lost.py)."""
        done: set[int] = set()
        ledger = self.ledger
        for a, b, run in ledger.brackets(key, lost):
            start = ledger.state_at(key, a)
            end = ledger.state_at(key, b)
            if start is None or end is None:
                continue
            lev = start.leverage or self.leverage.get(key)
            after = -1 if a is None else a
            seg = [f for f in fills if f.key == key and after < f.seq <= b]
            states = sorted(replay(seg, {key: start}, {key: after}, {}, {key: lev},
                                   time.time_ns()), key=lambda u: u.seq or 0)
            if (not states or states[-1].seq != b or not set(run) <= {u.seq for u in states}
                    or (states[-1].side, states[-1].size) != (end.side, end.size)):
                continue  # the fills do not explain the run: reported
            found = lost_boundaries(start, states)
            past = found.past
            if found.split is not None and not (
                    self._still_in_lifecycle_of(key, b)
                    and self.ctx.split_lifecycle(key, *found.split)):
                # the book has left b's lifecycle since (F49): all of it is history
                late = self._merged_and_closed(key, a, start, states, b)
                if late is None:
                    continue
                past = [late]
            try:
                for lifecycle in past:
                    self.ctx.past_lifecycles(lifecycle)
            except ValueError:
                continue
            done.update(run)
        return done

    def _merged_and_closed(self, key: PositionKey, a: int | None, start: State,
                           states: list[PositionUpdate], b: int) -> list[PositionUpdate] | None:
        """lost.merged_and_closed with the seen states: ``a``'s, and those after ``b``."""
        if a is None:
            return None
        seen = self.ledger.seen.get(key, {})
        now = time.time_ns()

        def update(seq: int, st: State) -> PositionUpdate:
            return PositionUpdate(category=key.category, symbol=key.symbol,
                                  position_idx=key.position_idx, side=st.side,
                                  size=st.size, entry_price=st.entry_price,
                                  leverage=st.leverage, seq=seq,
                                  exchange_ms=seen.get(seq) or None, received_ns=now)

        later = []
        for q in sorted(q for q in seen if q > b):
            st = self.ledger.state_at(key, q)
            if st is None:
                return None
            later.append(update(q, st))
        return merged_and_closed(update(a, start), states, later)

    def _still_in_lifecycle_of(self, key: PositionKey, seq: int) -> bool:
        """True if every state the book was given after ``seq`` (up to its current one)
        is of the same open lifecycle as the state at ``seq``."""
        at = self.ledger.state_at(key, seq)
        cur = self.ctx.positions().get(key)
        if at is None or cur is None or cur.side is not at.side or cur.seq is None:
            return False
        for q in self.ledger.seen.get(key, {}):
            if seq < q <= cur.seq:
                st = self.ledger.state_at(key, q)
                if st is None or st.side is not at.side or st.size == 0:
                    return False
        return True
