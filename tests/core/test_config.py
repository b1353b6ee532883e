"""Profiles: layers, environment overrides, provenance, and one-line errors."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from pydantic import model_validator

from feedctl import ConfigError, Mode, Role, StrictModel, hookimpl
from feedctl.manager import FeedctlPluginManager
from feedctl.plan import build_plan, check_credentials
from tests.core.conftest import SCRIPTED_PROFILE

pytestmark = pytest.mark.unit


def write(folder: Path, text: str, name: str = "settings.toml") -> Path:
    path = folder / name
    path.write_text(text)
    return path


def test_the_plugins_ship_their_profiles_without_any_settings_file(clean_env: Path) -> None:
    plan = build_plan("mainnet")  # every installed plugin: bybit_hybrid ships mainnet
    assert plan.settings.account.exchange == "bybit"
    assert plan.roles == {"bybit_hybrid": Role.PRIMARY, "rest_polling": Role.STANDBY}
    hybrid = next(f for f in plan.feeds if f.name == "bybit_hybrid")
    assert hybrid.endpoints.rest == "https://api.bybit.com"  # type: ignore[attr-defined]
    assert plan.loaded.source_of("account.exchange").endswith("profiles.toml [mainnet.account]")


def test_the_core_ships_no_profile(clean_env: Path, pm: FeedctlPluginManager) -> None:
    with pytest.raises(ConfigError, match=r"profile 'mainnet' is not defined; known profiles: "
                                          r"none \(define \[mainnet\] in settings.toml\)"):
        build_plan("mainnet", pm=pm)  # only the scripted test kind: nobody ships mainnet


def test_unknown_profile_names_the_known_ones(clean_env: Path) -> None:
    with pytest.raises(ConfigError, match=r"profile 'nope' is not defined; known profiles: "
                                          r"binance_mainnet, binance_testnet, binsim, mainnet, "
                                          r"sim, simaccts, testnet"):
        build_plan("nope")


def test_profile_from_environment_variable(
    clean_env: Path, pm: FeedctlPluginManager, monkeypatch: pytest.MonkeyPatch
) -> None:
    write(clean_env, SCRIPTED_PROFILE)
    monkeypatch.setenv("FEEDCTL_PROFILE", "t")
    plan = build_plan(pm=pm)
    assert plan.loaded.name == "t" and plan.roles == {"main": Role.PRIMARY}


def test_environment_overrides_a_feed_setting_and_check_names_the_source(
    clean_env: Path, pm: FeedctlPluginManager, monkeypatch: pytest.MonkeyPatch
) -> None:
    write(clean_env, SCRIPTED_PROFILE)
    monkeypatch.setenv("FEEDCTL_FEEDS__MAIN__SYMBOL", "ETHUSDT")
    plan = build_plan("t", pm=pm)
    assert plan.feeds[0].settings.symbol == "ETHUSDT"
    assert plan.loaded.source_of("feeds.main.symbol") == (
        "environment (FEEDCTL_FEEDS__MAIN__SYMBOL)")


def test_profile_scoped_variable_wins_and_applies_to_its_profile_only(
    clean_env: Path, pm: FeedctlPluginManager, monkeypatch: pytest.MonkeyPatch
) -> None:
    write(clean_env, SCRIPTED_PROFILE + "\n[u]\n[u.feeds.main]\nkind='scripted'\nrole='primary'\n")
    monkeypatch.setenv("FEEDCTL_ACCOUNT__API_KEY", "global-key")
    monkeypatch.setenv("FEEDCTL_T__ACCOUNT__API_KEY", "t-key")
    t = build_plan("t", pm=pm).settings.account.api_key
    u = build_plan("u", pm=pm).settings.account.api_key
    assert t is not None and t.get_secret_value() == "t-key"
    assert u is not None and u.get_secret_value() == "global-key"


def test_secrets_file_beside_settings_is_loaded(
    clean_env: Path, pm: FeedctlPluginManager
) -> None:
    write(clean_env, SCRIPTED_PROFILE)
    write(clean_env, "[t.account]\napi_key = 'k1234'\napi_secret = 's5678'\n", ".secrets.toml")
    acc = build_plan("t", pm=pm).settings.account
    assert acc.has_credentials()
    assert "s5678" not in repr(acc)


def test_unknown_key_is_reported_not_ignored(clean_env: Path, pm: FeedctlPluginManager) -> None:
    write(clean_env, SCRIPTED_PROFILE + "\n[t.router]\nfailover_afterr = 2\n")
    with pytest.raises(ConfigError, match=r"unknown setting 'router.failover_afterr' in "
                                          r"profile 't'"):
        build_plan("t", pm=pm)


def test_unknown_feed_setting_is_reported_with_its_path(
    clean_env: Path, pm: FeedctlPluginManager
) -> None:
    write(clean_env, SCRIPTED_PROFILE + "symbl = 'X'\n")
    with pytest.raises(ConfigError, match=r"unknown setting 'feeds.main.symbl'"):
        build_plan("t", pm=pm)


def test_bad_duration_names_the_setting_and_the_file_table_it_came_from(
    clean_env: Path, pm: FeedctlPluginManager
) -> None:
    path = write(clean_env, SCRIPTED_PROFILE + "\n[t.router]\nfailback_after = 'soon'\n")
    with pytest.raises(ConfigError) as err:
        build_plan("t", pm=pm)
    msg = str(err.value)
    assert "setting 'router.failback_after' in profile 't'" in msg
    assert msg.count("got 'soon'") == 1 and f"(from {path.resolve()} [t.router])" in msg
    assert "FEEDCTL_" not in msg  # only where it came from


def test_a_bad_value_from_a_variable_names_only_that_variable(
    clean_env: Path, pm: FeedctlPluginManager, monkeypatch: pytest.MonkeyPatch
) -> None:
    write(clean_env, SCRIPTED_PROFILE)
    monkeypatch.setenv("FEEDCTL_T__ROUTER__FAILOVER_AFTER", "later")
    with pytest.raises(ConfigError) as err:
        build_plan("t", pm=pm)
    msg = str(err.value)
    assert msg.endswith("(from FEEDCTL_T__ROUTER__FAILOVER_AFTER)")
    assert "settings.toml" not in msg


def test_a_typo_under_default_names_the_default_table_and_suggests_the_key(
    clean_env: Path, pm: FeedctlPluginManager
) -> None:
    path = write(clean_env, "[default.router]\nfailover_afterr = 2\n" + SCRIPTED_PROFILE)
    with pytest.raises(ConfigError) as err:
        build_plan("t", pm=pm)
    msg = str(err.value)
    assert f"(from {path.resolve()} [default.router])" in msg
    assert "did you mean 'router.failover_after'?" in msg


def test_log_levels_are_case_insensitive(clean_env: Path, pm: FeedctlPluginManager) -> None:
    write(clean_env, SCRIPTED_PROFILE + "[t.logging]\nlevel = 'debug'\n")
    assert build_plan("t", pm=pm).settings.logging.level == "DEBUG"


def test_missing_credentials_name_the_variable(
    clean_env: Path, pm: FeedctlPluginManager
) -> None:
    from feedctl import FeedKind
    from tests.core.scripted import ScriptedFeed, ScriptedSettings

    class KeyedPlugin:
        @staticmethod
        def feedctl_feed_kinds(register):  # type: ignore[no-untyped-def]
            register(FeedKind("keyed", ScriptedFeed, ScriptedSettings))

    from feedctl import hookimpl
    KeyedPlugin.feedctl_feed_kinds = hookimpl(KeyedPlugin.feedctl_feed_kinds)  # type: ignore
    pm.register(KeyedPlugin, name="keyed")
    write(clean_env, "[mainnet.account]\nexchange = 'x'\n"
                     "[mainnet.feeds.k]\nkind = 'keyed'\nrole = 'primary'\n")
    plan = build_plan("mainnet", pm=pm)
    with pytest.raises(ConfigError, match=r"^FEEDCTL_MAINNET__ACCOUNT__API_KEY is not set"):
        check_credentials(plan)


def test_mode_override_changes_roles(clean_env: Path, pm: FeedctlPluginManager) -> None:
    write(clean_env, "[t]\nmode='production'\n[t.account]\nexchange='scripted'\n")
    assert build_plan("t", pm=pm).roles == {"scripted_live": Role.PRIMARY,
                                            "scripted_poll": Role.STANDBY}
    plan = build_plan("t", pm=pm, mode="canary")
    assert plan.settings.mode is Mode.CANARY
    assert plan.roles == {"scripted_poll": Role.PRIMARY, "scripted_live": Role.SHADOW}
    assert plan.loaded.source_of("mode") == "command line (--mode)"
    assert build_plan("t", pm=pm, mode="rest").roles == {"scripted_poll": Role.PRIMARY}


def test_explicit_roles_need_exactly_one_primary(
    clean_env: Path, pm: FeedctlPluginManager
) -> None:
    write(clean_env, "[t.feeds.a]\nkind='scripted'\nrole='standby'\n")
    with pytest.raises(ConfigError, match="exactly one feed the role primary, found 0"):
        build_plan("t", pm=pm)


def test_missing_settings_file_is_a_clear_error(clean_env: Path, pm: FeedctlPluginManager) -> None:
    with pytest.raises(ConfigError, match=r"settings file 'nope\.toml' does not exist"):
        build_plan("t", settings_path="nope.toml", pm=pm)


def test_the_tool_variables_are_never_read_as_settings(
    clean_env: Path, pm: FeedctlPluginManager, monkeypatch: pytest.MonkeyPatch
) -> None:
    from feedctl.config import TOOL_VARIABLES

    write(clean_env, SCRIPTED_PROFILE)
    for name in TOOL_VARIABLES:
        if name not in ("FEEDCTL_PROFILE", "FEEDCTL_SETTINGS"):
            monkeypatch.setenv(name, "1")
    plan = build_plan("t", pm=pm)  # docs/monitor.md's variables set in the same shell
    assert plan.roles == {"main": Role.PRIMARY}
    assert not any(k in plan.loaded.raw for k in ("load_plugins", "monitor_token",
                                                  "monitor_url", "disable_plugin_autoload"))


def test_a_variable_for_a_profile_defined_nowhere_is_a_warning_naming_it(
    clean_env: Path, pm: FeedctlPluginManager, monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:
    write(clean_env, SCRIPTED_PROFILE)
    monkeypatch.setenv("FEEDCTL_EX__ACCOUNT__API_KEY", "k")  # as docs/plugins.md suggests
    with caplog.at_level("WARNING", logger="feedctl.config"):
        plan = build_plan("t", pm=pm)
    assert plan.roles == {"main": Role.PRIMARY}
    assert any("FEEDCTL_EX__ACCOUNT__API_KEY is ignored" in r.getMessage()
               for r in caplog.records)


def test_an_unscoped_variable_with_a_typo_is_a_warning_with_did_you_mean(
    clean_env: Path, pm: FeedctlPluginManager, monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:
    write(clean_env, SCRIPTED_PROFILE)
    monkeypatch.setenv("FEEDCTL_ROUTR__FAILOVER_AFTER", "2s")
    with caplog.at_level("WARNING", logger="feedctl.config"):
        build_plan("t", pm=pm)
    assert any("did you mean 'router'" in r.getMessage() for r in caplog.records)


def test_a_secret_in_the_settings_file_is_a_warning_pointing_to_secrets_toml(
    clean_env: Path, pm: FeedctlPluginManager, caplog: pytest.LogCaptureFixture,
) -> None:
    write(clean_env, SCRIPTED_PROFILE + "[t.account]\napi_key = 'AKIA-in-git'\n")
    with caplog.at_level("WARNING", logger="feedctl.config"):
        build_plan("t", pm=pm)
    (msg,) = [r.getMessage() for r in caplog.records if "account.api_key" in r.getMessage()]
    assert ".secrets.toml" in msg and "FEEDCTL_T__ACCOUNT__API_KEY" in msg
    assert "AKIA-in-git" not in msg


def test_a_secret_in_secrets_toml_is_not_warned_about(
    clean_env: Path, pm: FeedctlPluginManager, caplog: pytest.LogCaptureFixture,
) -> None:
    write(clean_env, SCRIPTED_PROFILE)
    write(clean_env, "[t.account]\napi_key = 'k'\n", name=".secrets.toml")
    with caplog.at_level("WARNING", logger="feedctl.config"):
        build_plan("t", pm=pm)
    assert not [r for r in caplog.records if "account.api_key" in r.getMessage()]


@pytest.mark.parametrize("bad", ["", "not a url", "ftp://127.0.0.1:9", "127.0.0.1:9",
                                 "wss://stream.example.com/ws"])
def test_a_rest_endpoint_that_is_no_http_url_is_refused_naming_it(
    clean_env: Path, pm: FeedctlPluginManager, bad: str
) -> None:
    write(clean_env, SCRIPTED_PROFILE + f"[t.endpoints]\nrest = {bad!r}\n")
    with pytest.raises(ConfigError, match=r"setting 'endpoints\.rest' in profile 't': .*"
                                          r"http:// or https:// URL with a host"):
        build_plan("t", pm=pm)


def test_a_socket_endpoint_must_be_a_ws_url(clean_env: Path, pm: FeedctlPluginManager) -> None:
    write(clean_env, SCRIPTED_PROFILE + "[t.endpoints]\nprivate_ws = 'https://x.example'\n")
    with pytest.raises(ConfigError, match=r"'endpoints\.private_ws'.*ws:// or wss://"):
        build_plan("t", pm=pm)


def test_overriding_some_endpoints_only_warns_naming_those_left_at_mainnet(
    clean_env: Path, pm: FeedctlPluginManager, caplog: pytest.LogCaptureFixture,
) -> None:
    write(clean_env, SCRIPTED_PROFILE + "[t.endpoints]\nrest = 'http://127.0.0.1:9000'\n")
    with caplog.at_level("WARNING", logger="feedctl.config"):
        build_plan("t", pm=pm)
    (msg,) = [r.getMessage() for r in caplog.records if "endpoints" in r.getMessage()]
    assert "endpoints rest are overridden" in msg
    assert ("private_ws are still at kind 'scripted''s mainnet defaults "
            "(wss://stream.scripted.example/private)") in msg


def test_a_feed_table_the_mode_does_not_select_is_validated_too(
    clean_env: Path, pm: FeedctlPluginManager
) -> None:
    write(clean_env, SCRIPTED_PROFILE + "[t.feeds.spare]\nkind = 'nosuchkind'\n")
    with pytest.raises(ConfigError, match=r"feed 'spare' names kind 'nosuchkind'.*not used"):
        build_plan("t", pm=pm)


def test_a_typo_inside_an_unselected_feed_table_is_reported(
    clean_env: Path, pm: FeedctlPluginManager
) -> None:
    write(clean_env, SCRIPTED_PROFILE + "[t.feeds.spare]\nkind = 'scripted'\nsymbl = 'X'\n")
    with pytest.raises(ConfigError, match=r"unknown setting 'feeds\.spare\.symbl'"):
        build_plan("t", pm=pm)


def test_a_malformed_settings_file_is_named(clean_env: Path, pm: FeedctlPluginManager) -> None:
    path = write(clean_env, "[t\nmode = 'rest'\n")
    with pytest.raises(ConfigError, match=rf"cannot read settings file '{path.resolve()}'"):
        build_plan("t", pm=pm)


class _Sized(StrictModel):
    size: int = 1
    limit: int = 10

    @model_validator(mode="after")
    def _fits(self) -> _Sized:
        if self.size > self.limit:  # a check of two keys: pydantic blames the section
            raise ValueError("size: must not exceed limit")
        return self


class _SizedPlugin:
    @hookimpl
    def feedctl_settings_sections(self, register: Any) -> None:
        register("sized", _Sized)


@pytest.mark.parametrize("where", ["file", "variable"])
def test_a_section_check_names_the_key_and_only_where_it_came_from(
    clean_env: Path, pm: FeedctlPluginManager, monkeypatch: pytest.MonkeyPatch, where: str,
) -> None:
    pm.register(_SizedPlugin(), name="sized")
    if where == "file":
        path = write(clean_env, SCRIPTED_PROFILE + "[t.sized]\nsize = 50\n")
        origin = f"(from {path.resolve()} [t.sized])"
    else:
        write(clean_env, SCRIPTED_PROFILE)
        monkeypatch.setenv("FEEDCTL_T__SIZED__SIZE", "50")
        origin = "(from FEEDCTL_T__SIZED__SIZE)"
    with pytest.raises(ConfigError) as err:
        build_plan("t", pm=pm)
    assert str(err.value) == (f"setting 'sized.size' in profile 't': must not exceed limit "
                              f"{origin}")


def test_a_missing_shipped_profile_says_the_plugins_are_switched_off(
    clean_env: Path, monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("FEEDCTL_DISABLE_PLUGIN_AUTOLOAD", "1")
    with pytest.raises(ConfigError, match=r"profile 'sim' is not defined; known profiles: none "
                                          r"\(define \[sim\] in settings.toml; "
                                          r"FEEDCTL_DISABLE_PLUGIN_AUTOLOAD is set"):
        build_plan("sim")


def test_a_bad_secret_value_is_never_quoted(
    clean_env: Path, pm: FeedctlPluginManager, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A secret of the wrong type (a table where text belongs) was quoted in the error
    ("got ..."), which went to the terminal and the logs."""
    write(clean_env, SCRIPTED_PROFILE + "[t.monitor]\ntoken = 987654.5\n")
    write(clean_env, "[t.account]\napi_key = [24681357]\n", ".secrets.toml")
    with pytest.raises(ConfigError) as err:
        build_plan("t", pm=pm)
    lines = [str(p) for p in err.value.problems]
    assert any("'account.api_key'" in line for line in lines)
    assert any("'monitor.token'" in line for line in lines)
    assert "24681357" not in str(err.value) and "987654" not in str(err.value)
    assert "(the value is a secret: not shown)" in str(err.value)


def test_digits_from_a_variable_are_a_key_or_uid_as_written(
    clean_env: Path, pm: FeedctlPluginManager, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A variable's value is parsed as TOML: a uid of digits (okx, bitmart...) was a
    number, refused as "Input should be a valid string"."""
    write(clean_env, SCRIPTED_PROFILE)
    monkeypatch.setenv("FEEDCTL_T__ACCOUNT__UID", "1234567")
    monkeypatch.setenv("FEEDCTL_T__ACCOUNT__API_KEY", "24681357")
    account = build_plan("t", pm=pm).settings.account
    assert account.uid == "1234567"
    assert account.api_key is not None and account.api_key.get_secret_value() == "24681357"
