"""The campaign's configuration and constants (no feedctl imports)."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[2]
RESULTS = ROOT / "bench" / "results"
PRIMARY = "bybit_hybrid"
STANDBY = "rest_polling"
MODES = ("production", "parallel")

#: Relative frequency of each fault kind.
FAULT_WEIGHTS: dict[str, int] = {
    "drop": 10, "stall": 8, "delay": 8, "duplicate": 12, "reorder": 10, "malformed": 12,
    "reject_auth": 4, "rest_rate_limit": 8, "rest_5xx": 8, "late_pong": 6,
}
REST_PATHS = ("", "/v5/position/list", "/v5/execution/list", "/v5/market/tickers",
              "/v5/market/time")



@dataclass
class CampaignConfig:
    seed: int = 20240601
    modes: tuple[str, ...] = MODES
    #: faults to inject per mode (the injection phase ends at this count or max_seconds)
    faults: int = 1500
    #: mean seconds between two faults (exponential inter-arrival times)
    fault_interval: float = 0.35
    #: hard cap of the injection phase per mode
    max_seconds: float = 900.0
    #: mean seconds between two trading actions
    activity_interval: float = 0.15
    symbols: int = 12
    #: of those, the first this many trade in hedge mode (two positions per symbol)
    hedge_symbols: int = 2
    #: inverse perpetuals traded beside them (coin-settled; the hybrid and the standby
    #: cover the inverse category and their settle coins)
    inverse_symbols: tuple[str, ...] = ("BTCUSD", "ETHUSD")
    #: USDT notional of one trading unit
    unit_notional: str = "400"
    #: most seconds to wait, after the faults, for the system to converge
    settle_seconds: float = 30.0
    #: the hybrid's consecutive auth failures before it fails for good (its setting);
    #: the campaign injects at most one fewer in a row (see docs/reliability.md)
    max_auth_failures: int = 3
    rest_interval: str = "0.5s"
    failover_after: str = "1s"
    failback_after: str = "2s"
    volatility_bps: str = "5"
    hybrid: dict[str, Any] = field(default_factory=lambda: {
        "ping_interval": "1s", "pong_timeout": "1.5s", "stale_after": "1s",
        "backoff_base": "0.05s", "backoff_cap": "1s", "request_timeout": "2s",
        "audit_interval": "5s", "max_connection_lifetime": "20s",
        "pong_overdue_after": "0.25s",  # loopback: latency and clock error are ~0
    })
    #: seconds between two samples of staleness and health (incommensurate with ticks)
    sample_interval: float = 0.137
    log_path: str | None = None
    #: write every raw record (transitions, consumer and book events, routes, statuses,
    #: faults) of each mode to this directory, for investigations
    dump_dir: str | None = None
    #: the embedded exchange's personality: ``bybit`` (bybit_hybrid primary) or
    #: ``binanceusdm`` (binance_usdm primary; see chaoslib/binance.py)
    exchange: str = "bybit"
    #: a ``binanceusdm`` campaign in hedge mode (dualSidePosition: every symbol's LONG
    #: and SHORT sides trade on their own)
    binance_hedge: bool = False
    #: the binance_usdm feed's settings in a ``binanceusdm`` campaign
    binance: dict[str, Any] = field(default_factory=lambda: {
        "ping_interval": "1s", "pong_timeout": "1.5s", "stale_after": "1s",
        "stale_mark_interval": "0.5s", "backoff_base": "0.05s", "backoff_cap": "1s",
        "backoff_reset_after": "5s", "request_timeout": "2s", "audit_interval": "5s",
        "keepalive_interval": "5s", "max_connection_lifetime": "20s",
        "fill_confirm_after": "1s",
    })

    @classmethod
    def short(cls, **kw: Any) -> CampaignConfig:
        """The test-suite version: a few hundred faults, well under two minutes."""
        base: dict[str, Any] = {"faults": 110, "fault_interval": 0.25, "max_seconds": 40.0,
                                "settle_seconds": 25.0}
        base.update(kw)
        return cls(**base)
