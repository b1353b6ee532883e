"""What states lost with the socket up mean for lifecycles. Pure functions.

Pushes can be lost while the private socket stays up (a stall no ping revealed),
overtaken by a newer push: the book went from the seen state *a* straight to the seen
state *b*. The fills between them (replayed from *a*) give the states the book never
got. Lost changes inside one lifecycle lose nothing a consumer counts; lost lifecycle
boundaries do:

* a lifecycle that opened and closed between *a* and *b* (its close may be *b* itself)
  never reached consumers: it is delivered as ``past`` history;
* if *a* and *b* are open on the same side but the lifecycle of *a* closed in between
  and *b*'s opened later, the book delivered the two as one: it is split (``closed``
  as of the lost close, then ``opened``);
* other boundaries the book delivered at *b* (a close of *a*'s lifecycle, or an open of
  *b*'s, carrying *b*'s seq) are late, not lost;
* if the book has closed *b*'s lifecycle since (the loss was found late: an audit or a
  resync seconds later), the split cannot be made any more: the whole of it, from *a*
  to that close, is delivered as ``past`` history (:func:`merged_and_closed`). The
  router knows the part consumers were told of *a*'s lifecycle by its seq and takes the
  lost close as a moment the key was flat, so that the rest reaches them as ``past``
  (the lifecycle they were told stands for *a*'s).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from decimal import Decimal

from feedctl import PositionUpdate, Side

from .gap import Start


@dataclass
class LostBoundaries:
    """What to deliver for one run of lost states (see the module docstring)."""

    #: each a lifecycle's states, from its open to its (flat) close
    past: list[list[PositionUpdate]] = field(default_factory=list)
    #: (the lost close of *a*'s lifecycle as a flat state, the first state of *b*'s)
    split: tuple[PositionUpdate, PositionUpdate] | None = None


def _open(side: Side | None, size: Decimal) -> bool:
    return side is not None and size > 0


def _flat(u: PositionUpdate) -> PositionUpdate:
    """``u`` as the flat state that closed the lifecycle before it (a flip closes one
    lifecycle and opens the next in one state)."""
    if u.size == 0:
        return u
    return u.model_copy(update={"side": None, "size": Decimal(0), "entry_price": Decimal(0),
                                "leverage": None})


def lost_boundaries(a: Start, states: Sequence[PositionUpdate]) -> LostBoundaries:
    """For the seen state ``a`` and the replayed states after it, in order, up to and
    including the seen state *b* (the last): the lifecycles to deliver as past and the
    split to make, if any."""
    out = LostBoundaries()
    if not states:
        return out
    # lifecycles as (index of the open state, index of the close state or None); index
    # 0 is a, the states follow from index 1
    seq: list[tuple[Side | None, Decimal]] = [(a.side, a.size)]
    seq += [(u.side, u.size) for u in states]
    lifecycles: list[tuple[int, int | None]] = []
    cur: int | None = 0 if _open(*seq[0]) else None
    for i in range(1, len(seq)):
        (pside, psize), (side, size) = seq[i - 1], seq[i]
        was_open, is_open = _open(pside, psize), _open(side, size)
        boundary = was_open and (not is_open or side is not pside)
        if boundary and cur is not None:
            lifecycles.append((cur, i))
            cur = None
        if is_open and (not was_open or side is not pside):
            cur = i
    if cur is not None:
        lifecycles.append((cur, None))
    last = len(seq) - 1  # b
    for o, c in lifecycles:
        if o >= 1 and c is not None:
            # opened after a, closed by b at the latest: never delivered
            out.past.append([*states[o - 1:c - 1], _flat(states[c - 1])])
    a_open, b_open = _open(*seq[0]), _open(*seq[last])
    if (a_open and b_open and seq[0][0] is seq[last][0] and lifecycles
            and lifecycles[0][0] == 0 and lifecycles[0][1] is not None
            and lifecycles[0][1] < last):
        # a's lifecycle closed before b and b's opened after: the book merged them
        first_close = lifecycles[0][1]
        assert first_close is not None
        o_last = lifecycles[-1][0]
        out.split = (_flat(states[first_close - 1]), states[o_last - 1])
    return out


def merged_and_closed(a: PositionUpdate, states: Sequence[PositionUpdate],
                      later: Sequence[PositionUpdate]) -> list[PositionUpdate] | None:
    """The history to deliver as past for a split the book can no longer make: ``a``
    (the seen state before the run, open), the replayed ``states`` up to *b*, then the
    states the book was given after *b* (``later``, in order) up to the one that closed
    *b*'s lifecycle (flat, or the other side: as a flat state). None if none of
    ``later`` closed it."""
    if not states or not _open(a.side, a.size):
        return None
    b = states[-1]
    if not _open(b.side, b.size):
        return None
    for i, u in enumerate(later):
        if not _open(u.side, u.size) or u.side is not b.side:
            return [a, *states, *later[:i], _flat(u)]
    return None
