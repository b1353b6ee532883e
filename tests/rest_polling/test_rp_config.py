"""Settings model and plugin registration (no network)."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from feedctl import FeedKind
from feedctl.plugins.rest_polling import RestPollingSettings, make_feed
from feedctl.plugins.rest_polling import plugin as rp_plugin

pytestmark = pytest.mark.unit


def test_defaults_are_the_old_behaviour() -> None:
    s = RestPollingSettings()
    assert s.interval == 10.0 and s.exchange is None and s.symbols is None
    assert s.settle_coins == ["USDT"] and s.mark_price_source == "auto"


def test_durations_and_normalisation() -> None:
    s = RestPollingSettings(interval="250ms", timeout="5s", settle_coins=["usdt", " usdc "],
                            symbols=[" BTCUSDT "])
    assert s.interval == 0.25 and s.timeout == 5.0
    assert s.settle_coins == ["USDT", "USDC"] and s.symbols == ["BTCUSDT"]


@pytest.mark.parametrize("bad", [
    {"interval": 0}, {"interval": "-1s"}, {"interval": "soon"}, {"timeout": 0},
    {"backoff_base": 2, "backoff_cap": 1}, {"symbols": []}, {"settle_coins": [""]},
    {"mark_price_source": "magic"}, {"intervall": 5}, {"reconnect_after": 0},
])
def test_bad_settings_are_refused(bad: dict) -> None:
    with pytest.raises(ValidationError):
        RestPollingSettings(**bad)


def test_registers_the_feed_kind() -> None:
    kinds: list[FeedKind] = []
    rp_plugin.feedctl_feed_kinds(kinds.append)
    (kind,) = kinds
    assert kind.name == "rest_polling" and kind.factory is make_feed
    assert kind.settings_model is RestPollingSettings
    assert kind.requires_credentials and kind.capabilities == frozenset({"resync"})


def test_entry_point_loads_the_plugin(monkeypatch: pytest.MonkeyPatch) -> None:
    from feedctl import build_plugin_manager

    monkeypatch.setenv("FEEDCTL_LOAD_PLUGINS", "rest_polling")
    monkeypatch.delenv("FEEDCTL_DISABLE_PLUGIN_AUTOLOAD", raising=False)
    pm = build_plugin_manager()
    assert pm.get_plugin("rest_polling") is rp_plugin, pm.load_errors
