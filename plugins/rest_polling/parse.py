"""Pure parsing: ccxt position and ticker dicts -> framework models.

No I/O and no exchange object: every function takes plain dicts (a ccxt unified
structure with the exchange's raw row under ``info``, and the ccxt market when known)
and returns models or raises :class:`MalformedRow`. Decimals are built from the raw
strings in ``info`` where the exchange sent them (Bybit sends strings), else from
ccxt's unified fields through ``str()``; a float is never kept.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

from feedctl import Category, MarkPrice, PositionUpdate, Side, now_ns, wire_decimal

from . import constants as c

_ZERO = Decimal(0)


class MalformedRow(ValueError):
    """A row the poller cannot trust: counted as ``malformed``, never applied."""


@dataclass(frozen=True)
class ParsedRow:
    """One position row: its lifecycle state and the mark price it carried (if any)."""

    update: PositionUpdate
    mark: Decimal | None


def to_decimal(value: Any, field: str) -> Decimal | None:
    """``Decimal`` from a string or number; None for missing or empty values."""
    if value is None or value == "":
        return None
    dec = wire_decimal(value)
    if dec is None:
        raise MalformedRow(f"{field}: {value!r} is not a number, or not a finite one of sane "
                           "magnitude (|exponent| <= 30)")
    return dec


def to_int(value: Any, field: str) -> int | None:
    if value is None or value == "" or isinstance(value, bool):
        return None
    try:
        return int(str(value))
    except ValueError as exc:
        raise MalformedRow(f"{field}: {value!r} is not an integer") from exc


def _pick(pos: Mapping[str, Any], info: Mapping[str, Any], raw: Sequence[str],
          unified: str | None) -> Any:
    for name in raw:
        if info.get(name) not in (None, ""):
            return info[name]
    return pos.get(unified) if unified else None


def _optional_price(pos: Mapping[str, Any], info: Mapping[str, Any], raw: Sequence[str],
                    unified: str | None, field: str) -> Decimal | None:
    """A price where 0 means "not set" (Bybit's TP/SL/trailing/liquidation)."""
    dec = to_decimal(_pick(pos, info, raw, unified), field)
    return dec if dec is not None and dec > 0 else None


def category_of(market: Mapping[str, Any] | None, fallback: Category | None) -> Category:
    if market is not None:
        if market.get("linear"):
            return Category.LINEAR
        if market.get("inverse"):
            return Category.INVERSE
    if fallback is not None:
        return fallback
    raise MalformedRow("cannot tell whether the contract is linear or inverse")


def _side(pos: Mapping[str, Any], info: Mapping[str, Any]) -> Side:
    unified = pos.get("side")
    if unified in ("long", "short"):
        return Side(unified)
    raw = info.get("side")
    if raw in ("Buy", "buy", "long"):
        return Side.LONG
    if raw in ("Sell", "sell", "short"):
        return Side.SHORT
    raise MalformedRow(f"side: {unified or raw!r} is neither long nor short")


def _position_idx(pos: Mapping[str, Any], info: Mapping[str, Any], side: Side | None) -> int:
    idx = to_int(info.get("positionIdx"), "positionIdx")
    if idx is not None:
        return idx
    if pos.get("hedged") and side is not None:
        # Bybit's convention, so keys from hedged venues never collide per symbol
        return 1 if side is Side.LONG else 2
    return 0


def position_row(
    pos: Mapping[str, Any],
    market: Mapping[str, Any] | None,
    *,
    category: Category | None = None,
    raw_fields: bool = True,
    received_ns: int | None = None,
) -> ParsedRow:
    """One ccxt position structure -> :class:`ParsedRow`.

    ``market`` is the ccxt market of the row (its ``id`` is the native symbol);
    ``category`` is what the request asked for, used when the market is unknown
    (a contract listed after the markets were loaded). ``raw_fields``: read prices and
    sizes from ``info`` under Bybit's names first (exact strings); turn it off for
    venues whose raw fields may mean something else, to use ccxt's unified ones.
    """
    if not isinstance(pos, Mapping):
        raise MalformedRow(f"position row is a {type(pos).__name__}, not an object")
    info = pos.get("info") or {}
    if not isinstance(info, Mapping):
        raise MalformedRow("position row: info is not an object")
    symbol = market.get("id") if market is not None else info.get("symbol")
    pick_info = info if raw_fields else {}
    if not isinstance(symbol, str) or not symbol:
        raise MalformedRow("position row without a symbol")
    cat = category_of(market, category)
    size = to_decimal(_pick(pos, pick_info, c.RAW_SIZE, "contracts"), "size")
    if size is None:
        raise MalformedRow(f"{symbol}: position row without a size")
    size = abs(size)
    side = _side(pos, pick_info) if size > 0 else None
    entry = to_decimal(_pick(pos, pick_info, c.RAW_ENTRY, "entryPrice"), "entryPrice")
    if side is not None and (entry is None or entry <= 0):
        raise MalformedRow(f"{symbol}: open position without an entry price")
    mark = to_decimal(_pick(pos, pick_info, c.RAW_MARK, "markPrice"), "markPrice")
    updated = to_int(_pick(pos, pick_info, c.RAW_UPDATED, "lastUpdateTimestamp"), "updatedTime")
    update = PositionUpdate(
        category=cat,
        symbol=symbol,
        position_idx=_position_idx(pos, info, side),
        side=side,
        size=size,
        entry_price=entry if side is not None and entry is not None else _ZERO,
        leverage=to_decimal(_pick(pos, pick_info, c.RAW_LEVERAGE, "leverage"), "leverage"),
        liq_price=_optional_price(pos, pick_info, c.RAW_LIQ, "liquidationPrice", "liqPrice"),
        take_profit=_optional_price(pos, pick_info, c.RAW_TAKE_PROFIT, "takeProfitPrice",
                                    "takeProfit"),
        stop_loss=_optional_price(pos, pick_info, c.RAW_STOP_LOSS, "stopLossPrice", "stopLoss"),
        trailing_stop=_optional_price(pos, pick_info, c.RAW_TRAILING, None, "trailingStop"),
        seq=to_int(info.get("seq"), "seq") if raw_fields else None,
        exchange_ms=updated,
        received_ns=received_ns if received_ns is not None else now_ns(),
    )
    return ParsedRow(update, mark if mark is not None and mark > 0 else None)


def mark_from_ticker(
    ticker: Mapping[str, Any],
    market: Mapping[str, Any],
    *,
    exchange_ms: int | None = None,
    received_ns: int | None = None,
) -> MarkPrice | None:
    """A ccxt ticker (or mark-price ticker) -> :class:`MarkPrice`; None if it has none."""
    if not isinstance(ticker, Mapping):
        raise MalformedRow(f"ticker is a {type(ticker).__name__}, not an object")
    info = ticker.get("info") or {}
    if not isinstance(info, Mapping):
        raise MalformedRow("ticker: info is not an object")
    mark = to_decimal(_pick(ticker, info, c.RAW_MARK, "markPrice"), "markPrice")
    if mark is None or mark <= 0:
        return None
    ts = to_int(ticker.get("timestamp"), "timestamp")
    return MarkPrice(
        category=category_of(market, None),
        symbol=str(market["id"]),
        mark_price=mark,
        exchange_ms=ts if ts is not None else exchange_ms,
        received_ns=received_ns if received_ns is not None else now_ns(),
    )


def envelope_list(response: Any) -> tuple[list[Any], str, int | None]:
    """Bybit V5 envelope -> (rows, next cursor, server time ms). Raises MalformedRow.

    A page is trusted only when ``retCode`` is 0 and ``result.list`` is a list: a body
    that is not such an envelope must never read as "no positions".
    """
    if not isinstance(response, Mapping):
        raise MalformedRow(f"answer is a {type(response).__name__}, not a JSON object")
    if str(response.get("retCode")) != "0":
        raise MalformedRow(f"answer has retCode {response.get('retCode')!r}")
    result = response.get("result")
    if not isinstance(result, Mapping) or not isinstance(result.get("list"), list):
        raise MalformedRow("answer without result.list")
    cursor = result.get("nextPageCursor") or ""
    if not isinstance(cursor, str):
        raise MalformedRow("nextPageCursor is not a string")
    return list(result["list"]), cursor, to_int(response.get("time"), "time")
