"""The account's Redis snapshot as the state its consumers last knew.

A worker that takes an account over (a peer died or paused past its lease, or Redis was
down long enough for the lease to lapse) reads the snapshot hash before the account's
feeds start and hands it to them as a :class:`feedctl.PriorState`
(``feedctl_prior_state``): an open position's state from its ``p:<key>`` event, a flat
one's from its last close (``c:<key>``), each with the exchange's seq and time. A feed
that can replay history brings its book from there to the exchange's state, and the
publisher, primed with the same snapshot, publishes each step once (see
:class:`.outbox.AccountOutbox`).
"""

from __future__ import annotations

from pydantic import ValidationError

from feedctl import PositionEvent, PositionKey, PositionUpdate, PriorState


def prior_of(snapshot: dict[str, str]) -> PriorState:
    """The consumers' last known state in an account's snapshot hash."""
    open_: dict[PositionKey, PositionUpdate] = {}
    flat: dict[PositionKey, PositionUpdate] = {}
    for name, body in snapshot.items():
        kind, _, _key = name.partition(":")
        if kind not in ("p", "c"):
            continue
        try:
            pos = PositionEvent.model_validate_json(body).position
        except ValidationError:
            continue  # not ours to judge: the publisher's resync rewrites it
        if kind == "p":
            open_[pos.key] = PositionUpdate(
                category=pos.category, symbol=pos.symbol, position_idx=pos.position_idx,
                side=pos.side, size=pos.size, entry_price=pos.entry_price,
                leverage=pos.leverage, liq_price=pos.liq_price, take_profit=pos.take_profit,
                stop_loss=pos.stop_loss, trailing_stop=pos.trailing_stop, seq=pos.seq,
                exchange_ms=pos.exchange_ms)
        else:
            flat[pos.key] = PositionUpdate(
                category=pos.category, symbol=pos.symbol, position_idx=pos.position_idx,
                side=None, size=0, leverage=pos.leverage, seq=pos.seq,
                exchange_ms=pos.exchange_ms)
    last = snapshot.get("_last")
    as_of = int(last.partition("-")[0]) if last and last != "0-0" else None
    return PriorState(positions={**flat, **open_}, as_of_ms=as_of)
