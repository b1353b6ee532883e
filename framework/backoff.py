"""Capped exponential backoff with full jitter (AWS architecture blog's "full jitter")."""

from __future__ import annotations

import random


class Backoff:
    """``next()`` returns a delay uniformly drawn from [0, min(cap, base * 2**attempt)].

    Full jitter spreads reconnects of many clients so they cannot storm; ``reset()``
    after a connection has proved itself (e.g. healthy for a while).
    """

    def __init__(self, base: float = 0.5, cap: float = 30.0, *, rng: random.Random | None = None):
        if base <= 0 or cap < base:
            raise ValueError("need 0 < base <= cap")
        self.base, self.cap = base, cap
        self.attempt = 0
        self._rng = rng or random.Random()

    def next(self) -> float:
        ceiling = min(self.cap, self.base * (2 ** min(self.attempt, 30)))
        self.attempt += 1
        return self._rng.uniform(0, ceiling)

    def reset(self) -> None:
        self.attempt = 0
