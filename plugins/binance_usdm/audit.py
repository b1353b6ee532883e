"""The periodic audit: compare the book with a REST snapshot. Pure functions.

A difference counts only when the book cannot be newer than the snapshot: keys whose
book state or newest push is later than ``as_of_ms - settle_ms`` are skipped (a push
that arrived while the snapshot was in flight, or whose own copy may still be on its
way, is the truth), and so are rows updated within ``settle_ms`` before the snapshot.
"""

from __future__ import annotations

from collections.abc import Mapping

from feedctl import Position, PositionKey, PositionUpdate


def audit_diff(
    positions: Mapping[PositionKey, Position], rows: list[PositionUpdate], as_of_ms: int,
    last_push_ms: Mapping[PositionKey, int], settle_ms: int = 1000,
) -> tuple[dict[str, str], set[PositionKey]]:
    """Mismatches (by key, as text) between the book and the open rows of a snapshot,
    and the keys left out as too young to judge."""
    cutoff = as_of_ms - settle_ms
    young: set[PositionKey] = set()

    def skip(key: PositionKey, pos: Position | None, row: PositionUpdate | None) -> bool:
        times = [last_push_ms.get(key, 0)]
        if pos is not None and pos.exchange_ms is not None:
            times.append(pos.exchange_ms)
        if row is not None and row.exchange_ms is not None:
            times.append(row.exchange_ms)
        if max(times) > cutoff:
            young.add(key)
            return True
        return False

    out: dict[str, str] = {}
    by_key = {r.key: r for r in rows if r.is_open}
    for key, row in by_key.items():
        pos = positions.get(key)
        if skip(key, pos, row):
            continue
        if pos is None:
            out[str(key)] = f"{key}: open on the exchange ({row.side} {row.size}), not in the book"
            continue
        diffs = [f"{name} book={getattr(pos, name)} exchange={getattr(row, name)}"
                 for name in ("side", "size", "entry_price")
                 if getattr(pos, name) != getattr(row, name)]
        if diffs:
            out[str(key)] = f"{key}: " + ", ".join(diffs)
    for key, pos in positions.items():
        if key not in by_key and not skip(key, pos, None):
            out[str(key)] = f"{key}: in the book ({pos.side} {pos.size}), flat on the exchange"
    return out, young


def without(rows: list[PositionUpdate], positions: Mapping[PositionKey, Position],
            keys: set[PositionKey]) -> list[PositionUpdate]:
    """``rows`` with the rows of ``keys`` replaced by the book's own state (or dropped),
    so a reconcile against them leaves those keys alone."""
    if not keys:
        return rows
    out = [r for r in rows if r.key not in keys]
    for key in sorted(keys, key=str):
        p = positions.get(key)
        if p is not None:
            out.append(PositionUpdate(
                category=p.category, symbol=p.symbol, position_idx=p.position_idx,
                side=p.side, size=p.size, entry_price=p.entry_price, leverage=p.leverage,
                liq_price=p.liq_price, seq=p.seq, exchange_ms=p.exchange_ms,
                received_ns=p.received_ns))
    return out
