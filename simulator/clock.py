"""Server time, with an optional bounded clock skew (a fault)."""

from __future__ import annotations

import time


class Clock:
    """Milliseconds since the epoch as the exchange sees them."""

    def __init__(self) -> None:
        self._skew_ms = 0
        self._skew_until = 0.0

    def set_skew(self, skew_ms: int, seconds: float) -> None:
        self._skew_ms = int(skew_ms)
        self._skew_until = time.monotonic() + seconds

    def clear_skew(self) -> None:
        self._skew_ms = 0
        self._skew_until = 0.0

    @property
    def skew_ms(self) -> int:
        if self._skew_ms and time.monotonic() >= self._skew_until:
            self._skew_ms = 0
        return self._skew_ms

    def skew_remaining(self) -> float:
        return max(0.0, self._skew_until - time.monotonic()) if self.skew_ms else 0.0

    def now_ms(self) -> int:
        return time.time_ns() // 1_000_000 + self.skew_ms

    def now_ns(self) -> int:
        return time.time_ns() + self.skew_ms * 1_000_000
