"""Setting a trailing stop on the exchange (Bybit ``POST /v5/position/trading-stop``).

Uses ccxt's implicit Bybit endpoints so that URLs come from the profile (mainnet,
testnet, the simulator) like every other feedctl request. Only used when
``trading.enabled = true`` and the API key is not read-only.
"""

from __future__ import annotations

import logging
from decimal import Decimal
from typing import Any

import ccxt.async_support as ccxt_async

from feedctl import AccountSettings

log = logging.getLogger("feedctl.trailing_stop")


class BybitStopSetter:
    def __init__(self, account: AccountSettings, rest: str | None,
                 environment: str = "mainnet") -> None:
        """``rest``: the profile's REST URL (``endpoints.rest``), else ccxt's own for
        ``environment`` (its sandbox on testnet)."""
        if account.api_key is None or account.api_secret is None:
            raise ValueError("trading needs the account's API key and secret")
        self._client: Any = ccxt_async.bybit({
            "apiKey": account.api_key.get_secret_value(),
            "secret": account.api_secret.get_secret_value(),
            "enableRateLimit": True,
        })
        self._ticks: dict[tuple[str, str], Decimal] = {}
        if rest is None:
            if environment == "testnet":
                self._client.set_sandbox_mode(True)
            elif environment != "mainnet":
                raise ValueError(f"no Bybit REST URL known for environment {environment!r}: "
                                 "set endpoints.rest")
            return
        api = self._client.urls["api"]
        for key, value in list(api.items()):
            if isinstance(value, str) and value.startswith("http"):
                api[key] = rest

    async def tick_size(self, category: str, symbol: str) -> Decimal | None:
        """The symbol's price tick from /v5/market/instruments-info (cached)."""
        key = (category, symbol)
        if key not in self._ticks:
            answer = await self._client.publicGetV5MarketInstrumentsInfo(
                {"category": category, "symbol": symbol})
            rows = (answer.get("result") or {}).get("list") or []
            row = next((r for r in rows if r.get("symbol") == symbol), None)
            tick = ((row or {}).get("priceFilter") or {}).get("tickSize")
            if not tick:
                return None
            self._ticks[key] = Decimal(str(tick))
        return self._ticks[key]

    async def can_trade(self) -> tuple[bool, str]:
        """Whether the key may place orders (Bybit's ``readOnly`` flag)."""
        answer = await self._client.privateGetV5UserQueryApi()
        result = answer.get("result") or {}
        if str(result.get("readOnly", "1")) != "0":
            return False, "the API key is read-only"
        return True, ""

    async def set_trailing_stop(self, *, category: str, symbol: str, position_idx: int,
                                distance: Decimal) -> None:
        await self._client.privatePostV5PositionTradingStop({
            "category": category, "symbol": symbol, "positionIdx": position_idx,
            "trailingStop": format(distance, "f"), "tpslMode": "Full",
        })

    async def close(self) -> None:
        await self._client.close()
