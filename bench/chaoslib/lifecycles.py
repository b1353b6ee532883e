"""Lifecycles: the exchange's (from its transition log) and the ones a consumer or a
feed's book saw (from their events), and the mapping of the latter onto the former.

Plain dicts and JSON records only: nothing from feedctl's runtime or the simulator."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any


@dataclass
class ExLife:
    """One lifecycle on the exchange: from an ``opened`` to its ``closed`` transition."""

    symbol: str
    open_seq: int
    open_ms: int
    close_seq: int | None = None
    close_ms: int | None = None
    changes: int = 0


@dataclass
class SeenLife:
    """One lifecycle as a consumer (or a feed's book) saw it: ``opened`` .. ``closed``."""

    symbol: str
    open_seq: int | None
    open_t: int
    open_active: str | None = None
    close_seq: int | None = None
    close_t: int | None = None
    close_active: str | None = None
    changes: int = 0
    first: int | None = None  # index of the exchange lifecycle its opened maps to
    last: int | None = None  # index of the exchange lifecycle its closed maps to
    past: bool = False  # delivered after the fact as ``past`` events (history)


def exchange_lifecycles(transitions: Iterable[dict[str, Any]]
                        ) -> tuple[dict[str, list[ExLife]], list[str]]:
    """Per symbol, the exchange's lifecycles in order (from the transition log)."""
    out: dict[str, list[ExLife]] = {}
    anomalies: list[str] = []
    for t in sorted(transitions, key=lambda t: t["id"]):
        lcs = out.setdefault(f"{t['symbol']}:{t.get('positionIdx', 0)}", [])
        is_open = bool(lcs) and lcs[-1].close_seq is None
        if t["kind"] == "opened":
            if is_open:
                anomalies.append(f"exchange opened {t['symbol']} twice (id {t['id']})")
            lcs.append(ExLife(t["symbol"], int(t["seq"]), int(t["time"])))
        elif t["kind"] == "closed":
            if not is_open:
                anomalies.append(f"exchange closed flat {t['symbol']} (id {t['id']})")
                continue
            lcs[-1].close_seq, lcs[-1].close_ms = int(t["seq"]), int(t["time"])
        elif is_open:
            lcs[-1].changes += 1
    return out, anomalies


def seen_lifecycles(events: Iterable[dict[str, Any]]
                    ) -> tuple[dict[str, list[SeenLife]], list[dict[str, Any]]]:
    """Per key, the lifecycles in a stream of lifecycle events, and its duplicates: an
    ``opened`` while open, a ``closed`` while not open, a ``changed`` while not open."""
    out: dict[str, list[SeenLife]] = {}
    dups: list[dict[str, Any]] = []
    # ``past`` events are the pairs of lifecycles recovered after the fact: their own
    # stream per key, beside the current one (they never touch its open lifecycle)
    past: dict[str, list[SeenLife]] = {}
    for ev in events:
        key = f"{ev['symbol']}:{ev['idx']}"
        is_past = bool(ev.get("past"))
        lcs = (past if is_past else out).setdefault(key, [])
        is_open = bool(lcs) and lcs[-1].close_t is None
        kind = ev["kind"]
        if kind == "opened":
            if is_open:
                dups.append({"why": "opened while open", **ev})
                continue
            lcs.append(SeenLife(ev["symbol"], ev["seq"], ev["t"], ev.get("active"),
                                past=is_past))
        elif kind == "closed":
            if not is_open:
                dups.append({"why": "closed while not open", **ev})
                continue
            lcs[-1].close_seq, lcs[-1].close_t = ev["seq"], ev["t"]
            lcs[-1].close_active = ev.get("active")
        elif kind == "changed":
            if not is_open:
                dups.append({"why": "changed while not open", **ev})
                continue
            lcs[-1].changes += 1
    for key, lcs in past.items():
        out.setdefault(key, []).extend(lcs)
    return out, dups


def _locate_open(xl: list[ExLife], seq: int | None) -> int | None:
    """The exchange lifecycle an ``opened`` belongs to: the k with
    ``open_seq(k) <= seq < close_seq(k)`` (a flip's closing and opening transitions share
    one seq, which therefore opens k+1). None if ``seq`` is no open state's."""
    if seq is None:
        return None
    for k, lc in enumerate(xl):
        if lc.open_seq <= seq and (lc.close_seq is None or seq < lc.close_seq):
            return k
    return None


def _locate_close(xl: list[ExLife], seq: int | None, first: int) -> int | None:
    """The exchange lifecycle a ``closed`` ends, for a seen lifecycle opened on ``first``.

    A ``closed`` carries the closing state's seq, the last open state's (a snapshot that
    no longer lists the position), or — when a feed learns of a flip late — the seq of
    the *next* lifecycle's open state. So: the last k >= ``first`` opened at or before
    ``seq``; if ``seq`` is an open state of that k and k > ``first``, the close ends k-1.
    """
    if seq is None:
        return None
    k = None
    for i in range(first, len(xl)):
        if xl[i].open_seq > seq:
            break
        k = i
    if k is None:
        return None
    close = xl[k].close_seq
    if k > first and (close is None or seq < close):
        return k - 1
    return k


def _map(seen: dict[str, list[SeenLife]], ex: dict[str, list[ExLife]]) -> list[SeenLife]:
    """Map each seen lifecycle onto exchange ones. ``past`` lifecycles are mapped first:
    a close that arrived late with the next lifecycle's seq ends the lifecycle before it
    *that consumers did not get as history* (the past one sits between them)."""
    unmatched: list[SeenLife] = []
    for key, lcs in seen.items():
        xl = ex.get(key, [])
        claimed: set[int] = set()
        for lc in sorted(lcs, key=lambda c: not c.past):
            lc.first = _locate_open(xl, lc.open_seq)
            if lc.first is None:
                unmatched.append(lc)
                continue
            if lc.close_t is None:
                lc.last = len(xl) - 1 if xl and xl[-1].close_seq is None else lc.first
            else:
                lc.last = _locate_close(xl, lc.close_seq, lc.first)
                if lc.last is None:
                    unmatched.append(lc)
                    continue
                if lc.past:
                    claimed.update(range(lc.first, lc.last + 1))
                else:
                    while lc.last > lc.first and lc.last in claimed:
                        lc.last -= 1
    return unmatched
