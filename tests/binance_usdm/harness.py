"""The conformance harness of ``binance_usdm``, on the scripted exchange.

TO BE MOVED ONTO THE SIMULATOR (branch ``binsim``): only ``start``/``stop`` and the
actions change; the kit and the contract class stay as they are.
"""

from __future__ import annotations

from decimal import Decimal
from typing import ClassVar

from pydantic import SecretStr

from feedctl import AccountSettings, FeedKind, Side
from feedctl.plugins.binance_usdm.config import BinanceEndpoints
from feedctl.plugins.binance_usdm.plugin import KIND
from feedctl.testing import ExchangeAccess, FeedHarness

from .scripted_exchange import ScriptedBinance

#: Short intervals so the contract runs in seconds.
FAST = {
    "ping_interval": 0.5, "pong_timeout": 0.5, "stale_after": 0.5, "audit_interval": 0,
    "backoff_base": 0.02, "backoff_cap": 0.2, "request_timeout": 1.0,
    "fill_confirm_after": 1.0, "stale_mark_interval": 0.2,
}


class BinanceHarness(FeedHarness):
    kind: ClassVar[FeedKind] = KIND
    settings = FAST
    timeout = 8.0
    settle = 0.5
    exchange_loggers = ("aiohttp.access", "aiohttp.server", "aiohttp.web")

    def __init__(self) -> None:
        self.ex: ScriptedBinance | None = None

    @property
    def exchange(self) -> ScriptedBinance:
        assert self.ex is not None, "the scripted exchange is not running"
        return self.ex

    async def start(self) -> ExchangeAccess:
        self.ex = ScriptedBinance(symbols=tuple(self.symbols))
        await self.ex.start()
        ex = self.ex
        endpoints = BinanceEndpoints(rest=ex.rest, market_ws=ex.market_ws,
                                     private_ws=ex.private_ws)
        account = AccountSettings(exchange="binanceusdm", name="scripted",
                                  api_key=SecretStr(ex.api_key),
                                  api_secret=SecretStr(ex.api_secret))
        return ExchangeAccess(account=account, endpoints=endpoints)  # type: ignore[arg-type]

    async def stop(self) -> None:
        if self.ex is not None:
            await self.ex.stop()
            self.ex = None

    async def open_position(self, symbol: str, side: Side, size: Decimal) -> None:
        await self.exchange.trade(symbol, size if side is Side.LONG else -size)

    async def increase_position(self, symbol: str, size: Decimal) -> None:
        pos = self.exchange.positions[(symbol, "BOTH")]
        await self.exchange.trade(symbol, size if pos.amount > 0 else -size)

    async def close_position(self, symbol: str) -> None:
        pos = self.exchange.positions[(symbol, "BOTH")]
        await self.exchange.trade(symbol, -pos.amount)

    async def set_mark_price(self, symbol: str, price: Decimal) -> None:
        self.exchange.marks[symbol] = price

    async def begin_outage(self) -> None:
        self.exchange.outage = True
        await self.exchange.drop_sockets()

    async def end_outage(self) -> None:
        self.exchange.outage = False

    async def send_malformed(self) -> None:
        await self.exchange.send_user_raw('{"e": "ACCOUNT_UPDATE", "E": 1, "T"')
        await self.exchange.send_user_raw('{"e": "ACCOUNT_UPDATE", "E": 1, "T": 2, "a": {}}')
