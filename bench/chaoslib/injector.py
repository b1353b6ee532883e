"""Faults: seeded random faults through the simulator's control API, each bounded."""

from __future__ import annotations

import random
from collections import Counter
from typing import Any

from feedctl import Session
from feedctl.simulator import SimControl

from .config import FAULT_WEIGHTS, PRIMARY, REST_PATHS
from .recorder import _wall_ns


class Injector:
    """Seeded random faults through the control API, each bounded."""

    def __init__(self, ctl: SimControl, session: Session, rng: random.Random,
                 max_auth_failures: int) -> None:
        self.ctl, self.session, self.rng = ctl, session, rng
        self.max_auth = max(1, max_auth_failures - 1)
        self.injected: Counter[str] = Counter()
        self.log: list[dict[str, Any]] = []
        self.skipped: Counter[str] = Counter()
        kinds = list(FAULT_WEIGHTS)
        self._kinds, self._weights = kinds, [FAULT_WEIGHTS[k] for k in kinds]

    def _private_connected(self) -> bool:
        rt = self.session.feeds.get(PRIMARY)
        if rt is None:
            return False
        try:
            return bool(rt.feed.details()["private"]["connected"])
        except Exception:
            return False

    async def _auth_pending(self) -> bool:
        return any(f.get("fault") == "reject_auth" for f in await self.ctl.faults())

    async def inject(self) -> None:
        rng, ctl = self.rng, self.ctl
        kind = rng.choices(self._kinds, self._weights)[0]
        sock = rng.choice(("public", "private", "all"))
        params: dict[str, Any] = {}
        if kind == "drop":
            params = {"kind": sock, "mode": rng.choice(("close", "abort"))}
            await ctl.drop(**params)
        elif kind == "stall":
            params = {"kind": sock, "seconds": round(rng.uniform(0.3, 2.5), 2)}
            await ctl.stall(**params)
        elif kind == "delay":
            params = {"kind": sock, "ms": rng.randint(20, 600),
                      "seconds": round(rng.uniform(0.5, 2.5), 2)}
            await ctl.delay(**params)
        elif kind == "duplicate":
            params = {"count": rng.randint(1, 5)}
            await ctl.duplicate_positions(**params)
        elif kind == "reorder":
            params = {"count": rng.randint(1, 3)}
            await ctl.reorder_positions(**params)
        elif kind == "malformed":
            params = {"kind": sock, "count": rng.randint(1, 5)}
            await ctl.malformed(**params)
        elif kind == "reject_auth":
            # Bounded below the hybrid's max_auth_failures, and only once the previous
            # rejections were followed by a successful auth: a key rejected that many
            # times in a row is a bad key, which the hybrid treats as fatal (by design).
            if not self._private_connected() or await self._auth_pending():
                self.skipped[kind] += 1
                return
            params = {"count": rng.randint(1, self.max_auth)}
            await ctl.reject_auth(**params)
            await ctl.drop("private", rng.choice(("close", "abort")))
        elif kind == "late_pong":
            # pongs late but inside the hybrid's pong_timeout (and sometimes beyond it):
            # a late pong is no lost one, but one past the timeout is
            params = {"kind": sock, "ms": rng.randint(200, 1800),
                      "seconds": round(rng.uniform(0.5, 3.0), 2)}
            await ctl.late_pongs(**params)
        elif kind in ("rest_rate_limit", "rest_5xx"):
            mode = "rate_limit" if kind == "rest_rate_limit" else rng.choice(("502", "503"))
            params = {"mode": mode, "count": rng.randint(1, 3), "path": rng.choice(REST_PATHS)}
            await ctl.rest_errors(**params)
        self.injected[kind] += 1
        self.log.append({"t": _wall_ns(), "fault": kind, **params})
