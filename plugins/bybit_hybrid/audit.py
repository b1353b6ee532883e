"""The periodic audit: compare the book with a REST snapshot. Pure functions.

A difference only counts when the book cannot be newer than the snapshot: keys whose
book view or newest push is not older than the snapshot's time (``as_of_ms``) are skipped,
because a push that arrived while the snapshot was in flight is the truth. Keys whose
row changed shortly before the snapshot are left to the stream too (``settled``): the
pushes of that change may still be on their way, and a repair would make them arrive
older than the book and be dropped, losing the states between the two.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from decimal import Decimal

from feedctl import Category, Position, PositionKey, PositionUpdate


def audit_diff(
    positions: Mapping[PositionKey, Position],
    rows: list[PositionUpdate],
    as_of_ms: int | None,
    last_push_ms: Mapping[PositionKey, int] | None = None,
    covers: Callable[[PositionKey], bool] | None = None,
) -> dict[str, str]:
    """Mismatches between the book and the open positions of a snapshot, by key (side,
    size, entry price, leverage); book positions the snapshot
    does not cover (``covers``) are not compared."""
    pushes = last_push_ms or {}

    def newer(key: PositionKey, pos: Position | None) -> bool:
        if as_of_ms is None:
            return False
        # of the snapshot's own millisecond counts as newer: exchange times are whole
        # ms, and a state of that ms may postdate the rows (the book's reconcile agrees)
        if pos is not None and pos.exchange_ms is not None and pos.exchange_ms >= as_of_ms:
            return True
        return pushes.get(key, 0) >= as_of_ms

    out: dict[str, str] = {}
    seen: set[PositionKey] = set()
    for row in rows:
        if not row.is_open:
            continue
        key = row.key
        seen.add(key)
        pos = positions.get(key)
        if newer(key, pos):
            continue
        if pos is None:
            out[str(key)] = f"{key}: open on the exchange ({row.side} {row.size}), not in the book"
            continue
        diffs = [
            f"{name} book={getattr(pos, name)} exchange={getattr(row, name)}"
            for name in ("side", "size", "entry_price")
            if getattr(pos, name) != getattr(row, name)
        ]
        if row.leverage is not None and pos.leverage != row.leverage:
            # unknown in the book (a state replayed from fills, which carry none), or a
            # leverage change whose push was lost (a settings change keeps the seq, so
            # no later state tells): the snapshot's word
            known = "unknown" if pos.leverage is None else pos.leverage
            diffs.append(f"leverage book={known} exchange={row.leverage}")
        if diffs:
            out[str(key)] = f"{key}: " + ", ".join(diffs)
    for key, pos in positions.items():
        if covers is not None and not covers(key):
            continue
        if key not in seen and not newer(key, pos):
            out[str(key)] = f"{key}: in the book ({pos.side} {pos.size}), flat on the exchange"
    return out


def settled(
    rows: list[PositionUpdate], positions: Mapping[PositionKey, Position],
    as_of_ms: int | None, settle_ms: int,
) -> tuple[list[PositionUpdate], set[PositionKey]]:
    """``rows`` with every row younger than ``settle_ms`` before ``as_of_ms`` (by its
    updatedTime) replaced by the book's own state (or dropped, if the book lacks the
    key), so neither a diff nor a reconcile touches it; and the keys left out."""
    if as_of_ms is None:
        return rows, set()
    cutoff = as_of_ms - settle_ms
    young = {r.key for r in rows if r.exchange_ms is not None and r.exchange_ms > cutoff}
    if not young:
        return rows, young
    out = [r for r in rows if r.key not in young]
    out.extend(_as_row(positions[k]) for k in sorted(young, key=str) if k in positions)
    return out, young


def fill_floor(until_ms: int | None, unsettled: set[PositionKey],
               positions: Mapping[PositionKey, Position], floor_ms: int | None) -> int | None:
    """Up to when (server ms) an audit's snapshot accounts for every fill: its settle
    time ``until_ms``, but no later than the book's state of a key left to the stream
    (``unsettled``): that key's fills after the book's state are not reflected yet (the
    row stood in for by the book's own state may be one the book never got, a push the
    stream lost). A key the book does not hold keeps the old floor ``floor_ms``."""
    if until_ms is None:
        return None
    out = until_ms
    for key in unsettled:
        pos = positions.get(key)
        ms = pos.exchange_ms if pos is not None else None
        if ms is None:
            return floor_ms if floor_ms is not None else None
        out = min(out, ms - 1)  # a later fill of the state's own millisecond: not in it
    return out


def _as_row(p: Position) -> PositionUpdate:
    return PositionUpdate(
        category=p.category, symbol=p.symbol, position_idx=p.position_idx, side=p.side,
        size=p.size, entry_price=p.entry_price, leverage=p.leverage,
        liq_price=p.liq_price, take_profit=p.take_profit, stop_loss=p.stop_loss,
        trailing_stop=p.trailing_stop, seq=p.seq, exchange_ms=p.exchange_ms,
        received_ns=p.received_ns,
    )


def forced_updates(
    keys: set[str], positions: Mapping[PositionKey, Position], rows: list[PositionUpdate]
) -> list[PositionUpdate]:
    """Updates that make the book take the snapshot's word for ``keys`` even when its
    version guard (seq/updatedTime) would reject the rows: they carry no version."""
    by_key = {str(r.key): r for r in rows}
    out: list[PositionUpdate] = []
    for name in sorted(keys):
        row = by_key.get(name)
        if row is not None:
            out.append(row.model_copy(update={"seq": None, "exchange_ms": None}))
            continue
        pos = next((p for k, p in positions.items() if str(k) == name), None)
        if pos is not None:
            out.append(PositionUpdate(category=pos.category, symbol=pos.symbol,
                                      position_idx=pos.position_idx, side=None, size=Decimal(0)))
    return out


def covered(key: PositionKey, categories: list[Category], settle_coins: list[str],
            settle_coin: str | None = None) -> bool:
    """Whether a REST snapshot of ``categories``/``settle_coins`` lists this position.

    ``settle_coin`` is the instrument's (instruments-info), when known. Without it:
    linear symbols name their settle coin as a suffix (BTCUSDT); USDC contracts are
    named BTCPERP or BTC-26JUL24. Inverse positions are listed whole.
    """
    if key.category not in categories:
        return False
    if key.category is not Category.LINEAR:
        return True
    if settle_coin:
        return settle_coin in settle_coins
    sym = key.symbol
    if any(sym.endswith(coin) for coin in settle_coins):
        return True
    return "USDC" in settle_coins and (sym.endswith("PERP") or "-" in sym)
