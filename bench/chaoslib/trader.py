"""Activity: seeded position churn through the simulator's control API."""

from __future__ import annotations

import random
from collections import Counter
from decimal import ROUND_DOWN, Decimal
from typing import Any

from feedctl.simulator import SimControl, SimControlError, Simulator


class Trader:
    """Seeded position churn on many symbols through the control API.

    Positions change only the way they change on Bybit: market orders (open, add,
    reduce, close, flip), leverage and TP/SL/trailing-stop changes, and what the
    exchange triggers itself (TP/SL/trailing stops, liquidations). Never the control
    API's ``set_position``, which moves a position without a fill — something no real
    exchange does, and which the hybrid's gap replay (built on fills) cannot see.

    Hedge-mode symbols trade one side at a time (idx 1 long, idx 2 short: open, add,
    reduce, close; a hedge side never flips); inverse symbols trade USD contracts."""

    def __init__(self, sim: Simulator, ctl: SimControl, rng: random.Random,
                 notional: Decimal) -> None:
        self.sim, self.ctl, self.rng = sim, ctl, rng
        self.symbols = list(sim.prices.symbols)
        self.notional = notional
        self.actions: Counter[str] = Counter()
        self.refused: Counter[str] = Counter()

    def unit(self, symbol: str) -> Decimal:
        inst = self.sim.account.instrument(symbol)
        if inst.inverse:  # qty is in USD contracts
            return max(inst.min_qty, (self.notional / inst.qty_step).to_integral_value(
                ROUND_DOWN) * inst.qty_step)
        raw = self.notional / self.sim.prices.mark(symbol)
        qty = (raw / inst.qty_step).to_integral_value(ROUND_DOWN) * inst.qty_step
        while qty * self.sim.prices.mark(symbol) < inst.min_notional * 2:
            qty += inst.qty_step
        return max(qty, inst.min_qty)

    async def step(self) -> None:
        rng = self.rng
        sym = rng.choice(self.symbols)
        if sym in self.sim.account.hedged:
            await self._hedge_step(sym, rng.choice((1, 2)))
            return
        ctl = self.ctl
        pos = self.sim.account.position(sym)  # read only: decide what to do
        unit = self.unit(sym)
        roll = rng.random()
        side = rng.choice(("Buy", "Sell"))
        action = "?"
        try:
            if not pos.is_open:
                if roll < 0.15:
                    action = "blip"  # a lifecycle of a few milliseconds
                    await ctl.place_order(sym, side, unit)
                    await ctl.place_order(sym, _other(side), unit, reduce_only=True)
                else:
                    action = "open"
                    await ctl.place_order(sym, side, unit * rng.randint(1, 2))
                return
            other = _other(pos.side)
            if roll < 0.22 and pos.size + unit <= unit * 4:
                action = "add"
                await ctl.place_order(sym, pos.side, unit * rng.randint(1, 2))
            elif roll < 0.40 and pos.size > unit:
                action = "reduce"
                await ctl.place_order(sym, other, unit, reduce_only=True)
            elif roll < 0.55:
                action = "close"
                await ctl.place_order(sym, other, pos.size, reduce_only=True)
            elif roll < 0.63:
                action = "close_control"
                await ctl.close_position(sym)
            elif roll < 0.78:
                action = "flip"
                await ctl.place_order(sym, other, pos.size + unit * rng.randint(1, 2))
            elif roll < 0.86:
                action = "leverage"
                current = pos.leverage
                await ctl.set_leverage(sym, rng.choice([x for x in ("3", "5", "10")
                                                        if Decimal(x) != current]))
            else:
                action = "tpsl"
                await self._tpsl(sym, pos.side)
        except SimControlError:
            self.refused[action] += 1
        finally:
            self.actions[action] += 1

    async def _hedge_step(self, sym: str, idx: int) -> None:
        """One action on one side of a hedge-mode symbol."""
        rng, ctl = self.rng, self.ctl
        pos = self.sim.account.position(sym, idx)
        own = "Buy" if idx == 1 else "Sell"
        unit = self.unit(sym)
        roll = rng.random()
        action = "?"
        try:
            if not pos.is_open:
                if roll < 0.15:
                    action = "hedge_blip"
                    await ctl.place_order(sym, own, unit, position_idx=idx)
                    await ctl.place_order(sym, _other(own), unit, reduce_only=True,
                                          position_idx=idx)
                else:
                    action = "hedge_open"
                    await ctl.place_order(sym, own, unit * rng.randint(1, 2), position_idx=idx)
                return
            if roll < 0.3 and pos.size + unit <= unit * 4:
                action = "hedge_add"
                await ctl.place_order(sym, own, unit, position_idx=idx)
            elif roll < 0.5 and pos.size > unit:
                action = "hedge_reduce"
                await ctl.place_order(sym, _other(own), unit, reduce_only=True,
                                      position_idx=idx)
            elif roll < 0.75:
                action = "hedge_close"
                await ctl.place_order(sym, _other(own), pos.size, reduce_only=True,
                                      position_idx=idx)
            elif roll < 0.85:
                action = "hedge_close_control"
                await ctl.close_position(sym, position_idx=idx)
            else:
                action = "hedge_tpsl"
                await self._tpsl(sym, own, idx)
        except SimControlError:
            self.refused[action] += 1
        finally:
            self.actions[action] += 1

    async def _tpsl(self, sym: str, side: str, idx: int | None = None) -> None:
        inst = self.sim.account.instrument(sym)
        mark = self.sim.prices.mark(sym)
        far = Decimal(self.rng.choice(("0.04", "0.06", "0.08")))
        long = side == "Buy"
        fields: dict[str, Any] = {}
        if self.rng.random() < 0.7:
            fields["takeProfit"] = inst.round_price(mark * (1 + far if long else 1 - far))
            fields["stopLoss"] = inst.round_price(mark * (1 - far if long else 1 + far))
        else:
            fields["trailingStop"] = inst.round_price(mark * far)
        if idx is not None:
            fields["positionIdx"] = idx
        await self.ctl.set_trading_stop(sym, **fields)


def _other(side: str) -> str:
    return "Sell" if side == "Buy" else "Buy"
