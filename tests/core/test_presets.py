"""Modes resolved per exchange from what the kinds declare; endpoints from the kinds;
profiles shipped by plugins. The core names no exchange."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from feedctl import (
    ConfigError,
    Endpoints,
    FeedKind,
    HttpEndpoint,
    PluginError,
    Role,
    Rollout,
    build_plugin_manager,
    hookimpl,
)
from feedctl.manager import FeedctlPluginManager
from feedctl.plan import build_plan
from tests.core import scripted
from tests.core.scripted import ScriptedFeed, ScriptedSettings

pytestmark = pytest.mark.unit


def write(folder: Path, text: str) -> Path:
    path = folder / "settings.toml"
    path.write_text(text)
    return path


class Kinds:
    """A plugin registering the kinds it is given."""

    def __init__(self, *kinds: FeedKind) -> None:
        self.kinds = kinds

    @hookimpl
    def feedctl_feed_kinds(self, register: Any) -> None:
        for kind in self.kinds:
            register(kind)


def kind(name: str, **fields: Any) -> FeedKind:
    return FeedKind(name=name, factory=ScriptedFeed, settings_model=ScriptedSettings,
                    requires_credentials=False, **fields)


def manager(*kinds: FeedKind) -> FeedctlPluginManager:
    return build_plugin_manager([scripted, Kinds(*kinds)], load_entrypoints=False)


def test_the_preset_picks_the_live_kind_of_the_profiles_exchange(
        clean_env: Path, pm: FeedctlPluginManager) -> None:
    write(clean_env, "[t.account]\nexchange = 'scripted'\n")
    plan = build_plan("t", pm=pm)
    assert plan.roles == {"scripted_live": Role.PRIMARY, "scripted_poll": Role.STANDBY}


def test_a_kind_for_exactly_the_exchange_wins_over_one_for_any(clean_env: Path) -> None:
    own_poller = kind("own_poll", exchange="scripted", rollout=Rollout.FALLBACK)
    write(clean_env, "[t]\nmode = 'rest'\n[t.account]\nexchange = 'scripted'\n")
    assert build_plan("t", pm=manager(own_poller)).roles == {"own_poll": Role.PRIMARY}


def test_a_feed_table_of_a_fitting_kind_is_the_one_used(
        clean_env: Path, pm: FeedctlPluginManager) -> None:
    write(clean_env, "[t]\nmode = 'rest'\n[t.account]\nexchange = 'scripted'\n"
                     "[t.feeds.slow]\nkind = 'scripted_poll'\ninterval = 0.5\n")
    plan = build_plan("t", pm=pm)
    assert plan.roles == {"slow": Role.PRIMARY} and plan.feeds[0].settings.interval == 0.5


def test_an_exchange_no_kind_serves_live_is_named_with_the_known_ones(
        clean_env: Path, pm: FeedctlPluginManager) -> None:
    write(clean_env, "[t.account]\nexchange = 'okx'\n")
    with pytest.raises(ConfigError, match=r"mode 'production' of profile 't' needs a live feed "
                                          r"for exchange 'okx', and no loaded plugin provides "
                                          r"one \(exchanges of the loaded feed kinds: scripted\)"):
        build_plan("t", pm=pm)


def test_a_profile_must_name_its_exchange(clean_env: Path, pm: FeedctlPluginManager) -> None:
    write(clean_env, "[t]\nmode = 'rest'\n")
    with pytest.raises(ConfigError, match=r"profile 't' names no exchange; set \[t.account\] "
                                          r"exchange = \"...\""):
        build_plan("t", pm=pm)


def test_explicit_roles_of_one_exchanges_kinds_imply_the_exchange(
        clean_env: Path, pm: FeedctlPluginManager) -> None:
    write(clean_env, "[t.feeds.main]\nkind = 'scripted'\nrole = 'primary'\n")
    assert build_plan("t", pm=pm).settings.account.exchange == "scripted"


def test_two_live_kinds_for_one_exchange_ask_for_a_choice(clean_env: Path) -> None:
    other = kind("other_live", exchange="scripted", rollout=Rollout.LIVE)
    write(clean_env, "[t.account]\nexchange = 'scripted'\n")
    with pytest.raises(ConfigError, match=r"kinds other_live, scripted_live can each be the "
                                          r"live feed for 'scripted'; define \[t.feeds.<name>\]"):
        build_plan("t", pm=manager(other))


def test_an_explicit_role_for_another_exchanges_kind_is_refused(clean_env: Path) -> None:
    other = kind("okx_live", exchange="okx", rollout=Rollout.LIVE)
    write(clean_env, "[t.account]\nexchange = 'scripted'\n"
                     "[t.feeds.main]\nkind = 'okx_live'\nrole = 'primary'\n")
    with pytest.raises(ConfigError, match=r"feed 'main' \(kind 'okx_live'\) serves exchange "
                                          r"'okx', but profile 't' is for 'scripted'"):
        build_plan("t", pm=manager(other))


def test_endpoints_are_the_kinds_defaults_for_the_environment(
        clean_env: Path, pm: FeedctlPluginManager) -> None:
    write(clean_env, "[t.account]\nexchange = 'scripted'\n"
                     "[t.endpoints]\nprivate_ws = 'ws://127.0.0.1:9/private'\n")
    plan = build_plan("t", pm=pm)
    live = next(f for f in plan.feeds if f.name == "scripted_live")
    assert live.endpoints.model_dump() == {"rest": "https://api.scripted.example",
                                           "private_ws": "ws://127.0.0.1:9/private"}


def test_an_environment_the_kind_has_no_defaults_for_names_what_to_set(
        clean_env: Path, pm: FeedctlPluginManager) -> None:
    write(clean_env, "[t]\nenvironment = 'testnet'\n[t.account]\nexchange = 'scripted'\n")
    with pytest.raises(ConfigError, match=r"feed kind 'scripted_live' needs endpoint 'rest' "
                                          r"and has no default for environment 'testnet' \(it "
                                          r"has defaults for: mainnet\); set endpoints.rest"):
        build_plan("t", pm=pm)


def test_an_endpoint_no_feed_declares_is_refused_with_did_you_mean(
        clean_env: Path, pm: FeedctlPluginManager) -> None:
    write(clean_env, "[t.account]\nexchange = 'scripted'\n"
                     "[t.endpoints]\nprivat_ws = 'ws://127.0.0.1:9'\n")
    with pytest.raises(ConfigError, match=r"unknown endpoint 'endpoints.privat_ws' in profile "
                                          r"'t' .*take private_ws, rest; did you mean "
                                          r"'private_ws'\?"):
        build_plan("t", pm=pm)


@pytest.mark.parametrize(("fields", "message"), [
    ({"exchange": "Not An Id"}, "an exchange id is a lower-case identifier"),
    ({"rollout": Rollout.LIVE}, "with a rollout slot but no exchange"),
    ({"rollout": "live", "exchange": "x"}, "use feedctl.Rollout.LIVE"),
    ({"endpoints_model": dict}, "which is not a subclass of feedctl.Endpoints"),
])
def test_a_kinds_declaration_is_checked_naming_the_plugin(
        fields: dict[str, Any], message: str) -> None:
    from feedctl.manager import collect_registry

    with pytest.raises(PluginError, match=rf"plugin 'bad' registered feed kind 'k'.*{message}"):
        collect_registry(_named("bad", kind("k", **fields)))


def _named(name: str, *kinds: FeedKind) -> FeedctlPluginManager:
    pm = build_plugin_manager([], load_entrypoints=False)
    pm.register(Kinds(*kinds), name=name)
    return pm


def test_default_endpoints_the_kinds_model_refuses_are_a_plugin_error() -> None:
    from feedctl.manager import collect_registry

    class Urls(Endpoints):
        rest: HttpEndpoint

    bad = kind("k", exchange="x", endpoints_model=Urls,
               default_endpoints={"mainnet": {"rest": "ftp://nowhere"}})
    with pytest.raises(PluginError, match=r"default endpoints for 'mainnet' that its "
                                          r"endpoints_model refuses: rest"):
        collect_registry(_named("bad", bad))


class ShipsProfiles:
    def __init__(self, path: Path) -> None:
        self.path = path

    @hookimpl
    def feedctl_profiles(self) -> Path:
        return self.path


def test_feedctl_profiles_ships_a_profile_the_settings_file_overrides(
        clean_env: Path, tmp_path_factory: pytest.TempPathFactory) -> None:
    shipped = tmp_path_factory.mktemp("plugin") / "profiles.toml"
    shipped.write_text("[demo]\nmode = 'rest'\n[demo.account]\nexchange = 'scripted'\n")
    pm = build_plugin_manager([scripted], load_entrypoints=False)
    pm.register(ShipsProfiles(shipped), name="shipper")
    assert build_plan("demo", pm=pm).roles == {"scripted_poll": Role.PRIMARY}
    write(clean_env, "[demo]\nmode = 'production'\n")
    plan = build_plan("demo", pm=pm)
    assert plan.roles == {"scripted_live": Role.PRIMARY, "scripted_poll": Role.STANDBY}
    assert plan.loaded.source_of("account.exchange") == f"{shipped} [demo.account]"


def test_feedctl_profiles_naming_no_file_is_a_plugin_error(clean_env: Path) -> None:
    pm = build_plugin_manager([scripted], load_entrypoints=False)
    pm.register(ShipsProfiles(Path("/nonexistent/profiles.toml")), name="shipper")
    with pytest.raises(PluginError, match=r"plugin 'shipper' ships profiles in "
                                          r"'/nonexistent/profiles.toml', which is not a file"):
        build_plan("demo", pm=pm)


def test_the_core_names_no_exchange() -> None:
    """framework/ (the core, its monitor and its kit) holds no exchange's name: exchanges
    come from the kinds the plugins declare."""
    import re

    core = Path(__file__).resolve().parents[2] / "framework"
    names = re.compile(r"bybit|binance|okx|kucoin|bitget|deribit", re.IGNORECASE)
    found = [f"{p.relative_to(core)}:{n}" for p in core.rglob("*")
             if p.suffix in {".py", ".toml", ".js", ".html", ".css"}
             for n, line in enumerate(p.read_text().splitlines(), 1) if names.search(line)]
    assert found == []


def test_a_category_one_feed_covers_and_the_other_does_not_is_warned_about(
        clean_env: Path, caplog: pytest.LogCaptureFixture) -> None:
    write(clean_env, "[t.account]\nexchange = 'bybit'\n"
                     "[t.feeds.bybit_hybrid]\ncategories = ['linear', 'inverse']\n")
    with caplog.at_level("WARNING", logger="feedctl.config"):
        build_plan("t")
    (msg,) = [r.getMessage() for r in caplog.records if "covers" in r.getMessage()]
    assert msg == ("profile 't': feed 'bybit_hybrid' covers inverse:*, which feed "
                   "'rest_polling' does not list; positions there are not watched while "
                   "'rest_polling' delivers — widen feeds.rest_polling (categories, "
                   "settle_coins)")


def test_feeds_covering_the_same_scope_are_not_warned_about(
        clean_env: Path, caplog: pytest.LogCaptureFixture) -> None:
    write(clean_env, "[t.account]\nexchange = 'bybit'\n"
                     "[t.feeds.bybit_hybrid]\ncategories = ['linear', 'inverse']\n"
                     "[t.feeds.rest_polling]\nsettle_coins = ['USDT', 'BTC', 'ETH']\n")
    with caplog.at_level("WARNING", logger="feedctl.config"):
        build_plan("t")
    assert [r.getMessage() for r in caplog.records if "covers" in r.getMessage()] == [
        "profile 't': feed 'bybit_hybrid' covers inverse:*, which feed 'rest_polling' does "
        "not list; positions there are not watched while 'rest_polling' delivers — widen "
        "feeds.rest_polling (categories, settle_coins)"]
