"""Conformance harnesses of the built-in feed kinds, backed by the embedded simulator.

One :class:`SimHarness` runs the simulator in the test's event loop and acts on it
through its control API; a subclass per feed kind names the kind, its (fast) settings
and the optional actions the kind supports.
"""

from __future__ import annotations

from decimal import Decimal
from typing import ClassVar

from pydantic import SecretStr

from feedctl import AccountSettings, Endpoints, FeedKind, Side
from feedctl.plugins.bybit_hybrid.plugin import feedctl_feed_kinds as hybrid_kinds
from feedctl.plugins.rest_polling.plugin import feedctl_feed_kinds as rest_kinds
from feedctl.simulator import SimConfig, SimControl, Simulator
from feedctl.testing import ExchangeAccess, FeedHarness

#: Faults are bounded; this one outlasts any test.
OUTAGE_S = 600
_BYBIT_SIDE = {Side.LONG: "Buy", Side.SHORT: "Sell"}


def registered(hook: object) -> FeedKind:
    """The one FeedKind a plugin's ``feedctl_feed_kinds`` hook registers."""
    kinds: list[FeedKind] = []
    hook(register=kinds.append)  # type: ignore[operator]
    assert len(kinds) == 1
    return kinds[0]


class SimHarness(FeedHarness):
    """The embedded simulator as the exchange; market orders through its control API."""

    symbols = ("BTCUSDT", "ETHUSDT")
    exchange_loggers = ("feedctl.simulator", "aiohttp.access", "aiohttp.server")
    outage_rest = True

    def __init__(self) -> None:
        self.sim: Simulator | None = None
        self._ctl: SimControl | None = None
        self.sides: dict[str, Side] = {}

    @property
    def ctl(self) -> SimControl:
        assert self._ctl is not None, "the simulator is not running"
        return self._ctl

    async def start(self) -> ExchangeAccess:
        self.sim = Simulator(SimConfig(symbols=list(self.symbols), seed=3, tick_interval=0.05))
        await self.sim.start()
        self._ctl = SimControl(self.sim.urls["control"])
        urls = self.sim.urls
        return ExchangeAccess(
            account=AccountSettings(exchange="bybit", name="sim",
                                    api_key=SecretStr(self.sim.api_key),
                                    api_secret=SecretStr(self.sim.api_secret)),
            endpoints=Endpoints(rest=urls["rest"], public_ws=urls["public_ws"],
                                private_ws=urls["private_ws"],
                                public_ws_inverse=urls["public_ws"].replace("linear",
                                                                            "inverse")))

    async def stop(self) -> None:
        if self._ctl is not None:
            await self._ctl.close()
            self._ctl = None
        if self.sim is not None:
            await self.sim.stop()
            self.sim = None

    async def open_position(self, symbol: str, side: Side, size: Decimal) -> None:
        self.sides[symbol] = side
        await self.ctl.place_order(symbol, _BYBIT_SIDE[side], size)

    async def increase_position(self, symbol: str, size: Decimal) -> None:
        await self.ctl.place_order(symbol, _BYBIT_SIDE[self.sides[symbol]], size)

    async def close_position(self, symbol: str) -> None:
        await self.ctl.close_position(symbol)

    async def set_mark_price(self, symbol: str, price: Decimal) -> None:
        await self.ctl.set_price(symbol, price)

    async def begin_outage(self) -> None:
        """Stall both sockets (no answer, not even to pings), drop them, fail REST."""
        await self.ctl.stall("all", OUTAGE_S)
        await self.ctl.drop("all")
        if self.outage_rest:
            await self.ctl.request("POST", "/faults/rest-error",
                                   {"mode": "503", "count": 100_000, "path": "/v5/position"})

    async def end_outage(self) -> None:
        await self.ctl.clear_faults()


class BybitHybridHarness(SimHarness):
    kind: ClassVar[FeedKind] = registered(hybrid_kinds)
    settings = {
        "ping_interval": 0.5, "pong_timeout": 0.5, "stale_after": 0.5, "audit_interval": 0,
        "backoff_base": 0.02, "backoff_cap": 0.2, "request_timeout": 1.0,
        "expires_margin": 5, "max_connection_lifetime": None,
    }
    timeout = 8.0
    settle = 0.5
    outage_rest = False  # its REST is only a snapshot source: the sockets are the outage

    async def send_malformed(self) -> None:
        await self.ctl.malformed("all", 2)


class RestPollingHarness(SimHarness):
    kind: ClassVar[FeedKind] = registered(rest_kinds)
    settings = {"interval": 0.2, "reconnect_after": 2, "backoff_base": 0.05,
                "backoff_cap": 0.2, "timeout": 2.0}
    timeout = 8.0
    settle = 0.6     # three polls
    outage_hold = 1.0  # long enough for reconnect_after failed polls

    async def send_malformed(self) -> None:
        await self.ctl.rest_errors("malformed", count=1, path="/v5/position/list")
