"""``feedctl status``: print the status of a running instance, read from its monitor."""

from __future__ import annotations

import json
import sys
import urllib.error
import urllib.parse
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
        if exc.code == 404 and "account=" in path:
            raise MonitorUnavailable(f"{_error_of(exc)} (at {url})") from None
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
@click.option("--timeout", default=5.0, show_default=True,
              type=click.FloatRange(min=0, min_open=True), help="Seconds to wait for it.")
@click.option("--account", default=None, help="One account of a session of many, in full "
              "(default: every account, with a summary row each).")
def status_command(url: str, token: str | None, as_json: bool, timeout: float,
                   account: str | None) -> None:
    """Show the status of a running feedctl (accounts, feeds, positions, validation)."""
    if not url.startswith(("http://", "https://")):
        click.echo(f"ERROR: --url must start with http:// or https://, got {url!r}", err=True)
        sys.exit(2)
    query = f"?account={urllib.parse.quote(account)}" if account else ""
    try:
        status = fetch(url, "/api/status" + query, token, timeout)
        positions = fetch(url, "/api/positions" + query, token, timeout)
        # many accounts, none asked for: every account's feeds (each row names its own)
        every = not account and len(status.get("accounts") or []) > 1
        rows = fetch(url, "/api/feeds", token, timeout)["feeds"] if every else \
            feed_rows(status)
    except MonitorUnavailable as exc:
        click.echo(f"ERROR: {exc}", err=True)
        sys.exit(1)
    if as_json:
        out = {"status": status, "positions": positions}
        if every:
            out["feeds"] = rows
        click.echo(redact(json.dumps(out, indent=2)))
        return
    from rich.console import Console  # rich loads when there is something to draw

    from .render import dashboard

    console = Console(highlight=False)
    if not console.is_terminal:
        console.width = 120  # a pipe or a file: wide enough for the feeds table
    console.print(dashboard(status, positions.get("delivered", []), rows,
                            _notable(status), source=url,
                            instruments=positions.get("instruments"), account=account,
                            unknown=positions.get("unknown_reason"), every_account=every))
    for c in status.get("consumers") or []:
        if c.get("lagging"):
            console.print(f"consumer {c['consumer']} is lagging: {c['pending']} pending, "
                          f"{c['lag_seconds']}s behind", style="yellow")


def _error_of(exc: urllib.error.HTTPError) -> str:
    try:
        return str(json.loads(exc.read().decode()).get("error", exc))
    except (ValueError, AttributeError, OSError):
        return str(exc)


def _notable(status: dict[str, Any]) -> list[dict[str, Any]]:
    """Router switches from the status (the API has no history of signal events)."""
    switches = (status.get("router") or {}).get("switches") or []
    return [{"text": f"route {s['previous']} -> {s['active']}: {s['reason']}",
             "at_ns": s.get("at_ns")} for s in switches[-8:]]
