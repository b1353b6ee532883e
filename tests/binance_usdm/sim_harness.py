"""The conformance harness of ``binance_usdm`` on the embedded simulator's Binance
USDⓈ-M personality (``simulator/binance/``): market orders, prices and faults through
the simulator's control API, as the Bybit kinds' harnesses do; ``run`` runs one
scenario on it with the feed's and the personality's settings overridden."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from decimal import Decimal
from typing import Any, ClassVar

from pydantic import SecretStr

from feedctl import AccountSettings, FeedKind, Side
from feedctl.plugins.binance_usdm.config import BinanceEndpoints
from feedctl.plugins.binance_usdm.plugin import KIND
from feedctl.testing import ExchangeAccess, FeedHarness, FeedProbe, run_scenario

#: Short intervals so the contract runs in seconds.
FAST: dict[str, Any] = {
    "ping_interval": 0.5, "pong_timeout": 0.5, "stale_after": 0.5, "audit_interval": 0,
    "backoff_base": 0.02, "backoff_cap": 0.2, "request_timeout": 1.0,
    "fill_confirm_after": 1.0, "stale_mark_interval": 0.2,
}

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

    #: other ``SimConfig`` fields
    sim_config: ClassVar[dict[str, Any]] = {}

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
                                       exchange="binanceusdm", binance=dict(self.binance),
                                       **self.sim_config))
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


    # -- what the scenarios look at on the running simulator -------------------------
    def market_streams(self) -> list[set[str]]:
        """The streams each open market connection holds."""
        return [set(st.streams) for st in self.sim.binance.market.state.values()]

    def listen_keys(self) -> set[str]:
        return set(self.sim.binance.user.keys._expires)

    async def signed(self, method: str, path: str, **params: str) -> tuple[int, Any]:
        """A signed Binance REST call (``X-MBX-APIKEY``, HMAC query) to the simulator."""
        import time

        import aiohttp
        import orjson
        from yarl import URL

        from feedctl.plugins.binance_usdm.signing import key_header, signed_query

        query = signed_query(SecretStr(self.sim.api_secret), list(params.items()),
                             time.time_ns() // 1_000_000, 5000)
        url = URL(f"{self.sim.urls['rest']}{path}?{query}", encoded=True)
        async with aiohttp.ClientSession() as http, http.request(
                method, url, headers=key_header(SecretStr(self.sim.api_key))) as resp:
            return resp.status, orjson.loads(await resp.read())

    async def hedge_mode(self) -> None:
        """Switch the account to hedge mode (``POST /fapi/v1/positionSide/dual``)."""
        status, body = await self.signed("POST", "/fapi/v1/positionSide/dual",
                                         dualSidePosition="true")
        assert status == 200, f"the simulator refused hedge mode: {status} {body}"

    async def hedge_order(self, symbol: str, side: str, qty: Decimal, position_side: str
                          ) -> None:
        status, body = await self.signed("POST", "/fapi/v1/order", symbol=symbol, side=side,
                                         type="MARKET", quantity=str(qty),
                                         positionSide=position_side)
        assert status == 200, body

    def user_keys(self) -> list[str]:
        """The listenKeys the open user data connections were opened with."""
        return [k for st in self.sim.binance.user.state.values() for k in st.streams]


Scenario = Callable[[FeedProbe, SimBinanceHarness], Awaitable[None]]


def run(scenario: Scenario, binance: dict[str, Any] | None = None,
        sim_config: dict[str, Any] | None = None, limit: float = 60,
        before: Callable[[SimBinanceHarness], Awaitable[None]] | None = None,
        **settings: Any) -> FeedProbe:
    """Run ``scenario(probe, harness)`` with the feed settings ``FAST | settings`` and
    the personality's ``SimBinanceHarness.binance | binance``."""
    class Harness(SimBinanceHarness):
        pass

    Harness.settings = {**FAST, **settings}
    Harness.binance = {**SimBinanceHarness.binance, **(binance or {})}
    Harness.sim_config = dict(sim_config or {})
    harness = Harness()

    async def body(probe: FeedProbe) -> None:
        await scenario(probe, harness)

    async def setup() -> None:
        if before is not None:
            await before(harness)

    return run_scenario(harness, body, before=setup, limit=limit)
