"""The ``feedctl`` command line.

Exit codes: 0 success; 1 runtime failure (a feed failed fatally, an internal error);
2 bad usage or configuration (one ``ERROR:`` line on stderr naming the setting).
"""

from __future__ import annotations

import contextlib
import json
import logging
import sys
from collections.abc import Iterator
from enum import IntEnum
from typing import TYPE_CHECKING

import click

from ._version import API_VERSION, __version__

# Everything else loads when a command runs, so that `feedctl --version` and `--help`
# import only click: the commands import what they use.
if TYPE_CHECKING:
    from .manager import FeedctlPluginManager
    from .plan import SessionPlan

log = logging.getLogger("feedctl.cli")


class ExitCode(IntEnum):
    OK = 0
    FAILURE = 1
    USAGE = 2


def _error(message: object) -> None:
    """One ``ERROR:`` line on stderr, with every registered secret redacted."""
    from .logs import redact

    click.echo(redact(f"ERROR: {message}"), err=True)


def _fail(message: str, code: ExitCode) -> None:
    _error(message)
    sys.exit(int(code))


profile_option = click.option(
    "--profile", "-p", default=None, envvar="FEEDCTL_PROFILE", show_envvar=True,
    help="Profile (settings.toml environment). Default: sim.")
settings_option = click.option(
    "--settings", "settings_path", default=None, type=click.Path(dir_okay=False),
    help="Settings file. Default: $FEEDCTL_SETTINGS, else ./settings.toml, else built-ins.")
mode_option = click.option(
    "--mode", default=None, type=click.Choice(["rest", "canary", "parallel", "production"]),
    help="Override the profile's mode for this run.")


_pm: FeedctlPluginManager | None = None


def plugin_manager() -> FeedctlPluginManager:
    """The process's plugin manager, built once (entry points are loaded once)."""
    global _pm
    if _pm is None:
        from .manager import build_plugin_manager

        _pm = build_plugin_manager()
    return _pm


class _WarningLines(logging.Handler):
    """What building a plan warns about (a secret in settings.toml, endpoints half
    overridden...), before logging is configured: one ``warning:`` line each on stderr,
    like the ``ERROR:`` lines, secrets redacted."""

    def emit(self, record: logging.LogRecord) -> None:
        from .logs import redact

        click.echo(redact(f"{record.levelname.lower()}: {record.getMessage()}"), err=True)


@contextlib.contextmanager
def _plan_warnings() -> Iterator[None]:
    logger = logging.getLogger("feedctl")
    handler = _WarningLines(logging.WARNING)
    logger.addHandler(handler)
    try:
        yield
    finally:
        logger.removeHandler(handler)


def _plan(profile: str | None, settings_path: str | None, mode: str | None) -> SessionPlan:
    from .errors import ConfigError, PluginError
    from .plan import build_plan

    try:
        with _plan_warnings():
            return build_plan(profile, settings_path=settings_path, mode=mode,
                              pm=plugin_manager())
    except ConfigError as exc:
        for problem in exc.problems[:-1]:  # every problem found, one line each
            _error(problem)
        _fail(str(exc.problems[-1]), ExitCode.USAGE)
    except PluginError as exc:
        _fail(str(exc), ExitCode.USAGE)
    raise AssertionError("unreachable")


class FeedctlGroup(click.Group):
    """The root group: ``status`` and the plugins' commands are added the first time a
    command other than the built-in ones is looked up, or the list of commands is asked
    for (click's lazy subcommands): not for ``--version``, ``check``, ``plugins`` or
    ``run``, which would otherwise import every plugin's command line to start."""

    def list_commands(self, ctx: click.Context) -> list[str]:
        _load_commands()
        return super().list_commands(ctx)

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        if cmd_name not in self.commands:
            _load_commands()
        return super().get_command(ctx, cmd_name)

    def invoke(self, ctx: click.Context) -> object:
        """A bad setting any command meets (a plugin's too: ``bus status --redis x``) is
        the user's to fix: its ``ERROR:`` lines and exit 2, never a traceback."""
        from .errors import ConfigError

        try:
            return super().invoke(ctx)
        except ConfigError as exc:
            for problem in exc.problems[:-1]:
                _error(problem)
            _fail(str(exc.problems[-1]), ExitCode.USAGE)
            raise AssertionError("unreachable") from None


@click.group(cls=FeedctlGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="feedctl",
                      message=f"%(prog)s %(version)s (plugin API {API_VERSION})")
def cli() -> None:
    """Live exchange positions with live mark prices."""


@cli.command()
@click.option("--hooks/--no-hooks", default=True, help="Show the hooks each plugin implements.")
def plugins(hooks: bool) -> None:
    """List loaded plugins, where they came from, and what they provide."""
    from .errors import PluginError
    from .manager import collect_registry

    pm = plugin_manager()
    try:
        reg = collect_registry(pm)
    except PluginError as exc:
        _fail(str(exc), ExitCode.USAGE)
    for info in pm.plugins_info():
        click.echo(f"{info.name}  [{info.source}]")
        kinds = [k for k, (_, p) in reg.kinds.items() if p == info.name]
        sections = [s for s, (_, p) in reg.sections.items() if p == info.name]
        if kinds:
            click.echo(f"    feed kinds: {', '.join(kinds)}")
        if sections:
            click.echo(f"    settings sections: {', '.join(sections)}")
        if hooks:
            click.echo(f"    hooks: {', '.join(info.hooks) or '-'}")
    for err in pm.load_errors:
        click.echo(f"{err.name}  [{err.source}]  FAILED TO LOAD: {err.error}")


@cli.command()
@profile_option
@settings_option
@mode_option
def check(profile: str | None, settings_path: str | None, mode: str | None) -> None:
    """Validate a profile and show its feeds, roles and settings. Connects to nothing."""
    from .errors import ConfigError
    from .plan import check_credentials

    plan = _plan(profile, settings_path, mode)
    s = plan.settings
    src = plan.loaded.source_of
    click.echo(f"profile: {plan.loaded.name}")
    click.echo(f"settings files: {', '.join(str(f) for f in plan.loaded.files)}")
    roles_from = "explicit feed roles" if s.explicit_roles else f"mode preset ({src('mode')})"
    click.echo(f"mode: {s.mode.value}   roles from: {roles_from}")
    click.echo(f"exchange: {s.account.exchange} [{src('account.exchange')}]   "
               f"environment: {s.environment} [{src('environment')}]")
    provider = plan.credentials_provided_by()
    click.echo("feeds:")
    for f in plan.feeds:
        click.echo(f"  {f.name:<14} role={f.role.value:<8} kind={f.kind.name} "
                   f"(plugin {f.plugin})")
        for key, value in f.settings.model_dump(mode="json").items():
            click.echo(f"      {key} = {json.dumps(value)}   [{src(f'feeds.{f.name}.{key}')}]")
        for key, value in f.endpoints.model_dump().items():
            where = (f"provided at start by {provider}" if provider
                     else src(f"endpoints.{key}") if key in s.endpoints
                     else f"default of kind {f.kind.name} for {s.environment}"
                     if value is not None else "kind's own default")
            click.echo(f"      endpoints.{key} = {value}   [{where}]")
    if plan.multi:
        _check_accounts(plan, provider)
    else:
        click.echo(f"account: {s.account.exchange}/{s.account.name}")
        for field in ("api_key", "api_secret"):
            click.echo(f"  {field}: {_key_source(plan, 'account', field, provider)}")
    click.echo(f"router: failover_after={s.router.failover_after}s "
               f"failback_after={s.router.failback_after}s")
    for name, model in s.plugins.items():
        click.echo(f"{name}: {model.model_dump(mode='json')}")
    for svc in plan.services:
        click.echo(f"service: {svc.name} (provides {', '.join(sorted(svc.provides))})")
    if not provider:
        try:  # what `run` refuses, `check` refuses: `check && run` protects
            check_credentials(plan)
        except ConfigError as exc:
            _fail(str(exc), ExitCode.USAGE)


@cli.command()
@profile_option
@settings_option
@mode_option
@click.option("--for", "duration", default=None,
              help="Stop after this long (e.g. 30s, 2m). Default: until Ctrl-C.")
@click.option("--output", "-o", type=click.Choice(["table", "jsonl", "none"]),
              default="table",
              help="table: a live view on a terminal, lines otherwise; jsonl: one event per "
                   "line on stdout (docs/events.md); none: no events on stdout (a service "
                   "read through the monitor). Logs go to stderr.")
@click.option("--monitor/--no-monitor", "monitor_flag", default=None,
              help="Serve the read-only monitor (API, /metrics, dashboard). "
                   "Default: monitor.enabled.")
def run(profile: str | None, settings_path: str | None, mode: str | None,
        duration: str | None, output: str, monitor_flag: bool | None) -> None:
    """Run a profile's feeds and deliver positions."""
    import asyncio

    from .cli_run import run_plan
    from .logs import configure_logging
    from .settings import parse_duration

    seconds = None
    if duration is not None:
        try:
            seconds = parse_duration(duration)
        except ValueError as exc:
            _fail(f"--for: {exc}", ExitCode.USAGE)
        if not seconds:
            _fail("--for: must be longer than 0 (leave it out to run until Ctrl-C)",
                  ExitCode.USAGE)
    plan = _plan(profile, settings_path, mode)
    configure_logging(plan.settings.logging.format, plan.settings.logging.level)
    try:
        code = asyncio.run(run_plan(plan, seconds, output, monitor_flag))
    except KeyboardInterrupt:
        code = ExitCode.OK
    sys.exit(int(code))


def _key_source(plan: SessionPlan, prefix: str, field: str, provider: str | None) -> str:
    from .config import env_var_name

    acc = next(a for a in plan.accounts if a.prefix == prefix)
    if provider:
        return f"provided at start by {provider}"
    if getattr(acc.account, field) is not None:
        return f"set [{plan.loaded.source_of(f'{prefix}.{field}')}]"
    return f"NOT SET (export {env_var_name(plan.loaded.name, f'{prefix}.{field}')})"


def _check_accounts(plan: SessionPlan, provider: str | None) -> None:
    """`feedctl check` of a profile that lists its accounts: one line per account."""
    s = plan.settings
    disabled = [n for n, e in s.accounts.items() if not e.enabled]
    click.echo(f"accounts: {len(plan.accounts)}"
               + (f" (disabled: {', '.join(disabled)})" if disabled else ""))
    for acc in plan.accounts:
        keys = ", ".join(f"{f}: {_key_source(plan, acc.prefix, f, provider)}"
                         for f in ("api_key", "api_secret"))
        feeds = " ".join(f"{f.name}={f.role.value}" for f in acc.feeds)
        own = {f: t for f, t in s.accounts[acc.name].feeds.items() if t}
        extra = f"   settings {json.dumps(own)}" if own else ""
        click.echo(f"  {acc.name:<14} {acc.account.exchange}/{acc.settings.environment}  "
                   f"feeds {feeds}   {keys}{extra}")


_commands_loaded = False


def _load_commands() -> None:
    """``status`` and the plugins' commands, added once."""
    global _commands_loaded
    if _commands_loaded:
        return
    _commands_loaded = True
    from .monitor.status_cmd import status_command

    cli.add_command(status_command)
    _load_plugin_commands()


def _load_plugin_commands() -> None:
    import inspect

    from .manager import plugin_callers

    try:
        pm = plugin_manager()
    except Exception as exc:  # the CLI must still work without plugin commands
        click.echo(f"warning: plugin commands unavailable: {exc}", err=True)
        return
    builtin = dict(cli.commands)
    for plugin, caller in plugin_callers(pm, "feedctl_cli_commands"):
        try:
            for result in caller(cli=cli):
                if inspect.isawaitable(result):
                    getattr(result, "close", lambda: None)()
                    raise TypeError("feedctl_cli_commands must be a plain function, not async")
        except Exception as exc:
            click.echo(f"warning: plugin {plugin!r} failed to add commands: {exc}", err=True)
        # a built-in command is looked up without loading the plugins' commands, so a
        # plugin cannot replace one (it would, or not, depending on the command line)
        for name, command in builtin.items():
            if cli.commands.get(name) is not command:
                cli.commands[name] = command
                click.echo(f"warning: plugin {plugin!r} cannot replace the built-in command "
                           f"{name!r}; the built-in is kept", err=True)


def main() -> None:
    cli(prog_name="feedctl")


if __name__ == "__main__":
    main()
