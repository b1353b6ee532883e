"""Validator: compares each shadow feed with the primary, continuously.

Every ``interval`` it samples both books position by position:

* **agreement** — side, size and entry price equal. A difference younger than
  ``settle`` is *pending* (one feed has simply not seen the change yet: a REST poller
  lags by up to its interval) and is not counted either way; a difference that
  persists past ``settle`` is a *disagreement*. Agreement = agreeing samples /
  (agreeing + disagreeing samples) over the rolling ``window``.
* **mark deviation** — |shadow mark - primary mark| / primary mark, in basis points.
* **who saw it first** — for every lifecycle change (a new (side, size) of a
  position) the local receive times in both feeds; the lead is shadow time minus
  primary time (positive: the primary was first).
"""

from __future__ import annotations

import time
from collections import deque
from dataclasses import dataclass
from decimal import Decimal
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict

from .book import PositionBook
from .models import EventKind, PositionEvent, PositionKey
from .settings import ValidationSettings


class Disagreement(BaseModel):
    model_config = ConfigDict(frozen=True)

    position: str
    field: str
    primary: str | None
    shadow: str | None
    for_seconds: float
    #: False while younger than ``settle`` (pending: one feed has not seen it yet)
    settled: bool = True


class ValidationReport(BaseModel):
    """One comparison of a shadow with the primary (``type="validation"``)."""

    model_config = ConfigDict(frozen=True)

    type: Literal["validation"] = "validation"
    primary: str
    shadow: str
    window_seconds: float
    samples: int
    agreeing: int
    disagreeing: int
    pending: int
    agreement: float | None
    side_disagreements: int
    size_disagreements: int
    entry_disagreements: int
    mark_deviation_bps_p50: float | None
    mark_deviation_bps_p99: float | None
    mark_deviation_bps_max: float | None
    changes_matched: int
    primary_first: int
    shadow_first: int
    lead_ms_p50: float | None
    lead_ms_p99: float | None
    current: tuple[Disagreement, ...] = ()


@dataclass
class _Sample:
    at: float
    agree: int
    disagree: int
    pending: int
    side: int
    size: int
    entry: int
    deviations: list[float]


def _pct(values: list[float], q: float) -> float | None:
    if not values:
        return None
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


class ShadowComparison:
    """The comparison of one shadow feed with the primary."""

    def __init__(self, primary: PositionBook, shadow: PositionBook,
                 settings: ValidationSettings, clock: Any = time.monotonic) -> None:
        self.primary, self.shadow, self.settings = primary, shadow, settings
        self._clock = clock
        self._samples: deque[_Sample] = deque()
        self._diff_since: dict[tuple[PositionKey, str], float] = {}
        #: the two values of each current difference, as of the last sample (a report
        #: never shows a difference the books no longer have, nor one not yet sampled)
        self._diff_values: dict[tuple[PositionKey, str], tuple[str | None, str | None]] = {}
        self._seen: dict[tuple[PositionKey, Any], dict[str, int]] = {}
        self._leads: deque[tuple[float, float]] = deque()
        self.matched = self.primary_first = self.shadow_first = 0

    # ----------------------------------------------------------- change timing
    def observe(self, feed: str, ev: PositionEvent) -> None:
        if not ev.kind.is_lifecycle or ev.synthetic:
            return
        pos = ev.position
        sig = (None, Decimal(0)) if ev.kind is EventKind.CLOSED else (pos.side, pos.size)
        k = (pos.key, sig)
        seen = self._seen.setdefault(k, {})
        seen.setdefault(feed, pos.received_ns)
        if self.primary.feed in seen and self.shadow.feed in seen:
            lead_ms = (seen[self.shadow.feed] - seen[self.primary.feed]) / 1e6
            del self._seen[k]
            self.matched += 1
            if lead_ms >= 0:
                self.primary_first += 1
            else:
                self.shadow_first += 1
            self._leads.append((self._clock(), lead_ms))
        if len(self._seen) > 10_000:  # changes one feed never saw: keep memory bounded
            for stale in list(self._seen)[:1000]:
                del self._seen[stale]

    # ----------------------------------------------------------- sampling
    def sample(self) -> None:
        now = self._clock()
        keys = set(self.primary.positions) | set(self.shadow.positions)
        s = _Sample(now, 0, 0, 0, 0, 0, 0, [])
        live: set[tuple[PositionKey, str]] = set()
        for key in keys:
            p, sh = self.primary.positions.get(key), self.shadow.positions.get(key)
            diffs = []
            if p is None or sh is None or p.side is not sh.side:
                diffs.append("side")
            else:
                if p.size != sh.size:
                    diffs.append("size")
                if p.entry_price != sh.entry_price:
                    diffs.append("entry")
                if p.mark_price and sh.mark_price:
                    s.deviations.append(
                        float(abs(sh.mark_price - p.mark_price) / p.mark_price * 10_000))
            if not diffs:
                s.agree += 1
                continue
            settled = False
            for field in diffs:
                since = self._diff_since.setdefault((key, field), now)
                attr = {"side": "side", "size": "size", "entry": "entry_price"}[field]
                self._diff_values[(key, field)] = (
                    None if p is None else str(getattr(p, attr)),
                    None if sh is None else str(getattr(sh, attr)))
                live.add((key, field))
                if now - since >= self.settings.settle:
                    settled = True
                    setattr(s, field, getattr(s, field) + 1)
            if settled:
                s.disagree += 1
            else:
                s.pending += 1
        for stale in set(self._diff_since) - live:
            del self._diff_since[stale]
            self._diff_values.pop(stale, None)
        self._samples.append(s)
        horizon = now - self.settings.window
        while self._samples and self._samples[0].at < horizon:
            self._samples.popleft()
        while self._leads and self._leads[0][0] < horizon:
            self._leads.popleft()

    def report(self) -> ValidationReport:
        now = self._clock()
        agree = sum(s.agree for s in self._samples)
        disagree = sum(s.disagree for s in self._samples)
        devs = [d for s in self._samples for d in s.deviations]
        leads = [lead for _, lead in self._leads]
        current = []
        for (key, field), since in sorted(self._diff_since.items(), key=lambda kv: str(kv[0])):
            primary, shadow = self._diff_values.get((key, field), (None, None))
            current.append(Disagreement(
                position=str(key), field=field, primary=primary, shadow=shadow,
                for_seconds=round(now - since, 3),
                settled=now - since >= self.settings.settle))
        return ValidationReport(
            primary=self.primary.feed, shadow=self.shadow.feed,
            window_seconds=self.settings.window, samples=len(self._samples),
            agreeing=agree, disagreeing=disagree,
            pending=sum(s.pending for s in self._samples),
            agreement=(agree / (agree + disagree)) if agree + disagree else None,
            side_disagreements=sum(s.side for s in self._samples),
            size_disagreements=sum(s.size for s in self._samples),
            entry_disagreements=sum(s.entry for s in self._samples),
            mark_deviation_bps_p50=_pct(devs, 0.5), mark_deviation_bps_p99=_pct(devs, 0.99),
            mark_deviation_bps_max=max(devs) if devs else None,
            changes_matched=self.matched, primary_first=self.primary_first,
            shadow_first=self.shadow_first, lead_ms_p50=_pct(leads, 0.5),
            lead_ms_p99=_pct(leads, 0.99), current=tuple(current[:50]))


def _num(v: Any, fmt: str, unit: str = "") -> str:
    return "-" if v is None else f"{v:{fmt}}{unit}"


def describe_report(r: dict[str, Any]) -> str:
    """One line a person reads: a report's JSON form (``ValidationReport``)."""
    agree, disagree = r.get("agreeing", 0), r.get("disagreeing", 0)
    ratio = r.get("agreement")
    head = (f"{r.get('shadow')} vs {r.get('primary')}: agrees "
            f"{_num(None if ratio is None else 100 * ratio, '.1f', '%')} "
            f"({agree}/{agree + disagree} position samples over "
            f"{_num(r.get('window_seconds'), 'g', 's')}, {r.get('pending', 0)} pending)")
    mark = (f"mark Δ p50 {_num(r.get('mark_deviation_bps_p50'), '.2f', ' bps')}, "
            f"max {_num(r.get('mark_deviation_bps_max'), '.2f', ' bps')}")
    lead = r.get("lead_ms_p50")
    first = (f"first: primary {r.get('primary_first', 0)}, shadow {r.get('shadow_first', 0)}"
             f" of {r.get('changes_matched', 0)} changes, median lead "
             f"{_num(lead, '+.0f', ' ms')}")
    differ = [d for d in r.get("current") or [] if d.get("settled", True)]
    now = ("now differ: " + ", ".join(
        f"{d['position'].split(':')[1] if ':' in d['position'] else d['position']} "
        f"{d['field']} {d['primary']}≠{d['shadow']} ({d['for_seconds']:.1f}s)"
        for d in differ[:3]) + (f" (+{len(differ) - 3})" if len(differ) > 3 else "")
           ) if differ else "no difference now"
    return " · ".join((head, mark, first, now))


class Validator:
    """All shadow comparisons of a session."""

    def __init__(self, primary: PositionBook, shadows: list[PositionBook],
                 settings: ValidationSettings, clock: Any = time.monotonic) -> None:
        self.settings = settings
        self.primary = primary
        self.comparisons = {s.feed: ShadowComparison(primary, s, settings, clock)
                            for s in shadows}
        self._clock = clock
        self._next = clock()

    def on_primary_event(self, ev: PositionEvent) -> None:
        if ev.feed != self.primary.feed:
            return
        for c in self.comparisons.values():
            c.observe(ev.feed, ev)

    def on_shadow_event(self, feed: str, ev: PositionEvent) -> None:
        c = self.comparisons.get(feed)
        if c is not None:
            c.observe(feed, ev)

    def due(self) -> bool:
        return self._clock() >= self._next

    def tick(self) -> list[ValidationReport]:
        """Sample every comparison and return fresh reports."""
        self._next = self._clock() + self.settings.interval
        out = []
        for c in self.comparisons.values():
            c.sample()
            out.append(c.report())
        return out

    def summary(self) -> dict[str, Any]:
        return {name: c.report().model_dump(mode="json") for name, c in self.comparisons.items()}
