"""Signing (Binance's documented example), settings validation, the kind's shape."""

from __future__ import annotations

import pytest
from pydantic import SecretStr, ValidationError

from feedctl.plugins.binance_usdm.config import BinanceEndpoints, BinanceSettings
from feedctl.plugins.binance_usdm.plugin import KIND
from feedctl.plugins.binance_usdm.signing import (
    ServerClock,
    key_header,
    signature,
    signed_query,
)

pytestmark = pytest.mark.unit

#: The key pair of Binance's "SIGNED Endpoint Examples" (USDⓈ-M futures general info).
DOC_SECRET = SecretStr("2b5eb11e18796d12d88f13dc27dbbd02c2cc51ff7059765ed9821957d82bb4d9")


def test_signature_matches_binances_documented_example() -> None:
    query = ("symbol=BTCUSDT&side=BUY&type=LIMIT&quantity=1&price=9000&timeInForce=GTC"
             "&recvWindow=5000&timestamp=1591702613943")
    assert signature(DOC_SECRET, query) == (
        "3c661234138461fcc7a7d8746c6558c9842d4e10870d2ecbedf7777cad694af9")


def test_signed_query_appends_recv_window_timestamp_then_signature() -> None:
    query = signed_query(DOC_SECRET, [("symbol", "BTCUSDT"), ("side", "BUY"), ("type", "LIMIT"),
                                      ("quantity", "1"), ("price", "9000"),
                                      ("timeInForce", "GTC")], 1591702613943, 5000)
    assert query.endswith("&recvWindow=5000&timestamp=1591702613943&signature="
                          "3c661234138461fcc7a7d8746c6558c9842d4e10870d2ecbedf7777cad694af9")


def test_the_key_goes_in_the_mbx_header() -> None:
    assert key_header(SecretStr("abc")) == {"X-MBX-APIKEY": "abc"}


@pytest.mark.parametrize("bad", [{"keepalive_interval": "60m"},
                                 {"max_connection_lifetime": "24h"},
                                 {"mark_speed": "250ms"}, {"backoff_cap": 0.1},
                                 {"recv_window": 60_001}, {"no_such_key": 1}])
def test_bad_settings_are_refused(bad: dict[str, object]) -> None:
    with pytest.raises(ValidationError):
        BinanceSettings.model_validate(bad)


def test_mark_stream_and_staleness_follow_the_speed() -> None:
    fast, slow = BinanceSettings(), BinanceSettings(mark_speed="3s")
    assert (fast.mark_suffix, fast.stale_limit) == ("@markPrice@1s", 3.0)
    assert (slow.mark_suffix, slow.stale_limit) == ("@markPrice", 9.0)


def test_the_kind_claims_resync_and_needs_credentials() -> None:
    assert KIND.name == "binance_usdm" and KIND.requires_credentials
    assert "resync" in KIND.capabilities


def test_endpoints_must_be_urls_of_the_right_scheme() -> None:
    from feedctl.plugins.binance_usdm.constants import DEFAULT_ENDPOINTS

    for env in DEFAULT_ENDPOINTS.values():
        BinanceEndpoints.model_validate(env)
    with pytest.raises(ValidationError, match="ws:// or wss://"):
        BinanceEndpoints(rest="https://h", market_ws="https://h/market", private_ws="wss://h")


@pytest.mark.unit
def test_the_clock_error_is_half_the_measured_round_trip() -> None:
    clock = ServerClock()
    assert clock.error_ms() == 1000  # never measured
    # the server answered 1_000_073 in a round trip of 148 ms around local 1_000_000 ms:
    # the offset says +73, but the server may have read its clock anywhere inside it
    clock.update(1_000_073, 999_926 * 1_000_000, 1_000_074 * 1_000_000)
    assert clock.offset_ms == 73
    assert clock.error_ms() == 75
