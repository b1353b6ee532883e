"""``feedctl status``: print the status of a running instance, read from its monitor."""

from __future__ import annotations

import json
import sys
import urllib.error
import urllib.request
from typing import Any

import click

from ..logs import redact
from .views import feed_rows

DEFAULT_URL = "http://127.0.0.1:8765"


class MonitorUnavailable(Exception):
    """Nothing (usable) answers at the monitor URL."""


def fetch(url: str, path: str, token: str | None, timeout: float = 5.0) -> Any:
    """GET ``url + path`` as JSON; :class:`MonitorUnavailable` with a readable reason."""
    req = urllib.request.Request(url.rstrip("/") + path, headers={"Accept": "application/json"})
    if token:
        req.add_header("Authorization", f"Bearer {token}")
    try:
        with urllib.request.urlopen(req, timeout=timeout) as resp:
            return json.loads(resp.read().decode())
    except urllib.error.HTTPError as exc:
        if exc.code == 401:
            hint = "the token was refused" if token else "it needs a token (--token)"
            raise MonitorUnavailable(f"the monitor at {url} answered 401: {hint}") from None
        raise MonitorUnavailable(f"the monitor at {url} answered HTTP {exc.code} "
                                 f"for {path}") from None
    except (urllib.error.URLError, OSError) as exc:
        reason = getattr(exc, "reason", exc)
        raise MonitorUnavailable(
            f"no feedctl monitor answers at {url} ({reason}); is `feedctl run` running "
            "with the monitor enabled (monitor.enabled = true or --monitor)?") from None
    except ValueError:
        raise MonitorUnavailable(f"{url}{path} did not answer JSON; is it a feedctl "
                                 "monitor?") from None


@click.command("status")
@click.option("--url", default=DEFAULT_URL, show_default=True, envvar="FEEDCTL_MONITOR_URL",
              help="Base URL of the running instance's monitor.")
@click.option("--token", default=None, envvar="FEEDCTL_MONITOR_TOKEN",
              help="Bearer token, when the monitor has one (monitor.token).")
@click.option("--json", "as_json", is_flag=True, help="Print the raw status and positions "
              "as one JSON object.")
@click.option("--timeout", default=5.0, show_default=True, help="Seconds to wait for it.")
def status_command(url: str, token: str | None, as_json: bool, timeout: float) -> None:
    """Show the status of a running feedctl (feeds, positions, validation)."""
    if not url.startswith(("http://", "https://")):
        click.echo(f"ERROR: --url must start with http:// or https://, got {url!r}", err=True)
        sys.exit(2)
    try:
        status = fetch(url, "/api/status", token, timeout)
        positions = fetch(url, "/api/positions", token, timeout)
    except MonitorUnavailable as exc:
        click.echo(f"ERROR: {exc}", err=True)
        sys.exit(1)
    if as_json:
        click.echo(redact(json.dumps({"status": status, "positions": positions}, indent=2)))
        return
    from rich.console import Console  # rich loads when there is something to draw

    from .render import dashboard

    console = Console(highlight=False)
    if not console.is_terminal:
        console.width = 120  # a pipe or a file: wide enough for the feeds table
    console.print(dashboard(status, positions.get("delivered", []), feed_rows(status),
                            _notable(status), source=url,
                            instruments=positions.get("instruments")))
    for c in status.get("consumers") or []:
        if c.get("lagging"):
            console.print(f"consumer {c['consumer']} is lagging: {c['pending']} pending, "
                          f"{c['lag_seconds']}s behind", style="yellow")


def _notable(status: dict[str, Any]) -> list[dict[str, Any]]:
    """Router switches from the status (the API has no history of signal events)."""
    switches = (status.get("router") or {}).get("switches") or []
    return [{"text": f"route {s['previous']} -> {s['active']}: {s['reason']}",
             "at_ns": s.get("at_ns")} for s in switches[-8:]]
