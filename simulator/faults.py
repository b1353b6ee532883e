"""Fault state.  Every fault is bounded by a count or a duration and clears itself.

Instant faults (drop, malformed) are carried out by the WebSocket hubs at once and
only appear in the history; the others are read by the code paths they affect.
"""

from __future__ import annotations

import time
from collections import deque
from collections.abc import Callable

from .clock import Clock

KINDS = ("public", "private")
MAX_SECONDS = 3600.0
MAX_COUNT = 100_000
#: 401 (non-JSON body), 403 (an IP ban, HTML), 404 (also Bybit's answer to a category /
#: account-mode mismatch) are sent as Bybit's gateway sends them.
REST_MODES = ("rate_limit", "502", "503", "malformed", "401", "403", "404")


def expand_kind(kind: str) -> tuple[str, ...]:
    if kind in ("all", "both", "", None):
        return KINDS
    if kind not in KINDS:
        raise ValueError(f"kind must be one of public, private, all; got {kind!r}")
    return (kind,)


def check_seconds(seconds: object) -> float:
    value = float(seconds)  # type: ignore[arg-type]
    if not 0 < value <= MAX_SECONDS:
        raise ValueError(f"seconds must be in (0, {MAX_SECONDS:g}]; got {seconds!r}")
    return value


def check_count(count: object) -> int:
    value = int(count)  # type: ignore[call-overload]
    if not 0 < value <= MAX_COUNT:
        raise ValueError(f"count must be in [1, {MAX_COUNT}]; got {count!r}")
    return value


class Faults:
    def __init__(self, clock: Clock) -> None:
        self.clock = clock
        self.history: deque[dict] = deque(maxlen=200)
        #: called by clear(): fault state kept elsewhere (a personality's) clears too
        self.on_clear: list[Callable[[], None]] = []
        self.clear()

    def clear(self) -> None:
        for hook in self.on_clear:
            hook()
        self.stall_until = dict.fromkeys(KINDS, 0.0)
        self.delay = dict.fromkeys(KINDS, (0, 0.0))
        self.pong_delay = dict.fromkeys(KINDS, (0, 0.0))
        self.position_fault = ("", 0)
        self.reject_auth = 0
        self.rest_error: tuple[str, int, str] = ("", 0, "")
        self.clock.clear_skew()

    def note(self, name: str, **params: object) -> None:
        self.history.append({"fault": name, "at": self.clock.now_ms(), **params})

    # -- setters --------------------------------------------------------------------
    def stall(self, kind: str, seconds: object) -> None:
        secs = check_seconds(seconds)
        for k in expand_kind(kind):
            self.stall_until[k] = time.monotonic() + secs
        self.note("stall", kind=kind, seconds=secs)

    def set_delay(self, kind: str, ms: object, seconds: object) -> None:
        delay, secs = int(ms), check_seconds(seconds)  # type: ignore[call-overload]
        if not 0 < delay <= 60_000:
            raise ValueError(f"ms must be in [1, 60000]; got {ms!r}")
        for k in expand_kind(kind):
            self.delay[k] = (delay, time.monotonic() + secs)
        self.note("delay", kind=kind, ms=delay, seconds=secs)

    def set_pong_delay(self, kind: str, ms: object, seconds: object) -> None:
        delay, secs = int(ms), check_seconds(seconds)  # type: ignore[call-overload]
        if not 0 < delay <= 60_000:
            raise ValueError(f"ms must be in [1, 60000]; got {ms!r}")
        for k in expand_kind(kind):
            self.pong_delay[k] = (delay, time.monotonic() + secs)
        self.note("late_pong", kind=kind, ms=delay, seconds=secs)

    def set_position_fault(self, mode: str, count: object) -> None:
        if mode not in ("duplicate", "reorder"):
            raise ValueError("mode must be duplicate or reorder")
        self.position_fault = (mode, check_count(count))
        self.note(mode, count=self.position_fault[1])

    def set_reject_auth(self, count: object) -> None:
        self.reject_auth = check_count(count)
        self.note("reject_auth", count=self.reject_auth)

    def set_rest_error(self, mode: str, count: object, path: str = "") -> None:
        if mode not in REST_MODES:
            raise ValueError(f"mode must be one of {', '.join(REST_MODES)}; got {mode!r}")
        self.rest_error = (mode, check_count(count), path or "")
        self.note("rest_error", mode=mode, count=self.rest_error[1], path=path)

    def set_clock_skew(self, ms: object, seconds: object) -> None:
        skew, secs = int(ms), check_seconds(seconds)  # type: ignore[call-overload]
        if abs(skew) > 86_400_000:
            raise ValueError("ms must be within one day")
        self.clock.set_skew(skew, secs)
        self.note("clock_skew", ms=skew, seconds=secs)

    # -- readers (called by the affected code paths) --------------------------------
    def stalled(self, kind: str) -> bool:
        until = self.stall_until[kind]
        if until and time.monotonic() >= until:
            self.stall_until[kind] = until = 0.0
        return bool(until)

    def delay_ms(self, kind: str) -> int:
        ms, until = self.delay[kind]
        if ms and time.monotonic() >= until:
            self.delay[kind] = (0, 0.0)
            return 0
        return ms

    def pong_delay_ms(self, kind: str) -> int:
        ms, until = self.pong_delay[kind]
        if ms and time.monotonic() >= until:
            self.pong_delay[kind] = (0, 0.0)
            return 0
        return ms

    def take_position_fault(self) -> str:
        mode, count = self.position_fault
        if count <= 0:
            return ""
        self.position_fault = (mode, count - 1) if count > 1 else ("", 0)
        return mode

    def take_reject_auth(self) -> bool:
        if self.reject_auth <= 0:
            return False
        self.reject_auth -= 1
        return True

    def take_rest_error(self, path: str) -> str:
        mode, count, prefix = self.rest_error
        if count <= 0 or not path.startswith(prefix):
            return ""
        self.rest_error = (mode, count - 1, prefix) if count > 1 else ("", 0, "")
        return mode

    def active(self) -> list[dict]:
        now = time.monotonic()
        out: list[dict] = []
        for kind in KINDS:
            if self.stalled(kind):
                out.append({"fault": "stall", "kind": kind,
                            "remaining_s": round(self.stall_until[kind] - now, 3)})
            ms = self.delay_ms(kind)
            if ms:
                out.append({"fault": "delay", "kind": kind, "ms": ms,
                            "remaining_s": round(self.delay[kind][1] - now, 3)})
            ms = self.pong_delay_ms(kind)
            if ms:
                out.append({"fault": "late_pong", "kind": kind, "ms": ms,
                            "remaining_s": round(self.pong_delay[kind][1] - now, 3)})
        mode, count = self.position_fault
        if count:
            out.append({"fault": mode, "remaining": count})
        if self.reject_auth:
            out.append({"fault": "reject_auth", "remaining": self.reject_auth})
        mode, count, prefix = self.rest_error
        if count:
            out.append({"fault": "rest_error", "mode": mode, "path": prefix, "remaining": count})
        if self.clock.skew_ms:
            out.append({"fault": "clock_skew", "ms": self.clock.skew_ms,
                        "remaining_s": round(self.clock.skew_remaining(), 3)})
        return out
