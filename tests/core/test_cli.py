"""The feedctl command line, run as a subprocess the way a user runs it."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

REPO = Path(__file__).resolve().parents[2]
TINY = REPO / "tests" / "data" / "tiny_plugin"


def feedctl(*args: str, cwd: Path, env: dict[str, str] | None = None,
            timeout: float = 60) -> subprocess.CompletedProcess[str]:
    full_env = {k: v for k, v in os.environ.items() if not k.startswith("FEEDCTL_")}
    full_env.update(env or {})
    return subprocess.run([sys.executable, "-m", "feedctl.cli", *args], cwd=cwd,
                          env=full_env, capture_output=True, text=True, timeout=timeout)


@pytest.fixture(scope="module")
def tiny_site(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The tiny third-party plugin package, pip-installed into a folder of its own."""
    target = tmp_path_factory.mktemp("site")
    src = tmp_path_factory.mktemp("src") / "tiny_plugin"
    shutil.copytree(TINY, src)
    subprocess.run([sys.executable, "-m", "pip", "install", "-q", "--no-deps",
                    "--target", str(target), str(src)], check=True, timeout=300)
    return target


def tiny_env(site: Path) -> dict[str, str]:
    return {"PYTHONPATH": os.pathsep.join([str(site), str(REPO)])}


@pytest.mark.integration
def test_version(tmp_path: Path) -> None:
    out = feedctl("--version", cwd=tmp_path)
    assert out.returncode == 0 and out.stdout.startswith("feedctl 0.")


@pytest.mark.integration
def test_pip_installed_plugin_shows_up_in_plugins(tmp_path: Path, tiny_site: Path) -> None:
    out = feedctl("plugins", cwd=tmp_path, env=tiny_env(tiny_site))
    assert out.returncode == 0, out.stderr
    assert "tiny  [feedctl-tiny 0.0.1 (entry point feedctl_tiny.plugin)]" in out.stdout
    assert "feed kinds: tiny" in out.stdout


@pytest.mark.integration
def test_run_a_pip_installed_feed_kind_named_in_settings(tmp_path: Path, tiny_site: Path) -> None:
    (tmp_path / "settings.toml").write_text("[t.account]\nexchange = 'tiny'\n"
                                            "[t.feeds.x]\nkind = 'tiny'\nrole = 'primary'\n")
    out = feedctl("run", "--profile", "t", "--for", "1s", "--output", "jsonl", cwd=tmp_path,
                  env=tiny_env(tiny_site))
    assert out.returncode == 0, out.stderr
    lines = [json.loads(line) for line in out.stdout.splitlines()]
    kinds = [e["kind"] for e in lines if e["type"] == "position"]
    assert kinds[0] == "opened" and kinds[-1] == "closed" and "price" in kinds
    first = next(e for e in lines if e["type"] == "position")
    assert first["position"]["size"] == "3" and first["position"]["side"] == "short"
    assert "session started" in out.stderr  # logs go to stderr, events to stdout


@pytest.mark.integration
def test_check_prints_roles_and_where_settings_came_from(tmp_path: Path, tiny_site: Path) -> None:
    (tmp_path / "settings.toml").write_text(
        "[t]\nmode='rest'\n[t.account]\nexchange = 'bybit'\n")
    out = feedctl("check", "--profile", "t", "--mode", "canary", cwd=tmp_path,
                  env=tiny_env(tiny_site))
    assert out.returncode == 2, out.stderr  # the plan is shown, then the missing key refused
    assert "FEEDCTL_T__ACCOUNT__API_KEY is not set" in out.stderr
    assert "mode: canary   roles from: mode preset (command line (--mode))" in out.stdout
    assert "exchange: bybit [" in out.stdout and "environment: mainnet [built-in default]" \
        in out.stdout
    assert "rest_polling   role=primary  kind=rest_polling" in out.stdout
    assert "bybit_hybrid   role=shadow   kind=bybit_hybrid" in out.stdout
    assert ("endpoints.private_ws = wss://stream.bybit.com/v5/private   "
            "[default of kind bybit_hybrid for mainnet]") in out.stdout
    assert "api_key: NOT SET (export FEEDCTL_T__ACCOUNT__API_KEY)" in out.stdout


@pytest.mark.integration
def test_bad_configuration_exits_2_with_one_error_line(tmp_path: Path) -> None:
    (tmp_path / "settings.toml").write_text("[t.router]\nfailover_after = 'x'\n"
                                            "[t.account]\nexchange = 'bybit'\n")
    out = feedctl("run", "--profile", "t", cwd=tmp_path,
                  env={"FEEDCTL_T__ACCOUNT__API_KEY": "k1234",
                       "FEEDCTL_T__ACCOUNT__API_SECRET": "s1234"})
    assert out.returncode == 2
    errors = [ln for ln in out.stderr.splitlines() if ln.startswith("ERROR:")]
    assert len(errors) == 1 and "router.failover_after" in errors[0]


@pytest.mark.integration
def test_bad_duration_for_is_a_usage_error(tmp_path: Path) -> None:
    out = feedctl("run", "--for", "forever", cwd=tmp_path)
    assert out.returncode == 2 and "ERROR: --for:" in out.stderr


@pytest.mark.integration
def test_sigterm_stops_a_run_cleanly(tmp_path: Path, tiny_site: Path) -> None:
    import signal
    import time

    (tmp_path / "settings.toml").write_text("[t.account]\nexchange = 'tiny'\n"
                                            "[t.feeds.x]\nkind = 'tiny'\nrole = 'primary'\n")
    env = {k: v for k, v in os.environ.items() if not k.startswith("FEEDCTL_")}
    env.update(tiny_env(tiny_site))
    proc = subprocess.Popen([sys.executable, "-m", "feedctl.cli", "run", "--profile", "t",
                             "-o", "jsonl"], cwd=tmp_path, env=env, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)
    assert proc.stdout is not None
    proc.stdout.readline()  # running
    time.sleep(0.3)
    proc.send_signal(signal.SIGTERM)
    _, err = proc.communicate(timeout=15)
    assert proc.returncode == 0, err
    assert "Task was destroyed" not in err and "Traceback" not in err


@pytest.mark.integration
@pytest.mark.slow
def test_a_reader_that_leaves_ends_a_jsonl_run_cleanly(tmp_path: Path) -> None:
    """`feedctl run -o jsonl | head -5`: once the reader has gone, the run ends at once
    with exit 0 and no traceback, not when --for runs out."""
    import time

    env = {k: v for k, v in os.environ.items() if not k.startswith("FEEDCTL_")}
    proc = subprocess.Popen([sys.executable, "-m", "feedctl.cli", "run", "--settings",
                             str(REPO / "settings.toml"), "--profile", "sim", "--for", "120s",
                             "-o", "jsonl"], cwd=tmp_path, env=env, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)
    assert proc.stdout is not None and proc.stderr is not None
    lines = [proc.stdout.readline() for _ in range(5)]
    assert all(json.loads(line)["type"] for line in lines)
    proc.stdout.close()  # the reader exits
    began = time.monotonic()
    try:
        err = proc.stderr.read()
        proc.wait(timeout=30)
    finally:
        proc.kill()
    assert proc.returncode == 0, err
    assert time.monotonic() - began < 25
    assert "Traceback" not in err and "BrokenPipe" not in err


@pytest.mark.integration
def test_check_refuses_missing_keys_exactly_as_run_does(tmp_path: Path) -> None:
    """`feedctl check --profile mainnet && feedctl run --profile mainnet` protects: with no
    keys both exit 2 with the same error naming the variable."""
    check = feedctl("check", "--profile", "mainnet", cwd=tmp_path)
    run = feedctl("run", "--profile", "mainnet", "--for", "1s", cwd=tmp_path)
    assert check.returncode == run.returncode == 2, (check.stderr, run.stderr)
    want = "ERROR: FEEDCTL_MAINNET__ACCOUNT__API_KEY is not set"
    assert want in check.stderr and want in run.stderr
    ok = feedctl("check", "--profile", "mainnet", cwd=tmp_path,
                 env={"FEEDCTL_MAINNET__ACCOUNT__API_KEY": "k",
                      "FEEDCTL_MAINNET__ACCOUNT__API_SECRET": "s"})
    assert ok.returncode == 0, ok.stderr


@pytest.mark.integration
def test_sim_on_a_busy_port_is_one_error_line_not_a_traceback(tmp_path: Path) -> None:
    import socket

    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        out = feedctl("sim", "--port", str(port), cwd=tmp_path, timeout=30)
    assert out.returncode == 2
    assert f"cannot listen on 127.0.0.1:{port}" in out.stderr and "--port" in out.stderr
    assert "Traceback" not in out.stderr


@pytest.mark.integration
def test_sim_with_no_symbols_is_a_usage_error_naming_the_option(tmp_path: Path) -> None:
    out = feedctl("sim", "--symbols", "", cwd=tmp_path, timeout=30)
    assert out.returncode == 2 and "Error: --symbols:" in out.stderr
    assert "pydantic" not in out.stderr and "Traceback" not in out.stderr


@pytest.mark.integration
def test_check_refuses_an_embedded_simulator_run_would_refuse(tmp_path: Path) -> None:
    (tmp_path / "settings.toml").write_text("[x]\n[x.account]\nexchange = 'bybit'\n"
                                            "[x.simulator]\nembedded = true\nsymbols = []\n")
    check = feedctl("check", "--profile", "x", cwd=tmp_path)
    run = feedctl("run", "--profile", "x", "--for", "1s", cwd=tmp_path)
    assert check.returncode == run.returncode == 2, (check.stderr, run.stderr)
    for out in (check, run):
        (line,) = [ln for ln in out.stderr.splitlines() if ln.startswith("ERROR:")]
        assert line == (f"ERROR: setting 'simulator.symbols' in profile 'x': at least one "
                        f"symbol is required (from {tmp_path.resolve() / 'settings.toml'} "
                        "[x.simulator])")
        assert "pydantic" not in out.stderr and "Traceback" not in out.stderr


@pytest.mark.integration
@pytest.mark.parametrize("args", [("--version",), ("plugins",), ("check", "--profile", "x")])
def test_quick_commands_do_not_import_ccxt_aiohttp_or_rich(tmp_path: Path,
                                                           args: tuple[str, ...]) -> None:
    """ccxt alone took most of a second: the heavy libraries load when a feed, the
    monitor or a view is built, not to print a version or check a profile."""
    (tmp_path / "settings.toml").write_text(
        "[x]\n[x.account]\nexchange = 'bybit'\n[x.feeds.r]\nkind = 'rest_polling'\n"
        "role = 'primary'\n"
        "[x.feeds.h]\nkind = 'bybit_hybrid'\n")
    env = {k: v for k, v in os.environ.items() if not k.startswith("FEEDCTL_")}
    out = subprocess.run([sys.executable, "-X", "importtime", "-m", "feedctl.cli", *args],
                         cwd=tmp_path, env=env, capture_output=True, text=True, timeout=60)
    imported = {line.rsplit("|", 1)[-1].strip().split(".")[0]
                for line in out.stderr.splitlines() if line.startswith("import time:")}
    assert "feedctl" in imported, out.stderr[-500:]
    assert not imported & {"ccxt", "aiohttp", "rich", "websockets"}, sorted(
        imported & {"ccxt", "aiohttp", "rich", "websockets"})


@pytest.mark.integration
@pytest.mark.parametrize("args", [("plugins",), ("check", "--profile", "x")])
def test_quick_commands_load_no_other_command_nor_a_feed(tmp_path: Path,
                                                         args: tuple[str, ...]) -> None:
    """`check` and `plugins` build the plugin manager and the settings, not the other
    commands (`status` and the monitor's views, the plugins' `sim`, `bus`, `worker`), nor
    a feed's socket or client code, nor the trailing-stop engine, the session, the router
    or prometheus_client: what a session needs loads when a session starts."""
    (tmp_path / "settings.toml").write_text(
        "[x]\n[x.account]\nexchange = 'bybit'\n[x.feeds.r]\nkind = 'rest_polling'\n"
        "role = 'primary'\n[x.feeds.h]\nkind = 'bybit_hybrid'\n")
    env = {k: v for k, v in os.environ.items() if not k.startswith("FEEDCTL_")}
    out = subprocess.run([sys.executable, "-X", "importtime", "-m", "feedctl.cli", *args],
                         cwd=tmp_path, env=env, capture_output=True, text=True, timeout=60)
    imported = {line.rsplit("|", 1)[-1].strip()
                for line in out.stderr.splitlines() if line.startswith("import time:")}
    assert "feedctl.manager" in imported, out.stderr[-500:]
    unwanted = {m for m in imported if m.startswith(("feedctl.monitor", "prometheus_client"))
                or m in {"feedctl.session", "feedctl.router",
                         "feedctl.simulator.cli", "feedctl.simulator.server",
                         "feedctl.plugins.redis_bus.cli", "feedctl.plugins.trailing_stop.engine",
                         "feedctl.plugins.trailing_stop.executor"}
                or (m.split(".")[-1] in {"feed", "ws", "rest", "client", "public", "private"}
                and m.startswith("feedctl.plugins"))}
    assert unwanted == set()


@pytest.mark.integration
def test_plugins_reads_no_profile_so_loads_no_dynaconf(tmp_path: Path) -> None:
    """`feedctl plugins` lists what is loaded; the settings machinery (dynaconf, a tenth
    of `check`'s start) loads only where a profile is read."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("FEEDCTL_")}
    out = subprocess.run([sys.executable, "-X", "importtime", "-m", "feedctl.cli", "plugins"],
                         cwd=tmp_path, env=env, capture_output=True, text=True, timeout=60)
    assert out.returncode == 0 and "rest_polling  [" in out.stdout, out.stderr[-500:]
    imported = {line.rsplit("|", 1)[-1].strip().split(".")[0]
                for line in out.stderr.splitlines() if line.startswith("import time:")}
    assert "pluggy" in imported and "dynaconf" not in imported


@pytest.mark.integration
def test_output_none_prints_no_events_and_still_summarises(tmp_path: Path) -> None:
    out = feedctl("run", "--settings", str(REPO / "settings.toml"), "--profile", "sim",
                  "--for", "3s", "--output", "none", cwd=tmp_path)
    assert out.returncode == 0, out.stderr
    assert out.stdout == ""
    assert "session started" in out.stderr


@pytest.mark.integration
def test_check_and_run_list_every_problem_and_agree(tmp_path: Path) -> None:
    """Three problems in three places: check lists all three, one ERROR line each, and
    run refuses with the same lines."""
    (tmp_path / "settings.toml").write_text(
        "[x]\nmode = 'rest'\n[x.account]\nexchange = 'bybit'\n"
        "[x.feeds.rest_polling]\nkind = 'rest_polling'\n"
        "intervall = '2s'\n"  # a typo in the selected feed
        "[x.feeds.spare]\nkind = 'nosuchkind'\n"  # an unused feed of an unknown kind
        "[x.simulator]\nsymbols = []\n")  # a plugin section the simulator refuses
    check = feedctl("check", "--profile", "x", cwd=tmp_path)
    run = feedctl("run", "--profile", "x", "--for", "1s", cwd=tmp_path)
    errors = [ln for ln in check.stderr.splitlines() if ln.startswith("ERROR:")]
    assert check.returncode == run.returncode == 2
    assert len(errors) == 3, check.stderr
    assert any("feeds.rest_polling.intervall" in e for e in errors)
    assert any("'nosuchkind'" in e for e in errors)
    assert any("symbols" in e for e in errors)
    assert errors == [ln for ln in run.stderr.splitlines() if ln.startswith("ERROR:")]


@pytest.mark.integration
def test_version_loads_no_plugin_nor_the_settings_machinery(tmp_path: Path) -> None:
    """`feedctl --version` imports click and the version, not pydantic, dynaconf, pluggy
    or any plugin: the commands load what they use (and plugin commands on lookup)."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("FEEDCTL_")}
    out = subprocess.run([sys.executable, "-X", "importtime", "-m", "feedctl.cli", "--version"],
                         cwd=tmp_path, env=env, capture_output=True, text=True, timeout=60)
    assert out.returncode == 0 and "plugin API" in out.stdout
    imported = {line.rsplit("|", 1)[-1].strip()
                for line in out.stderr.splitlines() if line.startswith("import time:")}
    heavy = {m for m in imported if m.split(".")[0] in {"pydantic", "dynaconf", "pluggy"}
             or m.startswith("feedctl.plugins") or m.startswith("feedctl.simulator")}
    assert heavy == set()


@pytest.mark.integration
def test_check_and_run_print_a_secret_in_settings_toml_as_a_warning_line(
        tmp_path: Path) -> None:
    """Point 7: a key in the (tracked) settings file is accepted, and both commands say so
    in one `warning:` line naming the file and table and where the key belongs."""
    (tmp_path / "settings.toml").write_text(
        "[x]\nmode = 'rest'\n[x.account]\nexchange = 'bybit'\napi_key = 'in-git-key'\n"
        "api_secret = 'in-git-secret'\n[x.endpoints]\nrest = 'http://127.0.0.1:9'\n")
    check = feedctl("check", "--profile", "x", cwd=tmp_path)
    run = feedctl("run", "--profile", "x", "--for", "1s", "--output", "none", cwd=tmp_path)
    for out in (check, run):
        warned = [ln for ln in out.stderr.splitlines() if "account.api_key" in ln]
        assert warned == [
            f"warning: account.api_key is set in {tmp_path.resolve() / 'settings.toml'} "
            "[x.account]: settings files are usually tracked; keep secrets in .secrets.toml "
            "beside it (untracked) or in FEEDCTL_X__ACCOUNT__API_KEY"], out.stderr
        assert "in-git-key" not in out.stderr + out.stdout
    assert check.returncode == 0


def _all_commands() -> list[tuple[str, Any]]:
    """(`feedctl <name>`, command) of every command, the plugins' included."""
    import click

    from feedctl.cli import _load_commands, cli

    _load_commands()
    out: list[tuple[str, Any]] = []

    def walk(prefix: str, group: click.Group) -> None:
        for name, command in group.commands.items():
            if isinstance(command, click.Group):
                walk(f"{prefix} {name}", command)
            else:
                out.append((f"{prefix} {name}", command))

    walk("feedctl", cli)
    return out


@pytest.mark.unit
def test_every_variable_an_option_reads_is_a_reserved_tool_variable() -> None:
    """Point 3: FEEDCTL_REDIS_URL (`feedctl worker --redis`) read as a setting warned
    "did you mean 'redis_bus'?" in the shell docs/redis.md sets it in."""
    from feedctl.config import TOOL_VARIABLES

    read = {p.envvar for _, c in _all_commands() for p in c.params
            if isinstance(p.envvar, str) and p.envvar.startswith("FEEDCTL_")}
    assert "FEEDCTL_REDIS_URL" in read
    assert read <= set(TOOL_VARIABLES), sorted(read - set(TOOL_VARIABLES))
    readme = (REPO / "README.md").read_text()
    for name in TOOL_VARIABLES:
        assert f"`{name}`" in readme, name


@pytest.mark.unit
def test_the_readme_commands_table_lists_every_command_and_option() -> None:
    readme = (REPO / "README.md").read_text()
    table = readme[readme.index("| command | what it does |"):readme.index("Exit codes:")]
    rows = {line.split("`")[1]: line for line in table.splitlines() if line.startswith("| `")}
    for name, command in _all_commands():
        (row,) = [line for head, line in rows.items() if head.split(" [")[0] == name]
        for param in command.params:
            for opt in (*param.opts, *param.secondary_opts):
                if opt.startswith("--") and opt != "--help":
                    assert opt in row, (name, opt)


@pytest.mark.integration
@pytest.mark.parametrize(("profile", "error"), [
    ("[x]\nmode = 'rest'\n[x.account]\nexchange = 'binanceusd'\n",
     "ERROR: feed 'rest_polling' (kind 'rest_polling'): 'binanceusd' is not a ccxt exchange "
     "id (account.exchange); did you mean 'binanceusdm'?"),
    ("[x]\nmode = 'rest'\nenvironment = 'demo'\n[x.account]\nexchange = 'bybit'\n",
     "ERROR: feed 'rest_polling' (kind 'rest_polling'): rest_polling knows no 'demo' URL for "
     "'bybit': set endpoints.rest (or feeds.rest_polling.urls)"),
    # the ccxt class has no fetchPositions
    ("[x]\nmode = 'rest'\n[x.account]\nexchange = 'bitstamp'\n",
     "ERROR: feed 'rest_polling' (kind 'rest_polling'): exchange 'bitstamp' does not support "
     "fetchPositions; rest_polling needs it (account.exchange)"),
    # a credential ccxt requires beyond the key and secret
    ("[x]\nmode = 'rest'\n[x.account]\nexchange = 'okx'\n",
     "ERROR: feed 'rest_polling' (kind 'rest_polling'): exchange 'okx' (account.exchange) also "
     "needs password: export FEEDCTL_X__ACCOUNT__PASSWORD or put password in .secrets.toml"),
    # testnet where ccxt has no sandbox URL
    ("[x]\nmode = 'rest'\nenvironment = 'testnet'\n[x.account]\nexchange = 'kraken'\n",
     "ERROR: feed 'rest_polling' (kind 'rest_polling'): ccxt has no testnet for 'kraken': set "
     "endpoints.rest (or feeds.rest_polling.urls) to its REST URL"),
])
def test_check_refuses_what_the_poller_would_refuse_at_start(tmp_path: Path, profile: str,
                                                              error: str) -> None:
    """Point 1: these passed `check`, and `run` started and then failed (exit 1) when the
    poller built its ccxt client; the kind's check (FeedKind.check, ccxt's facts read from
    its source, no ccxt import) refuses them in both, before anything starts."""
    (tmp_path / "settings.toml").write_text(profile)
    (tmp_path / ".secrets.toml").write_text("[x.account]\napi_key = 'k1234'\n"
                                            "api_secret = 's1234'\n")
    check = feedctl("check", "--profile", "x", cwd=tmp_path)
    run = feedctl("run", "--profile", "x", "--for", "2s", "--output", "none", cwd=tmp_path)
    assert check.returncode == run.returncode == 2, (check.stderr, run.stderr)
    for out in (check, run):
        assert [ln for ln in out.stderr.splitlines() if ln.startswith("ERROR:")] == [error]
    assert "session started" not in run.stderr


@pytest.mark.integration
def test_check_and_run_list_every_problem_in_one_run(tmp_path: Path) -> None:
    """Point 2: a typo in a core table, a feed table the mode does not select, and what the
    poller would refuse at start are independent mistakes: each is reported, in one run
    (check stopped at the first pass that found something), with the missing key."""
    (tmp_path / "settings.toml").write_text(
        "[x]\nmode = 'rest'\n[x.router]\nfailover_afer = '1s'\n"
        "[x.account]\nexchange = 'okx'\n"
        "[x.feeds.spare]\nkind = 'nosuchkind'\n")
    check = feedctl("check", "--profile", "x", cwd=tmp_path)
    run = feedctl("run", "--profile", "x", "--for", "2s", "--output", "none", cwd=tmp_path)
    assert check.returncode == run.returncode == 2, (check.stderr, run.stderr)
    errors = [ln for ln in check.stderr.splitlines() if ln.startswith("ERROR:")]
    assert errors == [ln for ln in run.stderr.splitlines() if ln.startswith("ERROR:")]
    assert len(errors) == 4, errors
    assert "'router.failover_afer'" in errors[0] and "did you mean 'router.failover_after'" \
        in errors[0]
    assert "feed 'spare' names kind 'nosuchkind'" in errors[1]
    assert "exchange 'okx' (account.exchange) also needs password" in errors[2]
    assert "FEEDCTL_X__ACCOUNT__API_KEY is not set" in errors[3]


@pytest.mark.integration
@pytest.mark.parametrize(("args", "said"), [
    # a plugin command's bad setting (redis_bus): was a traceback, exit 1
    (("bus", "status", "--redis", "notaurl"),
     "ERROR: redis URL 'notaurl': expected redis://, rediss:// or unix://"),
    # an address not ours: said "choose another --port"
    (("sim", "--host", "999.1.1.1"), "--host must be an address of this machine"),
    # a negative timeout: said the monitor "did not answer JSON"
    (("status", "--timeout", "-1"), "Invalid value for '--timeout'"),
    # nothing can run in no time: ran, then "no delivering feed was ever healthy", exit 1
    (("run", "--for", "0"), "ERROR: --for: must be longer than 0"),
])
def test_user_errors_are_one_line_and_exit_2(tmp_path: Path, args: tuple[str, ...],
                                              said: str) -> None:
    """Point 5: no command prints a traceback for a user error."""
    out = feedctl(*args, cwd=tmp_path, timeout=30)
    assert out.returncode == 2, out.stderr
    assert said in out.stderr and "Traceback" not in out.stderr


@pytest.mark.integration
def test_check_names_the_variable_of_the_account_that_needs_a_passphrase(
        tmp_path: Path) -> None:
    """Point 1 with many accounts: the okx account's passphrase is set by its own
    variable, not the profile's [account]'s."""
    (tmp_path / "settings.toml").write_text(
        "[x]\nmode = 'rest'\n[x.account]\nexchange = 'bybit'\n"
        "[x.accounts.alice]\n[x.accounts.bob]\nexchange = 'okx'\n")
    (tmp_path / ".secrets.toml").write_text(
        "[x.accounts.alice]\napi_key = 'k1234'\napi_secret = 's1234'\n"
        "[x.accounts.bob]\napi_key = 'k5678'\napi_secret = 's5678'\n")
    out = feedctl("check", "--profile", "x", cwd=tmp_path)
    assert out.returncode == 2, out.stderr
    assert [ln for ln in out.stderr.splitlines() if ln.startswith("ERROR:")] == [
        "ERROR: account 'bob': feed 'rest_polling' (kind 'rest_polling'): exchange 'okx' "
        "(account.exchange) also needs password: export FEEDCTL_X__ACCOUNTS__BOB__PASSWORD "
        "or put password in .secrets.toml"]


@pytest.mark.integration
def test_a_bad_mode_is_one_problem_not_the_defaults_problems(tmp_path: Path) -> None:
    """Point 2: a mistyped mode left out to go on checking gave the default mode's roles,
    and their problems (no live feed for okx, no primary) that fixing the mode removes."""
    (tmp_path / "settings.toml").write_text(
        "[x]\nmode = 'cannary'\n[x.account]\nexchange = 'okx'\n"
        "[x.feeds.spare]\nkind = 'nosuchkind'\n")
    (tmp_path / ".secrets.toml").write_text(
        "[x.account]\napi_key = 'k1234'\napi_secret = 's1234'\npassword = 'p1234'\n")
    out = feedctl("check", "--profile", "x", cwd=tmp_path)
    assert out.returncode == 2, out.stderr
    errors = [ln for ln in out.stderr.splitlines() if ln.startswith("ERROR:")]
    assert len(errors) == 2, errors
    assert "setting 'mode' in profile 'x'" in errors[0] and "'cannary'" in errors[0]
    assert errors[1].endswith("install the plugin or fix feeds.spare.kind")
