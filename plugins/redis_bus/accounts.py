"""Which account an event or a session belongs to: the one place that knows.

Today a profile has one account (``settings.account.name``). When events carry their
account (issue 17, many accounts in one process), only these functions change.
"""

from __future__ import annotations

from typing import Any

from feedctl import PositionEvent, ProfileSettings, Session


def profile_accounts(settings: ProfileSettings) -> list[str]:
    """The accounts a profile serves (a worker shares them with its peers by lease)."""
    return [settings.account.name]


def session_accounts(session: Session) -> list[str]:
    return profile_accounts(session.settings)


def exchange_of(session: Session, account: str) -> str:
    return session.settings.account.exchange


def account_of(event: Any, session: Session) -> str:
    """The account of a routed event: a position carries it; a feed's status belongs to
    the session's (only) account until status events carry theirs."""
    if isinstance(event, PositionEvent):
        return event.position.account
    return session.settings.account.name
