"""Session: runs one profile — services, feeds, router, consumers — and its library API.

::

    async with Session(profile="mainnet") as s:
        async for event in s.events():
            ...

Every task the session starts is owned: ``stop()`` cancels and awaits all of them,
then stops services in reverse order.
"""

from __future__ import annotations

import asyncio
import functools
import logging
import os
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from pydantic import BaseModel

from .book import PositionBook
from .config import merge_settings
from .delivery import EMPTY, ConsumerQueue
from .endpoints import feed_endpoints
from .errors import FatalFeedError, FeedctlError, PluginError
from .feed import Feed, FeedContext, PriorState
from .logs import register_secret
from .manager import FeedctlPluginManager, await_me_maybe, plugin_callers
from .models import Category, EventKind, PositionEvent, PositionKey, StatusEvent
from .plan import AccountPlan, FeedPlan, SessionPlan, build_plan, check_credentials
from .plugin_consumers import PluginDispatcher
from .router import Router
from .settings import AccountSettings, Role
from .shared import SharedResources
from .summary import RunSummary
from .supervisor import supervise_feed
from .validator import Validator

log = logging.getLogger("feedctl.session")


@dataclass
class FeedRuntime:
    plan: FeedPlan
    ctx: FeedContext
    book: PositionBook
    feed: Feed
    task: asyncio.Task[None] | None = None
    fatal: BaseException | None = None
    #: The account the feed serves.
    account: str = ""

    @property
    def name(self) -> str:
        return self.plan.name


@dataclass
class AccountRuntime:
    """One account of a running session: its feeds, books, router, validator, summary."""

    plan: AccountPlan
    feeds: dict[str, FeedRuntime] = field(default_factory=dict)
    router: Router | None = None
    validator: Validator | None = None
    summary: RunSummary | None = None
    #: Set when every delivering feed of the account failed fatally (a rejected key...).
    failure: BaseException | None = None

    @property
    def name(self) -> str:
        return self.plan.name

    @property
    def exchange(self) -> str:
        return self.plan.account.exchange or ""


class EventStream:
    """An async iterator over routed events for one library consumer."""

    def __init__(self, session: Session, queue: ConsumerQueue) -> None:
        self._session, self._queue = session, queue

    def __aiter__(self) -> EventStream:
        return self

    async def __anext__(self) -> Any:
        ev = self._queue.get_nowait()  # no get() coroutine while events are pending
        if ev is EMPTY:
            ev = await self._queue.get()
        if ev is None:
            self.close()
            raise StopAsyncIteration
        return ev

    def close(self) -> None:
        self._queue.close()
        self._session._detach(self._queue)

    @property
    def stats(self) -> dict[str, Any]:
        return self._queue.stats()


class Session:
    """One running profile. Use as an async context manager."""

    def __init__(
        self,
        profile: str | None = None,
        *,
        settings_path: str | os.PathLike[str] | None = None,
        mode: str | None = None,
        overrides: dict[str, Any] | None = None,
        plugin_manager: FeedctlPluginManager | None = None,
        plan: SessionPlan | None = None,
    ) -> None:
        self.plan = plan or build_plan(
            profile, settings_path=settings_path, mode=mode, overrides=overrides,
            pm=plugin_manager)
        self.settings = self.plan.settings
        self.pm = self.plan.pm
        #: Every account the session serves, by name (one for the ``[account]`` form).
        self.accounts: dict[str, AccountRuntime] = {
            a.name: AccountRuntime(a) for a in self.plan.accounts}
        #: Objects the feeds of every account share (``FeedContext.shared``).
        self.shared = SharedResources()
        #: Every consumer's queue: plugin dispatchers and library streams.
        self._queues: list[ConsumerQueue] = []
        #: Library streams that asked for some accounts only (``events(accounts=...)``).
        self._filters: dict[int, frozenset[str]] = {}
        self._dispatchers: list[PluginDispatcher] = []
        self._tasks: set[asyncio.Task[Any]] = set()
        self._started_services: list[Any] = []
        self._done = asyncio.Event()
        self._stopped = False
        self.failure: BaseException | None = None

    # The first account's feeds, router, validator and summary: the whole session in the
    # single-account form (per account: ``accounts[name]``).
    @property
    def primary_account(self) -> AccountRuntime:
        return next(iter(self.accounts.values()))

    @property
    def feeds(self) -> dict[str, FeedRuntime]:
        return self.primary_account.feeds

    @property
    def router(self) -> Router | None:
        return self.primary_account.router

    @property
    def validator(self) -> Validator | None:
        return self.primary_account.validator

    @property
    def summary(self) -> RunSummary | None:
        return self.primary_account.summary

    @property
    def multi(self) -> bool:
        """True when the profile lists its accounts (``[<profile>.accounts.<name>]``)."""
        return self.plan.multi

    # ------------------------------------------------------------------ lifecycle
    async def __aenter__(self) -> Session:
        await self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.stop()

    async def start(self) -> None:
        try:
            await self._start()
        except BaseException:
            await self.stop()
            raise

    async def _start(self) -> None:
        s = self.settings
        overrides: dict[str, Any] = {}
        for svc in self.plan.services:
            log.info("starting service %s", svc.name, extra={"service": svc.name})
            self._started_services.append(svc)
            try:
                started = await svc.start()
            except Exception as exc:
                raise FeedctlError(
                    f"service {svc.name!r} failed to start: {type(exc).__name__}: {exc}"
                ) from exc
            overrides = merge_settings(overrides, started or {})
        if overrides:
            self._apply_overrides(overrides)
            s = self.settings
        for acc in self.plan.accounts:
            a = acc.account
            for secret in (a.api_key, a.api_secret, a.password):
                if secret is not None:
                    register_secret(secret.get_secret_value())
        if s.monitor.token is not None:
            register_secret(s.monitor.token.get_secret_value())
        check_credentials(self.plan)

        for art in self.accounts.values():
            self._build_account(art)
            await self._prior_state(art)
        self._dispatchers = PluginDispatcher.for_plugins(self.pm, s.delivery, self)
        for d in self._dispatchers:
            self._queues.append(d.queue)
            self._spawn(d.run(), f"consumer:{d.plugin}")
        for art in self.accounts.values():
            for rt in art.feeds.values():
                rt.task = self._spawn(supervise_feed(rt, self._on_fatal),
                                      f"feed:{art.name}:{rt.name}" if self.multi
                                      else f"feed:{rt.name}")
        self._spawn(self._tick(), "router-tick")
        await self._call_hook("feedctl_session_started", session=self)
        log.info("session started", extra={
            "profile": self.plan.loaded.name, "mode": s.mode.value,
            "accounts": len(self.accounts),
            "roles": ",".join(f"{n}={r.value}" for n, r in self.plan.roles.items())})

    def _apply_overrides(self, overrides: dict[str, Any]) -> None:
        """What the services provide (the embedded exchange's keys and URLs): ``account``
        applies to every account (in the ``accounts`` form, all but the name),
        ``accounts.<name>`` to that one; ``endpoints`` to every feed."""
        common = dict(overrides.get("account", {}))
        if self.multi:
            common.pop("name", None)
        urls = overrides.get("endpoints", {})
        for acc in self.plan.accounts:
            s = acc.settings
            own = merge_settings(common, overrides.get("accounts", {}).get(acc.name, {}))
            account = AccountSettings.model_validate(merge_settings(_plain(s.account), own))
            acc.settings = s.model_copy(update={"account": account,
                                                "endpoints": {**s.endpoints, **urls}})
            for fp in acc.feeds:
                fp.endpoints = feed_endpoints(fp.kind, acc.settings, self.plan.loaded,
                                              overrides=urls)
        first = self.plan.accounts[0]
        if not self.multi:  # the accounts' names are their table names
            first.name = first.account.name
            runtime = self.accounts.pop(next(iter(self.accounts)))
            self.accounts = {first.account.name: runtime}
        self.settings = first.settings
        self.plan.settings = first.settings
        self.plan.feeds = first.feeds

    def _build_account(self, art: AccountRuntime) -> None:
        s, account = art.plan.settings, art.plan.account
        for fp in art.plan.feeds:
            book = PositionBook(exchange=account.exchange or "", account=account.name,
                                feed=fp.name)
            ctx = FeedContext(name=fp.name, kind=fp.kind.name, role=fp.role, account=account,
                              endpoints=fp.endpoints, book=book, on_status=self._on_status,
                              profile=self.plan.loaded.name, environment=s.environment,
                              shared=self.shared)
            book._emit = self._emitter(art, fp.name)  # the book reports through the router
            try:
                feed = fp.kind.factory(ctx, fp.settings)
            except Exception as exc:
                raise PluginError(
                    f"plugin {fp.plugin!r}: factory of feed kind {fp.kind.name!r} failed: "
                    f"{type(exc).__name__}: {exc}", plugin=fp.plugin) from exc
            if not isinstance(feed, Feed):
                raise PluginError(
                    f"plugin {fp.plugin!r}: factory of feed kind {fp.kind.name!r} returned "
                    f"{type(feed).__name__}, not a feedctl.Feed", plugin=fp.plugin)
            art.feeds[fp.name] = FeedRuntime(fp, ctx, book, feed, account=art.name)
        r = s.router
        art.router = Router(
            art.plan.roles, {n: rt.book for n, rt in art.feeds.items()},
            deliver=self._deliverer(art), deliver_price=self._price_deliverer(art),
            on_shadow=self._shadow_handler(art),
            failover_after=r.failover_after, failback_after=r.failback_after,
            failback_max=r.failback_max, flap_window=r.flap_window, account=art.name)
        for name, rt in art.feeds.items():  # from now on, straight to the router
            rt.book._emit = functools.partial(art.router.on_event, name)
            rt.book.emit_price = functools.partial(art.router.on_price, name)
            rt.book.on_free_mark = functools.partial(art.router.on_free_mark, name)
            rt.ctx._watch_extra = functools.partial(_held_symbols, art.router)
        art.summary = RunSummary(art.router.active,
                                 {n: rt.ctx.state for n, rt in art.feeds.items()})
        shadows = [rt.book for rt in art.feeds.values() if rt.plan.role is Role.SHADOW]
        if shadows:
            art.validator = Validator(art.feeds[art.router.primary].book, shadows,
                                      s.validation)

    async def stop(self) -> None:
        if self._stopped:
            return
        self._stopped = True
        if self.router is not None:
            try:
                async with asyncio.timeout(5):
                    await self._call_hook("feedctl_session_stopping", session=self)
            except TimeoutError:
                log.warning("feedctl_session_stopping hooks took longer than 5 s")
        feed_tasks = [rt.task for art in self.accounts.values() for rt in art.feeds.values()
                      if rt.task is not None]
        await _cancel_all(feed_tasks)
        await self.shared.close()
        for q in list(self._queues):
            q.close()
        consumers = [t for t in self._tasks if t.get_name().startswith("consumer:")]
        if consumers:
            _, pending = await asyncio.wait(consumers, timeout=5)
            await _cancel_all(list(pending))
        await _cancel_all(list(self._tasks))
        for svc in reversed(self._started_services):
            try:
                await svc.stop()
            except Exception:
                log.exception("service %s failed to stop cleanly", svc.name)
        self._done.set()

    async def wait(self) -> None:
        """Wait until stopped or every delivering feed failed fatally (then raise that
        :class:`FatalFeedError`). Bound it with ``asyncio.timeout``."""
        await self._done.wait()
        if self.failure is not None:
            raise self.failure

    # ------------------------------------------------------------------ library API
    def events(self, *, name: str = "events", replay: bool = True,
               accounts: Iterable[str] | None = None) -> EventStream:
        """Subscribe to routed events (of every account, or of ``accounts`` only). With
        ``replay``, the stream begins with the current status of every feed
        (``reason="current"``) and an ``opened`` event (marked synthetic) for each
        position consumers already know, so a late subscriber misses nothing."""
        wanted = frozenset(accounts) if accounts is not None else None
        if wanted is not None:
            unknown = sorted(wanted - set(self.accounts))
            if unknown:
                raise ValueError(f"events(accounts=...): no account {', '.join(unknown)} in "
                                 f"this session (its accounts: {', '.join(self.accounts)})")
        q = ConsumerQueue(name, max_pending=self.settings.delivery.max_pending,
                          lag_threshold=self.settings.delivery.lag_threshold)
        for art in self.accounts.values():
            if not replay or (wanted is not None and art.name not in wanted):
                continue
            for rt in art.feeds.values():
                q.put(StatusEvent(feed=rt.name, status=rt.ctx.status, reason="current",
                                  account=art.name))
            if art.router is not None:
                for pos in art.router.delivered.values():
                    q.put(PositionEvent(kind=EventKind.OPENED, feed=pos.feed, position=pos,
                                        synthetic=True))
        if self._stopped:
            q.close()
        self._queues.append(q)
        if wanted is not None:
            self._filters[id(q)] = wanted
        return EventStream(self, q)

    def publish(self, event: BaseModel) -> None:
        """Deliver a consumer-derived event (trailing stop...) to every consumer (of its
        account, when it names one)."""
        account = getattr(event, "account", None)
        self._put(event, account if isinstance(account, str) and account else None)

    def trading_allowed(self, account: str) -> bool:
        """Whether a consumer may take a trading action on ``account`` now (no plugin's
        ``feedctl_trading_allowed`` says no; a plugin that fails says no). Ask right
        before each action: the answer may change at any moment (a lease lost)."""
        for plugin, caller in plugin_callers(self.pm, "feedctl_trading_allowed"):
            try:
                answers = caller(account=account, session=self)
            except Exception:
                log.exception("plugin %r failed in feedctl_trading_allowed: no trading "
                              "action on %s", plugin, account,
                              extra={"plugin": plugin, "account": account})
                return False
            if False in answers:
                return False
        return True

    def status(self, account: str | None = None, *, rows: bool = True) -> dict[str, Any]:
        """A JSON-ready picture of the session: feeds, router, consumers, validation (of
        the first account, or of ``account``), and ``accounts``: one summary row per
        account."""
        art = self.primary_account if account is None else self.accounts.get(account)
        if art is None:
            raise KeyError(f"no account {account!r} in this session "
                           f"(its accounts: {', '.join(self.accounts)})")
        return {
            "profile": self.plan.loaded.name,
            "mode": self.settings.mode.value,
            "explicit_roles": self.settings.explicit_roles,
            "account": art.name,
            "feeds": {
                n: {"role": rt.plan.role.value, **rt.ctx.status.model_dump(mode="json"),
                    "details": _safe_details(rt.feed)}
                for n, rt in art.feeds.items()
            },
            "router": art.router.snapshot() if art.router else None,
            "consumers": [q.stats() for q in self._queues],
            "validation": art.validator.summary() if art.validator is not None else None,
            "accounts": self.account_rows() if rows else None,
        }

    def account_rows(self) -> list[dict[str, Any]]:
        """One summary row per account: exchange, delivering feed and its state, open
        positions, synced, failed."""
        return [account_row(art) for art in self.accounts.values()]

    def failed_accounts(self) -> dict[str, str]:
        """Accounts that failed (every delivering feed failed fatally): name -> why."""
        return {a.name: str(a.failure) for a in self.accounts.values() if a.failure is not None}

    def plugin_settings(self, name: str) -> Any:
        return self.settings.plugins.get(name)

    # ------------------------------------------------------------------ internals
    def _emitter(self, art: AccountRuntime, feed: str) -> Any:
        def emit(ev: PositionEvent) -> None:
            router = art.router
            if router is not None:
                router.on_event(feed, ev)
        return emit

    def _on_status(self, ev: StatusEvent) -> None:
        art = self.accounts.get(ev.account)
        if art is not None and art.router is not None:
            art.router.on_status(ev)
        else:
            self._put(ev, ev.account)

    def _shadow_handler(self, art: AccountRuntime) -> Any:
        def on_shadow(feed: str, ev: PositionEvent) -> None:
            if art.validator is not None:
                art.validator.on_shadow_event(feed, ev)
        return on_shadow

    def _deliverer(self, art: AccountRuntime) -> Any:
        """What the account's router delivers: into its summary and validator, then to
        every consumer of the account."""
        name = art.name

        def deliver(ev: Any) -> None:
            if art.summary is not None:
                art.summary.observe(ev)
            if (isinstance(ev, PositionEvent) and not ev.past
                    and (ev.kind is EventKind.OPENED or ev.kind is EventKind.CLOSED)):
                for rt in art.feeds.values():  # marks follow what consumers hold
                    rt.ctx.notify_watch()
            if art.validator is not None and isinstance(ev, PositionEvent):
                art.validator.on_primary_event(ev)
            self._put(ev, name)
        return deliver

    def _price_deliverer(self, art: AccountRuntime) -> Any:
        """:meth:`_deliverer` for a (not past) ``price`` event of the router's hot path,
        with its position's key: the same steps, without re-deriving what the kind and
        the key already say."""
        name = art.name
        queues, filters = self._queues, self._filters

        def deliver_price(ev: PositionEvent, key: PositionKey) -> None:
            summary = art.summary
            if summary is not None:
                summary.observe_price(key)
            if art.validator is not None:
                art.validator.on_primary_event(ev)
            slot_key = (ev.feed, ev.position.account, key)
            if not filters:
                for q in queues:
                    q.put_price(ev, slot_key)
                return
            for q in queues:
                wanted = filters.get(id(q))
                if wanted is None or name in wanted:
                    q.put_price(ev, slot_key)
        return deliver_price

    def _put(self, ev: Any, account: str | None) -> None:
        if not self._filters:
            for q in self._queues:
                q.put(ev)
            return
        for q in self._queues:
            wanted = self._filters.get(id(q))
            if wanted is None or account is None or account in wanted:
                q.put(ev)

    def _detach(self, q: ConsumerQueue) -> None:
        if q in self._queues:
            self._queues.remove(q)
        self._filters.pop(id(q), None)

    def _on_fatal(self, rt: FeedRuntime, exc: BaseException) -> None:
        rt.fatal = exc
        art = self.accounts.get(rt.account) or self.primary_account
        delivering = [r for r in art.feeds.values()
                      if r.plan.role in (Role.PRIMARY, Role.STANDBY)]
        if not all(r.fatal is not None for r in delivering) or art.failure is not None:
            return
        art.failure = exc if isinstance(exc, FatalFeedError) else FatalFeedError(str(exc))
        if self.multi:
            log.error("account %s failed: %s", art.name, exc,
                      extra={"account": art.name, "exchange": art.exchange})
        if all(a.failure is not None for a in self.accounts.values()):
            if self.multi:
                self.failure = FatalFeedError("every account failed: " + "; ".join(
                    f"{n}: {why}" for n, why in self.failed_accounts().items()))
            else:
                self.failure = art.failure
            self._done.set()

    async def _tick(self) -> None:
        while True:
            await asyncio.sleep(0.1)
            for art in self.accounts.values():
                if art.router is not None:
                    art.router.evaluate()
                if art.validator is not None and art.validator.due():
                    for report in art.validator.tick():
                        self._put(report, art.name)
            for d in self._dispatchers:
                d.check_lag()

    async def _prior_state(self, art: AccountRuntime) -> None:
        """Hand the account's feeds what its consumers last knew (feedctl_prior_state):
        every implementation is called, the first answer that is not None is used."""
        chosen: PriorState | None = None
        for plugin, caller in plugin_callers(self.pm, "feedctl_prior_state"):
            try:
                async with asyncio.timeout(5.0):
                    for result in caller(account=art.name, session=self):
                        prior = await await_me_maybe(result)
                        if chosen is None and isinstance(prior, PriorState):
                            chosen = prior
                            for rt in art.feeds.values():
                                rt.ctx.set_prior(prior)
            except Exception:
                log.exception("plugin %r failed in feedctl_prior_state: the feeds of "
                              "account %s start from the exchange's state", plugin, art.name,
                              extra={"plugin": plugin, "hook": "feedctl_prior_state"})

    async def _call_hook(self, name: str, **kwargs: Any) -> None:
        for plugin, caller in plugin_callers(self.pm, name):
            try:
                for result in caller(**kwargs):
                    await await_me_maybe(result)
            except Exception:
                log.exception("plugin %r failed in %s", plugin, name,
                              extra={"plugin": plugin, "hook": name})

    def _spawn(self, coro: Any, name: str) -> asyncio.Task[Any]:
        task = asyncio.get_running_loop().create_task(coro, name=name)
        self._tasks.add(task)
        task.add_done_callback(self._task_done)
        return task

    def _task_done(self, task: asyncio.Task[Any]) -> None:
        self._tasks.discard(task)
        if not task.cancelled() and task.exception() is not None:
            log.error("task %s crashed", task.get_name(), exc_info=task.exception())


def _plain(account: AccountSettings) -> dict[str, Any]:
    out = account.model_dump()
    for k in ("api_key", "api_secret", "password"):
        v = getattr(account, k)
        out[k] = v.get_secret_value() if v is not None else None
    return out


def account_row(art: AccountRuntime) -> dict[str, Any]:
    """An account's summary row (status, /api/accounts, the views)."""
    router = art.router
    active = router.active if router is not None else None
    rt = art.feeds.get(active) if active is not None else None
    st = rt.ctx.status if rt is not None else None
    return {
        "account": art.name,
        "exchange": art.exchange,
        "active": active,
        "state": "failed" if art.failure is not None else (
            st.state.value if st is not None else "starting"),
        "detail": str(art.failure) if art.failure is not None else (
            st.detail if st is not None else ""),
        # unknown (None), not 0, until the delivering feed has had a complete snapshot
        "positions": (len(router.delivered) if router is not None and st is not None
                      and st.synced_ns is not None else None),
        "synced_ns": st.synced_ns if st is not None else None,
        "stale_symbols": len(st.stale_symbols) if st is not None else 0,
        "feeds": {n: r.ctx.state.value for n, r in art.feeds.items()},
        "failed": art.failure is not None,
    }


def _safe_details(feed: Feed) -> dict[str, Any]:
    try:
        return feed.details()
    except Exception as exc:  # a status page must not crash on a plugin's bug
        return {"error": f"{type(exc).__name__}: {exc}"}


async def _cancel_all(tasks: list[asyncio.Task[Any]]) -> None:
    for t in tasks:
        t.cancel()
    if tasks:
        await asyncio.gather(*tasks, return_exceptions=True)



def _held_symbols(router: Router) -> set[tuple[Category, str]]:
    """The (category, symbol) of every position the router's consumers hold."""
    return {(p.category, p.symbol) for p in router.delivered.values()}
