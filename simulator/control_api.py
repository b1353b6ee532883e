"""The control API under `/sim/...` (outside Bybit's namespace; no signing).

Every answer is JSON.  Bad input answers HTTP 400 `{"error": "..."}`.
See docs/simulator.md for the list.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from decimal import Decimal
from typing import TYPE_CHECKING, Any

import orjson
from aiohttp import web

from .account import parse_decimal
from .errors import SimError
from .faults import expand_kind

if TYPE_CHECKING:
    from .server import Simulator

JsonHandler = Callable[[dict], Awaitable[Any]]


def _json(data: Any, status: int = 200) -> web.Response:
    return web.Response(body=orjson.dumps(data), status=status, content_type="application/json")


def _need(body: dict, *names: str) -> list[Any]:
    missing = [n for n in names if body.get(n) in (None, "")]
    if missing:
        raise ValueError(f"missing field(s): {', '.join(missing)}")
    return [body[n] for n in names]


def control_routes(sim: Simulator) -> list[web.RouteDef]:
    prices, account, faults = sim.prices, sim.account, sim.faults

    def wrap(fn: JsonHandler) -> Callable[[web.Request], Awaitable[web.Response]]:
        async def handler(request: web.Request) -> web.Response:
            body: dict = dict(request.query)
            if request.method == "POST" and request.can_read_body:
                try:
                    loaded = orjson.loads(await request.read())
                except orjson.JSONDecodeError:
                    return _json({"error": "body is not valid JSON"}, 400)
                if not isinstance(loaded, dict):
                    return _json({"error": "body must be a JSON object"}, 400)
                body.update(loaded)
            try:
                return _json(await fn(body))
            except SimError as exc:
                return _json({"error": exc.msg, "retCode": exc.code}, 400)
            except KeyError as exc:
                return _json({"error": str(exc.args[0]) if exc.args else "not found"}, 404)
            except (ValueError, TypeError, ArithmeticError) as exc:
                return _json({"error": str(exc)}, 400)

        return handler

    def symbol_of(body: dict) -> str:
        (symbol,) = _need(body, "symbol")
        if symbol not in prices.instruments:
            raise KeyError(f"unknown symbol {symbol}")
        return str(symbol)

    async def health(body: dict) -> dict:
        return {"ok": True, "running": sim.running}

    async def info(body: dict) -> dict:
        return {"urls": sim.urls, "symbols": prices.symbols_of("linear"),
                "inverse_symbols": prices.symbols_of("inverse"), "api_key": sim.api_key,
                "seed": sim.config.seed, "tick_interval": sim.config.tick_interval}

    async def stats(body: dict) -> dict:
        return sim.stats(reset=str(body.get("reset", "")).lower() in ("1", "true", "yes"))

    async def get_prices(body: dict) -> dict:
        names = [symbol_of(body)] if body.get("symbol") else prices.symbols
        return {"prices": [prices.state(n) for n in names]}

    async def set_price(body: dict) -> dict:
        symbol = symbol_of(body)
        (price,) = _need(body, "price")
        prices.set_price(symbol, str(price))
        return prices.state(symbol)

    async def set_path(body: dict) -> dict:
        symbol = symbol_of(body)
        (path,) = _need(body, "path")
        points: list[tuple[int, Decimal | str]] = [(int(p[0]), str(p[1])) for p in path]
        prices.set_path(symbol, points)
        return prices.state(symbol)

    async def quiet(body: dict) -> dict:
        symbol = symbol_of(body)
        prices.set_quiet(symbol, int(body.get("every_ms", 3000)))
        return prices.state(symbol)

    async def release(body: dict) -> dict:
        symbol = symbol_of(body)
        prices.release(symbol)
        return prices.state(symbol)

    async def positions(body: dict) -> dict:
        flat = str(body.get("all", "")).lower() in ("1", "true", "yes")
        rows = [p.summary() | {"markPrice": str(prices.mark(p.symbol)),
                               "unrealisedPnl": str(p.unrealised(prices.mark(p.symbol)))}
                for p in account.positions.values() if flat or p.is_open]
        return {"positions": rows, "wallet": account.wallet()}

    def idx_of(body: dict) -> int | None:
        raw = body.get("positionIdx")
        return None if raw in (None, "") else int(raw)

    async def order(body: dict) -> dict:
        symbol = symbol_of(body)
        side, qty = _need(body, "side", "qty")
        idx = idx_of(body)
        if idx is None:  # hedge mode: the side's own position unless reducing
            reduce = bool(body.get("reduceOnly", False))
            idx = 0 if symbol not in account.hedged else (
                (2 if side == "Buy" else 1) if reduce else (1 if side == "Buy" else 2))
        return account.place_market_order(
            symbol, str(side), parse_decimal("qty", qty, allow_zero=False),
            reduce_only=bool(body.get("reduceOnly", False)), position_idx=idx,
            reason="control")

    async def set_position(body: dict) -> dict:
        symbol = symbol_of(body)
        (size,) = _need(body, "size")
        pos = account.set_position(symbol, str(body.get("side", "")), size,
                                   body.get("entryPrice"), body.get("leverage"),
                                   position_idx=idx_of(body))
        return pos.summary()

    async def close_position(body: dict) -> dict:
        result = account.close_position(symbol_of(body), position_idx=idx_of(body))
        return {"closed": result is not None, "order": result}

    async def position_mode(body: dict) -> dict:
        symbol = symbol_of(body)
        (mode,) = _need(body, "mode")
        account.switch_mode(symbol, int(mode))
        return {"symbol": symbol, "mode": account.mode(symbol),
                "positions": [p.summary() for p in account.positions_of(symbol)]}

    async def leverage(body: dict) -> dict:
        symbol = symbol_of(body)
        (lev,) = _need(body, "leverage")
        account.set_leverage(symbol, lev, lev)
        return account.position(symbol, account.indexes(symbol)[0]).summary()

    async def trading_stop(body: dict) -> dict:
        symbol = symbol_of(body)
        idx = idx_of(body)
        if idx is None:
            found = account.open_side(symbol)
            idx = found.idx if found is not None else account.indexes(symbol)[0]
        account.set_trading_stop(symbol, take_profit=body.get("takeProfit"),
                                 stop_loss=body.get("stopLoss"),
                                 trailing_stop=body.get("trailingStop"),
                                 active_price=body.get("activePrice"), position_idx=idx)
        return account.position(symbol, idx).summary()

    async def transitions(body: dict) -> dict:
        rows = account.transitions_after(int(body.get("after", 0)), body.get("symbol"),
                                         int(body.get("limit", 1000)))
        return {"transitions": rows, "last_id": account.last_transition_id}

    async def get_faults(body: dict) -> dict:
        return {"active": faults.active(), "history": list(faults.history)}

    async def clear(body: dict) -> dict:
        faults.clear()
        sim.private.flush_held()
        if sim.binance is not None:
            sim.binance.clear_faults()
        return {"active": faults.active()}

    async def drop(body: dict) -> dict:
        kind, mode = str(body.get("kind", "all")), str(body.get("mode", "close"))
        if mode not in ("close", "abort"):
            raise ValueError("mode must be close or abort")
        count = 0
        for hub in sim.hubs(expand_kind(kind)):
            count += await hub.drop_all(mode)
        faults.note("drop", kind=kind, mode=mode, connections=count)
        return {"dropped": count}

    async def stall(body: dict) -> dict:
        kind, seconds = _need(body, "kind", "seconds")
        faults.stall(str(kind), seconds)
        return {"active": faults.active()}

    async def delay(body: dict) -> dict:
        kind, ms, seconds = _need(body, "kind", "ms", "seconds")
        faults.set_delay(str(kind), ms, seconds)
        return {"active": faults.active()}

    async def late_pong(body: dict) -> dict:
        kind, ms, seconds = _need(body, "kind", "ms", "seconds")
        faults.set_pong_delay(str(kind), ms, seconds)
        return {"active": faults.active()}

    async def duplicate(body: dict) -> dict:
        faults.set_position_fault("duplicate", body.get("count", 1))
        return {"active": faults.active()}

    async def reorder(body: dict) -> dict:
        faults.set_position_fault("reorder", body.get("count", 1))
        return {"active": faults.active()}

    async def malformed(body: dict) -> dict:
        kind = str(body.get("kind", "all"))
        count = int(body.get("count", 1))
        if not 0 < count <= 100:
            raise ValueError("count must be in [1, 100]")
        conns = sum(hub.send_malformed(count) for hub in sim.hubs(expand_kind(kind)))
        faults.note("malformed", kind=kind, count=count, connections=conns)
        return {"connections": conns}

    async def reject_auth(body: dict) -> dict:
        faults.set_reject_auth(body.get("count", 1))
        return {"active": faults.active()}

    async def rest_error(body: dict) -> dict:
        (mode,) = _need(body, "mode")
        faults.set_rest_error(str(mode), body.get("count", 1), str(body.get("path", "")))
        return {"active": faults.active()}

    async def clock_skew(body: dict) -> dict:
        ms, seconds = _need(body, "ms", "seconds")
        faults.set_clock_skew(ms, seconds)
        return {"active": faults.active()}

    get, post = web.get, web.post
    return [
        get("/sim/health", wrap(health)), get("/sim/info", wrap(info)),
        get("/sim/stats", wrap(stats)), get("/sim/prices", wrap(get_prices)),
        post("/sim/price", wrap(set_price)), post("/sim/price/path", wrap(set_path)),
        post("/sim/price/release", wrap(release)), post("/sim/price/quiet", wrap(quiet)),
        get("/sim/positions", wrap(positions)),
        post("/sim/order", wrap(order)), post("/sim/position", wrap(set_position)),
        post("/sim/position/close", wrap(close_position)),
        post("/sim/position/mode", wrap(position_mode)),
        post("/sim/leverage", wrap(leverage)), post("/sim/trading-stop", wrap(trading_stop)),
        get("/sim/transitions", wrap(transitions)), get("/sim/faults", wrap(get_faults)),
        post("/sim/faults/clear", wrap(clear)), post("/sim/faults/drop", wrap(drop)),
        post("/sim/faults/stall", wrap(stall)), post("/sim/faults/delay", wrap(delay)),
        post("/sim/faults/duplicate", wrap(duplicate)),
        post("/sim/faults/late-pong", wrap(late_pong)),
        post("/sim/faults/reorder", wrap(reorder)),
        post("/sim/faults/malformed", wrap(malformed)),
        post("/sim/faults/reject-auth", wrap(reject_auth)),
        post("/sim/faults/rest-error", wrap(rest_error)),
        post("/sim/faults/clock-skew", wrap(clock_skew)),
    ]
