"""Price engine: a seeded random walk per symbol, on the instrument's tick grid.

Prices are kept as integers in units of 10**-priceScale, so the walk is exact and
formatting is cheap; `Decimal` is what the rest of the simulator sees.  Every call
of `step()` advances all symbols once and returns, per symbol, only the ticker
fields whose string value changed (plus `symbol`): a Bybit `delta`.  A symbol with
nothing changed gets no delta; a *quiet* symbol (`set_quiet`) moves only every few
seconds, so its topic can be silent that long, as a thinly traded one is on Bybit.
"""

from __future__ import annotations

import random
import time
from decimal import Decimal

from .instruments import Instrument

FUNDING_PERIOD_MS = 8 * 3600 * 1000

SNAPSHOT_ORDER = (
    "symbol", "tickDirection", "price24hPcnt", "lastPrice", "prevPrice24h", "highPrice24h",
    "lowPrice24h", "prevPrice1h", "markPrice", "indexPrice", "openInterest",
    "openInterestValue", "turnover24h", "volume24h", "nextFundingTime", "fundingRate",
    "bid1Price", "bid1Size", "ask1Price", "ask1Size",
)


def fmt_units(units: int, scale: int) -> str:
    if scale == 0:
        return str(units)
    sign = "-" if units < 0 else ""
    whole, frac = divmod(abs(units), 10**scale)
    return f"{sign}{whole}.{frac:0{scale}d}"


class _Sym:
    """Mutable state of one symbol (integers in price or quantity units)."""

    def __init__(self, inst: Instrument, seed: int) -> None:
        self.inst = inst
        self.ps = inst.price_scale
        self.qs = inst.qty_scale
        self.tick = int(inst.tick_size.scaleb(self.ps))
        self.step_units = int(inst.qty_step.scaleb(self.qs))
        self.rng = random.Random(f"{seed}:{inst.symbol}")
        start = int(inst.start_price.scaleb(self.ps))
        start -= start % self.tick
        self.mark = self.index = self.last = self.mark0 = start
        self.prev24h = self.prev1h = self.high = self.low = start
        self.oi = self.step_units * self.rng.randint(50_000, 500_000)
        self.volume = self.step_units * self.rng.randint(100_000, 1_000_000)
        self.turnover_cents = self.volume * start * 100 // 10 ** (self.ps + self.qs)
        self.funding = self.rng.randint(-100, 100)  # units of 1e-6
        self.bid_size = self.ask_size = self.step_units
        self.last_buy = True
        self.tick_dir = "ZeroPlusTick"
        self.cs = self.rng.randint(10**10, 3 * 10**10)
        self.held = False
        self.path: list[tuple[int, int]] | None = None
        self.path_t0 = 0.0
        self.fields: dict[str, str] = {}
        self.raw: dict[str, int] = {}
        self.quiet_ms = 0  # > 0: the symbol moves only this often
        self.next_move_ms = 0

    def price(self, units: int) -> str:
        return fmt_units(units, self.ps)

    def qty(self, units: int) -> str:
        return fmt_units(units, self.qs)


class PriceEngine:
    def __init__(self, instruments: dict[str, Instrument], seed: int = 42,
                 volatility_bps: Decimal = Decimal("2")) -> None:
        self.instruments = instruments
        self.volatility = float(volatility_bps) / 10_000  # a rate, not a price
        self._s = {name: _Sym(inst, seed) for name, inst in instruments.items()}
        now = time.time_ns() // 1_000_000
        for st in self._s.values():
            self._advance(st, now, walk=False)

    # -- queries ------------------------------------------------------------------------
    @property
    def symbols(self) -> list[str]:
        return list(self._s)

    def symbols_of(self, category: str) -> list[str]:
        """The symbols of one category (linear, inverse)."""
        return [n for n, st in self._s.items() if st.inst.category == category]

    def _get(self, symbol: str) -> _Sym:
        try:
            return self._s[symbol]
        except KeyError:
            raise KeyError(f"unknown symbol {symbol}") from None

    def mark(self, symbol: str) -> Decimal:
        st = self._get(symbol)
        return Decimal(st.mark).scaleb(-st.ps)

    def last(self, symbol: str) -> Decimal:
        st = self._get(symbol)
        return Decimal(st.last).scaleb(-st.ps)

    def snapshot(self, symbol: str, now_ms: int | None = None) -> tuple[dict[str, str], int]:
        """Every ticker field as of now (a price set since the last tick included)."""
        st = self._get(symbol)
        now = time.time_ns() // 1_000_000 if now_ms is None else now_ms
        out = {"symbol": symbol, "tickDirection": st.tick_dir}
        out.update((key, fmt_units(value, scale)) for key, value, scale in self._numbers(st, now))
        return {k: out[k] for k in SNAPSHOT_ORDER}, st.cs

    def state(self, symbol: str) -> dict:
        st = self._get(symbol)
        return {
            "symbol": symbol, "markPrice": st.price(st.mark), "indexPrice": st.price(st.index),
            "lastPrice": st.price(st.last), "held": st.held, "scripted": st.path is not None,
        }

    # -- control ------------------------------------------------------------------------
    def _units(self, st: _Sym, price: Decimal | str) -> int:
        value = Decimal(str(price))
        if not value.is_finite() or value <= 0:
            raise ValueError(f"price must be positive, got {price}")
        units = int(st.inst.round_price(value).scaleb(st.ps))
        return max(units, st.tick)

    def set_price(self, symbol: str, price: Decimal | str) -> Decimal:
        """Move the mark (and index, last) to `price` and hold it there."""
        st = self._get(symbol)
        st.mark = st.index = st.last = self._units(st, price)
        st.held, st.path = True, None
        return Decimal(st.mark).scaleb(-st.ps)

    def set_path(self, symbol: str, points: list[tuple[int, Decimal | str]]) -> None:
        """Scripted prices: at `offset_ms` after now the mark becomes `price` (steps)."""
        st = self._get(symbol)
        if not points:
            raise ValueError("path: at least one (offset_ms, price) point is required")
        parsed = sorted((int(off), self._units(st, px)) for off, px in points)
        if parsed[0][0] < 0:
            raise ValueError("path: offsets must be >= 0")
        st.path, st.path_t0, st.held = parsed, time.monotonic(), True

    def set_quiet(self, symbol: str, every_ms: int) -> None:
        """Let ``symbol`` move (and send a delta) only every ``every_ms``; 0: every tick."""
        st = self._get(symbol)
        st.quiet_ms, st.next_move_ms = max(0, int(every_ms)), 0

    def release(self, symbol: str) -> None:
        """Resume the random walk from the current price."""
        st = self._get(symbol)
        st.held, st.path = False, None

    # -- the tick ---------------------------------------------------------------------
    def step(self, now_ms: int) -> list[tuple[str, dict[str, str], int]]:
        """Advance every symbol; return (symbol, delta, cs) for those that changed."""
        out = []
        for name, st in self._s.items():
            if st.quiet_ms and st.path is None:
                if now_ms < st.next_move_ms:
                    continue
                st.next_move_ms = now_ms + st.quiet_ms
            delta = self._advance(st, now_ms, walk=True)
            if len(delta) > 1:
                st.cs += 1
                out.append((name, delta, st.cs))
        return out

    def _apply_path(self, st: _Sym) -> None:
        assert st.path is not None
        elapsed = (time.monotonic() - st.path_t0) * 1000
        target = None
        for off, units in st.path:
            if off <= elapsed:
                target = units
            else:
                break
        if target is not None:
            st.mark = st.index = st.last = target
        if elapsed >= st.path[-1][0]:
            st.path = None  # stays held at the last point

    def _advance(self, st: _Sym, now_ms: int, walk: bool) -> dict[str, str]:
        rng, tick = st.rng, st.tick
        old_last = st.last
        traded = False
        if st.path is not None:
            self._apply_path(st)
        if walk and not st.held:
            sigma = st.mark / tick * self.volatility
            pull = (st.mark - st.mark0) / tick * 0.0005
            st.mark = max(tick, st.mark + round(rng.gauss(0.0, sigma) - pull) * tick)
            if rng.random() < 0.6:
                st.index = max(tick, st.mark + round(rng.gauss(0.0, 1.5)) * tick)
            if rng.random() < 0.4:
                traded = True
                st.last_buy = rng.random() < 0.5
                st.last = max(tick, st.mark + rng.choice((-1, 0, 0, 1)) * tick)
        elif st.held:
            traded = st.last != old_last
        if walk:
            if rng.random() < 0.5:  # the book's top does not change on every tick
                st.bid_size = st.step_units * rng.randint(1, 500)
                st.ask_size = st.step_units * rng.randint(1, 500)
            if rng.random() < 0.2:
                st.oi = max(st.step_units, st.oi + st.step_units * rng.randint(-50, 50))
            if rng.random() < 0.01:
                st.funding += rng.choice((-1, 1))
        if traded:
            qty = st.step_units * rng.randint(1, 200)
            st.volume += qty
            st.turnover_cents += qty * st.last * 100 // 10 ** (st.ps + st.qs)
            if st.last > old_last:
                st.tick_dir = "PlusTick"
            elif st.last < old_last:
                st.tick_dir = "MinusTick"
            else:
                up = st.tick_dir.endswith("PlusTick")
                st.tick_dir = "ZeroPlusTick" if up else "ZeroMinusTick"
        return self._publish(st, now_ms)

    @staticmethod
    def _numbers(st: _Sym, now_ms: int) -> tuple[tuple[str, int, int], ...]:
        """The current value of every numeric ticker field: (name, integer, scale)."""
        tick, ps, qs = st.tick, st.ps, st.qs
        high, low = max(st.high, st.last), min(st.low, st.last)
        bid = max(st.last - tick if st.last_buy else st.last, tick)
        pct = ((st.last - st.prev24h) * 2_000_000 + st.prev24h) // (2 * st.prev24h)
        oi_value = st.oi * st.mark * 100 // 10 ** (ps + qs)
        next_funding = (now_ms // FUNDING_PERIOD_MS + 1) * FUNDING_PERIOD_MS
        return (
            ("price24hPcnt", pct, 6), ("lastPrice", st.last, ps),
            ("prevPrice24h", st.prev24h, ps), ("highPrice24h", high, ps),
            ("lowPrice24h", low, ps), ("prevPrice1h", st.prev1h, ps),
            ("markPrice", st.mark, ps), ("indexPrice", st.index, ps),
            ("openInterest", st.oi, qs), ("openInterestValue", oi_value, 2),
            ("turnover24h", st.turnover_cents, 2), ("volume24h", st.volume, qs),
            ("nextFundingTime", next_funding, 0), ("fundingRate", st.funding, 6),
            ("bid1Price", bid, ps), ("bid1Size", st.bid_size, qs),
            ("ask1Price", bid + tick, ps), ("ask1Size", st.ask_size, qs),
        )

    def _publish(self, st: _Sym, now_ms: int) -> dict[str, str]:
        """Format only the fields whose integer value changed since the last tick."""
        st.high, st.low = max(st.high, st.last), min(st.low, st.last)
        fields, raw = st.fields, st.raw
        delta = {"symbol": st.inst.symbol}
        if "symbol" not in fields:
            fields["symbol"] = st.inst.symbol
        if fields.get("tickDirection") != st.tick_dir:
            fields["tickDirection"] = delta["tickDirection"] = st.tick_dir
        for key, value, scale in self._numbers(st, now_ms):
            if raw.get(key) != value:
                raw[key] = value
                fields[key] = delta[key] = fmt_units(value, scale)
        return delta
