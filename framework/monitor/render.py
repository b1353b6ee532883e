"""Rich renderables of the monitor's views — shared by the live terminal view and
``feedctl status``. They take the JSON-ready dicts of :mod:`.views`, so a remote
instance's API answers render exactly like a local session."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from rich.console import Group, RenderableType
from rich.table import Table
from rich.text import Text

from ..models import now_ns
from .views import agreement, unknown_reason

_STATE_STYLE = {"healthy": "green", "degraded": "yellow", "failed": "bold red",
                "reconnecting": "yellow", "resyncing": "cyan", "connecting": "cyan",
                "starting": "dim", "stopped": "dim"}


def seconds(value: float | None) -> str:
    if value is None:
        return "-"
    if value < 10:
        return f"{value:.1f}s"
    if value < 3600:
        return f"{value / 60:.0f}m" if value >= 60 else f"{value:.0f}s"
    return f"{value / 3600:.1f}h"


def millis(value: float | None) -> str:
    return "-" if value is None else f"{value:.1f}"


def header(status: dict[str, Any], *, source: str = "") -> Text:
    router = status.get("router") or {}
    text = Text.assemble(("feedctl ", "bold"), f"profile={status.get('profile')} ",
                         f"mode={status.get('mode')} ",
                         ("active=", ""), (str(router.get("active", "-")), "bold"))
    if source:
        text.append(f"  {source}", style="dim")
    return text


def positions_table(positions: Iterable[dict[str, Any]], at_ns: int | None = None, *,
                    unknown: str | None = None) -> Table:
    """The positions consumers hold. ``unknown`` (why they are not known complete: the
    delivering feed never synced) is shown instead of "no open positions"."""
    now = at_ns or now_ns()
    t = Table(title="Positions", title_justify="left", expand=False)
    for col, justify in (("Symbol", "left"), ("Side", "left"), ("Size", "right"),
                         ("Entry", "right"), ("Mark", "right"), ("uPnL", "right"),
                         ("Price age", "right"), ("Feed", "left")):
        t.add_column(col, justify=justify)  # type: ignore[arg-type]
    rows = sorted(positions, key=lambda p: (p["symbol"], p.get("position_idx", 0)))
    for p in rows:
        at = p.get("mark_received_ns") or p.get("received_ns")
        age = (now - at) / 1e9 if at else None
        pnl = p.get("unrealised_pnl")
        pnl_style = "" if pnl is None else ("red" if str(pnl).startswith("-") else "green")
        side = p["side"]
        t.add_row(p["symbol"], Text(side, style="green" if side == "long" else "red"),
                  str(p["size"]), str(p["entry_price"]), str(p.get("mark_price") or "-"),
                  Text("-" if pnl is None else str(pnl), style=pnl_style),
                  Text(seconds(age), style="yellow" if age is not None and age > 2 else ""),
                  str(p.get("feed", "")))
    if unknown is not None:
        text = Text(f"positions unknown: {unknown}", style="bold yellow")
        if rows:
            t.caption = text
        else:
            t.add_row(text, *[""] * 7)
    elif not rows:
        t.add_row(Text("no open positions", style="dim"), *[""] * 7)
    return t


def feeds_table(rows: Iterable[dict[str, Any]]) -> Table:
    t = Table(title="Feeds", title_justify="left")
    for col, justify in (("Feed", "left"), ("Role", "left"), ("State", "left"),
                         ("msg/s", "right"), ("Messages", "right"), ("p50 ms", "right"),
                         ("p99 ms", "right"), ("Reconnects", "right"), ("Detail", "left")):
        t.add_column(col, justify=justify)  # type: ignore[arg-type]
    for r in rows:
        name = Text(r["feed"] + (" *" if r.get("active") else ""),
                    style="bold" if r.get("active") else "")
        state = str(r.get("state"))
        rate = r.get("rate")
        detail = r.get("detail") or ""
        if r.get("stale_symbols"):
            detail = (detail + " stale: " + ",".join(r["stale_symbols"])).strip()
        t.add_row(name, str(r.get("role")), Text(state, style=_STATE_STYLE.get(state, "")),
                  "-" if rate is None else f"{rate:.1f}", str(r.get("messages", 0)),
                  millis(r.get("latency_ms_p50")), millis(r.get("latency_ms_p99")),
                  str(r.get("reconnects", 0)), Text(detail, overflow="ellipsis"))
    return t


def validation_text(validation: Any) -> Text:
    if validation is None:
        return Text("Validation: no shadow feed is validated", style="dim")
    pairs = agreement(validation)
    if not pairs:
        return Text(f"Validation: {validation}")
    text = Text("Validation: ")
    for shadow, ratio in pairs:
        style = "green" if ratio >= 0.99 else ("yellow" if ratio >= 0.9 else "red")
        text.append(f"{shadow or 'shadow'} agrees ")
        text.append(f"{ratio:.1%}", style=style)
        text.append("  ")
    return text


def events_table(events: Iterable[dict[str, Any]], at_ns: int | None = None) -> Group:
    now = at_ns or now_ns()
    t = Table(show_header=False, pad_edge=False, box=None)
    t.add_column("ago", justify="right", style="dim")
    t.add_column("event")
    items = list(events)
    for e in items:
        ago = (now - e["at_ns"]) / 1e9 if e.get("at_ns") else None
        t.add_row(seconds(ago) + " ago", e.get("text", ""))
    if not items:
        t.add_row("", Text("none yet", style="dim"))
    return Group(Text("Failover and trailing-stop events", style="italic"), t)


def dashboard(status: dict[str, Any], positions: list[dict[str, Any]],
              rows: list[dict[str, Any]], notable: list[dict[str, Any]],
              *, source: str = "") -> RenderableType:
    now = now_ns()
    unknown = unknown_reason((status.get("router") or {}).get("active"),
                             status.get("feeds") or {})
    return Group(header(status, source=source),
                 positions_table(positions, now, unknown=unknown),
                 feeds_table(rows), validation_text(status.get("validation")),
                 events_table(notable, now))
