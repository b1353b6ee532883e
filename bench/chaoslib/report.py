"""Reporting: the results table, one column per mode."""

from __future__ import annotations

from typing import Any

from .config import PRIMARY


def _live(r: dict[str, Any]) -> dict[str, Any]:
    """The primary (live) feed's results: bybit_hybrid's, or the run's ``primary``."""
    return dict(r["feeds"][r.get("primary", PRIMARY)])


ROWS: list[tuple[str, Any]] = [
    ("faults injected", lambda r: r["faults_total"]),
    ("  by kind", lambda r: ", ".join(f"{k} {v}" for k, v in r["faults"].items())),
    ("trading actions", lambda r: sum(r["trades"].values())),
    ("exchange transitions o/c/c", lambda r: "/".join(
        str(r["exchange_transitions"][k]) for k in ("opened", "changed", "closed"))),
    ("consumer events o/c/c", lambda r: "/".join(
        str(r["consumer_events"][k]) for k in ("opened", "changed", "closed"))
     + f" ({r['consumer_synthetic']} synthetic)"),
    ("exchange lifecycles (completed)", lambda r: f"{r['exchange_lifecycles']} "
     f"({r['exchange_lifecycles_completed']})"),
    ("  of them hedge sides / inverse", lambda r: f"{r.get('hedge_lifecycles', 0)} / "
     f"{r.get('inverse_lifecycles', 0)}"),
    ("  delivered as opened+closed", lambda r: r["lifecycles"]["delivered"]),
    ("  LOST (missed / coalesced)", lambda r: f"{r['lost']} ({r['lifecycles']['missed']} / "
     f"{r['lifecycles']['coalesced']})"),
    ("duplicates", lambda r: r["duplicates"]),
    ("split by a false close", lambda r: r["split"]),
    ("premature closes", lambda r: r["premature_closes"]),
    ("phantom states delivered", lambda r: r["phantom_states"]),
    ("positions diverged at the end", lambda r: r["diverged"]),
    ("longest stale price (s)", lambda r: r["stale_price_max_s"]),
    ("stale price p99 (s)", lambda r: r["stale_price_p99_s"]),
    ("longest gap between marks (s)", lambda r: r["mark_gap_max_s"]),
    ("delivering feed healthy", lambda r: f"{100 * (r['delivering_healthy_fraction'] or 0):.2f} %"),
    ("failovers / failbacks", lambda r: f"{r['failovers']} / {r['failbacks']}"),
    ("hybrid reconnects / resyncs", lambda r: "{} / {}".format(
        _live(r)["counters"].get("reconnects", 0),
        _live(r)["counters"].get("resyncs", 0))),
    ("hybrid gap states replayed", lambda r: _live(r)["counters"].get(
        "gap_replayed", 0)),
    ("hybrid audit mismatches", lambda r: _live(r)["counters"].get(
        "audit_mismatches", 0)),
    ("malformed frames counted", lambda r: _live(r)["counters"].get("malformed", 0)),
    ("crashes / task exceptions", lambda r: f"{r['crashes']} / {r['task_exceptions']}"),
    ("failures explained by findings", lambda r: ", ".join(
        f"{k} {v}" for k, v in r["known_findings"].items()) or "-"),
    ("UNEXPLAINED failures", lambda r: r["unexplained"]),
    ("error log lines", lambda r: r["error_logs"]),
    ("seconds (inject + settle)", lambda r: f"{r['seconds']['injection']} + "
     f"{r['seconds']['settle']}"),
    ("verdict", lambda r: "PASS" if r["ok"] else "FAIL: " + "; ".join(r["failures"])),
]


def table(results: dict[str, dict[str, Any]]) -> str:
    modes = list(results)
    rows = [("", *modes)]
    for label, fn in ROWS:
        cells = []
        for m in modes:
            try:
                cells.append(str(fn(results[m])))
            except Exception as exc:  # a report must not hide the results
                cells.append(f"? {exc}")
        rows.append((label, *cells))
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    widths = [min(w, 60) for w in widths]
    lines = []
    for i, r in enumerate(rows):
        lines.append("| " + " | ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)) + " |")
        if i == 0:
            lines.append("|" + "|".join("-" * (w + 2) for w in widths) + "|")
    return "\n".join(lines)
