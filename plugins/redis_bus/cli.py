"""``feedctl tail``, ``feedctl bus status`` and ``feedctl worker``."""

from __future__ import annotations

import asyncio
import contextlib
import json
import signal
import sys
from typing import Any

import click

from feedctl import (
    BusKeys,
    ConfigError,
    FeedctlError,
    RemoteSession,
    configure_logging,
)

redis_option = click.option(
    "--redis", "url", envvar="FEEDCTL_REDIS_URL", show_envvar=True, default=None,
    help="Redis URL (redis://, rediss:// for TLS; user:password@ for an ACL user).")
prefix_option = click.option("--prefix", default="feedctl", show_default=True,
                             help="Key prefix of the deployment.")


def _need(url: str | None) -> str:
    if not url:
        click.echo("ERROR: no Redis URL: pass --redis URL or export FEEDCTL_REDIS_URL",
                   err=True)
        sys.exit(2)
    return url


def _signals(stop: asyncio.Event) -> None:
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        with contextlib.suppress(NotImplementedError, RuntimeError):
            loop.add_signal_handler(sig, stop.set)


async def _until(stop: asyncio.Event, seconds: float | None) -> None:
    with contextlib.suppress(TimeoutError):
        async with asyncio.timeout(seconds):
            await stop.wait()


@click.command("tail")
@redis_option
@prefix_option
@click.option("--account", "accounts", multiple=True,
              help="Account to follow (repeatable). Default: every published account.")
@click.option("--from", "start", default=None,
              help="Start after this stream entry id instead of the snapshot.")
@click.option("--group", default=None, help="Read through this consumer group (acks, "
              "resume where acknowledged).")
@click.option("--for", "seconds", default=None, type=float, help="Stop after this many s.")
def tail_command(url: str | None, prefix: str, accounts: tuple[str, ...], start: str | None,
                 group: str | None, seconds: float | None) -> None:
    """Print the published events as JSON lines (the form of `run --output jsonl`)."""
    url = _need(url)

    async def main() -> None:
        stop = asyncio.Event()
        _signals(stop)
        async with RemoteSession(url, accounts=list(accounts) or None, group=group,
                                 prefix=prefix, start=start) as rs:
            async def pump() -> None:
                async for ev in rs.events():
                    sys.stdout.write(ev.model_dump_json() + "\n")
                    sys.stdout.flush()

            task = asyncio.create_task(pump())
            waiter = asyncio.create_task(_until(stop, seconds))
            await asyncio.wait({task, waiter}, return_when=asyncio.FIRST_COMPLETED)
            for t in (task, waiter):
                t.cancel()
            results = await asyncio.gather(task, waiter, return_exceptions=True)
            for r in results:
                if isinstance(r, Exception):
                    raise r

    try:
        asyncio.run(main())
    except BrokenPipeError:
        pass
    except (OSError, FeedctlError) as exc:
        click.echo(f"ERROR: {exc}", err=True)
        sys.exit(1)
    except Exception as exc:
        if type(exc).__module__.startswith("redis"):
            click.echo(f"ERROR: redis: {exc}", err=True)
            sys.exit(1)
        raise


@click.group("bus")
def bus_group() -> None:
    """The Redis bus: leases, streams, consumers."""


@bus_group.command("status")
@redis_option
@prefix_option
@click.option("--json", "as_json", is_flag=True, help="One JSON object.")
def status_command(url: str | None, prefix: str, as_json: bool) -> None:
    """Leases, stream lengths and consumer lag."""
    url = _need(url)
    from .status import bus_status, format_status

    try:
        status = asyncio.run(bus_status(url, BusKeys(prefix)))
    except Exception as exc:
        if isinstance(exc, OSError) or type(exc).__module__.startswith("redis"):
            click.echo(f"ERROR: redis: {exc}", err=True)
            sys.exit(1)
        raise
    click.echo(json.dumps(status) if as_json else format_status(status))


@click.command("worker")
@click.option("--profile", "-p", "profiles", multiple=True,
              help="Profile whose accounts this worker shares with its peers (repeatable; "
                   "default: $FEEDCTL_PROFILE, else sim).")
@click.option("--settings", "settings_path", default=None, type=click.Path(dir_okay=False))
@redis_option
@click.option("--for", "seconds", default=None, type=float, help="Stop after this many s.")
@click.option("--owner", default=None, help="This worker's name in leases (default: "
              "host-pid).")
@click.option("--metrics-port", default=None, type=int,
              help="Serve the bus's Prometheus metrics on 127.0.0.1:PORT/metrics.")
def worker_command(profiles: tuple[str, ...], settings_path: str | None, url: str | None,
                   seconds: float | None, owner: str | None, metrics_port: int | None) -> None:
    """Serve a profile's accounts with peers: leases in Redis, events to Redis Streams."""
    from feedctl import build_plugin_manager

    from .connect import safe_url
    from .worker import Worker, bus_settings, session_factory

    overrides: dict[str, Any] = {"redis_bus": {"url": url}} if url else {}
    pm = build_plugin_manager()

    chosen_profiles: list[str | None] = list(profiles) or [None]

    make_session = session_factory(settings_path, overrides, pm)

    try:
        probe = make_session(chosen_profiles[0])
        settings, chosen = bus_settings(probe, url)
    except ConfigError as exc:
        click.echo(f"ERROR: {exc}", err=True)
        sys.exit(2)
    # the core's handler: structured lines on stderr, every registered secret redacted
    configure_logging(probe.settings.logging.format, probe.settings.logging.level)

    worker = Worker(make_session, chosen_profiles, settings, chosen, owner)

    async def main() -> None:
        stop = asyncio.Event()
        _signals(stop)
        server = None
        if metrics_port is not None:
            from .serve import serve_metrics

            server = await serve_metrics(metrics_port)
        task = asyncio.create_task(worker.run(stop))
        waiter = asyncio.create_task(_until(stop, seconds))
        await asyncio.wait({task, waiter}, return_when=asyncio.FIRST_COMPLETED)
        stop.set()
        await asyncio.gather(task, waiter)
        if server is not None:
            await server.cleanup()

    asyncio.run(main())
    if not worker.reached:  # it served nothing: not a success
        click.echo(f"ERROR: Redis at {safe_url(chosen)} never answered this worker: start "
                   "redis-server there, or set redis_bus.url (or --redis) to a server that "
                   "runs", err=True)
        sys.exit(1)
