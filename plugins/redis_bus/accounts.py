"""Which accounts a profile and a session serve, and which account an event belongs to:
the one place that knows (issue 17: a profile lists its accounts, every event carries
its account)."""

from __future__ import annotations

import dataclasses
from typing import Any

from feedctl import PositionEvent, Session


def plan_accounts(plan: Any) -> list[str]:
    """The accounts a profile's plan serves: the one ``[account]``, or every enabled
    ``[<profile>.accounts.<name>]`` (a worker shares them with its peers by lease)."""
    return [a.name for a in plan.accounts]


def plan_of_account(plan: Any, account: str) -> Any:
    """``plan`` narrowed to ``account`` alone: a worker runs a session per leased
    account, so that losing one account's lease stops that account only."""
    if len(plan.accounts) == 1:
        return plan
    acc = next((a for a in plan.accounts if a.name == account), None)
    if acc is None:
        raise KeyError(f"no account {account!r} in profile {plan.loaded.name!r} "
                       f"(its accounts: {', '.join(plan_accounts(plan))})")
    return dataclasses.replace(plan, accounts=[acc], settings=acc.settings, feeds=acc.feeds)


def session_accounts(session: Session) -> list[str]:
    return list(session.accounts)


def exchange_of(session: Session, account: str) -> str:
    return session.accounts[account].exchange


def account_of(event: Any, session: Session) -> str:
    """The account of a routed event: a position carries it, so do status and route
    events (``""`` outside a session: the session's first account)."""
    if isinstance(event, PositionEvent):
        return event.position.account
    account = getattr(event, "account", "")
    return account if isinstance(account, str) and account else session.primary_account.name
