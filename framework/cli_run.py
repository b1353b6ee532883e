"""``feedctl run``'s session: start it, print its events, stop it on a signal, a closed
stdout or ``--for``, and end with the summaries and the exit code (docs/service.md)."""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import sys
from typing import TYPE_CHECKING, Any

import click

from .cli import ExitCode, _error

if TYPE_CHECKING:
    from .plan import SessionPlan
    from .session import Session


async def run_plan(plan: SessionPlan, seconds: float | None, output: str,
                   monitor_flag: bool | None = None) -> ExitCode:
    """The whole run of a checked plan; its exit code."""
    from .errors import ConfigError, FatalFeedError, FeedctlError
    from .logs import redact
    from .monitor import Monitor, live_view  # aiohttp and rich: loaded when running
    from .output import TextPrinter, jsonl
    from .session import Session
    from .summary import format_summary, format_validation_table

    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        with contextlib.suppress(NotImplementedError, RuntimeError):
            loop.add_signal_handler(sig, stop.set)
    from .monitor.views import instruments_payload

    session = Session(plan=plan)
    printer: Any = (lambda ev: _write_line(jsonl(ev))) if output == "jsonl" else TextPrinter(
        sys.stdout, instruments=lambda: instruments_payload(session))
    try:
        await session.start()
    except ConfigError as exc:
        _error(exc)
        return ExitCode.USAGE
    except FeedctlError as exc:
        _error(exc)
        return ExitCode.FAILURE
    monitor: Monitor | None = None
    if plan.settings.monitor.enabled if monitor_flag is None else monitor_flag:
        monitor = Monitor(session, session.settings.monitor)
        try:
            await monitor.start()
        except ConfigError as exc:  # e.g. the port is taken
            _error(exc)
            await session.stop()
            return ExitCode.USAGE
    code = ExitCode.OK
    pump_task: asyncio.Task[None] | None = None
    if output == "none":
        pass
    elif output == "table" and sys.stdout.isatty():
        pump_task = asyncio.create_task(
            live_view(session, monitor_url=monitor.url if monitor else None), name="cli-output")
    else:
        stream = session.events(name="cli")

        async def pump() -> None:
            try:
                async for ev in stream:
                    printer(ev)
            except BrokenPipeError:  # the reader left (`| head`): end the run, cleanly
                _stdout_gone()
                stop.set()

        pump_task = asyncio.create_task(pump(), name="cli-output")
    waiters = [asyncio.create_task(session.wait(), name="session-wait"),
               asyncio.create_task(stop.wait(), name="signal-wait")]
    try:
        done, _ = await asyncio.wait(waiters, timeout=seconds,
                                     return_when=asyncio.FIRST_COMPLETED)
        for t in done:
            if not t.cancelled() and t.exception() is not None:
                raise t.exception()  # type: ignore[misc]
    except FatalFeedError as exc:
        _error(exc)
        code = ExitCode.FAILURE
    finally:
        for t in waiters:
            t.cancel()
        await asyncio.gather(*waiters, return_exceptions=True)
        figures = session.summary.finish() if session.summary is not None else None
        if monitor is not None:
            await monitor.stop()
        await session.stop()
        if pump_task is not None:  # let it print what is queued, then stop it
            done, _ = await asyncio.wait({pump_task}, timeout=5)
            if not done:
                pump_task.cancel()
                await asyncio.gather(pump_task, return_exceptions=True)
        for sig in (signal.SIGINT, signal.SIGTERM):
            with contextlib.suppress(NotImplementedError, RuntimeError):
                loop.remove_signal_handler(sig)
        if figures is not None and session.summary is not None:
            # what was delivered while the session stopped was printed too: count it
            figures["lifecycles_delivered"] = dict(session.summary.lifecycles)
    summary = session.validator.summary() if session.validator is not None else None
    if summary:
        click.echo(format_validation_table(summary.values()), err=True)
    if session.multi:
        return _accounts_outcome(session, code)
    if figures is not None:
        click.echo(redact(format_summary(figures)), err=True)
        if code is ExitCode.OK and not figures["ever_delivering_healthy"]:
            _error(never_healthy(session))
            code = ExitCode.FAILURE
    return code


def _accounts_outcome(session: Session, code: ExitCode) -> ExitCode:
    """The end of a run of many accounts: one summary line per account; exit code 1 when
    one failed (named) or was never healthy, though the others ran on."""
    from .logs import redact

    click.echo(f"run summary ({len(session.accounts)} accounts):", err=True)
    bad: list[str] = []
    for art in session.accounts.values():
        figures = art.summary.finish() if art.summary is not None else None
        lc = figures["lifecycles_delivered"] if figures else {}
        if art.failure is not None:
            state = f"FAILED: {art.failure}"
            bad.append(f"{art.name} failed ({art.failure})")
        elif figures is not None and not figures["ever_delivering_healthy"]:
            state = "never healthy"
            bad.append(f"{art.name} was never healthy")
        else:
            state = f"healthy {figures['delivering_healthy_seconds']:.1f}s" if figures else ""
        click.echo(redact(f"  {art.name:<14} {state}; opened {lc.get('opened', 0)}, "
                          f"closed {lc.get('closed', 0)}"), err=True)
    if bad and code is ExitCode.OK:
        _error(f"{len(bad)} of {len(session.accounts)} accounts did not run: "
               + "; ".join(bad))
        code = ExitCode.FAILURE
    return code


def never_healthy(session: Session) -> str:
    """One line: the run's delivering feeds were never healthy, and how each stood."""
    states = "; ".join(
        f"{name} {rt.ctx.status.state.value}"
        + (f" ({rt.ctx.status.detail})" if rt.ctx.status.detail else "")
        for name, rt in session.feeds.items() if rt.plan.role.value in ("primary", "standby"))
    return f"no delivering feed was ever healthy during the run: {states}"


def _write_line(line: str) -> None:
    sys.stdout.write(line + "\n")
    sys.stdout.flush()


def _stdout_gone() -> None:
    """stdout's reader has gone: point stdout at /dev/null, so that nothing more (nor
    the interpreter's final flush) fails on the closed pipe."""
    with contextlib.suppress(OSError, ValueError):
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        os.close(devnull)
