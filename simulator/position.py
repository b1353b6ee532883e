"""One position (linear USDT or inverse coin-settled; one-way idx 0 or a hedge-mode side,
idx 1 buy / 2 sell) and its Bybit wire forms (WS push row, REST row).

Inverse contracts are quoted in USD contracts and settled in the base coin: value is
``size / entry``, unrealised PnL ``size * (1/entry - 1/mark)`` (long; negated short)."""

from __future__ import annotations

from dataclasses import dataclass, field
from decimal import ROUND_HALF_UP, Decimal

from .instruments import Instrument

D0 = Decimal(0)
D1 = Decimal(1)


def fmt_trim(value: Decimal, min_places: int = 0, max_places: int = 8) -> str:
    """Fixed-point text with at most `max_places` decimals, trailing zeros trimmed
    down to `min_places` (never exponent notation)."""
    q = value.quantize(D1.scaleb(-max_places), rounding=ROUND_HALF_UP)
    text = format(q, "f")
    if "." in text:
        whole, frac = text.split(".")
        frac = frac.rstrip("0")
        if len(frac) < min_places:
            frac = frac + "0" * (min_places - len(frac))
        text = f"{whole}.{frac}" if frac else whole
    elif min_places:
        text = f"{text}.{'0' * min_places}"
    if text.startswith("-") and set(text[1:]) <= {"0", "."}:
        text = text[1:]
    return text


@dataclass
class Position:
    inst: Instrument
    leverage: Decimal
    idx: int = 0
    side: str = ""  # "Buy" (long), "Sell" (short), "" (flat)
    size: Decimal = D0
    entry: Decimal = D0
    take_profit: Decimal = D0
    stop_loss: Decimal = D0
    trailing_stop: Decimal = D0
    active_price: Decimal = D0
    trail_active: bool = False
    trail_extreme: Decimal = D0
    cur_realised: Decimal = D0
    cum_realised: Decimal = D0
    created_ms: int = 0
    updated_ms: int = 0
    seq: int = -1
    tpsl_mode: str = "Full"
    extra: dict = field(default_factory=dict)

    @property
    def symbol(self) -> str:
        return self.inst.symbol

    @property
    def is_open(self) -> bool:
        return self.size > 0

    @property
    def sign(self) -> int:
        return 1 if self.side == "Buy" else -1 if self.side == "Sell" else 0

    # -- derived values -------------------------------------------------------------
    @property
    def inverse(self) -> bool:
        return self.inst.inverse

    def pnl_at(self, price: Decimal, qty: Decimal) -> Decimal:
        """PnL of closing ``qty`` of this position at ``price`` (settle coin)."""
        if self.inst.inverse:
            return qty * (D1 / self.entry - D1 / price) * self.sign
        return (price - self.entry) * qty * self.sign

    def unrealised(self, mark: Decimal) -> Decimal:
        if not self.is_open:
            return D0
        return self.pnl_at(mark, self.size)

    def value(self) -> Decimal:
        if self.inst.inverse:
            return self.size / self.entry if self.entry else D0
        return self.entry * self.size

    def initial_margin(self) -> Decimal:
        return self.value() / self.leverage if self.is_open else D0

    def maint_margin(self) -> Decimal:
        return self.value() * self.inst.mmr if self.is_open else D0

    def liq_price(self) -> Decimal | None:
        """Approximate isolated-margin liquidation price (first risk tier)."""
        if not self.is_open:
            return None
        return self._edge(self.inst.mmr)

    def _edge(self, mmr: Decimal) -> Decimal | None:
        """The price where the margin left is ``mmr`` of the value (0: bankruptcy)."""
        inst = self.inst
        room = D1 / self.leverage - mmr
        if inst.inverse:  # 1/liq = (1 +- room) / entry
            denom = D1 + room if self.side == "Buy" else D1 - room
            if denom <= 0:
                return None
            price = self.entry / denom
            price = inst.price_up(price) if self.side == "Buy" else inst.price_down(price)
        elif self.side == "Buy":
            price = inst.price_up(self.entry * (D1 - room))
        else:
            price = inst.price_down(self.entry * (D1 + room))
        return price if price > 0 else None

    def bust_price(self) -> Decimal | None:
        if not self.is_open:
            return None
        return self._edge(D0)

    def clear_tpsl(self) -> None:
        self.take_profit = self.stop_loss = self.trailing_stop = self.active_price = D0
        self.trail_active, self.trail_extreme = False, D0

    # -- wire forms -----------------------------------------------------------------
    @staticmethod
    def _px(value: Decimal) -> str:
        return fmt_trim(value)

    def _common(self, mark: Decimal) -> dict:
        inst = self.inst
        liq, bust = self.liq_price(), self.bust_price()
        ps = inst.price_scale
        return {
            "positionIdx": self.idx,
            "tradeMode": 0,
            "riskId": 1,
            "riskLimitValue": "2000000",
            "symbol": inst.symbol,
            "side": self.side,
            "size": fmt_trim(self.size),
            "entryPrice": fmt_trim(self.entry, 0, ps + 4),
            "sessionAvgPrice": "",
            "leverage": fmt_trim(self.leverage, 0, 2),
            "positionValue": fmt_trim(self.value()),
            "positionBalance": "0",
            "markPrice": fmt_trim(mark),
            "positionIM": fmt_trim(self.initial_margin()),
            "positionMM": fmt_trim(self.maint_margin()),
            "takeProfit": self._px(self.take_profit),
            "stopLoss": self._px(self.stop_loss),
            "trailingStop": self._px(self.trailing_stop),
            "unrealisedPnl": fmt_trim(self.unrealised(mark)),
            "curRealisedPnl": fmt_trim(self.cur_realised),
            "cumRealisedPnl": fmt_trim(self.cum_realised),
            "createdTime": str(self.created_ms),
            "updatedTime": str(self.updated_ms),
            "tpslMode": self.tpsl_mode,
            "liqPrice": fmt_trim(liq) if liq is not None else "",
            "bustPrice": fmt_trim(bust) if bust is not None else "",
            "category": inst.category,
            "positionStatus": "Normal",
            "adlRankIndicator": 2 if self.is_open else 0,
            "autoAddMargin": 0,
            "leverageSysUpdatedTime": "",
            "mmrSysUpdatedTime": "",
            "seq": self.seq,
            "isReduceOnly": False,
        }

    def ws_row(self, mark: Decimal) -> dict:
        """The element of a private `position` push's data list."""
        return self._common(mark)

    def rest_row(self, mark: Decimal) -> dict:
        """A row of GET /v5/position/list (entry price is `avgPrice` there)."""
        row = self._common(mark)
        row["avgPrice"] = row.pop("entryPrice")
        row.pop("category")
        return row

    def summary(self) -> dict:
        """Compact form for the control API and the transition log."""
        inst = self.inst
        return {
            "symbol": inst.symbol,
            "positionIdx": self.idx,
            "side": self.side,
            "size": fmt_trim(self.size),
            "entryPrice": fmt_trim(self.entry, 0, inst.price_scale + 4),
            "leverage": fmt_trim(self.leverage, 0, 2),
            "takeProfit": self._px(self.take_profit),
            "stopLoss": self._px(self.stop_loss),
            "trailingStop": self._px(self.trailing_stop),
            "activePrice": self._px(self.active_price),
            "seq": self.seq,
            "updatedTime": self.updated_ms,
        }
