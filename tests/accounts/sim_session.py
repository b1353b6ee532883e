"""A Session of many bybit_hybrid accounts against one MultiAccountSimulator (real
sockets on 127.0.0.1, the real feed, the real core)."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator
from decimal import Decimal
from pathlib import Path
from typing import Any

from feedctl import build_plugin_manager
from feedctl.plugins.bybit_hybrid import plugin as hybrid_plugin
from feedctl.session import Session
from feedctl.simulator.accounts import MultiAccountSimulator

#: Short intervals so the tests stay fast (as the bybit_hybrid tests' FAST).
FAST: dict[str, Any] = dict(
    ping_interval=0.5, pong_timeout=0.5, stale_after=0.4, audit_interval=0,
    backoff_base=0.02, backoff_cap=0.2, request_timeout=2.0, expires_margin=5,
    stale_mark_interval=0, max_auth_failures=1, mark_linger=0)

ENDPOINTS = ("rest", "public_ws", "private_ws", "public_ws_inverse")


def profile(folder: Path, accounts: int, feed: dict[str, Any] | None = None,
            per_account: dict[int, dict[str, Any]] | None = None) -> Path:
    lines = ["[t]", "[t.account]", 'exchange = "bybit"', "[t.feeds.bybit_hybrid]",
             'role = "primary"']
    for k, v in {**FAST, **(feed or {})}.items():
        lines.append(f"{k} = {_toml(v)}")
    for n in range(accounts):
        lines.append(f"[t.accounts.a{n}]")
        if n in (per_account or {}):
            lines.append(f"[t.accounts.a{n}.feeds.bybit_hybrid]")
            lines += [f"{k} = {_toml(v)}" for k, v in (per_account or {})[n].items()]
    path = folder / "settings.toml"
    path.write_text("\n".join(lines) + "\n")
    return path


def _toml(v: Any) -> str:
    if isinstance(v, bool):
        return "true" if v else "false"
    return repr(v) if not isinstance(v, str) else f'"{v}"'


def open_positions(sim: MultiAccountSimulator, held: dict[int, list[str]]) -> None:
    """Open a long of one lot per symbol in the accounts given (by index)."""
    for n, symbols in held.items():
        engine = sim.sim_accounts[n].engine
        for symbol in symbols:
            inst = engine.instrument(symbol)
            lots = int(Decimal(10) / (inst.min_qty * sim.prices.mark(symbol))) + 1  # > 5 USDT
            engine.place_market_order(symbol, "Buy", inst.min_qty * lots)


@contextlib.asynccontextmanager
async def running(folder: Path, sim: MultiAccountSimulator, accounts: int,
                  feed: dict[str, Any] | None = None,
                  keys: dict[int, tuple[str, str]] | None = None,
                  per_account: dict[int, dict[str, Any]] | None = None,
                  endpoints: dict[int, dict[str, str]] | None = None,
                  ) -> AsyncIterator[Session]:
    """``per_account``: feed settings of some accounts (by index); ``endpoints``: some
    accounts' own URLs (over the simulator's; a profile has one endpoints table, so they
    are set on the plan, as an account of another environment would have them)."""
    path = profile(folder, accounts, feed, per_account)
    creds: dict[str, dict[str, Any]] = {
        f"a{n}": {"api_key": a.api_key, "api_secret": a.api_secret}
        for n, a in enumerate(sim.sim_accounts[:accounts])}
    for n, (key, secret) in (keys or {}).items():
        creds[f"a{n}"] = {"api_key": key, "api_secret": secret}

    urls = {k: v for k, v in sim.urls.items() if k in ENDPOINTS}
    pm = build_plugin_manager([hybrid_plugin], load_entrypoints=False)
    session = Session("t", settings_path=path, plugin_manager=pm,
                      overrides={"accounts": creds, "endpoints": urls})
    for acc in session.plan.accounts:  # the profile has one [endpoints]: an account's own
        n = int(acc.name[1:])
        for fp in acc.feeds:
            if n in (endpoints or {}):
                fp.endpoints = fp.endpoints.model_copy(update=(endpoints or {})[n])
    async with session:
        yield session


def mark_of(session: Session, account: str, symbol: str) -> Decimal | None:
    router = session.accounts[account].router
    assert router is not None
    for pos in router.delivered.values():
        if pos.symbol == symbol:
            return pos.mark_price
    return None
