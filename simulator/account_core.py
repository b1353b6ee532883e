"""Account engine core: one unified account - a USDT wallet for linear contracts and
one wallet per coin for inverse ones - in one-way mode (positionIdx 0) or, per symbol,
hedge mode (two positions: idx 1 the buy side, idx 2 the sell side).

Market orders fill at once at mark +/- spread.  Every fill bumps the symbol's own
sequence (Bybit's `seq` is per symbol: different symbols may share a value); settings
changes (leverage, TP/SL) keep the seq of the last fill, as Bybit documents, and a
symbol never traded has seq -1.  Every change is recorded in the transition log and
pushed to listeners.  Nothing is pushed when only the mark price moves: that is Bybit's
behaviour and the problem the project works around.
"""

from __future__ import annotations

import hashlib
import uuid
from collections import deque
from collections.abc import Callable
from decimal import Decimal

from .errors import SimError, params_error
from .instruments import Instrument
from .position import D0, Position
from .prices import PriceEngine
from .records import execution_row, order_row, wallet_row

Listener = Callable[[str, list[dict]], None]
BPS = Decimal("0.0001")
ONE_WAY, HEDGE = 0, 3  # /v5/position/switch-mode `mode`: merged single, both sides
#: The side a hedge-mode position index holds.
HEDGE_SIDE = {1: "Buy", 2: "Sell"}
PosKey = tuple[str, int]


def first_seq(symbol: str) -> int:
    """Where a symbol's sequence starts (each symbol has its own)."""
    return 5_000_000_000 + int.from_bytes(hashlib.sha256(symbol.encode()).digest()[:3], "big")


class AccountCore:
    def __init__(self, instruments: dict[str, Instrument], prices: PriceEngine,
                 now_ms: Callable[[], int], *, spread_bps: Decimal = Decimal("1"),
                 fee_rate: Decimal = Decimal("0.00055"), balance: Decimal = Decimal("100000"),
                 default_leverage: Decimal = Decimal("10"), log_size: int = 100_000,
                 coin_balance: Decimal = Decimal("10")) -> None:
        self.instruments = instruments
        self.prices = prices
        self.now_ms = now_ms
        self.spread = Decimal(spread_bps) * BPS
        self.fee_rate = Decimal(fee_rate)
        self.balance = Decimal(balance)
        self.cum_realised = D0
        self.default_leverage = Decimal(default_leverage)
        self.positions: dict[PosKey, Position] = {}
        #: Wallets of the inverse contracts' settle coins (BTC, ETH...).
        self.coin_balances: dict[str, Decimal] = {
            i.settle_coin: Decimal(coin_balance) for i in instruments.values() if i.inverse}
        self.coin_realised: dict[str, Decimal] = dict.fromkeys(self.coin_balances, D0)
        #: Symbols in hedge mode (both sides); all others are one-way.
        self.hedged: set[str] = set()
        self._seqs: dict[str, int] = {}
        self.orders: dict[str, dict] = {}
        self._order_ids: deque[str] = deque()
        self.executions: deque[dict] = deque(maxlen=5000)
        self.transitions: deque[dict] = deque(maxlen=log_size)
        self._transition_id = 0
        self.listeners: list[Listener] = []

    # -- lookups --------------------------------------------------------------------
    def instrument(self, symbol: str) -> Instrument:
        inst = self.instruments.get(symbol)
        if inst is None:
            raise params_error(f"params error: symbol invalid, symbol[{symbol}]")
        return inst

    def mode(self, symbol: str) -> int:
        return HEDGE if symbol in self.hedged else ONE_WAY

    def indexes(self, symbol: str) -> tuple[int, ...]:
        """The position indexes a symbol has in its mode: (0,) or (1, 2)."""
        return (1, 2) if symbol in self.hedged else (0,)

    def check_idx(self, symbol: str, idx: int) -> int:
        if idx not in self.indexes(symbol):
            raise params_error("position idx not match position mode")
        return idx

    def position(self, symbol: str, idx: int = 0) -> Position:
        pos = self.positions.get((symbol, idx))
        if pos is None:
            inst = self.instrument(symbol)
            self.check_idx(symbol, idx)
            pos = Position(inst, self.default_leverage, idx=idx)
            self.positions[(symbol, idx)] = pos
        return pos

    def positions_of(self, symbol: str) -> list[Position]:
        """The symbol's positions in its mode (flat ones too): one row, or two."""
        return [self.position(symbol, i) for i in self.indexes(symbol)]

    def open_positions(self) -> list[Position]:
        return [p for p in self.positions.values() if p.is_open]

    def open_side(self, symbol: str, side: str = "") -> Position | None:
        """The open position of ``symbol`` (in hedge mode: the one holding ``side``,
        or the first open one when ``side`` is empty)."""
        for pos in self.positions_of(symbol):
            if pos.is_open and (not side or pos.side == side):
                return pos
        return None

    # -- position mode ----------------------------------------------------------------
    def switch_mode(self, symbol: str, mode: int) -> None:
        """/v5/position/switch-mode for one symbol (0 one-way, 3 hedge)."""
        inst = self.instrument(symbol)
        if mode not in (ONE_WAY, HEDGE):
            raise params_error(f"params error: mode invalid, mode[{mode}]")
        if mode == self.mode(symbol):
            raise SimError(110025, "Position mode is not modified")
        if inst.inverse:  # Bybit: inverse perpetuals support one-way only
            raise params_error("Inverse perpetual supports one-way mode only")
        if any(p.is_open for p in self.positions_of(symbol)):
            raise SimError(110024, "You have an existing position, so position mode cannot "
                           "be switched")
        leverage = self.position(symbol, self.indexes(symbol)[0]).leverage
        for idx in self.indexes(symbol):
            self.positions.pop((symbol, idx), None)
        if mode == HEDGE:
            self.hedged.add(symbol)
        else:
            self.hedged.discard(symbol)
        seq = self._seqs.get(symbol, -1)
        for pos in self.positions_of(symbol):
            pos.leverage, pos.seq = leverage, seq

    def mark(self, symbol: str) -> Decimal:
        return self.prices.mark(symbol)

    def fill_price(self, symbol: str, side: str) -> Decimal:
        inst, mark = self.instrument(symbol), self.mark(symbol)
        if side == "Buy":
            return inst.price_up(mark * (1 + self.spread))
        return max(inst.tick_size, inst.price_down(mark * (1 - self.spread)))

    def totals(self, coin: str = "USDT") -> tuple[Decimal, Decimal, Decimal]:
        """(unrealised PnL, initial margin, maintenance margin) over the open positions
        settled in ``coin``."""
        upl = im = mm = D0
        for pos in self.open_positions():
            if pos.inst.settle_coin != coin:
                continue
            upl += pos.unrealised(self.mark(pos.symbol))
            im += pos.initial_margin()
            mm += pos.maint_margin()
        return upl, im, mm

    def wallet(self) -> dict:
        upl, im, mm = self.totals()
        row = wallet_row(balance=self.balance, upl=upl, im=im, mm=mm,
                         cum_realised=self.cum_realised)
        for coin, balance in sorted(self.coin_balances.items()):
            c_upl, c_im, c_mm = self.totals(coin)
            extra = wallet_row(balance=balance, upl=c_upl, im=c_im, mm=c_mm,
                               cum_realised=self.coin_realised[coin])["coin"][0]
            row["coin"].append(extra | {"coin": coin, "usdValue": "",
                                        "marginCollateral": False})
        return row

    def available(self, coin: str) -> Decimal:
        upl, im, _ = self.totals(coin)
        balance = self.balance if coin == "USDT" else self.coin_balances.get(coin, D0)
        return balance + min(upl, D0) - im

    # -- events ---------------------------------------------------------------------
    def _emit(self, topic: str, rows: list[dict]) -> None:
        for listener in list(self.listeners):
            listener(topic, rows)

    def push_position(self, pos: Position) -> None:
        self._emit("position", [pos.ws_row(self.mark(pos.symbol))])

    def _touch(self, pos: Position, fill: bool = True) -> None:
        """A change of ``pos``: a fill moves the symbol's seq on; a settings change
        keeps the seq of the last fill (Bybit: "the seq updated by the last
        transaction when there are settings like leverage")."""
        if fill:
            seq = self._seqs.get(pos.symbol, first_seq(pos.symbol)) + 1
            self._seqs[pos.symbol] = pos.seq = seq
        pos.updated_ms = max(self.now_ms(), pos.updated_ms)

    def _log(self, pos: Position, kind: str, reason: str, changes: list[str]) -> None:
        self._transition_id += 1
        entry = {"id": self._transition_id, "time": pos.updated_ms, "kind": kind,
                 "reason": reason, "changes": changes, "markPrice": str(self.mark(pos.symbol))}
        entry.update(pos.summary())
        self.transitions.append(entry)

    @property
    def last_transition_id(self) -> int:
        return self._transition_id

    def transitions_after(self, after_id: int = 0, symbol: str | None = None,
                          limit: int = 1000) -> list[dict]:
        out = []
        for entry in self.transitions:
            if entry["id"] > after_id and (symbol is None or entry["symbol"] == symbol):
                out.append(entry)
                if len(out) >= limit:
                    break
        return out

    # -- orders ---------------------------------------------------------------------
    def validate_qty(self, inst: Instrument, qty: Decimal) -> None:
        if not qty.is_finite() or qty <= 0 or not inst.qty_on_step(qty):
            raise params_error(f"Qty invalid: qty[{qty}] must be a multiple of qtyStep"
                               f"[{inst.fmt_qty(inst.qty_step)}]")
        if qty < inst.min_qty:
            raise params_error("The number of contracts exceeds minimum limit allowed")
        if qty > inst.max_mkt_qty:
            raise params_error("The number of contracts exceeds maximum limit allowed")

    def place_market_order(self, symbol: str, side: str, qty: Decimal, *,
                           reduce_only: bool = False, position_idx: int = 0,
                           order_link_id: str = "", stop_type: str = "",
                           price: Decimal | None = None, exec_type: str = "Trade",
                           reason: str = "order") -> dict:
        inst = self.instrument(symbol)
        if side not in ("Buy", "Sell"):
            raise params_error(f"params error: side invalid, side[{side}]")
        self.check_idx(symbol, position_idx)
        self.validate_qty(inst, qty)
        if order_link_id and any(o["orderLinkId"] == order_link_id for o in self.orders.values()):
            raise SimError(110072, "OrderLinkedID is duplicate")
        pos = self.position(symbol, position_idx)
        hedge = position_idx != 0
        closing = pos.is_open and pos.side != side
        if hedge and side != HEDGE_SIDE[position_idx]:
            # the other side's order on a hedge position reduces it, never flips it
            if not pos.is_open:
                raise SimError(110017,
                               "current position is zero, cannot fix reduce-only order qty")
            qty = min(qty, pos.size)
        elif reduce_only:
            if not closing:
                raise SimError(110017,
                               "current position is zero, cannot fix reduce-only order qty")
            qty = min(qty, pos.size)
        fill = price if price is not None else self.fill_price(symbol, side)
        opening = qty if not closing else max(D0, qty - pos.size)
        if opening > 0 and not inst.inverse and opening * fill < inst.min_notional:
            raise SimError(110094,
                           f"Order does not meet minimum order value {inst.min_notional}USDT")
        if opening > 0:
            value = opening / fill if inst.inverse else opening * fill
            turnover = qty / fill if inst.inverse else qty * fill
            need = value / pos.leverage + turnover * self.fee_rate
            if need > self.available(inst.settle_coin):
                raise SimError(110007, "ab not enough for new order")
        # Bybit pushes the position on every order create, even before anything changed.
        self.push_position(pos)
        order_id = str(uuid.uuid4())
        return self._fill(pos, side, qty, fill, order_id, order_link_id, reduce_only,
                          stop_type, exec_type, reason)

    def _fill(self, pos: Position, side: str, qty: Decimal, price: Decimal, order_id: str,
              link_id: str, reduce_only: bool, stop_type: str, exec_type: str,
              reason: str) -> dict:
        inst, now = pos.inst, self.now_ms()
        fee = (qty / price if inst.inverse else qty * price) * self.fee_rate
        closed, pnl = self._apply(pos, side, qty, price, fee, reason)
        mark = self.mark(pos.symbol)
        order = order_row(inst=inst, order_id=order_id, link_id=link_id, side=side, qty=qty,
                          price=price, fee=fee, reduce_only=reduce_only, stop_type=stop_type,
                          created_ms=now, mark=mark, position_idx=pos.idx)
        self._remember(order)
        execution = execution_row(inst=inst, order_id=order_id, link_id=link_id,
                                  exec_id=str(uuid.uuid4()), side=side, qty=qty, price=price,
                                  fee=fee, fee_rate=self.fee_rate, pnl=pnl - fee, closed=closed,
                                  exec_type=exec_type, stop_type=stop_type, mark=mark, ms=now,
                                  seq=pos.seq)
        self.executions.append(execution)
        self._emit("order", [order])
        self._emit("execution", [execution])
        self.push_position(pos)
        self._emit("wallet", [self.wallet()])
        return {"orderId": order_id, "orderLinkId": link_id}

    def _remember(self, order: dict) -> None:
        self.orders[order["orderId"]] = order
        self._order_ids.append(order["orderId"])
        while len(self._order_ids) > 2000:
            self.orders.pop(self._order_ids.popleft(), None)

    def _charge(self, pos: Position, amount: Decimal) -> None:
        """Book a realised amount (PnL, or a negative fee) on the position and wallet."""
        pos.cur_realised += amount
        pos.cum_realised += amount
        coin = pos.inst.settle_coin
        if coin in self.coin_balances:
            self.coin_balances[coin] += amount
            self.coin_realised[coin] += amount
        else:
            self.balance += amount
            self.cum_realised += amount

    def _commit(self, pos: Position, kind: str, reason: str, changes: list[str]) -> None:
        self._touch(pos)
        self._log(pos, kind, reason, changes)

    def _open(self, pos: Position, side: str, qty: Decimal, price: Decimal) -> None:
        pos.side, pos.size, pos.entry = side, qty, price
        pos.cur_realised = D0
        pos.created_ms = self.now_ms()

    def _apply(self, pos: Position, side: str, qty: Decimal, price: Decimal, fee: Decimal,
               reason: str) -> tuple[Decimal, Decimal]:
        """Change `pos` by a fill; return (closed size, realised PnL before fee)."""
        lifecycle = ["side", "size", "entryPrice"]
        if not pos.is_open:
            self._open(pos, side, qty, price)
            self._charge(pos, -fee)
            self._commit(pos, "opened", reason, lifecycle)
            return D0, D0
        if pos.side == side:
            if pos.inverse:  # contracts are USD: the average entry is harmonic
                pos.entry = (pos.size + qty) / (pos.size / pos.entry + qty / price)
            else:
                pos.entry = (pos.entry * pos.size + price * qty) / (pos.size + qty)
            pos.size += qty
            self._charge(pos, -fee)
            self._commit(pos, "changed", reason, ["size", "entryPrice"])
            return D0, D0
        closed = min(qty, pos.size)
        pnl = pos.pnl_at(price, closed)
        close_fee = fee * closed / qty
        self._charge(pos, pnl - close_fee)
        pos.size -= closed
        if pos.size > 0:
            self._commit(pos, "changed", reason, ["size"])
            return closed, pnl
        pos.side, pos.entry = "", D0
        pos.clear_tpsl()
        rest = qty - closed
        if rest == 0:
            self._commit(pos, "closed", reason, lifecycle)
            return closed, pnl
        # a flip: the close and the open are two transitions sharing one push (one seq)
        self._touch(pos)
        self._log(pos, "closed", "flip", lifecycle)
        self._open(pos, side, rest, price)
        self._charge(pos, close_fee - fee)
        self._log(pos, "opened", reason, lifecycle)
        return closed, pnl
