"""Signatures (cross-checked with pybit's and ccxt's code), the server clock, settings."""

from __future__ import annotations

import hashlib
import hmac
import time

import pytest
from pydantic import SecretStr, ValidationError

from feedctl import Category, FeedKind, build_plugin_manager, redact
from feedctl.plugins.bybit_hybrid import HybridSettings
from feedctl.plugins.bybit_hybrid.signing import (
    ServerClock,
    rest_headers,
    ws_auth_args,
)

pytestmark = pytest.mark.unit
KEY, SECRET = SecretStr("XXXXXXXXXX"), SecretStr("YYYYYYYYYYYYYYYYYYYYYYYYYYYYYY")


def test_ws_auth_matches_pybit_and_ccxt() -> None:
    from ccxt.base.exchange import Exchange
    from pybit._http_manager import generate_signature

    expires = 1_700_000_010_000
    key, exp, sig = ws_auth_args(KEY, SECRET, expires)
    assert key == "XXXXXXXXXX" and exp == expires
    assert sig == generate_signature(False, SECRET.get_secret_value(), f"GET/realtime{expires}")
    assert sig == Exchange.hmac(f"GET/realtime{expires}".encode(),
                                SECRET.get_secret_value().encode(), hashlib.sha256, "hex")
    assert sig == sig.lower() and len(sig) == 64


def test_rest_headers_match_pybit() -> None:
    from pybit._http_manager import generate_signature

    query = "category=linear&settleCoin=USDT&limit=200"
    headers = rest_headers(KEY, SECRET, 1_700_000_000_000, 5000, query)
    expected = generate_signature(
        False, SECRET.get_secret_value(), f"1700000000000XXXXXXXXXX5000{query}")
    assert headers == {
        "X-BAPI-API-KEY": "XXXXXXXXXX", "X-BAPI-TIMESTAMP": "1700000000000",
        "X-BAPI-RECV-WINDOW": "5000", "X-BAPI-SIGN": expected,
    }
    assert expected == hmac.new(SECRET.get_secret_value().encode(),
                                f"1700000000000XXXXXXXXXX5000{query}".encode(),
                                hashlib.sha256).hexdigest()
    assert SECRET.get_secret_value() not in repr(headers)


def test_redact() -> None:
    text = "error sign! origin_string[1688639403423XXXXXXXXXX5000category=linear]"
    want = "error sign! origin_string[1688639403423***5000category=linear]"
    assert redact(text, KEY, SECRET, None) == want


def test_server_clock_uses_rtt_midpoint() -> None:
    clock = ServerClock()
    sent = time.time_ns()
    offset = clock.update(sent // 1_000_000 + 5_000 + 10, sent, sent + 20_000_000)
    assert abs(offset - 5_000) <= 1 and clock.rtt_ms == 20
    assert abs(clock.now_ms() - (time.time_ns() // 1_000_000 + 5_000)) < 50


def test_settings_defaults_and_durations() -> None:
    s = HybridSettings()
    assert (s.ping_interval, s.pong_timeout, s.audit_interval) == (20, 10, 60)
    assert s.max_connection_lifetime == 3600 and s.max_active_time_param is None
    assert s.categories == [Category.LINEAR] and s.settle_coins == ["USDT"]
    s = HybridSettings(stale_after="1500ms", max_connection_lifetime="1h",
                       private_max_active_time="2m", settle_coins=["usdt", "usdc"],
                       categories=["linear", "inverse"], audit_interval=0)
    assert s.stale_after == 1.5 and s.max_connection_lifetime == 3600
    assert s.max_active_time_param == "120s" and s.settle_coins == ["USDT", "USDC"]
    assert HybridSettings(max_connection_lifetime=None).max_connection_lifetime is None


@pytest.mark.parametrize(
    ("field", "value", "words"),
    [
        ("private_max_active_time", "10s", "between 30s and 600s"),
        ("ping_interval", 0, "ping_interval"),
        ("backoff_cap", 0.1, "backoff_cap"),
        ("recv_window", 10, "recv_window"),
        ("categories", ["spot"], "categories"),
        ("stale_after", "soon", "duration"),
        ("typo_setting", 1, "typo_setting"),
    ],
)
def test_settings_refuse_bad_values_naming_them(field: str, value: object, words: str) -> None:
    with pytest.raises(ValidationError) as info:
        HybridSettings(**{field: value})
    assert words in str(info.value)


def test_plugin_registers_the_kind() -> None:
    from feedctl.plugins.bybit_hybrid import plugin

    pm = build_plugin_manager([plugin], load_entrypoints=False)
    kinds: list[FeedKind] = []
    pm.hook.feedctl_feed_kinds(register=kinds.append)
    (kind,) = kinds
    assert isinstance(kind, FeedKind) and kind.name == "bybit_hybrid"
    assert kind.settings_model is HybridSettings and kind.requires_credentials
    assert kind.capabilities == frozenset({"resync"})
