"""Recording: what the consumer received, what each feed's book emitted, samples."""

from __future__ import annotations

import logging
import time
from collections import Counter
from typing import Any

from feedctl import (
    EventKind,
    FeedState,
    PositionEvent,
    RouteEvent,
    Session,
    StatusEvent,
)
from feedctl.simulator import Simulator


def _wall_ns() -> int:
    return time.time_ns()


def _lifecycle_record(ev: PositionEvent, t: int, active: str | None = None) -> dict[str, Any]:
    p = ev.position
    rec: dict[str, Any] = {
        "t": t, "kind": ev.kind.value, "symbol": p.symbol, "idx": p.position_idx,
        "seq": p.seq, "side": p.side.value, "size": str(p.size), "entry": str(p.entry_price),
        "synthetic": ev.synthetic, "feed": ev.feed, "past": ev.past,
    }
    if active is not None:
        rec["active"] = active
    return rec


#: Stale episodes longer than this are kept, with their start, in a traced run.
_EPISODE_KEPT_S = 2.0


class _ErrorLog(logging.Handler):
    """Keeps ERROR records of the feedctl loggers (bounded)."""

    def __init__(self) -> None:
        super().__init__(logging.ERROR)
        self.count = 0
        self.samples: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.count += 1
        if len(self.samples) < 20:
            text = f"{record.name}: {record.getMessage()}"
            if record.exc_info and record.exc_info[1] is not None:
                text += f" [{type(record.exc_info[1]).__name__}: {record.exc_info[1]}]"
            self.samples.append(text[:400])


class Recorder:
    """What the consumer received, what each feed's book emitted, and periodic samples."""

    def __init__(self) -> None:
        self.consumer: list[dict[str, Any]] = []
        self.taps: dict[str, list[dict[str, Any]]] = {}
        self.routes: list[dict[str, Any]] = []
        self.statuses: list[dict[str, Any]] = []
        self.view: dict[tuple[str, int], Any] = {}
        self.counts: Counter[str] = Counter()
        # staleness against the exchange's price history, sampled
        self._cur: dict[str, Any] = {}
        self._replaced: dict[str, dict[Any, float]] = {}
        self._seen_since: dict[tuple[str, int], float] = {}
        self._peak: dict[tuple[str, int], float] = {}
        self.stale_episodes: list[float] = []
        self.stale_worst: dict[str, Any] = {}
        # consumer-perceived time between new marks
        self._last_mark: dict[tuple[str, int], tuple[int, Any]] = {}
        self.mark_gaps: list[float] = []
        self.mark_gap_worst: dict[str, Any] = {}
        # delivering-feed health, sampled
        self.healthy_s = 0.0
        self.sampled_s = 0.0
        self.t0 = _wall_ns()
        #: keep a price trace for investigations (``--dump``): the exchange's marks, the
        #: consumer's and each feed book's price events, and every stale episode over
        #: ``_EPISODE_KEPT_S`` with when it began
        self.trace = False
        self.marks: dict[str, list[list[Any]]] = {"exchange": [], "consumer": []}
        self.episodes: list[dict[str, Any]] = []
        self._stale_from: dict[tuple[str, int], float] = {}

    # ------------------------------------------------------------------ consumer side
    def on_event(self, ev: Any) -> None:
        t = _wall_ns()
        if isinstance(ev, PositionEvent):
            key = (ev.position.symbol, ev.position.position_idx)
            self.counts[f"{ev.kind.value}{'_synthetic' if ev.synthetic else ''}"] += 1
            if ev.kind is not EventKind.PRICE:
                self.consumer.append(_lifecycle_record(ev, t))
            if self.trace:
                self._trace_mark("consumer", ev, t)
            if ev.past:
                return  # history: the key's current position is untouched
            if ev.kind is EventKind.CLOSED:
                self.view.pop(key, None)
                self._seen_since.pop(key, None)
                self._end_stale(key)
                self._mark_gap(key, t, None, closing=True)
            else:
                self.view[key] = ev.position
                self._seen_since.setdefault(key, time.monotonic())
                self._mark_gap(key, t, ev.position.mark_price,
                               opening=ev.kind is EventKind.OPENED)
        elif isinstance(ev, RouteEvent):
            self.routes.append({"t": ev.at_ns, "active": ev.active, "previous": ev.previous,
                                "reason": ev.reason})
        elif isinstance(ev, StatusEvent) and len(self.statuses) < 500_000:
            self.statuses.append({"t": t, "feed": ev.feed, "state": ev.status.state.value,
                                  "reason": ev.reason})

    def _mark_gap(self, key: tuple[str, int], t: int, mark: Any, *, opening: bool = False,
                  closing: bool = False) -> None:
        last = self._last_mark.get(key)
        if opening or last is None:
            self._last_mark[key] = (t, mark)
            return
        if closing or mark != last[1]:
            gap = (t - last[0]) / 1e9
            self.mark_gaps.append(gap)
            if gap > self.mark_gap_worst.get("seconds", -1):
                self.mark_gap_worst = {"seconds": round(gap, 3), "symbol": key[0],
                                       "at_s": round((t - self.t0) / 1e9, 2)}
            if closing:
                self._last_mark.pop(key, None)
            else:
                self._last_mark[key] = (t, mark)

    def tap(self, feed: str, ev: PositionEvent, active: str) -> None:
        if ev.kind is not EventKind.PRICE:
            self.taps.setdefault(feed, []).append(_lifecycle_record(ev, _wall_ns(), active))
        if self.trace:
            self._trace_mark(feed, ev, _wall_ns())

    def free_mark(self, feed: str, mark: Any) -> None:
        """A mark of a symbol ``feed``'s book holds no position of (traced as idx -1)."""
        self.marks.setdefault(feed, []).append(
            [_wall_ns(), mark.symbol, -1, "free", str(mark.mark_price), mark.exchange_ms,
             mark.received_ns, feed])

    def _trace_mark(self, where: str, ev: PositionEvent, t: int) -> None:
        """One price-trace row: [wall ns, symbol, idx, kind, mark, mark exchange ms,
        mark received ns, feed of the event]."""
        p = ev.position
        self.marks.setdefault(where, []).append(
            [t, p.symbol, p.position_idx, ev.kind.value, str(p.mark_price),
             p.mark_exchange_ms, p.mark_received_ns, ev.feed])

    # ------------------------------------------------------------------ samples
    def watch_prices(self, sim: Simulator) -> None:
        """Record when each exchange mark price was replaced (wraps the price engine's
        step, in-process), so a consumer's price can be aged against the exchange."""
        prices = sim.prices
        self._cur = {s: prices.mark(s) for s in prices.symbols}
        self._replaced = {s: {} for s in prices.symbols}
        original = prices.step

        def step(now_ms: int) -> Any:
            deltas = original(now_ms)
            t = time.monotonic()
            for sym, delta, _cs in deltas:
                if "markPrice" in delta:
                    new, old = prices.mark(sym), self._cur.get(sym)
                    if old is not None and old != new:
                        self._replaced[sym][old] = t
                        if self.trace:
                            self.marks["exchange"].append([_wall_ns(), sym, str(new)])
                    self._cur[sym] = new
            return deltas

        prices.step = step

    def staleness(self, key: tuple[str, int], mark: Any, now: float) -> float:
        """Seconds since the consumer's mark for ``key`` stopped being the exchange's."""
        sym = key[0]
        if mark is not None and mark == self._cur.get(sym):
            return 0.0
        replaced = self._replaced.get(sym, {}).get(mark) if mark is not None else None
        if replaced is None:  # never had a mark: stale since the consumer got the position
            replaced = self._seen_since.get(key, now)
        return max(0.0, now - replaced)

    def sample(self, sim: Simulator, session: Session, dt: float) -> None:
        now = time.monotonic()
        router = session.router
        if router is not None:
            self.sampled_s += dt
            rt = session.feeds.get(router.active)
            if rt is not None and rt.ctx.state is FeedState.HEALTHY:
                self.healthy_s += dt
        for key, pos in list(self.view.items()):
            age = self.staleness(key, pos.mark_price, now)
            if age <= 0:
                self._end_stale(key)
                continue
            if key not in self._peak:
                self._stale_from[key] = _wall_ns() - int(age * 1e9)
            if age > self._peak.get(key, 0.0):
                self._peak[key] = age
            if age > self.stale_worst.get("seconds", -1):
                self.stale_worst = {"seconds": round(age, 3), "symbol": key[0],
                                    "at_s": round((_wall_ns() - self.t0) / 1e9, 2)}
        if len(self.stale_episodes) % 500 == 0:  # keep the price history bounded
            horizon = now - 600
            for hist in self._replaced.values():
                if len(hist) > 20_000:
                    for price in [p for p, t in hist.items() if t < horizon]:
                        del hist[price]

    def _end_stale(self, key: tuple[str, int]) -> None:
        peak = self._peak.pop(key, None)
        began = self._stale_from.pop(key, None)
        if peak is not None:
            self.stale_episodes.append(peak)
            if self.trace and peak > _EPISODE_KEPT_S and began is not None:
                self.episodes.append({
                    "symbol": key[0], "idx": key[1], "seconds": round(peak, 3),
                    "from_s": round((began - self.t0) / 1e9, 3), "from_ns": began})

    def finish(self) -> None:
        for key in list(self._peak):
            self._end_stale(key)
        t = _wall_ns()
        for key in list(self._last_mark):
            self._mark_gap(key, t, None, closing=True)
