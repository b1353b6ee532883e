"""Rendering routed events for ``feedctl run``: JSON lines or a plain text log."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import IO, Any

from pydantic import BaseModel

from .models import EventKind, Position, PositionEvent, RouteEvent, StatusEvent
from .validator import ValidationReport, describe_report


def jsonl(event: BaseModel) -> str:
    """The documented JSON form of an event (docs/events.md): one line, no spaces."""
    return event.model_dump_json()


class TextPrinter:
    """Human-readable lines; ``price`` events at most once per ``price_every`` s per position.

    With ``instruments`` (``{"linear:BTCUSDT": {"tick_size", "qty_step", "settle_coin"}}``,
    asked for each line: what the session's feeds know), prices show the instrument's
    tick, sizes its step and PnL its settle coin, whichever feed sent them, as the live
    view does; without, or for an instrument no feed described yet, values as sent."""

    def __init__(self, out: IO[str], price_every: float = 1.0,
                 instruments: Callable[[], dict[str, Any]] | None = None) -> None:
        self.out = out
        self.price_every = price_every
        self.instruments = instruments
        self._last_price: dict[Any, float] = {}

    def __call__(self, event: Any) -> None:
        line = self.render(event)
        if line is not None:
            self.out.write(line + "\n")
            self.out.flush()

    def render(self, event: Any) -> str | None:
        now = time.strftime("%H:%M:%S")
        if isinstance(event, PositionEvent):
            p = event.position
            key = (event.feed, p.key)
            if event.past:
                pass  # history: the key's current price throttle is untouched
            elif event.kind is EventKind.PRICE:
                t = time.monotonic()
                if t - self._last_price.get(key, 0.0) < self.price_every:
                    return None
                self._last_price[key] = t
            elif event.kind is EventKind.CLOSED:
                self._last_price.pop(key, None)
            size, entry, mark, pnl = self._amounts(p)
            extra = f" changes={','.join(event.changes)}" if event.changes else ""
            synth = " (synthetic)" if event.synthetic else ""
            if event.past:
                synth += " (past: recovered lifecycle)"
            elif event.recovered:
                synth += " (recovered)"
            return (f"{now} {event.kind.value:<7} {p.symbol:<12} {p.side.value:<5} size={size} "
                    f"entry={entry} mark={mark} upnl={pnl} "
                    f"feed={event.feed}{extra}{synth}")
        if isinstance(event, StatusEvent):
            st = event.status
            prev = event.previous.value if event.previous else "-"
            why = f" reason={event.reason}" if event.reason else ""
            detail = f" ({st.detail})" if st.detail else ""
            return f"{now} status  {event.feed}: {prev} -> {st.state.value}{why}{detail}"
        if isinstance(event, RouteEvent):
            return f"{now} route   {event.previous} -> {event.active}: {event.reason}"
        if isinstance(event, ValidationReport):
            return f"{now} valid.  {describe_report(event.model_dump(mode='json'))}"
        if isinstance(event, BaseModel):
            return f"{now} {getattr(event, 'type', 'event'):<7} {event.model_dump_json()}"
        return None

    def _amounts(self, p: Position) -> tuple[str, str, str, str]:
        """(size, entry, mark, uPnL) as the line shows them."""
        inst = (self.instruments() if self.instruments is not None else {}).get(
            f"{p.category.value}:{p.symbol}") or {}
        if not inst:
            pnl = "-" if p.unrealised_pnl is None else f"{p.unrealised_pnl:.4f}"
            return str(p.size), str(p.entry_price), str(p.mark_price), pnl
        from .monitor import amounts  # pure functions; the monitor's server is not loaded

        tick = inst.get("tick_size")
        return (amounts.on_step(p.size, inst.get("qty_step")),
                amounts.on_step(p.entry_price, tick), amounts.on_step(p.mark_price, tick),
                amounts.pnl(p.unrealised_pnl, inst.get("settle_coin")))
