"""From the shared account engine's events to Binance's user data events.

The account engine (shared with the Bybit personality) tells its listeners what it did
in Bybit's rows: ``position`` (also on order creation, when nothing changed), ``order``,
``execution``, ``wallet`` and ``funding``. The ledger turns one engine call into what
Binance pushes for it:

- ``ORDER_TRADE_UPDATE``: ``x=NEW`` then ``x=TRADE`` (``CALCULATED`` for a liquidation),
  with Binance's integer order id, the client order id, ``rp`` the trade's realised
  profit; each trade is also pushed as the shorter ``TRADE_LITE`` first;
- one ``ACCOUNT_UPDATE`` per engine call, with ``m`` = ``ORDER`` for fills and
  ``FUNDING_FEE`` for funding, ``B`` when the balance changed, ``P`` with only the
  symbols whose position changed (none for funding on a cross position);
- ``ACCOUNT_CONFIG_UPDATE`` for a leverage change (no ACCOUNT_UPDATE).

Positions are keyed by (symbol, engine position index): index 0 is one-way mode's
``BOTH``, 1 and 2 hedge mode's ``LONG`` and ``SHORT`` (``ps`` in both events).

``E`` is the event time (when the frame is made), ``T`` the transaction time (the fill).
Binance does not order events of different types; by default the order updates come
before the ACCOUNT_UPDATE of the same call, with ``account_update_first`` after it.

https://developers.binance.com/docs/derivatives/usds-margined-futures/user-data-streams/Event-Trade-Lite

https://developers.binance.com/docs/derivatives/usds-margined-futures/user-data-streams/Event-Balance-and-Position-Update
https://developers.binance.com/docs/derivatives/usds-margined-futures/user-data-streams/Event-Order-Update
https://developers.binance.com/docs/derivatives/usds-margined-futures/user-data-streams/Event-Account-Configuration-Update-previous-Leverage-Update
"""

from __future__ import annotations

import asyncio
import secrets
import string
from collections import deque
from collections.abc import Callable
from decimal import Decimal

from ..account import AccountEngine
from ..position import D0, Position
from .wire import f8, plain, position_side, qty, stream_position

Sink = Callable[[dict], None]
PosKey = tuple[str, int]
_ALNUM = string.ascii_letters + string.digits
FLAT = ("", D0, D0, D0)  # the key of a position never seen: flat, nothing realised
STOP_TYPES = {"TakeProfit": "TAKE_PROFIT_MARKET", "StopLoss": "STOP_MARKET",
              "TrailingStop": "TRAILING_STOP_MARKET"}


def client_order_id() -> str:
    return "".join(secrets.choice(_ALNUM) for _ in range(22))


class Ledger:
    def __init__(self, account: AccountEngine, sink: Sink, symbols: list[str],
                 account_update_first: bool = False) -> None:
        self.account = account
        self.symbols = set(symbols)  # USDⓈ-M's; the engine's other instruments are ignored
        self._sink = sink
        self.account_update_first = account_update_first
        self._held: list[dict] = []
        self.orders: dict[int, dict] = {}
        self._by_uuid: dict[str, int] = {}
        self._ids: deque[int] = deque()
        self._next_order = 8_389_765_000_000_000_000 // 10**6  # Binance-sized ids
        self._next_trade = 5_900_000_000
        self.trades: deque[dict] = deque(maxlen=5000)
        #: GET /fapi/v1/income rows: REALIZED_PNL, COMMISSION, FUNDING_FEE
        self.income: deque[dict] = deque(maxlen=10000)
        self._next_tran = 9_689_000_000
        #: the realised profit per position (``cr``), keyed by (symbol, index)
        self.realised: dict[PosKey, Decimal] = {}
        self._seen: dict[PosKey, tuple] = {}
        self._leverage: dict[str, Decimal] = {}
        #: the engine order id -> its position index (from the engine's order rows)
        self._order_idx: dict[str, int] = {}
        self._dirty: set[PosKey] = set()
        self._balance_dirty = False
        self._balance = account.balance  # the USDT wallet balance last pushed
        self._reason = ""
        self._tx_ms = 0
        self._scheduled = False
        for pos in account.positions.values():
            if pos.symbol not in self.symbols:
                continue
            self._seen[(pos.symbol, pos.idx)] = self._key(pos)
            self._leverage[pos.symbol] = pos.leverage
        account.listeners.append(self.on_engine_event)

    def sink(self, event: dict) -> None:
        """Order events wait for the ACCOUNT_UPDATE when it is to go first."""
        if self.account_update_first and event["e"] in ("ORDER_TRADE_UPDATE", "TRADE_LITE"):
            self._held.append(event)
            self._schedule()
        else:
            self._sink(event)

    # -- lookups for REST -----------------------------------------------------------
    def order_id(self, engine_id: str) -> int:
        return self._by_uuid[engine_id]

    def find(self, symbol: str, order_id: str | None, client_id: str | None) -> dict | None:
        for row in self.orders.values():
            if row["symbol"] != symbol:
                continue
            if order_id is not None and str(row["orderId"]) == order_id:
                return row
            if client_id is not None and row["clientOrderId"] == client_id:
                return row
        return None

    # -- engine events --------------------------------------------------------------
    def _key(self, pos: Position) -> tuple:
        return (pos.side, pos.size, pos.entry, self.realised.get((pos.symbol, pos.idx), D0))

    def on_engine_event(self, topic: str, rows: list[dict]) -> None:
        rows = [r for r in rows if "symbol" not in r or r["symbol"] in self.symbols]
        if not rows:
            return
        if topic == "order":
            for row in rows:
                self._order_idx[row["orderId"]] = int(row.get("positionIdx", 0))
                if len(self._order_idx) > 4000:
                    self._order_idx.pop(next(iter(self._order_idx)))
        elif topic == "execution":
            for row in rows:
                self._execution(row)
        elif topic == "position":
            for row in rows:
                self._position(row["symbol"], int(row.get("positionIdx", 0)))
        elif topic == "wallet":
            self._balance_dirty = True
            self._schedule()
        elif topic == "funding":
            for row in rows:
                self._income(row["symbol"], "FUNDING_FEE", Decimal(row["amount"]),
                             int(row["time"]), "")
            self._reason = self._reason or "FUNDING_FEE"
            self._balance_dirty = True
            self._schedule()

    def _position(self, symbol: str, idx: int) -> None:
        pos = self.account.positions.get((symbol, idx))
        if pos is None:  # the position mode changed since
            return
        lev = self._leverage.get(symbol, self.account.default_leverage)
        if lev != pos.leverage:
            now = self.account.now_ms()
            self.sink({"e": "ACCOUNT_CONFIG_UPDATE", "E": now, "T": now,
                       "ac": {"s": symbol, "l": int(pos.leverage)}})
        self._leverage[symbol] = pos.leverage
        if self._seen.get((symbol, idx), FLAT) != self._key(pos):
            self._dirty.add((symbol, idx))
            self._tx_ms = max(self._tx_ms, pos.updated_ms)
            self._schedule()

    def _execution(self, row: dict) -> None:
        symbol = row["symbol"]
        inst = self.account.instrument(symbol)
        price, amount = Decimal(row["execPrice"]), Decimal(row["execQty"])
        fee = Decimal(row["execFee"])
        pnl = Decimal(row["execPnl"]) + fee  # rp is before the commission
        engine_id = row["orderId"]
        idx = self._order_idx.get(engine_id, 0)
        self.realised[(symbol, idx)] = self.realised.get((symbol, idx), D0) + pnl
        liquidation = row["execType"] == "BustTrade"
        order_id = self._by_uuid.get(engine_id)
        if order_id is None:
            self._next_order += 1
            order_id = self._by_uuid[engine_id] = self._next_order
        self._next_trade += 1
        # one transaction, one time: the engine read its clock for the execution before
        # it moved the position (a loaded machine puts milliseconds between the two);
        # Binance's matching engine stamps the fill and the position change it makes
        # with one transaction time (the order update's and the ACCOUNT_UPDATE's ``T``)
        pos = self.account.positions.get((symbol, idx))
        tx = max(int(row["execTime"]), pos.updated_ms if pos is not None else 0)
        self._tx_ms = max(self._tx_ms, tx)
        self._reason = "ORDER"
        client = row["orderLinkId"] or (f"autoclose-{tx}" if liquidation else client_order_id())
        side = row["side"].upper()
        order_type = "LIQUIDATION" if liquidation else "MARKET"
        original = STOP_TYPES.get(row["stopOrderType"], order_type)
        reduce_only = Decimal(row["closedSize"]) > 0 and Decimal(row["closedSize"]) == amount
        order = {
            "orderId": order_id, "symbol": symbol, "status": "FILLED",
            "clientOrderId": client, "price": "0", "avgPrice": plain(price),
            "origQty": qty(inst, amount), "executedQty": qty(inst, amount),
            "cumQuote": f8(price * amount), "timeInForce": "GTC", "type": order_type,
            "reduceOnly": reduce_only, "closePosition": False, "side": side,
            "positionSide": position_side(idx), "stopPrice": "0", "workingType": "CONTRACT_PRICE",
            "priceProtect": False, "origType": original, "priceMatch": "NONE",
            "selfTradePreventionMode": "EXPIRE_MAKER", "goodTillDate": 0, "time": tx,
            "updateTime": tx,
        }
        self._remember(order)
        if pnl:
            self._income(symbol, "REALIZED_PNL", pnl, tx, str(self._next_trade))
        self._income(symbol, "COMMISSION", -fee, tx, str(self._next_trade))
        self.trades.append({
            "buyer": side == "BUY", "commission": f8(fee), "commissionAsset": "USDT",
            "id": self._next_trade, "maker": False, "orderId": order_id, "price": plain(price),
            "qty": qty(inst, amount), "quoteQty": f8(price * amount), "realizedPnl": f8(pnl),
            "side": side, "positionSide": order["positionSide"], "symbol": symbol, "time": tx,
        })
        base = {
            "s": symbol, "c": client, "S": side, "o": order_type, "f": "GTC",
            "q": qty(inst, amount), "p": "0", "ap": "0", "sp": "0", "x": "NEW", "X": "NEW",
            "i": order_id, "l": "0", "z": "0", "L": "0", "N": "USDT", "n": "0", "T": tx,
            "t": 0, "b": "0", "a": "0", "m": False, "R": reduce_only,
            "wt": "CONTRACT_PRICE", "ot": original, "ps": order["positionSide"], "cp": False,
            "rp": "0", "pP": False, "si": 0, "ss": 0, "V": "EXPIRE_MAKER", "pm": "NONE",
            "gtd": 0, "er": "0",
        }
        now = self.account.now_ms()
        if not liquidation:
            self.sink({"e": "ORDER_TRADE_UPDATE", "E": now, "T": tx, "o": base})
            self.sink({"e": "TRADE_LITE", "E": self.account.now_ms(), "T": tx, "s": symbol,
                       "q": qty(inst, amount), "p": "0", "m": False, "c": client, "S": side,
                       "L": plain(price), "l": qty(inst, amount), "t": self._next_trade,
                       "i": order_id})
        fill = base | {"x": "CALCULATED" if liquidation else "TRADE", "X": "FILLED",
                       "ap": plain(price), "l": qty(inst, amount), "z": qty(inst, amount),
                       "L": plain(price), "n": f8(fee), "t": self._next_trade, "rp": f8(pnl)}
        self.sink({"e": "ORDER_TRADE_UPDATE", "E": self.account.now_ms(), "T": tx, "o": fill})

    def _income(self, symbol: str, kind: str, amount: Decimal, ms: int, trade_id: str) -> None:
        self._next_tran += 1
        self.income.append({"symbol": symbol, "incomeType": kind, "income": f8(amount),
                            "asset": "USDT", "info": kind if kind != "COMMISSION" else "",
                            "time": ms, "tranId": self._next_tran, "tradeId": trade_id})

    def _remember(self, order: dict) -> None:
        self.orders[order["orderId"]] = order
        self._ids.append(order["orderId"])
        while len(self._ids) > 2000:
            self.orders.pop(self._ids.popleft(), None)

    # -- one ACCOUNT_UPDATE per engine call -----------------------------------------
    def _schedule(self) -> None:
        if self._scheduled:
            return
        try:
            loop = asyncio.get_running_loop()
        except RuntimeError:
            self.flush()
            return
        self._scheduled = True
        loop.call_soon(self.flush)

    def flush(self) -> None:
        self._scheduled = False
        dirty, self._dirty = self._dirty, set()
        balance, self._balance_dirty = self._balance_dirty, False
        reason, self._reason = self._reason or "ADJUSTMENT", ""
        tx, self._tx_ms = self._tx_ms, 0
        positions = []
        fee_rate = self.account.fee_rate
        for symbol, idx in sorted(dirty):
            pos = self.account.positions.get((symbol, idx))
            if pos is None:
                continue
            key = self._key(pos)
            if self._seen.get((symbol, idx), FLAT) == key:
                continue
            self._seen[(symbol, idx)] = key
            positions.append(stream_position(pos, self.account.mark(symbol), fee_rate,
                                             self.realised.get((symbol, idx), D0)))
        held, self._held = self._held, []
        balance = balance and self.account.balance != self._balance
        self._balance = self.account.balance
        if not positions and not balance:
            for event in held:
                self._sink(event)
            return
        wallet = f8(self.account.balance)
        update = {"m": reason,
                  "B": [{"a": "USDT", "wb": wallet, "cw": wallet, "bc": "0"}] if balance else [],
                  "P": positions}
        now = self.account.now_ms()
        self._sink({"e": "ACCOUNT_UPDATE", "E": now, "T": tx or now, "a": update})
        for event in held:
            self._sink(event | {"E": max(event["E"], now)})
