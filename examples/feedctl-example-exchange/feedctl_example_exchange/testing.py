"""The conformance-kit harness of ``example_exchange`` (see docs/plugins.md).

This exchange speaks the Bybit V5 dialect, so feedctl's embedded simulator stands in
for it: the harness starts one in the test's event loop and acts on it through its
control API. A plugin for another exchange replaces this module with a harness for
its own fake exchange (or a testnet account).

Use it from a test module::

    @pytest.fixture
    def feedctl_harness() -> FeedHarness:
        return ExampleHarness()

    class TestExampleExchange(FeedContract):
        pass
"""

from __future__ import annotations

from decimal import Decimal
from typing import Any, ClassVar

from pydantic import SecretStr

from feedctl import AccountSettings, FeedKind, Side
from feedctl.testing import ExchangeAccess, FeedHarness

from .config import ExampleEndpoints
from .plugin import KIND

_ORDER_SIDE = {Side.LONG: "Buy", Side.SHORT: "Sell"}
#: Faults in the simulator are bounded in time; this outlasts any test.
_OUTAGE_S = 600


class ExampleHarness(FeedHarness):
    kind: ClassVar[FeedKind] = KIND
    settings: ClassVar[dict[str, Any]] = {
        "ping_interval": 0.5, "pong_timeout": 0.5, "request_timeout": 1.0,
        "mark_interval": 0.1, "backoff_base": 0.02, "backoff_cap": 0.2,
    }
    symbols = ("BTCUSDT", "ETHUSDT")
    timeout = 8.0
    settle = 0.5
    exchange_loggers = ("feedctl.simulator",)

    def __init__(self) -> None:
        self.sim: Any = None
        self.ctl: Any = None
        self.sides: dict[str, Side] = {}

    async def start(self) -> ExchangeAccess:
        from feedctl.simulator import SimConfig, SimControl, Simulator  # ships with feedctl

        self.sim = await Simulator(SimConfig(symbols=list(self.symbols), seed=11)).start()
        self.ctl = SimControl(self.sim.urls["control"])
        urls = self.sim.urls
        return ExchangeAccess(
            account=AccountSettings(exchange="example", name="test",
                                    api_key=SecretStr(self.sim.api_key),
                                    api_secret=SecretStr(self.sim.api_secret)),
            endpoints=ExampleEndpoints(rest=urls["rest"], private_ws=urls["private_ws"]))

    async def stop(self) -> None:
        if self.ctl is not None:
            await self.ctl.close()
        if self.sim is not None:
            await self.sim.stop()
        self.sim = self.ctl = None

    async def open_position(self, symbol: str, side: Side, size: Decimal) -> None:
        self.sides[symbol] = side
        await self.ctl.place_order(symbol, _ORDER_SIDE[side], size)

    async def increase_position(self, symbol: str, size: Decimal) -> None:
        await self.ctl.place_order(symbol, _ORDER_SIDE[self.sides[symbol]], size)

    async def close_position(self, symbol: str) -> None:
        await self.ctl.close_position(symbol)

    async def set_mark_price(self, symbol: str, price: Decimal) -> None:
        await self.ctl.set_price(symbol, price)

    async def begin_outage(self) -> None:
        # sockets: answer nothing (not even pings or auth) and drop what is open; REST: 503
        await self.ctl.stall("private", _OUTAGE_S)
        await self.ctl.drop("private")
        await self.ctl.request("POST", "/faults/rest-error",
                               {"mode": "503", "count": 100_000, "path": "/v5/position"})

    async def end_outage(self) -> None:
        await self.ctl.clear_faults()

    async def send_malformed(self) -> None:
        await self.ctl.malformed("private", 2)
