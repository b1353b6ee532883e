"""`SimControl`: an async client of the simulator's control API (`/sim/...`).

    async with SimControl(sim.urls["control"]) as ctl:
        await ctl.set_price("BTCUSDT", "65000")
        await ctl.stall("private", seconds=5)
"""

from __future__ import annotations

from decimal import Decimal
from typing import Any

import aiohttp


class SimControlError(RuntimeError):
    def __init__(self, status: int, message: str) -> None:
        super().__init__(f"HTTP {status}: {message}")
        self.status = status
        self.message = message


def _s(value: Any) -> Any:
    return str(value) if isinstance(value, (Decimal, float, int)) and not isinstance(
        value, bool) else value


class SimControl:
    def __init__(self, base_url: str, timeout: float = 10.0) -> None:
        self.base_url = base_url.rstrip("/")
        self._timeout = aiohttp.ClientTimeout(total=timeout)
        self._session: aiohttp.ClientSession | None = None

    async def __aenter__(self) -> SimControl:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    async def close(self) -> None:
        if self._session is not None:
            await self._session.close()
            self._session = None

    async def request(self, method: str, path: str, body: dict | None = None,
                      params: dict | None = None) -> Any:
        if self._session is None or self._session.closed:
            self._session = aiohttp.ClientSession(timeout=self._timeout)
        payload = {k: _s(v) for k, v in (body or {}).items() if v is not None}
        query = {k: str(v) for k, v in (params or {}).items() if v is not None}
        async with self._session.request(method, f"{self.base_url}{path}", json=payload
                                         if method == "POST" else None, params=query) as resp:
            data = await resp.json(content_type=None)
            if resp.status != 200:
                raise SimControlError(resp.status, str(data.get("error", data)))
            return data

    async def _post(self, _path: str, **body: Any) -> Any:
        return await self.request("POST", _path, body)

    # -- status ---------------------------------------------------------------------
    async def health(self) -> dict:
        return await self.request("GET", "/health")

    async def info(self) -> dict:
        return await self.request("GET", "/info")

    async def stats(self, reset: bool = False) -> dict:
        return await self.request("GET", "/stats", params={"reset": "1"} if reset else None)

    # -- prices ---------------------------------------------------------------------
    async def prices(self, symbol: str | None = None) -> list[dict]:
        return (await self.request("GET", "/prices", params={"symbol": symbol}))["prices"]

    async def set_price(self, symbol: str, price: Decimal | str) -> dict:
        return await self._post("/price", symbol=symbol, price=price)

    async def set_path(self, symbol: str, path: list[tuple[int, Decimal | str]]) -> dict:
        points = [[int(off), str(px)] for off, px in path]
        return await self._post("/price/path", symbol=symbol, path=points)

    async def release_price(self, symbol: str) -> dict:
        return await self._post("/price/release", symbol=symbol)

    # -- account --------------------------------------------------------------------
    async def positions(self, include_flat: bool = False) -> list[dict]:
        params = {"all": "1"} if include_flat else None
        return (await self.request("GET", "/positions", params=params))["positions"]

    async def wallet(self) -> dict:
        return (await self.request("GET", "/positions"))["wallet"]

    async def place_order(self, symbol: str, side: str, qty: Decimal | str,
                          reduce_only: bool = False, position_idx: int | None = None) -> dict:
        """In hedge mode the index defaults to the side's own (or the other one's when
        ``reduce_only``)."""
        return await self._post("/order", symbol=symbol, side=side, qty=qty,
                                reduceOnly=reduce_only, positionIdx=position_idx)

    async def set_position(self, symbol: str, side: str, size: Decimal | str,
                           entry_price: Decimal | str | None = None,
                           leverage: Decimal | str | None = None,
                           position_idx: int | None = None) -> dict:
        return await self._post("/position", symbol=symbol, side=side, size=size,
                                entryPrice=entry_price, leverage=leverage,
                                positionIdx=position_idx)

    async def close_position(self, symbol: str, position_idx: int | None = None) -> dict:
        return await self._post("/position/close", symbol=symbol, positionIdx=position_idx)

    async def position_mode(self, symbol: str, mode: int) -> dict:
        """Switch ``symbol`` to one-way (0) or hedge mode (3), as
        /v5/position/switch-mode does."""
        return await self._post("/position/mode", symbol=symbol, mode=mode)

    async def set_leverage(self, symbol: str, leverage: Decimal | str) -> dict:
        return await self._post("/leverage", symbol=symbol, leverage=leverage)

    async def set_trading_stop(self, symbol: str, **fields: Any) -> dict:
        return await self._post("/trading-stop", symbol=symbol, **fields)

    async def transitions(self, after: int = 0, symbol: str | None = None,
                          limit: int = 1000) -> list[dict]:
        params = {"after": after, "symbol": symbol, "limit": limit}
        return (await self.request("GET", "/transitions", params=params))["transitions"]

    # -- faults ---------------------------------------------------------------------
    async def faults(self) -> list[dict]:
        return (await self.request("GET", "/faults"))["active"]

    async def clear_faults(self) -> Any:
        return await self._post("/faults/clear")

    async def drop(self, kind: str = "all", mode: str = "close") -> int:
        return (await self._post("/faults/drop", kind=kind, mode=mode))["dropped"]

    async def stall(self, kind: str, seconds: float) -> Any:
        return await self._post("/faults/stall", kind=kind, seconds=seconds)

    async def delay(self, kind: str, ms: int, seconds: float) -> Any:
        return await self._post("/faults/delay", kind=kind, ms=ms, seconds=seconds)

    async def duplicate_positions(self, count: int = 1) -> Any:
        return await self._post("/faults/duplicate", count=count)

    async def reorder_positions(self, count: int = 1) -> Any:
        return await self._post("/faults/reorder", count=count)

    async def malformed(self, kind: str = "all", count: int = 1) -> int:
        return (await self._post("/faults/malformed", kind=kind, count=count))["connections"]

    async def reject_auth(self, count: int = 1) -> Any:
        return await self._post("/faults/reject-auth", count=count)

    async def rest_errors(self, mode: str, count: int = 1, path: str = "") -> Any:
        return await self._post("/faults/rest-error", mode=mode, count=count, path=path)

    async def late_pongs(self, kind: str, ms: int, seconds: float) -> Any:
        """Answer pings (JSON and control frames) ``ms`` late for ``seconds``; data
        frames keep flowing on time."""
        return await self._post("/faults/late-pong", kind=kind, ms=ms, seconds=seconds)

    async def clock_skew(self, ms: int, seconds: float) -> Any:
        return await self._post("/faults/clock-skew", ms=ms, seconds=seconds)

    # -- Binance personality ----------------------------------------------------------
    async def expire_listen_keys(self) -> int:
        """Expire every listenKey now (``listenKeyExpired`` on their connections)."""
        return (await self._post("/binance/listen-keys/expire"))["expired"]

    async def reject_keepalives(self, count: int = 1) -> int:
        """The next `count` listenKey keepalives answer -1125 (the key is gone)."""
        return (await self._post("/binance/listen-keys/reject-keepalive",
                                 count=count))["remaining"]

    async def forget_listen_keys(self) -> int:
        """Every listenKey vanishes silently (no ``listenKeyExpired``)."""
        return (await self._post("/binance/listen-keys/forget"))["forgotten"]

    async def drop_account_updates(self, count: int = 1) -> int:
        """The next `count` ACCOUNT_UPDATEs carrying positions are not delivered."""
        return (await self._post("/binance/account-updates/drop", count=count))["remaining"]

    async def refuse_handshakes(self, kind: str, seconds: float) -> Any:
        """New Binance stream connections of `kind` get HTTP 503 for `seconds`."""
        return await self._post("/binance/refuse-handshakes", kind=kind, seconds=seconds)

    async def object_bodies(self, count: int = 1, path: str = "") -> int:
        """The next `count` Binance REST answers under `path` are HTTP 200 ``{}``."""
        return (await self._post("/binance/rest/object-body", count=count,
                                 path=path))["remaining"]

    async def settle_funding(self, rate: Decimal | str | None = None) -> list[dict]:
        """Settle funding on every open position (at `rate`, or the current rates)."""
        return (await self._post("/binance/funding", rate=rate))["settled"]
