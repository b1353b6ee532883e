"""Start-up checks: one clear FatalFeedError naming the setting, before any request."""

from __future__ import annotations

import pytest

from feedctl import AccountSettings, Endpoints, FatalFeedError
from feedctl.plugins.rest_polling import RestPollingSettings
from feedctl.plugins.rest_polling.client import PollerClient

from .conftest import make_harness, run

pytestmark = pytest.mark.unit


def create(settings: RestPollingSettings | None = None, **account: object) -> PollerClient:
    acc = AccountSettings(**{"api_key": "k3y", "api_secret": "s3cret", **account})
    return PollerClient.create(feed="r", settings=settings or RestPollingSettings(),
                               account=acc, endpoints=Endpoints(rest="http://127.0.0.1:1"))


def fatal_from_run(**kwargs: object) -> str:
    h = make_harness(**kwargs)  # type: ignore[arg-type]
    with pytest.raises(FatalFeedError) as info:
        run(h.feed.run(), timeout=5)
    assert h.ctx.counters.get("requests", 0) == 0  # decided without the network
    return str(info.value)


def test_exchange_without_fetch_positions() -> None:
    msg = fatal_from_run(exchange="bitstamp")
    assert msg == ("exchange 'bitstamp' does not support fetchPositions; rest_polling needs "
                   "it (feeds.r.exchange)")


def test_exchange_from_the_account_names_that_setting() -> None:
    with pytest.raises(FatalFeedError, match=r"\(account\.exchange\)"):
        create(exchange="bitstamp")


def test_unknown_exchange_id() -> None:
    assert "'nosuchex' is not a ccxt exchange id (feeds.r.exchange)" in fatal_from_run(
        exchange="nosuchex")


def test_missing_credentials() -> None:
    msg = fatal_from_run(api_key=None, api_secret=None)
    assert "FEEDCTL_<PROFILE>__ACCOUNT__API_KEY" in msg
    assert "FEEDCTL_<PROFILE>__ACCOUNT__API_SECRET" in msg
    with pytest.raises(FatalFeedError, match="credentials"):
        create(api_secret="")


def test_bybit_urls_default_to_the_profile_endpoint() -> None:
    client = create()
    api = client.exchange.urls["api"]
    assert set(api) >= {"spot", "futures", "v2", "public", "private"}
    assert all(url == "http://127.0.0.1:1" for url in api.values())
    assert client.exchange.options["fetchMarkets"]["types"] == ["linear"]
    assert client.paginates and client.id == "bybit"


def test_url_overrides_and_unknown_key() -> None:
    s = RestPollingSettings(urls={"*": "http://a:1/", "private": "http://b:2"})
    api = create(s).exchange.urls["api"]
    assert api["public"] == "http://a:1" and api["private"] == "http://b:2"
    with pytest.raises(FatalFeedError, match=r"no REST URL key 'nope' \(feeds\.r\.urls\)"):
        create(RestPollingSettings(urls={"nope": "http://x"}))


def test_inverse_settle_coin_loads_inverse_markets_and_ccxt_options_merge() -> None:
    s = RestPollingSettings(settle_coins=["USDT", "BTC"], ccxt_options={"recvWindow": 7000})
    ex = create(s).exchange
    assert ex.options["fetchMarkets"]["types"] == ["inverse", "linear"]
    assert ex.options["recvWindow"] == 7000
    assert ex.options["fetchMarkets"]["options"]  # deep merge kept ccxt's own keys


def test_mark_price_call_is_chosen_by_has_flags() -> None:
    # ccxt's bybit has no fetchMarkPrices: tickers are the fallback when a row lacks markPrice
    assert create().mark_call == "fetchTickers"
    assert create(RestPollingSettings(mark_price_source="positions")).mark_call is None
    with pytest.raises(FatalFeedError, match=r"no fetchMarkPrices; .*mark_price_source"):
        create(RestPollingSettings(mark_price_source="mark_prices"))


def test_ccxt_client_is_configured() -> None:
    ex = create(RestPollingSettings(timeout="2.5s")).exchange
    assert ex.enableRateLimit is True and ex.timeout == 2500
    assert ex.has["fetchCurrencies"] is False


def test_secrets_are_redacted_and_not_in_repr() -> None:
    client = create()
    assert client.redact("GET /x?api_key=k3y&sign=s3cret") == "GET /x?api_key=***&sign=***"
    h = make_harness(api_key="k3y", api_secret="s3cret")
    assert "s3cret" not in repr(h.feed) and "k3y" not in repr(h.ctx.account)
