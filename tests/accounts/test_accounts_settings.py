"""`[<profile>.accounts.<name>]`: accounts, their keys, per-account feed settings, and
`feedctl check`; the single `[<profile>.account]` form is unchanged."""

from __future__ import annotations

from pathlib import Path

import pytest
from click.testing import CliRunner

from feedctl import ConfigError
from feedctl.cli import cli
from feedctl.manager import FeedctlPluginManager
from feedctl.plan import build_plan, check_credentials
from tests.accounts.conftest import SECRETS, THREE, write

pytestmark = pytest.mark.unit


def test_a_profile_lists_its_accounts_each_with_its_feed_plans(
        clean_env: Path, pm: FeedctlPluginManager) -> None:
    write(clean_env, THREE)
    (clean_env / ".secrets.toml").write_text(SECRETS)
    plan = build_plan("t", settings_path=clean_env / "settings.toml", pm=pm)
    assert [a.name for a in plan.accounts] == ["alpha", "beta", "gamma"]
    symbols = {a.name: a.feeds[0].settings.symbols for a in plan.accounts}
    assert symbols == {"alpha": ["BTCUSDT", "ETHUSDT"], "beta": ["BTCUSDT", "ETHUSDT"],
                       "gamma": ["SOLUSDT"]}
    assert {a.account.exchange for a in plan.accounts} == {"acctx"}
    assert plan.accounts[1].account.api_key is not None
    assert plan.accounts[1].account.api_key.get_secret_value() == "kb"


def test_account_keys_come_from_their_profile_scoped_variables(
        clean_env: Path, pm: FeedctlPluginManager, monkeypatch: pytest.MonkeyPatch) -> None:
    write(clean_env, THREE)
    monkeypatch.setenv("FEEDCTL_T__ACCOUNTS__BETA__API_KEY", "from-env")
    monkeypatch.setenv("FEEDCTL_T__ACCOUNTS__BETA__API_SECRET", "s")
    plan = build_plan("t", settings_path=clean_env / "settings.toml", pm=pm)
    beta = next(a for a in plan.accounts if a.name == "beta")
    assert beta.account.api_key is not None
    assert beta.account.api_key.get_secret_value() == "from-env"


def test_an_account_without_keys_is_refused_naming_its_variable(
        clean_env: Path, pm: FeedctlPluginManager, monkeypatch: pytest.MonkeyPatch) -> None:
    write(clean_env, THREE)
    for name in ("ALPHA", "GAMMA"):
        monkeypatch.setenv(f"FEEDCTL_T__ACCOUNTS__{name}__API_KEY", "k")
        monkeypatch.setenv(f"FEEDCTL_T__ACCOUNTS__{name}__API_SECRET", "s")
    plan = build_plan("t", settings_path=clean_env / "settings.toml", pm=pm)
    with pytest.raises(ConfigError) as err:
        check_credentials(plan)
    assert "account 'beta'" in str(err.value)
    assert "FEEDCTL_T__ACCOUNTS__BETA__API_KEY" in str(err.value)
    assert "ALPHA" not in str(err.value) and "GAMMA" not in str(err.value)


def test_check_lists_the_accounts_and_refuses_the_one_without_keys(
        clean_env: Path, pm: FeedctlPluginManager, monkeypatch: pytest.MonkeyPatch) -> None:
    write(clean_env, THREE)
    (clean_env / ".secrets.toml").write_text(SECRETS.replace('api_key = "kg"\n', ""))
    monkeypatch.setattr("feedctl.cli.plugin_manager", lambda: pm)
    result = CliRunner().invoke(cli, ["check", "--profile", "t", "--settings",
                                      str(clean_env / "settings.toml")])
    assert result.exit_code != 0
    assert "accounts: 3" in result.output
    assert "alpha" in result.output and "gamma" in result.output
    assert "FEEDCTL_T__ACCOUNTS__GAMMA__API_KEY" in result.output


def test_an_account_name_that_cannot_be_a_variable_is_refused(
        clean_env: Path, pm: FeedctlPluginManager) -> None:
    write(clean_env, THREE + "[t.accounts.Bad-Name]\n")
    with pytest.raises(ConfigError) as err:
        build_plan("t", settings_path=clean_env / "settings.toml", pm=pm)
    assert "accounts" in str(err.value)


def test_the_single_account_form_is_one_account_named_as_before(
        clean_env: Path, pm: FeedctlPluginManager) -> None:
    write(clean_env, "[t.account]\nexchange = 'acctx'\nname = 'solo'\n"
                     "[t.feeds.acct_live]\nrole = 'primary'\n")
    plan = build_plan("t", settings_path=clean_env / "settings.toml", pm=pm)
    assert not plan.multi
    assert [a.name for a in plan.accounts] == ["solo"]
    assert plan.accounts[0].feeds is plan.feeds and plan.accounts[0].settings is plan.settings
    with pytest.raises(ConfigError) as err:
        check_credentials(plan)
    assert "FEEDCTL_T__ACCOUNT__API_KEY is not set" in str(err.value)
    assert "account '" not in str(err.value)


def test_an_account_key_in_the_settings_file_is_used_with_a_warning(
        clean_env: Path, pm: FeedctlPluginManager, caplog: pytest.LogCaptureFixture) -> None:
    write(clean_env, THREE.replace("[t.accounts.beta]\n",
                                   '[t.accounts.beta]\napi_key = "in-the-file"\n'))
    with caplog.at_level("WARNING", logger="feedctl.config"):
        plan = build_plan("t", settings_path=clean_env / "settings.toml", pm=pm)
    beta = next(a for a in plan.accounts if a.name == "beta")
    assert beta.account.api_key is not None
    assert "accounts.beta.api_key is set in" in caplog.text
    assert "FEEDCTL_T__ACCOUNTS__BETA__API_KEY" in caplog.text
    assert "in-the-file" not in caplog.text
