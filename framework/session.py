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
from dataclasses import dataclass
from typing import Any

from pydantic import BaseModel

from .book import PositionBook
from .config import merge_settings
from .delivery import ConsumerQueue
from .endpoints import feed_endpoints
from .errors import FatalFeedError, FeedctlError, PluginError
from .feed import Feed, FeedContext
from .logs import register_secret
from .manager import FeedctlPluginManager, await_me_maybe, plugin_callers
from .models import EventKind, PositionEvent, StatusEvent
from .plan import FeedPlan, SessionPlan, build_plan, check_credentials
from .plugin_consumers import PluginDispatcher
from .router import Router
from .settings import AccountSettings, Role
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

    @property
    def name(self) -> str:
        return self.plan.name


class EventStream:
    """An async iterator over routed events for one library consumer."""

    def __init__(self, session: Session, queue: ConsumerQueue) -> None:
        self._session, self._queue = session, queue

    def __aiter__(self) -> EventStream:
        return self

    async def __anext__(self) -> Any:
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
        self.feeds: dict[str, FeedRuntime] = {}
        self.router: Router | None = None
        self.validator: Validator | None = None
        #: What the run delivered (for the exit summary); built with the router.
        self.summary: RunSummary | None = None
        #: Every consumer's queue: plugin dispatchers and library streams.
        self._queues: list[ConsumerQueue] = []
        self._dispatchers: list[PluginDispatcher] = []
        self._tasks: set[asyncio.Task[Any]] = set()
        self._started_services: list[Any] = []
        self._done = asyncio.Event()
        self._stopped = False
        self.failure: BaseException | None = None

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
            account = AccountSettings.model_validate(
                merge_settings(_plain(s.account), overrides.get("account", {})))
            urls = {**s.endpoints, **overrides.get("endpoints", {})}
            self.settings = s = s.model_copy(update={"account": account, "endpoints": urls})
            self.plan.settings = s
            for fp in self.plan.feeds:
                fp.endpoints = feed_endpoints(fp.kind, s, self.plan.loaded,
                                              overrides=overrides.get("endpoints", {}))
        for secret in (s.account.api_key, s.account.api_secret, s.account.password,
                       s.monitor.token):
            if secret is not None:
                register_secret(secret.get_secret_value())
        check_credentials(self.plan)

        for fp in self.plan.feeds:
            book = PositionBook(exchange=s.account.exchange or "", account=s.account.name,
                                feed=fp.name)
            ctx = FeedContext(name=fp.name, kind=fp.kind.name, role=fp.role, account=s.account,
                              endpoints=fp.endpoints, book=book, on_status=self._on_status,
                              profile=self.plan.loaded.name, environment=s.environment)
            book._emit = self._emitter(fp.name)  # the book reports through the router
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
            self.feeds[fp.name] = FeedRuntime(fp, ctx, book, feed)

        self.router = Router(
            self.plan.roles, {n: rt.book for n, rt in self.feeds.items()},
            deliver=self._fanout, on_shadow=self._on_shadow,
            failover_after=s.router.failover_after, failback_after=s.router.failback_after,
            failback_max=s.router.failback_max, flap_window=s.router.flap_window)
        for name, rt in self.feeds.items():  # from now on, straight to the router
            rt.book._emit = functools.partial(self.router.on_event, name)
        self.summary = RunSummary(self.router.active,
                                  {n: rt.ctx.state for n, rt in self.feeds.items()})
        shadows = [rt.book for rt in self.feeds.values() if rt.plan.role is Role.SHADOW]
        if shadows:
            self.validator = Validator(self.feeds[self.router.primary].book, shadows,
                                       s.validation)
        self._dispatchers = PluginDispatcher.for_plugins(self.pm, s.delivery, self)
        for d in self._dispatchers:
            self._queues.append(d.queue)
            self._spawn(d.run(), f"consumer:{d.plugin}")
        for rt in self.feeds.values():
            rt.task = self._spawn(supervise_feed(rt, self._on_fatal), f"feed:{rt.name}")
        self._spawn(self._tick(), "router-tick")
        await self._call_hook("feedctl_session_started", session=self)
        log.info("session started", extra={
            "profile": self.plan.loaded.name, "mode": s.mode.value,
            "roles": ",".join(f"{n}={r.value}" for n, r in self.plan.roles.items())})

    async def stop(self) -> None:
        if self._stopped:
            return
        self._stopped = True
        if self.router is not None:
            try:
                await asyncio.wait_for(
                    self._call_hook("feedctl_session_stopping", session=self), 5)
            except TimeoutError:
                log.warning("feedctl_session_stopping hooks took longer than 5 s")
        feed_tasks = [rt.task for rt in self.feeds.values() if rt.task is not None]
        await _cancel_all(feed_tasks)
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
    def events(self, *, name: str = "events", replay: bool = True) -> EventStream:
        """Subscribe to routed events. With ``replay``, the stream begins with the current
        status of every feed (``reason="current"``) and an ``opened`` event (marked
        synthetic) for each position consumers already know, so a late subscriber
        misses nothing."""
        q = ConsumerQueue(name, max_pending=self.settings.delivery.max_pending,
                          lag_threshold=self.settings.delivery.lag_threshold)
        if replay:
            for rt in self.feeds.values():
                q.put(StatusEvent(feed=rt.name, status=rt.ctx.status, reason="current"))
        if replay and self.router is not None:
            for pos in self.router.delivered.values():
                q.put(PositionEvent(kind=EventKind.OPENED, feed=pos.feed, position=pos,
                                    synthetic=True))
        if self._stopped:
            q.close()
        self._queues.append(q)
        return EventStream(self, q)

    def publish(self, event: BaseModel) -> None:
        """Deliver a consumer-derived event (trailing stop...) to every consumer."""
        self._fanout(event)

    def status(self) -> dict[str, Any]:
        """A JSON-ready picture of the session: feeds, router, consumers, validation."""
        return {
            "profile": self.plan.loaded.name,
            "mode": self.settings.mode.value,
            "explicit_roles": self.settings.explicit_roles,
            "feeds": {
                n: {"role": rt.plan.role.value, **rt.ctx.status.model_dump(mode="json"),
                    "details": _safe_details(rt.feed)}
                for n, rt in self.feeds.items()
            },
            "router": self.router.snapshot() if self.router else None,
            "consumers": [q.stats() for q in self._queues],
            "validation": self.validator.summary() if self.validator is not None else None,
        }

    def plugin_settings(self, name: str) -> Any:
        return self.settings.plugins.get(name)

    # ------------------------------------------------------------------ internals
    def _emitter(self, feed: str) -> Any:
        def emit(ev: PositionEvent) -> None:
            if self.router is not None:
                self.router.on_event(feed, ev)
        return emit

    def _on_status(self, ev: StatusEvent) -> None:
        if self.router is not None:
            self.router.on_status(ev)
        else:
            self._fanout(ev)

    def _on_shadow(self, feed: str, ev: PositionEvent) -> None:
        if self.validator is not None:
            self.validator.on_shadow_event(feed, ev)

    def _fanout(self, ev: Any) -> None:
        if self.summary is not None:
            self.summary.observe(ev)
        if self.validator is not None and isinstance(ev, PositionEvent):
            self.validator.on_primary_event(ev)
        for q in self._queues:
            q.put(ev)

    def _detach(self, q: ConsumerQueue) -> None:
        if q in self._queues:
            self._queues.remove(q)

    def _on_fatal(self, rt: FeedRuntime, exc: BaseException) -> None:
        rt.fatal = exc
        delivering = [r for r in self.feeds.values()
                      if r.plan.role in (Role.PRIMARY, Role.STANDBY)]
        if all(r.fatal is not None for r in delivering):
            self.failure = exc if isinstance(exc, FatalFeedError) else FatalFeedError(str(exc))
            self._done.set()

    async def _tick(self) -> None:
        while True:
            await asyncio.sleep(0.1)
            if self.router is not None:
                self.router.evaluate()
            if self.validator is not None and self.validator.due():
                for report in self.validator.tick():
                    self._fanout(report)
            for d in self._dispatchers:
                d.check_lag()

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

