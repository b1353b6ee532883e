"""What `feedctl check` knows of a ccxt exchange without importing ccxt (read from its
source) is what the feed finds in the exchange it builds, and both refuse alike."""

from __future__ import annotations

import shutil
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import ccxt.async_support as ccxt_async
import pytest

from feedctl import AccountSettings, Endpoints, FatalFeedError, env_var_name
from feedctl.plugins.rest_polling import RestPollingSettings
from feedctl.plugins.rest_polling.client import PollerClient
from feedctl.plugins.rest_polling.facts import facts_of, read_facts
from feedctl.plugins.rest_polling.plugin import check

pytestmark = pytest.mark.unit

KEYS = {"api_key": "k3y", "api_secret": "s3cret"}


def var(setting: str) -> str:
    """The variables of profile x (what the plan hands the check)."""
    return env_var_name("x", setting)


def test_the_source_reading_matches_every_built_ccxt_exchange() -> None:
    """has (the flags the poller reads), requiredCredentials, urls['test'] and the
    urls['api'] keys, for each of the installed ccxt's exchanges."""
    differ = []
    for ex_id in ccxt_async.exchanges:
        built = facts_of(getattr(ccxt_async, ex_id)())
        if read_facts(ex_id) != built:
            differ.append((ex_id, read_facts(ex_id), built))
    assert not differ
    assert len(ccxt_async.exchanges) > 50


def test_the_facts_check_relies_on_vary_across_exchanges() -> None:
    """The comparison above is no comparison of empty readings."""
    okx, bitstamp, kraken = (read_facts(e) for e in ("okx", "bitstamp", "krakenfutures"))
    assert okx is not None and bitstamp is not None and kraken is not None
    assert "password" in okx.required_credentials and "fetchPositions" in okx.has
    assert "fetchPositions" not in bitstamp.has
    assert okx.has_sandbox and read_facts("bybit") is not None
    assert read_facts("nosuchex") is None


def _both(settings: RestPollingSettings, environment: str = "mainnet",
          endpoints: Endpoints | None = None, **account: object) -> tuple[list[str], str]:
    """(what check says, what the feed raises when it builds its client)."""
    acc = AccountSettings(**{**KEYS, **account})  # type: ignore[arg-type]
    ep = endpoints or Endpoints()
    said = list(check("r", settings, acc, environment, ep, var))
    with pytest.raises(FatalFeedError) as info:
        PollerClient.create(feed="r", settings=settings, account=acc, endpoints=ep,
                            profile="x", environment=environment)
    return said, str(info.value)


@pytest.mark.parametrize(("settings", "environment", "account", "message"), [
    (RestPollingSettings(exchange="okx"), "mainnet", {},
     "exchange 'okx' (feeds.r.exchange) also needs password: export "
     "FEEDCTL_X__ACCOUNT__PASSWORD or put password in .secrets.toml"),
    (RestPollingSettings(), "mainnet", {"exchange": "bitstamp"},
     "exchange 'bitstamp' does not support fetchPositions; rest_polling needs it "
     "(account.exchange)"),
    (RestPollingSettings(exchange="kraken"), "testnet", {},
     "ccxt has no testnet for 'kraken': set endpoints.rest (or feeds.r.urls) to its REST URL"),
    (RestPollingSettings(exchange="hyperliquid"), "mainnet", {},
     "exchange 'hyperliquid' (feeds.r.exchange) signs with privateKey and walletAddress, "
     "which feedctl's account settings do not carry: rest_polling cannot serve it"),
    (RestPollingSettings(mark_price_source="mark_prices"), "mainnet", {},
     "this exchange has no fetchMarkPrices; choose another feeds.r.mark_price_source"),
    (RestPollingSettings(urls={"nope": "http://127.0.0.1:1"}), "mainnet", {},
     "bybit has no REST URL key 'nope' (feeds.r.urls); known keys: futures, private, "
     "public, spot, v2, or '*' for all"),
    (RestPollingSettings(), "demo", {},
     "rest_polling knows no 'demo' URL for 'bybit': set endpoints.rest (or feeds.r.urls)"),
])
def test_check_says_what_the_feed_raises(settings: RestPollingSettings, environment: str,
                                         account: dict[str, object], message: str) -> None:
    said, raised = _both(settings, environment, **account)
    assert said == [message]
    assert raised == message


def test_a_set_passphrase_passes_both() -> None:
    acc = AccountSettings(**KEYS, password="p4ss")  # type: ignore[arg-type]
    s = RestPollingSettings(exchange="okx")
    assert list(check("r", s, acc, "mainnet", Endpoints(), var)) == []
    PollerClient.create(feed="r", settings=s, account=acc, endpoints=Endpoints(), profile="x")


def test_check_lists_every_problem_of_a_feed() -> None:
    """The feed stops at the first; check lists them all."""
    said, raised = _both(RestPollingSettings(exchange="bitstamp", mark_price_source="mark_prices",
                                             urls={"nope": "http://127.0.0.1:1"}))
    assert len(said) == 3 and said[0] == raised
    assert "fetchPositions" in said[0] and "fetchMarkPrices" in said[1] and "'nope'" in said[2]


def test_endpoints_a_service_provides_are_not_judged() -> None:
    acc = AccountSettings(**KEYS)  # type: ignore[arg-type]
    assert list(check("r", RestPollingSettings(), acc, "sim", None, var)) == []


def test_check_does_not_import_ccxt() -> None:
    code = ("import sys\n"
            "from feedctl import AccountSettings, Endpoints\n"
            "from feedctl.plugins.rest_polling.plugin import check\n"
            "from feedctl.plugins.rest_polling import RestPollingSettings\n"
            "out = check('r', RestPollingSettings(exchange='okx'), AccountSettings(), "
            "'testnet', Endpoints(), str.upper)\n"
            "assert out and 'password' in out[0], out\n"
            "assert 'ccxt' not in sys.modules, 'ccxt imported'\n")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          timeout=60)
    assert done.returncode == 0, done.stderr


def _ccxt_copy(tmp_path: Path, edit: Callable[[str], str]) -> Path:
    """ccxt's base exchange and okx sources in a folder of their own, okx's edited."""
    from feedctl.plugins.rest_polling import facts

    real = facts._ccxt_folder()
    assert real is not None
    (tmp_path / "base").mkdir(parents=True)
    (tmp_path / "async_support").mkdir()
    shutil.copy(real / "base" / "exchange.py", tmp_path / "base" / "exchange.py")
    source = (real / "async_support" / "okx.py").read_text("utf-8")
    (tmp_path / "async_support" / "okx.py").write_text(edit(source), "utf-8")
    return tmp_path


def test_a_source_written_otherwise_is_refused_by_the_reading(tmp_path: Path) -> None:
    from feedctl.plugins.rest_polling.facts import source_facts

    same = _ccxt_copy(tmp_path / "same", lambda s: s)
    assert source_facts(same, "okx") == read_facts("okx")
    other = _ccxt_copy(tmp_path / "other",
                       lambda s: s.replace("    def describe(self)", "    def _describe(self)"))
    with pytest.raises(ValueError):
        source_facts(other, "okx")


def test_a_source_the_reading_cannot_read_falls_back_to_ccxt(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A ccxt release that writes its exchanges otherwise: check imports ccxt (slower)
    rather than guess."""
    from feedctl.plugins.rest_polling import facts

    other = _ccxt_copy(tmp_path, lambda s: s.replace("return self.deep_extend(", "return ("))
    monkeypatch.setattr(facts, "_ccxt_folder", lambda: other)
    facts.read_facts.cache_clear()
    try:
        with pytest.raises(ValueError):
            facts.source_facts(other, "okx")
        assert facts.read_facts("okx") == facts_of(ccxt_async.okx())
    finally:
        facts.read_facts.cache_clear()
