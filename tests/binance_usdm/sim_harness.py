"""The conformance harness of ``binance_usdm`` on the embedded simulator's Binance
USDⓈ-M personality (``simulator/binance/``, branch ``binsim``): market orders, prices
and faults through the simulator's control API, as the Bybit kinds' harnesses do.

Until that personality is on the branch these tests run from, importing it fails and
the tests that use this harness are skipped (``test_sim_contract.py``); the scripted
exchange (``scripted_exchange.py``) covers the same ground meanwhile.
"""

from __future__ import annotations

from decimal import Decimal
from typing import Any, ClassVar

from pydantic import SecretStr

from feedctl import AccountSettings, FeedKind, Side
from feedctl.plugins.binance_usdm.config import BinanceEndpoints
from feedctl.plugins.binance_usdm.plugin import KIND
from feedctl.testing import ExchangeAccess, FeedHarness

from .harness import FAST

#: Faults are bounded; this one outlasts any test.
OUTAGE_S = 600
_SIDE = {Side.LONG: "Buy", Side.SHORT: "Sell"}


class SimBinanceHarness(FeedHarness):
    kind: ClassVar[FeedKind] = KIND
    settings = FAST
    timeout = 8.0
    settle = 0.5
    exchange_loggers = ("feedctl.simulator", "aiohttp.access", "aiohttp.server")

    #: the personality's settings (``SimConfig.binance``): marks every 0.1 s by default
    binance: ClassVar[dict[str, Any]] = {"mark_fast_interval": 0.1, "mark_interval": 0.3}

    def __init__(self) -> None:
        self.sim: Any = None
        self._ctl: Any = None
        self.sides: dict[str, Side] = {}

    @property
    def ctl(self) -> Any:
        assert self._ctl is not None, "the simulator is not running"
        return self._ctl

    async def start(self) -> ExchangeAccess:
        from feedctl.simulator import SimConfig, SimControl, Simulator

        self.sim = Simulator(SimConfig(symbols=list(self.symbols), seed=3, tick_interval=0.05,
                                       exchange="binanceusdm", binance=dict(self.binance)))
        await self.sim.start()
        urls = self.sim.urls
        self._ctl = SimControl(urls["control"])
        endpoints = BinanceEndpoints(rest=urls["rest"], market_ws=urls["market_ws"],
                                     private_ws=urls["private_ws"])
        account = AccountSettings(exchange="binanceusdm", name="sim",
                                  api_key=SecretStr(self.sim.api_key),
                                  api_secret=SecretStr(self.sim.api_secret))
        return ExchangeAccess(account=account, endpoints=endpoints)  # type: ignore[arg-type]

    async def stop(self) -> None:
        if self._ctl is not None:
            await self._ctl.close()
            self._ctl = None
        if self.sim is not None:
            await self.sim.stop()
            self.sim = None

    async def open_position(self, symbol: str, side: Side, size: Decimal) -> None:
        self.sides[symbol] = side
        await self.ctl.place_order(symbol, _SIDE[side], size)

    async def increase_position(self, symbol: str, size: Decimal) -> None:
        await self.ctl.place_order(symbol, _SIDE[self.sides[symbol]], size)

    async def close_position(self, symbol: str) -> None:
        await self.ctl.close_position(symbol)

    async def set_mark_price(self, symbol: str, price: Decimal) -> None:
        await self.ctl.set_price(symbol, price)

    async def begin_outage(self) -> None:
        """Stall both sockets, drop them; the user stream's REST snapshot fails too."""
        await self.ctl.stall("all", OUTAGE_S)
        await self.ctl.drop("all")
        await self.ctl.rest_errors("503", count=100_000, path="/fapi/v3/positionRisk")

    async def end_outage(self) -> None:
        await self.ctl.clear_faults()

    async def send_malformed(self) -> None:
        await self.ctl.malformed("private", 2)
