"""Rich renderables of the monitor's views — shared by the live terminal view and
``feedctl status``. They take the JSON-ready dicts of :mod:`.views`, so a remote
instance's API answers render exactly like a local session."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from rich.console import Console, ConsoleOptions, Group, RenderableType, RenderResult
from rich.table import Table
from rich.text import Text

from ..models import now_ns
from ..validator import describe_report
from . import amounts
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


def header(status: dict[str, Any], *, source: str = "", every_account: bool = False) -> Text:
    """``every_account``: a session of many shown whole: its account count, not the first
    account's delivering feed."""
    router = status.get("router") or {}
    text = Text.assemble(("feedctl ", "bold"), f"profile={status.get('profile')} ",
                         f"mode={status.get('mode')} ")
    if every_account:
        text.append(f"accounts={len(status.get('accounts') or [])}", style="bold")
    else:
        if len(status.get("accounts") or []) > 1:
            text.append(f"account={status.get('account')} ")
        text.append("active=")
        text.append(str(router.get("active", "-")), style="bold")
    if source:
        text.append(f"  {source}", style="dim")
    return text


def positions_table(positions: Iterable[dict[str, Any]], at_ns: int | None = None, *,
                    unknown: str | None = None, instruments: dict[str, Any] | None = None,
                    compact: bool = False, accounts: bool = False,
                    limit: int | None = None, title: str = "Positions") -> Table:
    """The positions consumers hold: amounts to the instrument's tick and step, PnL in
    its settle coin with a total per coin, leverage and liquidation price. ``compact``
    (under 100 columns) keeps symbol, side, size, mark, uPnL and price age. ``unknown``
    (why they are not known complete: the delivering feed never synced) is shown instead
    of "no open positions". ``accounts``: an Account column (every account of a session of
    many); ``limit``: at most this many rows, then a line saying how many more."""
    now = at_ns or now_ns()
    t = Table(title=title, title_justify="left", expand=False,
              pad_edge=not compact, padding=(0, 1))
    cols: list[tuple[str, str]] = [("Account", "left")] if accounts else []
    cols += [("Symbol", "left"), ("Side", "left"), ("Size", "right")]
    if not compact:
        cols.append(("Entry", "right"))
    cols += [("Mark", "right"), ("uPnL", "right")]
    if not compact:
        cols += [("Lev", "right"), ("Liq", "right")]
    cols.append(("Age" if compact else "Price age", "right"))
    if not compact:
        cols.append(("Feed", "left"))
    for col, justify in cols:
        t.add_column(col, justify=justify, no_wrap=True)  # type: ignore[arg-type]
    rows = sorted(positions, key=lambda p: (str(p.get("account", "")) if accounts else "",
                                            p["symbol"], p.get("position_idx", 0)))
    shown = rows if limit is None else rows[:limit]
    for p in shown:
        inst = amounts.instrument(instruments, p)
        tick, step, coin = inst.get("tick_size"), inst.get("qty_step"), inst.get("settle_coin")
        at = p.get("mark_received_ns") or p.get("received_ns")
        age = (now - at) / 1e9 if at else None
        pnl = p.get("unrealised_pnl")
        pnl_style = "" if pnl is None else ("red" if str(pnl).startswith("-") else "green")
        side = p["side"]
        cells: list[Any] = [str(p.get("account", ""))] if accounts else []
        cells += [p["symbol"], Text(side, style="green" if side == "long" else "red"),
                  amounts.on_step(p["size"], step)]
        if not compact:
            cells.append(amounts.on_step(p["entry_price"], tick))
        cells += [amounts.on_step(p.get("mark_price"), tick),
                  Text(amounts.pnl(pnl, coin), style=pnl_style)]
        if not compact:
            lev = p.get("leverage")
            cells += [f"{amounts.on_step(lev, None)}x" if lev is not None else "-",
                      amounts.on_step(p.get("liq_price"), tick)]
        cells.append(Text(seconds(age), style="yellow" if age is not None and age > 2 else ""))
        if not compact:
            cells.append(str(p.get("feed", "")))
        t.add_row(*cells)
    if len(shown) < len(rows):
        t.add_row(Text(f"... {len(rows) - len(shown)} more (feedctl status --account NAME, "
                       "/api/positions)", style="dim"), *[""] * (len(cols) - 1))
    for coin, total in sorted(amounts.totals(rows, instruments).items()):
        cells = ([""] if accounts else []) + ["total", "", ""] + (
            [""] if not compact else []) + ["", Text(amounts.pnl(total, coin), style="bold")]
        cells += [""] * (len(cols) - len(cells))
        t.add_row(*cells, style="bold")
    if unknown is not None:  # the reason is the line above the table (dashboard)
        if not rows:
            t.add_row(Text("unknown", style="bold yellow"), *[""] * (len(cols) - 1))
    elif not rows:
        t.add_row(Text("no open positions", style="dim"), *[""] * (len(cols) - 1))
    return t


def feeds_table(rows: Iterable[dict[str, Any]], *, compact: bool = False,
                limit: int | None = None, title: str = "Feeds") -> Table:
    """Every feed's state; ``compact`` (under 100 columns) keeps feed, role, state,
    reconnects and the detail. Rows naming their account (a session of many) get an
    Account column and come unhealthy first; ``limit``: at most this many, then a line
    saying how many more (healthy)."""
    items = list(rows)
    accounts = any("account" in r for r in items)
    if accounts:
        items.sort(key=lambda r: (r.get("state") == "healthy", str(r.get("account")),
                                  str(r.get("feed"))))
    t = Table(title=title, title_justify="left", pad_edge=not compact, padding=(0, 1))
    cols = [("Account", "left")] if accounts else []
    cols += [("Feed", "left"), ("Role", "left"), ("State", "left")]
    if not compact:
        cols += [("msg/s", "right"), ("Messages", "right"), ("p50 ms", "right"),
                 ("p99 ms", "right")]
    cols += [("Reconn" if compact else "Reconnects", "right"), ("Detail", "left")]
    for col, justify in cols:
        t.add_column(col, justify=justify,  # type: ignore[arg-type]
                     no_wrap=col != "Detail", overflow="ellipsis")
    shown = items if limit is None else items[:limit]
    for r in shown:
        name = Text(r["feed"] + (" *" if r.get("active") else ""),
                    style="bold" if r.get("active") else "")
        state = str(r.get("state"))
        rate = r.get("rate")
        detail = r.get("detail") or ""
        if r.get("stale_symbols"):
            detail = (detail + " stale: " + ",".join(r["stale_symbols"])).strip()
        cells: list[Any] = [str(r.get("account", ""))] if accounts else []
        cells += [name, str(r.get("role")), Text(state, style=_STATE_STYLE.get(state, ""))]
        if not compact:
            cells += ["-" if rate is None else f"{rate:.1f}", str(r.get("messages", 0)),
                      millis(r.get("latency_ms_p50")), millis(r.get("latency_ms_p99"))]
        cells += [str(r.get("reconnects", 0)), Text(detail, overflow="ellipsis")]
        t.add_row(*cells)
    if len(shown) < len(items):
        rest = items[len(shown):]
        ok = sum(1 for r in rest if r.get("state") == "healthy")
        t.add_row(Text(f"... {len(rest)} more ({ok} healthy)", style="dim"),
                  *[""] * (len(cols) - 1))
    return t


def accounts_table(rows: Iterable[dict[str, Any]], at_ns: int | None = None, *,
                   limit: int = 40) -> Table:
    """One row per account (a session of many): its delivering feed's state, positions,
    sync; failed accounts first, then the others by name, at most ``limit`` rows."""
    now = at_ns or now_ns()
    items = sorted(rows, key=lambda r: (not r.get("failed"), r.get("state") == "healthy",
                                        str(r.get("account"))))
    failed = sum(1 for r in items if r.get("failed"))
    healthy = sum(1 for r in items if r.get("state") == "healthy")
    t = Table(title=f"Accounts: {len(items)} ({healthy} healthy, {failed} failed)",
              title_justify="left", padding=(0, 1))
    for col, justify in (("Account", "left"), ("Exchange", "left"), ("Feed", "left"),
                         ("State", "left"), ("Positions", "right"), ("Synced", "right"),
                         ("Stale", "right"), ("Detail", "left")):
        t.add_column(col, justify=justify,  # type: ignore[arg-type]
                     no_wrap=col != "Detail", overflow="ellipsis")
    for r in items[:limit]:
        state = str(r.get("state"))
        synced = r.get("synced_ns")
        n = r.get("positions")
        t.add_row(str(r.get("account")), str(r.get("exchange") or ""), str(r.get("active")),
                  Text(state, style=_STATE_STYLE.get(state, "")),
                  Text("unknown", style="yellow") if n is None else str(n),
                  "-" if synced is None else seconds((now - synced) / 1e9) + " ago",
                  str(r.get("stale_symbols", 0)),
                  Text(str(r.get("detail") or ""), overflow="ellipsis"))
    if len(items) > limit:
        t.add_row(Text(f"... {len(items) - limit} more (healthy)", style="dim"),
                  *[""] * 7)
    return t


def validation_text(validation: Any) -> Text:
    if validation is None:
        return Text("Validation: no shadow feed is validated", style="dim")
    reports = {k: v for k, v in validation.items()
               if isinstance(v, dict) and "agreeing" in v} if isinstance(validation, dict) else {}
    pairs = dict(agreement(validation))
    if not pairs and not reports:
        return Text(f"Validation: {validation}")
    text = Text("Validation: ")
    for shadow, report in reports.items():  # a full report: every figure, one line each
        ratio = pairs.get(shadow)
        style = ("yellow" if ratio is None  # nothing compared yet (all pending)
                 else "green" if ratio >= 0.99 else "yellow" if ratio >= 0.9 else "red")
        head, _, rest = describe_report(report).partition(" · ")
        text.append("\n  " if len(reports) > 1 else "")
        text.append(head, style=style)
        text.append(" · " + rest)
    for shadow, ratio in pairs.items():
        if shadow in reports:
            continue
        style = "green" if ratio >= 0.99 else ("yellow" if ratio >= 0.9 else "red")
        text.append(f"{shadow or 'shadow'} agrees ")
        text.append(f"{ratio:.1%}", style=style)
        text.append("  ")
    return text


def events_table(events: Iterable[dict[str, Any]], at_ns: int | None = None) -> Group:
    now = at_ns or now_ns()
    t = Table(show_header=False, pad_edge=False, box=None)
    t.add_column("ago", justify="right", style="dim")
    t.add_column("event", no_wrap=True, overflow="ellipsis")
    items = list(events)
    for e in items:
        ago = (now - e["at_ns"]) / 1e9 if e.get("at_ns") else None
        t.add_row(seconds(ago) + " ago", e.get("text", ""))
    if not items:
        t.add_row("", Text("none yet", style="dim"))
    return Group(Text("Failover and trailing-stop events", style="italic"), t)


#: Rows of the positions and feeds tables of every account (a session of many) in the
#: terminal views; the rest are counted on one line.
MANY_ROWS = 30


def dashboard(status: dict[str, Any], positions: list[dict[str, Any]],
              rows: list[dict[str, Any]], notable: list[dict[str, Any]],
              *, source: str = "", instruments: dict[str, Any] | None = None,
              account: str | None = None, unknown: str | None = None,
              every_account: bool = False) -> RenderableType:
    """The whole view; under 100 columns it drops to the compact tables.

    A session of many accounts: the accounts summary table, then the positions and
    feeds of every account (``every_account``: ``positions`` and ``rows`` name their
    account; ``unknown`` says which accounts' positions are not known complete), or of
    ``account`` (the filter) in full."""
    return _Dashboard(status, positions, rows, notable, source, instruments, account,
                      unknown, every_account)


class _Dashboard:
    def __init__(self, status: dict[str, Any], positions: list[dict[str, Any]],
                 rows: list[dict[str, Any]], notable: list[dict[str, Any]], source: str,
                 instruments: dict[str, Any] | None, account: str | None,
                 unknown: str | None, every_account: bool) -> None:
        self.status, self.positions, self.rows = status, positions, rows
        self.notable, self.source, self.instruments = notable, source, instruments
        self.account, self.unknown, self.every = account, unknown, every_account

    def __rich_console__(self, console: Console, options: ConsoleOptions) -> RenderResult:
        now = now_ns()
        compact = options.max_width < 100
        accounts = self.status.get("accounts") or []
        many = len(accounts) > 1 and self.every and self.account is None
        unknown = self.unknown if many else unknown_reason(
            (self.status.get("router") or {}).get("active"), self.status.get("feeds") or {})
        yield header(self.status, source=self.source, every_account=many)
        if len(accounts) > 1:  # many accounts: one row each, not one per account per symbol
            yield accounts_table(accounts, now)
        if unknown is not None:
            yield Text(f"positions unknown: {unknown}", style="bold yellow")
        whose = "" if len(accounts) <= 1 else (
            " of every account" if many else f" of {self.status.get('account')}")
        yield positions_table(self.positions, now, unknown=unknown,
                              instruments=self.instruments, compact=compact, accounts=many,
                              limit=MANY_ROWS if many else None, title="Positions" + whose)
        yield feeds_table(self.rows, compact=compact, limit=MANY_ROWS if many else None,
                          title="Feeds" + whose)
        if not many:
            yield validation_text(self.status.get("validation"))
        yield events_table(self.notable, now)
