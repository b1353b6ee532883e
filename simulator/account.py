"""Account engine: orders (see `account_core`), leverage, TP/SL/trailing stop, the
triggers checked on every mark-price tick (liquidation included), and direct
position control for tests."""

from __future__ import annotations

import logging
import uuid
from decimal import Decimal, InvalidOperation

from .account_core import HEDGE_SIDE, AccountCore
from .errors import SimError, params_error
from .position import D0, Position

log = logging.getLogger("feedctl.simulator")


def parse_decimal(name: str, value: object, *, allow_zero: bool = True) -> Decimal:
    try:
        number = Decimal(str(value).strip())
    except (InvalidOperation, ValueError):
        raise params_error(f"params error: {name} invalid, {name}[{value}]") from None
    if not number.is_finite() or number < 0 or (number == 0 and not allow_zero):
        raise params_error(f"params error: {name} invalid, {name}[{value}]")
    return number


class AccountEngine(AccountCore):
    # -- leverage -------------------------------------------------------------------
    def set_leverage(self, symbol: str, buy: object, sell: object) -> None:
        """One-way: both values equal. Hedge mode: buy for idx 1, sell for idx 2.
        A settings change: the rows keep the seq of the last fill."""
        inst = self.instrument(symbol)
        buy_lev = parse_decimal("buyLeverage", buy, allow_zero=False)
        sell_lev = parse_decimal("sellLeverage", sell, allow_zero=False)
        hedge = symbol in self.hedged
        if buy_lev != sell_lev and not hedge:
            raise params_error("buy leverage must be equal to sell leverage in one-way mode")
        for lev in (buy_lev, sell_lev):
            if lev < 1 or lev > inst.max_leverage:
                raise params_error(f"leverage invalid: cannot set leverage [{lev}] gt "
                                   f"maxLeverage [{inst.max_leverage}] by risk limit")
        wanted = {1: buy_lev, 2: sell_lev} if hedge else {0: buy_lev}
        moved = [self.position(symbol, i) for i, lev in wanted.items()
                 if self.position(symbol, i).leverage != lev]
        if not moved:
            raise SimError(110043, "leverage not modified")
        for pos in moved:
            pos.leverage = wanted[pos.idx]
            self._touch(pos, fill=False)
            if pos.is_open:
                self._log(pos, "changed", "leverage", ["leverage"])
            self.push_position(pos)

    # -- TP / SL / trailing stop ----------------------------------------------------
    def set_trading_stop(self, symbol: str, *, take_profit: object = None,
                         stop_loss: object = None, trailing_stop: object = None,
                         active_price: object = None, tpsl_mode: str | None = None,
                         position_idx: int = 0) -> None:
        self.instrument(symbol)
        pos = self.position(symbol, self.check_idx(symbol, position_idx))
        if not pos.is_open:
            raise params_error("can not set tp/sl/ts for zero position")
        mark = self.mark(symbol)
        wanted: dict[str, Decimal] = {}
        for name, value in (("takeProfit", take_profit), ("stopLoss", stop_loss),
                            ("trailingStop", trailing_stop), ("activePrice", active_price)):
            if value is not None and str(value) != "":
                wanted[name] = parse_decimal(name, value)
        long = pos.side == "Buy"
        tp, sl = wanted.get("takeProfit"), wanted.get("stopLoss")
        if tp and (tp <= mark if long else tp >= mark):
            word = "higher" if long else "lower"
            raise params_error(f"TakeProfit:{tp} set for {pos.side} position should be {word} "
                               f"than base_price:{mark}??MarkPrice")
        if sl and (sl >= mark if long else sl <= mark):
            word = "lower" if long else "higher"
            raise params_error(f"StopLoss:{sl} set for {pos.side} position should be {word} "
                               f"than base_price:{mark}??MarkPrice")
        attrs = {"takeProfit": "take_profit", "stopLoss": "stop_loss",
                 "trailingStop": "trailing_stop", "activePrice": "active_price"}
        changes = [n for n, v in wanted.items() if getattr(pos, attrs[n]) != v]
        if tpsl_mode and tpsl_mode != pos.tpsl_mode:
            changes.append("tpslMode")
        if not changes:
            raise SimError(34040, "not modified")
        for name in changes:
            if name == "tpslMode":
                pos.tpsl_mode = str(tpsl_mode)
            else:
                setattr(pos, attrs[name], wanted[name])
        if "trailingStop" in changes or "activePrice" in changes:
            pos.trail_active, pos.trail_extreme = False, D0
        self._touch(pos, fill=False)
        self._log(pos, "changed", "tpsl", changes)
        self.push_position(pos)

    # -- triggers on every tick -----------------------------------------------------
    def on_tick(self) -> None:
        """Check liquidation, TP, SL and trailing stops against the new marks."""
        for pos in self.open_positions():
            try:
                self._check(pos)
            except Exception:  # a trigger must never stop the tick loop
                log.exception("trigger check failed for %s:%d", pos.symbol, pos.idx)

    def _check(self, pos: Position) -> None:
        mark = self.mark(pos.symbol)
        long = pos.side == "Buy"
        liq = pos.liq_price()
        if liq is not None and (mark <= liq if long else mark >= liq):
            bust = pos.bust_price() or pos.inst.tick_size
            self._trigger(pos, "", "BustTrade", "liquidation", bust)
            return
        if pos.take_profit and (mark >= pos.take_profit if long else mark <= pos.take_profit):
            self._trigger(pos, "TakeProfit", "Trade", "take_profit")
            return
        if pos.stop_loss and (mark <= pos.stop_loss if long else mark >= pos.stop_loss):
            self._trigger(pos, "StopLoss", "Trade", "stop_loss")
            return
        if pos.trailing_stop:
            if not pos.trail_active:
                active = pos.active_price
                if not active or (mark >= active if long else mark <= active):
                    pos.trail_active, pos.trail_extreme = True, mark
            if pos.trail_active:
                if long:
                    pos.trail_extreme = max(pos.trail_extreme, mark)
                    hit = mark <= pos.trail_extreme - pos.trailing_stop
                else:
                    pos.trail_extreme = min(pos.trail_extreme, mark)
                    hit = mark >= pos.trail_extreme + pos.trailing_stop
                if hit:
                    self._trigger(pos, "TrailingStop", "Trade", "trailing_stop")

    def _trigger(self, pos: Position, stop_type: str, exec_type: str, reason: str,
                 price: Decimal | None = None) -> None:
        side = "Sell" if pos.side == "Buy" else "Buy"
        fill = price if price is not None else self.fill_price(pos.symbol, side)
        log.info("%s triggered on %s at %s", reason, pos.symbol, fill)
        self.push_position(pos)
        self._fill(pos, side, pos.size, fill, str(uuid.uuid4()), "", True, stop_type,
                   exec_type, reason)

    # -- funding ----------------------------------------------------------------------
    def settle_funding(self, rate: Decimal | None = None) -> list[dict]:
        """Settle funding on every open USDT position: value at mark times the rate (the
        symbol's current funding rate unless `rate` is given), paid by longs when the
        rate is positive. Books it in the wallet and emits ``funding`` then ``wallet``."""
        rows = []
        now = self.now_ms()
        for pos in self.open_positions():
            if pos.inst.quote != "USDT":
                continue  # funding is booked in the USDT wallet; coin-settled ones are not
            mark = self.mark(pos.symbol)
            used = rate if rate is not None else Decimal(
                self.prices.snapshot(pos.symbol, now)[0]["fundingRate"])
            amount = -(pos.size * mark * used * pos.sign)
            self.balance += amount
            self.cum_realised += amount
            rows.append({"symbol": pos.symbol, "rate": str(used), "amount": str(amount),
                         "time": now})
        if rows:
            self._emit("funding", rows)
            self._emit("wallet", [self.wallet()])
        return rows

    # -- direct control (tests, demo) -----------------------------------------------
    def set_position(self, symbol: str, side: str, size: object,
                     entry_price: object = None, leverage: object = None,
                     position_idx: int | None = None) -> Position:
        """Put a position into a state directly (no order, no fee). In hedge mode the
        index defaults to the side's (Buy 1, Sell 2)."""
        if position_idx is None:
            position_idx = 0 if symbol not in self.hedged else 2 if side == "Sell" else 1
        pos = self.position(symbol, self.check_idx(symbol, position_idx))
        inst = pos.inst
        qty = parse_decimal("size", size)
        if qty and side not in ("Buy", "Sell"):
            raise params_error(f"params error: side invalid, side[{side}]")
        if qty and pos.idx and HEDGE_SIDE[pos.idx] != side:
            raise params_error(f"side {side} does not match positionIdx {pos.idx}")
        if qty and not inst.qty_on_step(qty):
            raise params_error(f"Qty invalid: qty[{qty}]")
        before = pos.summary()
        if leverage is not None:
            lev = parse_decimal("leverage", leverage, allow_zero=False)
            if lev < 1 or lev > inst.max_leverage:
                raise params_error(f"leverage invalid: {lev}")
            pos.leverage = lev
        was_open = pos.is_open
        if qty == 0:
            pos.side, pos.size, pos.entry = "", D0, D0
            pos.clear_tpsl()
        else:
            entry = self.mark(symbol) if entry_price is None else parse_decimal(
                "entryPrice", entry_price, allow_zero=False)
            if not was_open:
                self._open(pos, side, qty, entry)
            else:
                pos.side, pos.size, pos.entry = side, qty, entry
        after = pos.summary()
        changes = [k for k in ("side", "size", "entryPrice", "leverage") if before[k] != after[k]]
        if not changes:
            return pos
        self._touch(pos, fill=changes != ["leverage"])
        if was_open or pos.is_open:
            kind = "opened" if not was_open else "closed" if not pos.is_open else "changed"
            if was_open and pos.is_open and before["side"] != after["side"]:
                self._log(pos, "closed", "control", ["side", "size", "entryPrice"])
                kind = "opened"
            self._log(pos, kind, "control", changes)
        self.push_position(pos)
        return pos

    def close_position(self, symbol: str, reason: str = "control",
                       position_idx: int | None = None) -> dict | None:
        """Close at market (with an order, an execution and a fee) if open; in hedge
        mode the given side, or the first open one."""
        self.instrument(symbol)
        if position_idx is None:
            found = self.open_side(symbol)
            if found is None:
                return None
            pos = found
        else:
            pos = self.position(symbol, self.check_idx(symbol, position_idx))
        if not pos.is_open:
            return None
        side = "Sell" if pos.side == "Buy" else "Buy"
        fill = self.fill_price(symbol, side)
        self.push_position(pos)
        return self._fill(pos, side, pos.size, fill, str(uuid.uuid4()), "", True, "",
                          "Trade", reason)

    def rest_rows(self, symbol: str | None = None, *, category: str = "linear",
                  settle_coin: str | None = None) -> list[dict]:
        """Rows for /v5/position/list: the symbol's rows (flat too; two in hedge mode),
        or the open positions of ``category`` (settled in ``settle_coin``, if given)."""
        if symbol is not None:
            return [p.rest_row(self.mark(symbol)) for p in self.positions_of(symbol)]
        rows = [p.rest_row(self.mark(p.symbol)) for p in self.open_positions()
                if p.inst.category == category
                and (settle_coin is None or p.inst.settle_coin == settle_coin)]
        return sorted(rows, key=lambda r: (r["symbol"], r["positionIdx"]))
