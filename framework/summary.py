"""What a run did, for its exit line and exit code.

:class:`RunSummary` watches everything the session delivers (status, route and
position events) and keeps: seconds healthy per feed, router switches, lifecycle
events delivered, the longest time an open position went without a new mark, and
whether the *delivering* feed (the router's active one) was ever healthy. A run
whose delivering data was never healthy did not do its job: ``feedctl run`` exits 1
on it instead of 0.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable, Mapping
from typing import Any

from .models import EventKind, FeedState, PositionEvent, PositionKey, RouteEvent, StatusEvent

_LIFECYCLE = (EventKind.OPENED, EventKind.CHANGED, EventKind.CLOSED)
_PRICE = EventKind.PRICE


class RunSummary:
    """Accumulates a run's figures from the delivered events (cheap on the price path)."""

    def __init__(self, active: str, states: Mapping[str, FeedState],
                 clock: Callable[[], float] = time.monotonic) -> None:
        self._clock = clock
        self.started = clock()
        self.active = active
        self._state = dict(states)
        self._since = {n: self.started for n in states}
        self.healthy_s = {n: 0.0 for n in states}
        self.delivering_healthy_s = 0.0
        self._delivering_since: float | None = None
        self.ever_delivering_healthy = False
        self.switches = 0
        self.lifecycles = {k.value: 0 for k in _LIFECYCLE}
        self._last_mark: dict[PositionKey, float] = {}
        self.longest_stale_s = 0.0
        self.longest_stale_key: str | None = None
        self._update_delivering()

    # ------------------------------------------------------------------ input
    def observe(self, ev: object) -> None:
        if type(ev) is PositionEvent:
            if ev.kind is _PRICE and not ev.past:  # the hot path
                self.observe_price(ev.position.key)
                return
            self._position(ev)
        elif isinstance(ev, PositionEvent):
            self._position(ev)
        elif isinstance(ev, StatusEvent):
            self._status(ev.feed, ev.status.state)
        elif isinstance(ev, RouteEvent):
            self.switches += 1
            self.active = ev.active
            self._update_delivering()

    def observe_price(self, key: PositionKey) -> None:
        """:meth:`observe` for a (not past) ``price`` event of the position ``key``: the
        router's hot path."""
        now = self._clock()
        marks = self._last_mark
        last = marks.get(key)
        if last is not None and now - last > self.longest_stale_s:
            self.longest_stale_s = now - last
            self.longest_stale_key = str(key)
        marks[key] = now

    def _position(self, ev: PositionEvent) -> None:
        key = ev.position.key
        now = self._clock()
        if ev.past:  # a recovered lifecycle of the past: counted, no mark to age
            self.lifecycles[ev.kind.value] += 1
            return
        if ev.kind is EventKind.CLOSED:
            self.lifecycles["closed"] += 1
            self._gap(key, now)
            self._last_mark.pop(key, None)
            return
        if ev.kind is not EventKind.PRICE:
            self.lifecycles[ev.kind.value] += 1
        self._gap(key, now)
        self._last_mark[key] = now

    def _gap(self, key: PositionKey, now: float) -> None:
        last = self._last_mark.get(key)
        if last is not None and now - last > self.longest_stale_s:
            self.longest_stale_s = now - last
            self.longest_stale_key = str(key)

    def _status(self, feed: str, state: FeedState) -> None:
        now = self._clock()
        previous = self._state.get(feed)
        if previous is not None and previous.is_healthy:
            self.healthy_s[feed] = self.healthy_s.get(feed, 0.0) + now - self._since[feed]
        self._state[feed] = state
        self._since[feed] = now
        self.healthy_s.setdefault(feed, 0.0)
        self._update_delivering()

    def _update_delivering(self) -> None:
        now = self._clock()
        healthy = self._state.get(self.active, FeedState.STARTING).is_healthy
        if healthy and self._delivering_since is None:
            self._delivering_since = now
            self.ever_delivering_healthy = True
        elif not healthy and self._delivering_since is not None:
            self.delivering_healthy_s += now - self._delivering_since
            self._delivering_since = None

    # ------------------------------------------------------------------ output
    def finish(self) -> dict[str, Any]:
        """The figures as of now (open intervals counted up to now)."""
        now = self._clock()
        healthy = dict(self.healthy_s)
        for feed, state in self._state.items():
            if state.is_healthy:
                healthy[feed] = healthy.get(feed, 0.0) + now - self._since[feed]
        delivering = self.delivering_healthy_s
        if self._delivering_since is not None:
            delivering += now - self._delivering_since
        longest, longest_key = self.longest_stale_s, self.longest_stale_key
        for key, last in self._last_mark.items():
            if now - last > longest:
                longest, longest_key = now - last, str(key)
        return {
            "seconds": round(now - self.started, 3),
            "healthy_seconds": {n: round(v, 3) for n, v in healthy.items()},
            "delivering_healthy_seconds": round(delivering, 3),
            "ever_delivering_healthy": self.ever_delivering_healthy,
            "switches": self.switches,
            "lifecycles_delivered": dict(self.lifecycles),
            "longest_stale_price_seconds": round(longest, 3),
            "longest_stale_price_position": longest_key,
        }


def format_summary(figures: Mapping[str, Any]) -> str:
    """A few aligned lines for stderr at the end of a run."""
    lc = figures["lifecycles_delivered"]
    lines = [
        f"run summary ({figures['seconds']:.1f}s):",
        "  healthy:   " + ", ".join(f"{n} {v:.1f}s" for n, v in
                                    figures["healthy_seconds"].items()),
        f"  delivering feed healthy {figures['delivering_healthy_seconds']:.1f}s; "
        f"route switches {figures['switches']}",
        f"  lifecycles delivered: opened {lc['opened']}, changed {lc['changed']}, "
        f"closed {lc['closed']}",
    ]
    key = figures["longest_stale_price_position"]
    lines.append(f"  longest without a new mark: {figures['longest_stale_price_seconds']:.1f}s"
                 + (f" ({key})" if key else " (no open position)"))
    return "\n".join(lines)


def _fmt(v: Any, fmt: str, unit: str = "") -> str:
    return "-" if v is None else f"{v:{fmt}}{unit}"


def _symbol(position: Any) -> str:
    """BTCUSDT of a position key written "linear:BTCUSDT:0"."""
    parts = str(position).split(":")
    return parts[1] if len(parts) > 1 else parts[0]


def format_validation_table(reports: Iterable[Mapping[str, Any]]) -> str:
    """The validation part of the exit summary: a small table, one row per shadow feed
    (the fields of a ``validation`` event, docs/events.md)."""
    reports = list(reports)
    header = ["shadow", "vs primary", "agreement", "samples", "pending", "mark Δ p50",
              "mark Δ max", "first p/s", "lead p50", "differ now"]
    rows = [header]
    for r in reports:
        agree, disagree = r.get("agreeing", 0), r.get("disagreeing", 0)
        ratio = r.get("agreement")
        differ = [d for d in r.get("current") or [] if d.get("settled", True)]
        now = ", ".join(f"{_symbol(d['position'])} {d['field']} {d['primary']}≠{d['shadow']}"
                        for d in differ[:2]) + (f" (+{len(differ) - 2})"
                                                if len(differ) > 2 else "")
        rows.append([
            str(r.get("shadow")), str(r.get("primary")),
            _fmt(None if ratio is None else 100 * ratio, ".1f", "%"),
            f"{agree}/{agree + disagree}", str(r.get("pending", 0)),
            _fmt(r.get("mark_deviation_bps_p50"), ".2f", " bps"),
            _fmt(r.get("mark_deviation_bps_max"), ".2f", " bps"),
            f"{r.get('primary_first', 0)}/{r.get('shadow_first', 0)}",
            _fmt(r.get("lead_ms_p50"), "+.0f", " ms"), now or "none"])
    widths = [max(len(row[i]) for row in rows) for i in range(len(header))]
    right = {2, 3, 4, 5, 6, 7, 8}  # figures align right, names and text left
    window = next((r.get("window_seconds") for r in reports), None)
    lines = [f"validation at the end of the run (rolling window {_fmt(window, 'g', 's')}):"]
    for row in rows:
        cells = [c.rjust(w) if i in right else c.ljust(w)
                 for i, (c, w) in enumerate(zip(row, widths, strict=True))]
        lines.append("  " + "  ".join(cells).rstrip())
    return "\n".join(lines)
