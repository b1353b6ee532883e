"""The budgets every account of a session draws from (one object per key, ``ctx.shared``).

* new sockets per exchange host (Bybit: 500 per 5 minutes per IP, public and private
  alike): :func:`connect_budget`;
* REST requests per host (Bybit: 600 per 5 s per IP): :func:`rest_budget`;
* REST requests per UID and endpoint (Bybit's rate-limit table: e.g. 50/s for
  ``/v5/position/list`` and ``/v5/execution/list``, in a rolling second):
  :func:`uid_budgets` - one budget per (host, API key, path), so two feeds of one key
  share it and two keys never do.

Several accounts may state different numbers for one host: each budget keeps the
strictest (``RollingBudget.tighten``), so the result does not depend on which account
started first.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable

from pydantic import SecretStr
from yarl import URL

from feedctl import FeedContext, RollingBudget

from .config import HybridSettings


def host(url: str) -> str:
    return URL(url).host or url


def connect_budget(ctx: FeedContext, s: HybridSettings, url: str) -> RollingBudget:
    """The process's budget of new sockets to ``url``'s host."""
    budget = ctx.shared(("bybit_hybrid.connects", host(url)),
                        lambda: RollingBudget(s.connections_per_window, s.connection_window,
                                              spacing=s.connection_spacing))
    budget.tighten(s.connections_per_window, s.connection_window, s.connection_spacing)
    return budget


def rest_budget(ctx: FeedContext, s: HybridSettings, url: str) -> RollingBudget:
    """The process's REST budget for ``url``'s host, spaced evenly past a quarter."""
    spacing = s.rest_window / s.rest_per_window
    budget = ctx.shared(("bybit_hybrid.rest", host(url)),
                        lambda: RollingBudget(s.rest_per_window, s.rest_window,
                                              spacing=spacing, burst=s.rest_per_window // 4))
    budget.tighten(s.rest_per_window, s.rest_window, spacing)
    return budget


def uid_budgets(ctx: FeedContext, s: HybridSettings, url: str,
                api_key: SecretStr) -> Callable[[str], RollingBudget]:
    """Per signed endpoint path: this key's budget of ``uid_requests_per_second`` in any
    rolling second. The key is hashed: shared keys never hold a secret's text."""
    uid = hashlib.sha256(api_key.get_secret_value().encode()).hexdigest()[:16]
    where = host(url)
    rate = s.uid_requests_per_second
    # spaced evenly past a quarter: a whole second's worth admitted at once can reach the
    # exchange late and bunched with the next second's (a busy loop), and its windows
    # are not ours
    spacing = 1.0 / rate

    def for_path(path: str) -> RollingBudget:
        budget = ctx.shared(("bybit_hybrid.uid", where, uid, path),
                            lambda: RollingBudget(rate, 1.0, spacing=spacing,
                                                  burst=max(1, rate // 4)))
        budget.tighten(rate, 1.0, spacing)
        return budget

    return for_path
