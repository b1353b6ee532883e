"""Read-only views of a running session, in JSON-ready form.

Everything the monitor shows — the HTTP API, the dashboard's event stream, the
terminal view and ``feedctl status`` — is built from these plain dicts, so one shape
is documented (docs/monitor.md) and the renderers work the same on a live session
and on a remote instance's JSON.
"""

from __future__ import annotations

import json
import time
from typing import TYPE_CHECKING, Any

from pydantic import BaseModel

from ..logs import redact
from ..models import Position, PositionEvent, RouteEvent, StatusEvent, now_ns

if TYPE_CHECKING:
    from ..session import Session

#: Keys of a validation summary (or of one shadow's part of it) holding the
#: agreement ratio in [0, 1], in order of preference.
AGREEMENT_KEYS: tuple[str, ...] = ("agreement_ratio", "agreement")


def dumps(obj: Any) -> str:
    """Compact JSON, with every registered secret redacted (the last line of defence)."""
    return redact(json.dumps(obj, separators=(",", ":"), default=str, ensure_ascii=False))


def position_json(pos: Position) -> dict[str, Any]:
    return pos.model_dump(mode="json")


def positions_payload(session: Session, account: str | None = None) -> dict[str, Any]:
    """What consumers were told (``delivered``) and what each feed's book holds, for the
    whole session (every account, when it has many) or ``account``.

    ``known`` is false while the delivering feed has never synced (no complete snapshot
    of the account yet): ``delivered`` is then *unknown*, not "no open positions", and
    ``unknown_reason`` says why (the feed's state and detail). Every account of a
    session of many (``account`` None): ``delivered`` holds all their positions (each
    names its account), ``unknown`` maps each account not known complete to its reason,
    and ``books`` is keyed ``<account>/<feed>``."""
    if account is None and session.multi:
        return _every_account_positions(session)
    art = session.primary_account if account is None else session.accounts[account]
    router = art.router
    delivered = [position_json(p) for p in router.delivered.values()] if router else []
    active = router.active if router else None
    feeds = {name: rt.ctx.status for name, rt in art.feeds.items()}
    return {
        "account": art.name,
        "active": active,
        "delivered": delivered,
        "known": unknown_reason(active, feeds) is None,
        "unknown_reason": unknown_reason(active, feeds),
        "synced_ns": {name: st.synced_ns for name, st in feeds.items()},
        "instruments": instruments_payload(session, art.name),
        "books": {name: [position_json(p) for p in rt.book.positions.values()]
                  for name, rt in art.feeds.items()},
        "now_ns": now_ns(),
    }


def _every_account_positions(session: Session) -> dict[str, Any]:
    delivered: list[dict[str, Any]] = []
    books: dict[str, list[dict[str, Any]]] = {}
    synced: dict[str, int | None] = {}
    unknown = accounts_unknown(session)
    for name, art in session.accounts.items():
        router = art.router
        if router is not None:
            delivered += [position_json(p) for p in router.delivered.values()]
        for n, rt in art.feeds.items():
            books[f"{name}/{n}"] = [position_json(p) for p in rt.book.positions.values()]
            synced[f"{name}/{n}"] = rt.ctx.status.synced_ns
    return {
        "account": None,
        "accounts": list(session.accounts),
        "delivered": delivered,
        "known": not unknown,
        "unknown_reason": unknown_summary(unknown),
        "unknown": unknown,
        "synced_ns": synced,
        "instruments": instruments_payload(session),
        "books": books,
        "now_ns": now_ns(),
    }


def accounts_unknown(session: Session) -> dict[str, str]:
    """Accounts whose positions are not known complete (failed, or their delivering feed
    never synced), each with why."""
    out: dict[str, str] = {}
    for name, art in session.accounts.items():
        router = art.router
        why = (f"failed: {art.failure}" if art.failure is not None else unknown_reason(
            router.active if router else None, {n: rt.ctx.status for n, rt in art.feeds.items()}))
        if why is not None:
            out[name] = why
    return out


def unknown_summary(unknown: dict[str, str], show: int = 3) -> str | None:
    """One line for the accounts whose positions are not known complete."""
    if not unknown:
        return None
    names = sorted(unknown)
    head = "; ".join(f"{n}: {unknown[n]}" for n in names[:show])
    more = f"; and {len(names) - show} more" if len(names) > show else ""
    return f"{len(names)} account{'s' if len(names) > 1 else ''} not known complete " \
           f"({head}{more})"


def account_feed_rows(session: Session, account: str | None = None,
                      rates: RateTracker | None = None) -> list[dict[str, Any]]:
    """The feeds tables' rows of every account (or ``account``'s), each naming its
    account; built from the feeds' statuses (no ``details()``: cheap every second for
    hundreds of accounts). ``rates``: messages per second, keyed ``<account>/<feed>``."""
    statuses: dict[str, dict[str, Any]] = {}
    rows: list[dict[str, Any]] = []
    for name, art in session.accounts.items():
        # every account's counters go to ``rates`` (one tracker serves every filter)
        if account is not None and name != account and rates is None:
            continue
        router = art.router
        feeds = {n: {"role": rt.plan.role.value, **rt.ctx.status.model_dump(mode="json")}
                 for n, rt in art.feeds.items()}
        statuses.update({f"{name}/{n}": f for n, f in feeds.items()})
        if account is not None and name != account:
            continue
        for row in feed_rows({"feeds": feeds, "router": router.snapshot() if router else None}):
            rows.append({"account": name, **row})
    if rates is not None:
        per = rates.update(statuses)
        for row in rows:
            row["rate"] = round(per.get(f"{row['account']}/{row['feed']}", 0.0), 1)
    return rows


def readiness(status: dict[str, Any]) -> dict[str, Any]:
    """``/readyz``: ready while the delivering feed is healthy and has synced."""
    active = (status.get("router") or {}).get("active")
    feeds = status.get("feeds") or {}
    reason = unknown_reason(active, feeds)
    feed = feeds.get(active) or {}
    if reason is None and feed.get("state") not in ("healthy",):
        detail = feed.get("detail") or ""
        reason = f"{active} is {feed.get('state')}{': ' + detail if detail else ''}"
    return {"ready": reason is None, "active": active, "reason": reason,
            "state": feed.get("state"), "synced_ns": feed.get("synced_ns"), "now_ns": now_ns()}


def accounts_payload(session: Session, account: str | None = None) -> dict[str, Any]:
    """``/api/accounts``: one summary row per account (or ``account``'s only), and the
    names of the failed ones."""
    every = session.account_rows()
    rows = every if account is None else [r for r in every if r["account"] == account]
    return {"accounts": rows, "count": len(every),
            "failed": sorted(r["account"] for r in every if r["failed"]),
            "synced": sum(1 for r in every if r["synced_ns"] is not None),
            "now_ns": now_ns()}


def instruments_payload(session: Session, account: str | None = None
                        ) -> dict[str, dict[str, Any]]:
    """``{"linear:BTCUSDT": {"tick_size", "qty_step", "settle_coin"}}`` from every feed
    (of every account, or ``account``'s) that knows them (the delivering feed's win)."""
    out: dict[str, dict[str, Any]] = {}
    arts = list(session.accounts.values()) if account is None else [session.accounts[account]]
    for art in arts:
        router = art.router
        order = sorted(art.feeds.values(),
                       key=lambda rt: router is not None and rt.name == router.active)
        for rt in order:
            for (category, symbol), inst in rt.ctx.instruments.items():
                key = f"{category.value}:{symbol}"
                if key in out and art is not arts[0]:
                    continue  # an instrument is the exchange's: the first account's is it
                out[key] = inst.model_dump(
                    mode="json", include={"tick_size", "qty_step", "settle_coin"})
    return out


def unknown_reason(active: str | None, feeds: dict[str, Any]) -> str | None:
    """Why the positions consumers hold are not known to be complete, or None.

    ``feeds`` maps feed names to a FeedStatus or its JSON form (a remote instance's
    ``/api/status`` ``feeds``)."""
    if active is None:
        return "no feed delivers positions"
    st = feeds.get(active)
    if st is None:
        return f"the delivering feed {active!r} is not running"
    get = (lambda k: st.get(k)) if isinstance(st, dict) else (lambda k: getattr(st, k, None))
    if get("synced_ns") is not None:
        return None
    state = get("state")
    state = getattr(state, "value", state)
    detail = get("detail") or ""
    return f"not synced yet ({active}: {state}{': ' + detail if detail else ''})"


def subscriptions_payload(status: dict[str, Any]) -> dict[str, Any]:
    """Each feed's ``details()`` (subscriptions, connections...), by feed name."""
    return {name: f.get("details", {}) for name, f in status.get("feeds", {}).items()}


def messages_total(feed: dict[str, Any]) -> int:
    """Messages a feed received: its own ``messages`` counter when it keeps one, else
    what its book was handed (lifecycle updates + mark prices)."""
    counters = feed.get("counters") or {}
    if "messages" in counters:
        return int(counters["messages"])
    return int(counters.get("updates", 0)) + int(counters.get("marks", 0))


class RateTracker:
    """Messages per second per feed, from successive readings of the counters."""

    def __init__(self, window: float = 5.0) -> None:
        self.window = window
        self._samples: dict[str, list[tuple[float, int]]] = {}

    def update(self, feeds: dict[str, dict[str, Any]], at: float | None = None) -> dict[str, float]:
        t = time.monotonic() if at is None else at
        rates: dict[str, float] = {}
        for name, feed in feeds.items():
            samples = self._samples.setdefault(name, [])
            samples.append((t, messages_total(feed)))
            while len(samples) > 2 and t - samples[1][0] >= self.window:
                samples.pop(0)
            (t0, n0), (t1, n1) = samples[0], samples[-1]
            rates[name] = (n1 - n0) / (t1 - t0) if t1 > t0 else 0.0
        for gone in set(self._samples) - set(feeds):
            del self._samples[gone]
        return rates


def feed_rows(status: dict[str, Any],
              rates: dict[str, float] | None = None) -> list[dict[str, Any]]:
    """One flat row per feed: the columns of the feeds tables."""
    router = status.get("router") or {}
    rows = []
    for name, f in status.get("feeds", {}).items():
        rows.append({
            "feed": name,
            "kind": f.get("kind"),
            "role": f.get("role"),
            "state": f.get("state"),
            "detail": f.get("detail", ""),
            "active": router.get("active") == name,
            "messages": messages_total(f),
            "rate": None if rates is None else round(rates.get(name, 0.0), 1),
            "latency_ms_p50": f.get("latency_ms_p50"),
            "latency_ms_p99": f.get("latency_ms_p99"),
            "reconnects": f.get("reconnects", 0),
            "resyncs": f.get("resyncs", 0),
            "last_message_ns": f.get("last_message_ns"),
            "stale_symbols": list(f.get("stale_symbols") or ()),
        })
    return rows


def agreement(validation: Any) -> list[tuple[str, float]]:
    """``(shadow, ratio)`` pairs from a validation summary of any of these shapes:
    ``{"agreement_ratio": r, "shadow": name}``, ``{shadow: {"agreement_ratio": r}}`` or
    ``{"shadows": {shadow: {...}}}`` (``agreement`` is accepted for ``agreement_ratio``)."""
    if not isinstance(validation, dict):
        return []
    own = _ratio(validation)
    if own is not None:
        return [(str(validation.get("shadow", "")), own)]
    inner = validation.get("shadows", validation)
    out = []
    for name, part in (inner.items() if isinstance(inner, dict) else ()):
        ratio = _ratio(part) if isinstance(part, dict) else None
        if ratio is not None:
            out.append((str(name), ratio))
    return out


def _ratio(d: dict[str, Any]) -> float | None:
    for key in AGREEMENT_KEYS:
        v = d.get(key)
        if isinstance(v, int | float) and not isinstance(v, bool):
            return float(v)
    return None


# ------------------------------------------------------------------ events


def is_notable(event: Any) -> bool:
    """Failovers/failbacks and trailing-stop signals: what the event panels list."""
    return isinstance(event, RouteEvent) or (
        isinstance(event, BaseModel) and getattr(event, "type", None) == "trailing_stop")


def describe(event: Any) -> str:
    """One human line for a notable (or status) event."""
    if isinstance(event, RouteEvent):
        return f"route {event.previous} -> {event.active}: {event.reason}"
    if isinstance(event, StatusEvent):
        why = f" ({event.reason})" if event.reason else ""
        prev = event.previous.value if event.previous else "-"
        return f"{event.feed}: {prev} -> {event.status.state.value}{why}"
    if isinstance(event, BaseModel):
        data = event.model_dump(mode="json")
        kind = data.pop("type", "event")
        if kind == "trailing_stop" and "stop_price" in data:
            return _trailing_stop(data)
        fields = " ".join(f"{k}={v}" for k, v in data.items()
                          if v is not None and not k.endswith("_ns"))
        return f"{kind} {fields}".strip()
    return str(event)


def _trailing_stop(d: dict[str, Any]) -> str:
    """``trailing stop activated BTCUSDT long: stop 64350 (mark 64700, best 65000)``."""
    head = " ".join(str(d[k]) for k in ("action", "symbol", "side") if d.get(k) is not None)
    prices = ", ".join(f"{k.split('_')[0]} {d[k]}" for k in ("mark_price", "best_price")
                       if d.get(k) is not None)
    text = f"trailing stop {head}: stop {d['stop_price']}" + (f" ({prices})" if prices else "")
    return text + (" [dry run]" if d.get("dry_run") else "")


def event_json(event: Any) -> tuple[str, dict[str, Any]] | None:
    """The SSE event name and JSON body of a routed event (None: not shown)."""
    if isinstance(event, PositionEvent | StatusEvent | RouteEvent):
        return event.type, event.model_dump(mode="json")
    if isinstance(event, BaseModel):
        data = event.model_dump(mode="json")
        return "signal", {"type": getattr(event, "type", "signal"), "text": describe(event),
                          "data": data, "at_ns": now_ns()}
    return None


def notable_json(event: Any) -> dict[str, Any]:
    return {"text": describe(event), "type": getattr(event, "type", "event"),
            "at_ns": getattr(event, "at_ns", None) or now_ns()}
