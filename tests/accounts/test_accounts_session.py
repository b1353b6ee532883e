"""One Session serving many accounts: per-account books and routers, every event names
its account, `events(accounts=...)` filters, a failing account is that account's."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import pytest

from feedctl import EventKind, FatalFeedError, PositionEvent, StatusEvent
from feedctl.manager import FeedctlPluginManager
from feedctl.session import Session
from tests.accounts.conftest import SECRETS, THREE, write
from tests.conftest import run_async

pytestmark = pytest.mark.unit


def three(folder: Path, secrets: str = SECRETS) -> Path:
    path = write(folder, THREE)
    (folder / ".secrets.toml").write_text(secrets)
    return path


async def until(cond: Any, timeout: float = 5.0) -> None:
    async with asyncio.timeout(timeout):
        while not cond():
            await asyncio.sleep(0.01)


def test_each_account_has_its_own_book_router_and_positions(
        clean_env: Path, pm: FeedctlPluginManager) -> None:
    async def main() -> dict[str, set[str]]:
        async with Session("t", settings_path=three(clean_env), plugin_manager=pm) as s:
            await until(lambda: all(a.router and len(a.router.delivered) > 0
                                    for a in s.accounts.values()))
            return {n: {p.symbol for p in a.router.delivered.values()}  # type: ignore[union-attr]
                    for n, a in s.accounts.items()}

    held = run_async(main())
    assert held == {"alpha": {"BTCUSDT", "ETHUSDT"}, "beta": {"BTCUSDT", "ETHUSDT"},
                    "gamma": {"SOLUSDT"}}


def test_every_event_names_its_account_and_events_filters_by_account(
        clean_env: Path, pm: FeedctlPluginManager) -> None:
    async def main() -> tuple[set[str], set[str]]:
        async with Session("t", settings_path=three(clean_env), plugin_manager=pm) as s:
            every, only = s.events(name="all"), s.events(name="beta", accounts=["beta"])
            seen_all: set[str] = set()
            seen_beta: set[str] = set()

            async def read(stream: Any, into: set[str], n: int) -> None:
                async for ev in stream:
                    assert isinstance(ev, PositionEvent | StatusEvent)
                    into.add(ev.account)
                    n -= 1
                    if n == 0:
                        return

            async with asyncio.timeout(5):
                await asyncio.gather(read(every, seen_all, 60), read(only, seen_beta, 30))
            return seen_all, seen_beta

    seen_all, seen_beta = run_async(main())
    assert seen_all == {"alpha", "beta", "gamma"}
    assert seen_beta == {"beta"}


def test_two_accounts_holding_one_symbol_get_each_their_own_prices(
        clean_env: Path, pm: FeedctlPluginManager) -> None:
    """The consumer queue coalesces prices per (feed, account, key): one account's price
    never replaces another's."""
    async def main() -> set[str]:
        async with Session("t", settings_path=three(clean_env), plugin_manager=pm) as s:
            stream = s.events(replay=False)
            await asyncio.sleep(0.3)  # let prices of both accounts queue up unread
            accounts: set[str] = set()
            async with asyncio.timeout(5):
                async for ev in stream:
                    if (isinstance(ev, PositionEvent) and ev.kind is EventKind.PRICE
                            and ev.position.symbol == "BTCUSDT"):
                        accounts.add(ev.account)
                    if accounts == {"alpha", "beta"}:
                        break
            return accounts

    assert run_async(main()) == {"alpha", "beta"}


def test_a_rejected_key_fails_that_account_only(
        clean_env: Path, pm: FeedctlPluginManager) -> None:
    async def main() -> tuple[dict[str, str], list[dict[str, Any]], bool, int]:
        path = three(clean_env, SECRETS.replace('"kb"', '"rejected"'))
        async with Session("t", settings_path=path, plugin_manager=pm) as s:
            await until(lambda: s.accounts["beta"].failure is not None)
            before = len(s.accounts["alpha"].router.delivered)  # type: ignore[union-attr]
            await asyncio.sleep(0.2)
            rows = s.status()["accounts"]
            return s.failed_accounts(), rows, s._done.is_set(), before

    failed, rows, ended, alpha_positions = run_async(main())
    assert list(failed) == ["beta"] and "rejected" in failed["beta"]
    by_name = {r["account"]: r for r in rows}
    assert by_name["beta"]["failed"] and by_name["beta"]["state"] == "failed"
    assert by_name["alpha"]["state"] == "healthy" and by_name["gamma"]["state"] == "healthy"
    assert not ended and alpha_positions == 2


def test_the_session_ends_when_every_account_failed_naming_each(
        clean_env: Path, pm: FeedctlPluginManager) -> None:
    async def main() -> str:
        bad = SECRETS.replace('"ka"', '"rejected"').replace('"kb"', '"rejected"').replace(
            '"kg"', '"rejected"')
        async with Session("t", settings_path=three(clean_env, bad), plugin_manager=pm) as s:
            with pytest.raises(FatalFeedError) as err:
                async with asyncio.timeout(5):
                    await s.wait()
            return str(err.value)

    message = run_async(main())
    assert message.startswith("every account failed")
    assert all(f"{n}:" in message for n in ("alpha", "beta", "gamma"))


def test_status_of_one_account_shows_its_feeds(
        clean_env: Path, pm: FeedctlPluginManager) -> None:
    async def main() -> dict[str, Any]:
        async with Session("t", settings_path=three(clean_env), plugin_manager=pm) as s:
            await until(lambda: s.accounts["gamma"].router is not None
                        and len(s.accounts["gamma"].router.delivered) == 1)
            return s.status(account="gamma")

    st = run_async(main())
    assert st["account"] == "gamma" and list(st["feeds"]) == ["acct_live"]
    assert [r["account"] for r in st["accounts"]] == ["alpha", "beta", "gamma"]
    assert st["accounts"][2]["positions"] == 1
