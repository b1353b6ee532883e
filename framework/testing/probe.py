"""Running one feed under observation: :class:`FeedProbe` and :func:`run_scenario`.

The probe builds the feed the way a session does (a :class:`PositionBook`, a
:class:`FeedContext`, ``kind.factory(ctx, settings)``) and records every position
event, every status event and every log record. It runs ``feed.run()`` as a task in a
context of its own, so it can tell the tasks the feed started (directly or through a
library) from the test exchange's, and it reports, after cancelling the feed, every
such task still pending, every unclosed resource the event loop or the garbage
collector complained about, and ``run()`` re-raising something other than
``CancelledError``.
"""

from __future__ import annotations

import asyncio
import contextvars
import gc
import time
import warnings
from collections.abc import Awaitable, Callable, Coroutine
from pathlib import Path
from typing import Any, cast

from ..book import PositionBook
from ..feed import Feed, FeedContext
from ..models import EventKind, FeedState, Position, PositionEvent, StatusEvent
from .checks import LogCapture, leak_words
from .harness import ExchangeAccess, FeedHarness

_OWNER: contextvars.ContextVar[object] = contextvars.ContextVar("feedctl_probe_owner")


class ContractError(AssertionError):
    """A feed broke the contract; the message says how, with the feed's recent history."""


class FeedProbe:
    """One feed of ``harness.kind``, built and run for a test; see the module docstring."""

    def __init__(self, harness: FeedHarness, access: ExchangeAccess, *, name: str = "contract",
                 scale: float = 1.0) -> None:
        self.harness, self.access, self.name = harness, access, name
        self.scale = scale
        self.timeout = harness.timeout * scale
        self.settle = harness.settle * scale
        self.events: list[PositionEvent] = []
        self.statuses: list[StatusEvent] = []
        #: book positions at the moment of each HEALTHY status (index into statuses)
        self.healthy_books: dict[int, dict[str, Position]] = {}
        self.cleanup_problems: list[str] = []
        self.kind = harness.kind
        self.settings = harness.kind.settings_model.model_validate(dict(harness.settings))
        exchange = access.account.exchange or (
            self.kind.exchange if self.kind.exchange not in (None, "*") else "test")
        self.book = PositionBook(exchange=exchange or "test", account=access.account.name,
                                 feed=name, emit=self.events.append)
        # the harness's URLs, as the kind's own model takes them: a kind that reads an
        # endpoint it does not declare fails here as it would in a profile
        endpoints = self.kind.endpoints_for("", access.endpoints.model_dump())
        self.ctx = FeedContext(name=name, kind=self.kind.name, role=None,
                               account=access.account, endpoints=endpoints,
                               book=self.book, on_status=self._on_status)
        self.feed: Feed | None = None
        self.task: asyncio.Task[None] | None = None
        #: how run() ended, once the probe stopped
        self.outcome = ""
        self.logs = LogCapture(exclude=harness.exchange_loggers)
        self._owned: list[asyncio.Task[Any]] = []
        self._token = object()
        self._loop_complaints: list[str] = []
        self._warnings: Any = None
        self._caught: list[warnings.WarningMessage] = []
        self._restore: list[Callable[[], None]] = []

    # ------------------------------------------------------------------ running
    async def start(self) -> FeedProbe:
        feed = self.kind.factory(self.ctx, self.settings)
        if not isinstance(feed, Feed):
            raise ContractError(
                f"the factory of feed kind {self.kind.name!r} returned "
                f"{type(feed).__name__}, not a feedctl.Feed")
        self.feed = feed
        self.logs.install()
        self._restore.append(self.logs.remove)
        self._watch_loop(asyncio.get_running_loop())
        self._warnings = warnings.catch_warnings(record=True)
        self._caught = self._warnings.__enter__()
        warnings.simplefilter("always", ResourceWarning)
        owned = contextvars.copy_context()
        owned.run(_OWNER.set, self._token)
        self.task = asyncio.get_running_loop().create_task(
            feed.run(), name=f"feed:{self.name}", context=owned)
        return self

    async def stop(self) -> list[str]:
        """Cancel the feed, wait for it, and return what it left behind (also kept in
        :attr:`cleanup_problems`)."""
        problems = self.cleanup_problems
        task = self.task
        ended_before = task is None or task.done()
        if task is not None and not ended_before:
            task.cancel()
        if task is not None:
            try:
                # asyncio.timeout, not wait_for: 3.11's wait_for can swallow a cancel
                async with asyncio.timeout(self.timeout):
                    await asyncio.shield(task)
            except asyncio.CancelledError:
                if not task.cancelled():  # the test itself is being cancelled
                    raise
            except TimeoutError:
                problems.append(f"run() did not end within {self.timeout:g}s of being "
                                "cancelled")
            except Exception as exc:
                if not ended_before:
                    problems.append(f"run() ended with {type(exc).__name__}: {exc} instead "
                                    "of re-raising CancelledError")
            else:
                if not ended_before:
                    problems.append("run() returned normally when cancelled: it must "
                                    "re-raise CancelledError")
        for _ in range(3):  # let done-callbacks and close handshakes run
            await asyncio.sleep(0)
        pending = [t for t in self._owned if not t.done()]
        if pending:
            await asyncio.wait(pending, timeout=0.5)
            still = [t for t in pending if not t.done()]
            problems.extend(f"task left pending after the feed was cancelled: {_task(t)}"
                            for t in still)
        self.outcome = _outcome(task)
        # drop every reference to the feed and its frames, so that what it failed to
        # close is collected (and complained about) now
        self.feed = self.task = None
        del task, pending
        self._owned.clear()
        gc.collect()
        await asyncio.sleep(0)
        complaints = self._loop_complaints + [str(w.message) for w in self._caught]
        problems.extend(f"unclosed resource: {c}" for c in complaints if leak_words(c))
        for undo in reversed(self._restore):
            undo()
        self._restore.clear()
        if self._warnings is not None:
            self._warnings.__exit__(None, None, None)
            self._warnings = None
        return problems

    async def __aenter__(self) -> FeedProbe:
        return await self.start()

    async def __aexit__(self, *exc: object) -> None:
        await self.stop()

    def _watch_loop(self, loop: asyncio.AbstractEventLoop) -> None:
        previous_factory = loop.get_task_factory()
        previous_handler = loop.get_exception_handler()

        def factory(lp: asyncio.AbstractEventLoop, coro: Coroutine[Any, Any, Any],
                    **kwargs: Any) -> asyncio.Task[Any]:
            if previous_factory is not None:
                task = cast("asyncio.Task[Any]", previous_factory(lp, coro, **kwargs))
            else:
                task = asyncio.Task(coro, loop=lp, **kwargs)
            context = kwargs.get("context")
            owner = context.get(_OWNER, None) if context is not None else _OWNER.get(None)
            if owner is self._token:
                self._owned.append(task)
            return task

        def handler(lp: asyncio.AbstractEventLoop, context: dict[str, Any]) -> None:
            self._loop_complaints.append(str(context.get("message", context)))
            if previous_handler is not None:
                previous_handler(lp, context)
            else:
                lp.default_exception_handler(context)

        loop.set_task_factory(factory)  # type: ignore[arg-type]
        loop.set_exception_handler(handler)

        def undo() -> None:
            loop.set_task_factory(previous_factory)
            loop.set_exception_handler(previous_handler)

        self._restore.append(undo)

    def _on_status(self, event: StatusEvent) -> None:
        self.statuses.append(event)
        if event.status.state is FeedState.HEALTHY:
            self.healthy_books[len(self.statuses) - 1] = {
                k.symbol: p for k, p in self.book.positions.items()}

    # ------------------------------------------------------------------ reading
    @property
    def state(self) -> FeedState:
        return self.ctx.state

    def lifecycle(self, symbol: str) -> list[str]:
        """The lifecycle event kinds (no ``price``) of ``symbol``, in order."""
        return [e.kind.value for e in self.events
                if e.kind is not EventKind.PRICE and e.position.symbol == symbol]

    def position(self, symbol: str) -> Position | None:
        for key, pos in self.book.positions.items():
            if key.symbol == symbol:
                return pos
        return None

    def history(self) -> str:
        """A short account of what the feed did: for failure messages."""
        states = " -> ".join(f"{s.status.state.value}({s.reason})" if s.reason
                             else s.status.state.value for s in self.statuses[-12:])
        events = ", ".join(f"{e.kind.value} {e.position.symbol} {e.position.size}"
                           for e in self.events if e.kind is not EventKind.PRICE)
        ended = _outcome(self.task) if self.task is not None else self.outcome
        crashed = f"; run() {ended}" if ended and ended != "was cancelled" else ""
        return (f"state now {self.state.value}; states: {states or '-'}; lifecycle events: "
                f"{events or '-'}; counters: {self.ctx.counters}{crashed}")

    # ------------------------------------------------------------------ waiting
    async def wait_for(self, check: Callable[[], object], what: str,
                       within: float | None = None) -> float:
        """Wait until ``check()`` is true; return the seconds it took. Fails with the
        feed's history after ``within`` seconds (default: the harness's timeout), or at
        once if ``run()`` ended."""
        limit = self.timeout if within is None else within
        start = time.monotonic()
        while not check():
            if self.task is not None and self.task.done():
                raise ContractError(f"the feed's run() ended while waiting for {what}; "
                                    f"{self.history()}")
            if time.monotonic() - start > limit:
                raise ContractError(f"timed out after {limit:g}s waiting for {what}; "
                                    f"{self.history()}")
            await asyncio.sleep(0.01)
        return time.monotonic() - start

    async def healthy(self, what: str = "the feed to report healthy") -> None:
        await self.wait_for(lambda: self.state is FeedState.HEALTHY, what)

    async def quiet(self) -> None:
        """Let the feed run for the harness's settle time (to see late duplicates)."""
        await asyncio.sleep(self.settle)


Scenario = Callable[[FeedProbe], Awaitable[None]]


def run_scenario(harness: FeedHarness, scenario: Scenario, *, scale: float = 1.0,
                 before: Callable[[], Awaitable[None]] | None = None,
                 check_cleanup: bool = True, limit: float = 120.0) -> FeedProbe:
    """Start the harness's exchange, call ``before()`` (exchange-side set-up), run a
    probe of the harness's feed kind through ``scenario``, cancel the feed and stop the
    exchange — in a fresh event loop. Raises :class:`ContractError` when
    ``check_cleanup`` and the feed left something behind."""
    out: list[FeedProbe] = []

    async def main() -> None:
        access = await harness.start()
        try:
            if before is not None:
                await before()
            probe = FeedProbe(harness, access, scale=scale)
            out.append(probe)
            async with asyncio.timeout(limit * scale):
                await probe.start()
                try:
                    await scenario(probe)
                finally:
                    await probe.stop()
        finally:
            await harness.stop()

    asyncio.run(main())
    probe = out[0]
    if check_cleanup and probe.cleanup_problems:
        raise ContractError("the feed did not clean up after cancellation:\n  "
                            + "\n  ".join(probe.cleanup_problems))
    return probe


def _outcome(task: asyncio.Task[Any] | None) -> str:
    if task is None or not task.done():
        return ""
    if task.cancelled():
        return "was cancelled"
    exc = task.exception()
    return f"ended: {type(exc).__name__}: {exc}" if exc else "returned"


def _task(task: asyncio.Task[Any]) -> str:
    """A task's name, coroutine and where it is suspended (what it awaits)."""
    coro = task.get_coro()
    what = getattr(coro, "__qualname__", None) or repr(coro)
    frame = None
    inner: Any = coro
    while inner is not None:  # follow the await chain to the innermost coroutine
        frame = getattr(inner, "cr_frame", None) or getattr(inner, "gi_frame", None) or frame
        inner = getattr(inner, "cr_await", None) or getattr(inner, "gi_yieldfrom", None)
    where = "" if frame is None else (
        f", waiting at {Path(frame.f_code.co_filename).name}:{frame.f_lineno} "
        f"in {frame.f_code.co_name}")
    return f"{task.get_name()} ({what}{where})"
