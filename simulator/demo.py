"""A seeded demo trader: opens, adds to, reduces, closes and flips positions on a few
symbols every few seconds, with bounded sizes, so a viewer sees live lifecycle events."""

from __future__ import annotations

import asyncio
import logging
import random
from decimal import ROUND_DOWN, Decimal

from .account import AccountEngine
from .errors import SimError
from .prices import PriceEngine

log = logging.getLogger("feedctl.simulator")
MAX_SYMBOLS = 3


class DemoTrader:
    def __init__(self, account: AccountEngine, prices: PriceEngine, *, seed: int = 42,
                 interval: float = 3.0, notional: Decimal = Decimal("2000")) -> None:
        self.account = account
        self.prices = prices
        self.rng = random.Random(f"demo:{seed}")
        self.interval = interval
        self.notional = notional
        self.symbols = prices.symbols_of("linear")[:MAX_SYMBOLS]
        self.actions = 0

    def _unit(self, symbol: str) -> Decimal:
        """A small size: about notional/4 at the current mark, on the lot grid."""
        inst = self.account.instrument(symbol)
        raw = self.notional / 4 / self.prices.mark(symbol)
        qty = (raw / inst.qty_step).to_integral_value(ROUND_DOWN) * inst.qty_step
        return max(qty, inst.min_qty)

    def step(self) -> str:
        """Take one action; return its name."""
        symbol = self.rng.choice(self.symbols)
        pos = self.account.position(symbol)
        unit = self._unit(symbol)
        side = self.rng.choice(("Buy", "Sell"))
        place = self.account.place_market_order
        if not pos.is_open:
            place(symbol, side, unit * self.rng.randint(1, 2), reason="demo")
            return "open"
        other = "Sell" if pos.side == "Buy" else "Buy"
        roll = self.rng.random()
        max_size = unit * 4
        if roll < 0.3 and pos.size + unit <= max_size:
            place(symbol, pos.side, unit, reason="demo")
            return "add"
        if roll < 0.5 and pos.size > unit:
            place(symbol, other, unit, reduce_only=True, reason="demo")
            return "reduce"
        if roll < 0.7:
            place(symbol, other, pos.size, reduce_only=True, reason="demo")
            return "close"
        if roll < 0.85:
            place(symbol, other, pos.size + unit, reason="demo")
            return "flip"
        levels = [lev for lev in (Decimal(5), Decimal(10), Decimal(20)) if lev != pos.leverage]
        leverage = self.rng.choice(levels)
        self.account.set_leverage(symbol, leverage, leverage)
        return "leverage"

    async def run(self) -> None:
        while True:
            await asyncio.sleep(self.interval)
            try:
                action = self.step()
                self.actions += 1
                log.debug("demo trader: %s", action)
            except SimError as exc:
                log.debug("demo trader action refused: %s", exc.msg)
            except Exception:
                log.exception("demo trader action failed")
