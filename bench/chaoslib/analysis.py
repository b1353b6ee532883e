"""Analysis: the exchange's lifecycles matched with what the consumer received, every
failure attributed to a known finding by its signature (or counted unexplained), the
positions compared, and the verdict (docs/reliability.md).

Plain dicts and JSON records only: nothing from feedctl's runtime or the simulator, so
tests import it cheaply (``compare_positions`` reads any object with a position's
attributes)."""

from __future__ import annotations

import bisect
from collections import Counter
from dataclasses import asdict
from decimal import Decimal
from typing import Any

from .config import PRIMARY
from .lifecycles import (
    ExLife,
    SeenLife,
    _locate_open,
    _map,
    exchange_lifecycles,
    seen_lifecycles,
)


def compare_positions(exchange: dict[tuple[str, int], dict[str, Any]],
                      consumer: dict[tuple[str, int], Any]) -> list[dict[str, Any]]:
    """Positions whose consumer view differs from the exchange (side, size, entry, leverage,
    TP/SL/trailing; the values the exchange reports, "0" meaning not set)."""
    out: list[dict[str, Any]] = []
    for key in sorted(set(exchange) | set(consumer)):
        ex, pos = exchange.get(key), consumer.get(key)
        if ex is None or pos is None:
            out.append({"symbol": key[0], "exchange": None if ex is None else
                        f"{ex['side']} {ex['size']}", "consumer": None if pos is None else
                        f"{pos.side.value} {pos.size}"})
            continue
        diffs = {}
        side = {"Buy": "long", "Sell": "short"}.get(ex["side"])
        if side != pos.side.value:
            diffs["side"] = (ex["side"], pos.side.value)
        for name, attr in (("size", "size"), ("entryPrice", "entry_price"),
                           ("leverage", "leverage"), ("takeProfit", "take_profit"),
                           ("stopLoss", "stop_loss"), ("trailingStop", "trailing_stop")):
            want = Decimal(ex[name])
            have = getattr(pos, attr) or Decimal(0)
            if want != have:
                diffs[name] = (str(want), str(have))
        if diffs:
            out.append({"symbol": key[0], "diffs": {k: list(v) for k, v in diffs.items()}})
    return out


def analyse(*, transitions: list[dict[str, Any]], consumer: list[dict[str, Any]],
            primary_taps: list[dict[str, Any]], primary: str = PRIMARY,
            faults: list[dict[str, Any]] | None = None,
            statuses: list[dict[str, Any]] | None = None, detect_slack_s: float = 3.0,
            clock_slack_ms: int = 50,
            reported: list[dict[str, Any]] | None = None) -> dict[str, Any]:
    """Match the exchange's lifecycles with what the consumer received.

    Per exchange lifecycle: ``delivered`` (exactly one consumer lifecycle, opened and
    closed on it), ``missed`` (no consumer lifecycle touches it), ``coalesced`` (one
    consumer lifecycle spans it and a neighbour: a close/reopen the consumer never saw),
    ``split`` (two or more consumer lifecycles on it: a false close and reopen). A missed
    or coalesced one is *lost*, whatever the reason; ``primary_saw`` records whether the
    primary's own book saw the boundaries consumers lack (and while which feed
    delivered), to tell a router fault from a feed's.

    Every failure (lost, split, premature close, unmatched, duplicate) is then attributed
    to a known finding by its signature (see :func:`explain`) or counted *unexplained*;
    a lost lifecycle whose first missing boundary's seq the primary ``reported`` as a
    state it could not deliver in order is the hybrid's own, reported, L1.
    """
    ex, anomalies = exchange_lifecycles(transitions)
    seen, dups = seen_lifecycles(consumer)
    unmatched = _map(seen, ex)
    taps, _ = seen_lifecycles(primary_taps)
    _map(taps, ex)
    ex_counts = Counter(t["kind"] for t in transitions)
    con_counts = Counter(e["kind"] for e in consumer)
    status: Counter[str] = Counter()
    lost: list[dict[str, Any]] = []
    split: list[dict[str, Any]] = []
    premature: list[dict[str, Any]] = []
    for key, xl in ex.items():
        cls = seen.get(key, [])
        tl = taps.get(key, [])
        for k, x in enumerate(xl):
            cover = [c for c in cls if c.first is not None and c.last is not None
                     and c.first <= k <= c.last]
            if len(cover) >= 2:
                status["split"] += 1
                split.append({"symbol": x.symbol, "open_seq": x.open_seq,
                              "open_ms": x.open_ms, "close_ms": x.close_ms,
                              "consumer_lifecycles": len(cover)})
                continue
            missing: list[str] = []
            if not cover:
                missing = ["open", "close"] if x.close_seq is not None else ["open"]
            else:
                c = cover[0]
                if c.first != k:
                    missing.append("open")
                if x.close_seq is not None and (c.last != k or c.close_t is None):
                    missing.append("close")
            if not missing:
                status["delivered"] += 1
                continue
            kind = "missed" if not cover else "coalesced"
            status[kind] += 1
            lost.append({"symbol": x.symbol, "open_seq": x.open_seq, "close_seq": x.close_seq,
                         "open_ms": x.open_ms, "close_ms": x.close_ms, "kind": kind,
                         "missing": missing, "primary_saw": _primary_saw(tl, k, missing,
                                                                         primary)})
    for key, cls in seen.items():
        xl = ex.get(key, [])
        for c in cls:
            if c.close_t is None or c.last is None:
                continue
            x = xl[c.last]
            if x.close_ms is None or x.close_ms > c.close_t // 1_000_000 + clock_slack_ms:
                premature.append({"symbol": c.symbol, "close_seq": c.close_seq,
                                  "consumer_closed_at_ms": c.close_t // 1_000_000,
                                  "exchange_closed_at_ms": x.close_ms})
    completed = sum(1 for xl in ex.values() for x in xl if x.close_seq is not None)
    signs = signatures(consumer, faults or [], statuses or [], primary, detect_slack_s, ex,
                       primary_taps)
    signs[F_CLOSE_REPLAYED] = [(t["symbol"], int(t["seq"]), int(t["seq"]))
                               for t in transitions if t["kind"] == "closed"]
    # the primary's book opening on a close's seq: a close fill replayed onto a flat book;
    # what consumers get from that book in the next seconds inherits the wrong state
    # (from the replayed close to 5 s after: the replay's later states build on it)
    closes = {(t["symbol"], int(t["seq"])): int(t["time"]) for t in transitions
              if t["kind"] == "closed"}
    signs[F_REPLAY_WINDOW] = [
        (p["symbol"], closes[(p["symbol"], p["seq"])], p["t"] // 1_000_000 + 5_000)
        for p in phantom_states(transitions, primary_taps)
        if (p["symbol"], p["seq"]) in closes]
    phantoms = phantom_states(transitions, consumer)
    known: Counter[str] = Counter()
    unexplained: list[dict[str, Any]] = []
    items: list[tuple[str, dict[str, Any], int, int, list[int]]] = []
    for it in lost:
        lo, hi = it["open_ms"], it["close_ms"] or it["open_ms"]
        times = [it["open_ms"]] * ("open" in it["missing"]) + (
            [it["close_ms"]] if "close" in it["missing"] and it["close_ms"] else [])
        items.append(("lost", it, lo, hi, times))
    for it in split:
        items.append(("split", it, it["open_ms"], it["close_ms"] or it["open_ms"], []))
    for it in premature:
        t = it["consumer_closed_at_ms"]
        items.append(("premature", it, t, t, []))
    for u in unmatched:
        items.append(("unmatched", asdict(u), u.open_t // 1_000_000,
                      (u.close_t or u.open_t) // 1_000_000, []))
    for d in dups:
        items.append(("duplicate", d, d["t"] // 1_000_000, d["t"] // 1_000_000, []))
    for ph in phantoms:
        items.append(("phantom", ph, ph["t"] // 1_000_000, ph["t"] // 1_000_000, []))
    told = {(r["symbol"], int(q)) for r in reported or [] for q in r.get("seqs", [])}
    for what, it, lo, hi, times in items:
        why = explain(signs, what, it["symbol"], lo, hi, times, seq=it.get(
            "open_seq" if what == "unmatched" else "seq"))
        # the first boundary consumers lack: a lifecycle they never saw opened was
        # reported if its open state was (its close may have reached the book as the
        # flat state of a later order's create push)
        if what == "lost":
            first = "open" if "open" in it["missing"] else "close"
            if (it["symbol"], it.get(f"{first}_seq")) in told:
                why = L_REPORTED
            elif str(it.get("primary_saw", "")).endswith("while the standby delivered"):
                # the polling standby merged a close and reopen (both sides the same)
                # while it delivered; the primary saw both, but only after consumers'
                # merged lifecycle had closed: no event can split it any more (a merged
                # lifecycle whose late close carries the later part's seq reads as the
                # later part missed; the router delivers any other as `past`)
                why = F_MERGED_CLOSED
        if why is None:
            unexplained.append({"failure": what, **it})
        else:
            known[why] += 1
            it["explained_by"] = why
    return {
        "exchange_transitions": {k: ex_counts.get(k, 0) for k in ("opened", "changed",
                                                                   "closed")},
        "exchange_lifecycles": sum(len(xl) for xl in ex.values()),
        "exchange_lifecycles_completed": completed,
        "consumer_events": {k: con_counts.get(k, 0) for k in ("opened", "changed", "closed")},
        "consumer_synthetic": sum(1 for e in consumer if e["synthetic"]),
        "lifecycles": {k: status.get(k, 0) for k in (
            "delivered", "missed", "coalesced", "split")},
        "lost": len(lost),
        "lost_detail": lost[:20],
        "duplicates": len(dups),
        "duplicate_detail": dups[:10],
        "split": len(split),
        "split_detail": split[:10],
        "premature_closes": len(premature),
        "premature_detail": premature[:10],
        "unmatched_consumer_lifecycles": len(unmatched),
        "unmatched_detail": [asdict(u) for u in unmatched[:10]],
        "exchange_anomalies": anomalies[:10],
        "phantom_states": len(phantoms),
        "phantom_detail": phantoms[:10],
        "known_findings": dict(sorted(known.items())),
        "signatures": {k.strip(): len(v) for k, v in signs.items() if k != F_CLOSE_REPLAYED},
        "unexplained": len(unexplained),
        "unexplained_detail": unexplained[:20],
    }


def _primary_saw(taps: list[SeenLife], k: int, missing: list[str], primary: str) -> str:
    """Whether the primary's book saw each boundary of lifecycle ``k`` consumers lack, and
    while which feed delivered: tells a router fault from a feed's."""
    seen: list[str] = []
    for boundary in missing:
        if boundary == "open":
            hit = [t for t in taps if t.first == k]
            active = [t.open_active for t in hit]
        else:
            hit = [t for t in taps if t.last == k and t.close_t is not None]
            active = [t.close_active for t in hit]
        if not hit:
            return f"primary never saw the {boundary}"
        if any(a == primary for a in active):
            return f"primary emitted the {boundary} while delivering"
        seen.append(boundary)
    return f"primary saw the {' and '.join(seen)} while the standby delivered"


#: What a failure can be attributed to (docs/reliability.md, "Findings").
F_STALE_REOPEN = "F2b stale state at a switch"
F_ORPHAN_CLOSE = "F11 false orphan close"
F_SNAPSHOT_REOPEN = "F1b reopened after a snapshot closed it"
F_LAGGING_PRICE = "F2c lagging feed's price replaced consumers' position"
F_OVERTAKEN = "F6 audit overtook delayed pushes"
F_CLOSE_REPLAYED = "F10 close fill replayed onto a flat book"
F_REPLAY_WINDOW = "F10 close fill replayed onto a flat book "  # (its aftermath)
L_SILENT = "L1 loss inside a stall not noticed while it lasted"
L_REPORTED = "L1 loss the hybrid reported (states_unrecoverable)"
F_MERGED_CLOSED = "F15 standby merged a close and reopen, closed before the primary knew"


def exchange_states(transitions: list[dict[str, Any]]
                    ) -> dict[str, tuple[list[int], list[tuple[str, Decimal]]]]:
    """Per position (``symbol:idx``; a hedge-mode symbol has two): the seqs of its
    transitions and the (side, size) after each."""
    out: dict[str, tuple[list[int], list[tuple[str, Decimal]]]] = {}
    for t in sorted(transitions, key=lambda t: t["id"]):
        seqs, states = out.setdefault(f"{t['symbol']}:{t.get('positionIdx', 0)}", ([], []))
        seqs.append(int(t["seq"]))
        states.append(({"Buy": "long", "Sell": "short"}.get(t["side"], ""), Decimal(t["size"])))
    return out


def phantom_states(transitions: list[dict[str, Any]], events: list[dict[str, Any]]
                   ) -> list[dict[str, Any]]:
    """``opened``/``changed`` events carrying a (side, size) the exchange never had at
    their seq (the state after the last transition with that seq or an older one)."""
    states = exchange_states(transitions)
    out = []
    for ev in events:
        if ev["kind"] == "closed" or ev["seq"] is None:
            continue
        seqs, hist = states.get(f"{ev['symbol']}:{ev.get('idx', 0)}", ([], []))
        i = bisect.bisect_right(seqs, ev["seq"]) - 1
        truth = hist[i] if i >= 0 else ("", Decimal(0))
        if truth != (ev["side"], Decimal(ev["size"])):
            out.append({**ev, "exchange": f"{truth[0]} {truth[1]}" if truth[0] else "flat"})
    return out


def signatures(consumer: list[dict[str, Any]], faults: list[dict[str, Any]],
               statuses: list[dict[str, Any]], primary: str, detect_slack_s: float,
               lifecycles: dict[str, list[ExLife]] | None = None,
               primary_taps: list[dict[str, Any]] | None = None
               ) -> dict[str, list[tuple[str, int, int]]]:
    """Occurrences (symbol or "*", from ms, to ms) of the known findings' signatures.

    * F2b (and the fixed F1/F2): the consumer got an ``opened`` carrying a state that is
      not newer than the ``closed`` it got last for that key (seq lower, or equal with
      the same side and size: not a flip) — taken back to an older state;
    * F1b: in the primary's book, a ``closed`` carrying an open state's seq (a snapshot
      closed it) followed by an ``opened`` of a later state of the *same* exchange
      lifecycle: a delayed push older than the snapshot reopened it (window: 10 s);
    * F2c: a ``closed`` of a side other than the one the consumer's last lifecycle event
      for that key carried (a lagging feed's price event replaced the position);
    * F11: a synthetic ``closed`` followed within 200 ms by an ``opened`` of the same
      key and side (any seq): the router closed a pending orphan the standby's snapshot
      was about to list;
    * F6: an injected private delay (its window plus the delay): pushes in flight that
      an audit can overtake;
    * L1: an injected private stall the primary did not notice while it lasted (no
      ``reconnecting`` between its start and end): pushes were lost with the socket up,
      and newer pushes of the same position may arrive before the loss is noticed (the
      audit's or the reconnect's fill replay then cannot put the lost states back in
      order).
    """
    out: dict[str, list[tuple[str, int, int]]] = {
        F_STALE_REOPEN: [], F_ORPHAN_CLOSE: [], F_SNAPSHOT_REOPEN: [], F_LAGGING_PRICE: [],
        F_OVERTAKEN: [], L_SILENT: []}
    lifecycles, primary_taps = lifecycles or {}, primary_taps or []
    # F1b, in the primary's book: a close carrying an open state's seq (a snapshot closed
    # it) and then a later state of the same exchange lifecycle reopening it; whatever
    # that book delivers on the symbol in the next 10 s builds on the wrong state
    book_closed: dict[str, dict[str, Any]] = {}
    for ev in primary_taps:
        key = f"{ev['symbol']}:{ev['idx']}"
        if ev["kind"] == "closed":
            book_closed[key] = ev
        elif ev["kind"] == "opened" and key in book_closed and ev["seq"] is not None:
            c = book_closed.pop(key)
            xl = lifecycles.get(key, [])
            k = _locate_open(xl, c["seq"]) if c["seq"] is not None else None
            if k is not None and ev["seq"] > c["seq"] and _locate_open(xl, ev["seq"]) == k:
                t = ev["t"] // 1_000_000
                out[F_SNAPSHOT_REOPEN].append((ev["symbol"], t, t + 10_000))
    last_closed: dict[str, dict[str, Any]] = {}
    last_told: dict[str, dict[str, Any]] = {}
    for ev in consumer:
        key = f"{ev['symbol']}:{ev['idx']}"
        if ev["kind"] != "closed":
            last_told[key] = ev
        elif (told := last_told.pop(key, None)) is not None and told["side"] != ev["side"]:
            # a close of a side consumers were never told about in a lifecycle event: a
            # price event had replaced their position with a lagging feed's (F2c)
            t = ev["t"] // 1_000_000
            out[F_LAGGING_PRICE].append((ev["symbol"], t, t))
        if ev["kind"] == "closed":
            last_closed[key] = ev
        elif ev["kind"] == "opened" and key in last_closed and ev["seq"] is not None:
            c = last_closed[key]
            t = ev["t"] // 1_000_000
            if c["synthetic"] and ev["t"] - c["t"] < 200 * 1_000_000 and (
                    ev["side"] == c["side"]):
                # the router closed a pending orphan and the same side reopens at once:
                # the standby's snapshot listed it all along (F11)
                out[F_ORPHAN_CLOSE].append((ev["symbol"], t, t))
            elif c["seq"] is not None and (ev["seq"] < c["seq"] or (
                    ev["seq"] == c["seq"] and ev["side"] == c["side"]
                    and ev["size"] == c["size"])):
                out[F_STALE_REOPEN].append((ev["symbol"], t, t))  # an older state (F1/F2)

    noticed = sorted(s["t"] for s in statuses
                     if s["feed"] == primary and s["state"] == "reconnecting")
    for f in faults:
        if f.get("fault") == "delay" and f.get("kind") in ("private", "all"):
            start = f["t"] // 1_000_000
            out[F_OVERTAKEN].append(("*", start, start + int(float(f["seconds"]) * 1000)
                                     + int(f["ms"])))
        if f.get("fault") != "stall" or f.get("kind") not in ("private", "all"):
            continue
        start = f["t"]
        end = start + int(float(f["seconds"]) * 1e9)
        j = bisect.bisect_left(noticed, start)
        if j >= len(noticed) or noticed[j] > end:  # not noticed while it lasted
            out[L_SILENT].append(("*", start // 1_000_000, end // 1_000_000))
    return out


def explain(signs: dict[str, list[tuple[str, int, int]]], what: str, symbol: str,
            lo_ms: int, hi_ms: int, missing_ms: list[int], before_ms: int = 2_000,
            after_ms: int = 10_000, seq: int | None = None) -> str | None:
    """The finding a failure of kind ``what`` on ``symbol`` around [lo_ms, hi_ms] is
    attributed to, or None (unexplained).

    A lost lifecycle: L1 or F6 when every boundary the consumer lacks (``missing_ms``)
    fell inside such a stall window. A phantom state or a lifecycle opened on one:
    F10 when its seq is that of a close on the exchange (the close fill was replayed
    onto a flat book). Anything: F10 within 5 s after the primary's book opened on a
    close's seq; F11, F2c or F2b when such an event on that
    symbol happened from ``before_ms`` before to ``after_ms`` after."""
    def inside(name: str, t: int) -> bool:
        return any(a - 50 <= t <= b + 50 for _, a, b in signs.get(name, []))

    if what == "lost" and missing_ms:
        for name in (L_SILENT, F_OVERTAKEN):
            if all(inside(name, t) for t in missing_ms):
                return name
    if what in ("phantom", "unmatched") and seq is not None and any(
            sym == symbol and a == seq for sym, a, _ in signs.get(F_CLOSE_REPLAYED, [])):
        return F_CLOSE_REPLAYED
    for sym, a, b in signs.get(F_REPLAY_WINDOW, []):
        if sym == symbol and a <= hi_ms and b >= lo_ms:
            return F_CLOSE_REPLAYED
    for sym, a, b in signs.get(F_SNAPSHOT_REOPEN, []):
        if sym == symbol and a <= hi_ms and b >= lo_ms:
            return F_SNAPSHOT_REOPEN
    for name in (F_ORPHAN_CLOSE, F_LAGGING_PRICE, F_STALE_REOPEN):
        for sym, a, b in signs.get(name, []):
            if sym == symbol and a <= hi_ms + after_ms and b >= lo_ms - before_ms:
                return name
    return None


def verdict(r: dict[str, Any]) -> tuple[bool, list[str]]:
    checks = [
        ("lost", "lifecycles lost"), ("duplicates", "duplicate lifecycle events"),
        ("split", "lifecycles split by a false close"), ("diverged", "positions diverged"),
        ("premature_closes", "closes before the exchange closed"),
        ("unmatched_consumer_lifecycles", "consumer lifecycles matching no exchange one"),
        ("phantom_states", "states delivered that the exchange never had"),
        ("crashes", "feed crashes"), ("handler_errors", "frame handler errors"),
        ("task_exceptions", "task exceptions"),
    ]
    failures = [f"{r[k]} {what}" for k, what in checks if r.get(k)]
    if r.get("fatal_feeds"):
        failures.append(f"feeds failed fatally: {r['fatal_feeds']}")
    primary = (r.get("feeds") or {}).get(r.get("primary") or PRIMARY) or {}
    if primary.get("diverged_from_exchange"):
        # what the primary delivers after the campaign would be wrong
        failures.append(f"the primary's book diverged from the exchange "
                        f"({primary['diverged_from_exchange']} positions)")
    if r.get("exchange_anomalies"):
        failures.append("exchange transition log anomalies")
    return not failures, failures
