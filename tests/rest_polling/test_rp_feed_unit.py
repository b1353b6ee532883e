"""The polling loop against scripted ccxt answers (no network): error classes,
malformed and partial answers, slow-down, reconnect, state transitions."""

from __future__ import annotations

from collections.abc import Callable
from decimal import Decimal
from typing import Any

import ccxt.async_support as ccxt_async
import pytest

from feedctl import FatalFeedError, FeedState
from feedctl.plugins.rest_polling.client import PollerClient

from .conftest import Harness, make_harness, run

pytestmark = pytest.mark.unit

NOW = 1_700_000_000_000


def row(symbol: str, size: str = "1", side: str = "Buy", seq: int = 1, mark: str = "101",
        entry: str = "100") -> dict[str, Any]:
    return {"symbol": symbol, "side": side if size != "0" else "", "size": size,
            "avgPrice": entry, "markPrice": mark, "leverage": "10", "positionIdx": 0,
            "seq": seq, "updatedTime": str(NOW + seq), "liqPrice": "", "takeProfit": "0",
            "stopLoss": "0", "trailingStop": "0"}


class FakeListing:
    """Answers privateGetV5PositionList from ``pages`` (lists of rows), or raises/returns
    what ``script`` says for the next calls."""

    def __init__(self) -> None:
        self.rows: list[dict[str, Any]] = []
        self.page_size = 200
        self.script: list[Any] = []
        self.calls: list[dict[str, Any]] = []

    async def __call__(self, params: dict[str, Any]) -> Any:
        self.calls.append(dict(params))
        if self.script:
            step = self.script.pop(0)
            if isinstance(step, BaseException):
                raise step
            if step is not None:
                return step
        if "symbol" in params:
            found = [r for r in self.rows if r["symbol"] == params["symbol"]]
            return self._env(found or [row(params["symbol"], "0")], "")
        start = int(params.get("cursor") or 0)
        page = self.rows[start:start + self.page_size]
        nxt = start + self.page_size
        return self._env(page, str(nxt) if nxt < len(self.rows) else "")

    @staticmethod
    def _env(page: list[dict[str, Any]], cursor: str) -> dict[str, Any]:
        return {"retCode": 0, "retMsg": "OK", "time": NOW + 10_000,
                "result": {"category": "linear", "list": page, "nextPageCursor": cursor}}


def scripted(**settings: Any) -> tuple[Harness, FakeListing]:
    settings.setdefault("interval", 0.05)
    settings.setdefault("backoff_base", 0.01)
    settings.setdefault("backoff_cap", 0.02)
    h = make_harness(**settings)
    h.feed.client = PollerClient.create(feed="r", settings=h.feed.settings,
                                        account=h.ctx.account, endpoints=h.ctx.endpoints)
    fake = FakeListing()
    h.feed.client.exchange.privateGetV5PositionList = fake
    h.feed.client.exchange.timeout_on_exit = 0  # no socket was opened: no need to linger
    return h, fake


async def poll(h: Harness) -> float | None:
    return await h.feed._guarded(h.feed.poll_once)


def drive(test: Callable[[Harness, FakeListing], Any], **settings: Any) -> None:
    h, fake = scripted(**settings)

    async def body() -> None:
        try:
            await test(h, fake)
        finally:
            assert h.feed.client is not None
            await h.feed.client.close()

    run(body())


def test_first_snapshot_makes_healthy_then_lifecycle() -> None:
    async def t(h: Harness, fake: FakeListing) -> None:
        fake.rows = [row("AUSDT"), row("BUSDT", side="Sell")]
        assert await poll(h) is None
        assert h.states() == [("healthy", "resync_done")]
        assert h.lifecycle() == ["opened", "opened"]
        opened = h.events[0].position
        assert opened.mark_price is not None  # marks go in before the lifecycle
        fake.rows = [row("AUSDT", size="2", seq=2, mark="102")]
        await poll(h)
        assert h.lifecycle() == ["opened", "opened", "changed", "closed"]
        assert h.kinds("AUSDT")[-2:] == ["price", "changed"]
        assert h.ctx.counters["polls"] == 2 and h.ctx.counters["resyncs"] == 1
        assert h.ctx.status.latency_ms_p50 is not None

    drive(t)


@pytest.mark.parametrize("bad", [
    "<html>502</html>", None, {"retCode": 0, "result": {}},
    {"retCode": 0, "result": {"list": [{"symbol": "AUSDT", "size": "x"}]}},
    {"retCode": 0, "result": {"list": ["row"]}},
])
def test_malformed_answer_is_counted_and_never_a_close(bad: Any) -> None:
    async def t(h: Harness, fake: FakeListing) -> None:
        fake.rows = [row("AUSDT")]
        await poll(h)
        fake.script = [bad if bad is not None else {"nope": 1}]
        delay = await poll(h)
        assert delay == pytest.approx(h.feed.effective_interval)
        assert h.ctx.counters["malformed"] == 1
        assert h.lifecycle() == ["opened"] and h.book.positions
        assert h.states()[-1] == ("degraded", "malformed")
        await poll(h)
        assert h.states()[-1] == ("healthy", "recovered") and h.lifecycle() == ["opened"]

    drive(t)


def test_failure_on_a_later_page_closes_nothing() -> None:
    async def t(h: Harness, fake: FakeListing) -> None:
        fake.rows = [row(f"S{i:03d}USDT") for i in range(250)]
        await poll(h)
        assert len(h.book.positions) == 250 and len(fake.calls) == 2
        assert fake.calls[1]["cursor"] == "200" and fake.calls[1]["limit"] == 200
        fake.script = [None, ccxt_async.RequestTimeout("timed out")]
        await poll(h)
        assert len(h.book.positions) == 250 and h.lifecycle().count("closed") == 0
        assert h.ctx.state is FeedState.DEGRADED

    drive(t)


def test_multi_page_disappearance_is_confirmed_by_symbol() -> None:
    async def t(h: Harness, fake: FakeListing) -> None:
        fake.rows = [row(f"S{i:03d}USDT") for i in range(250)]
        await poll(h)
        gone = fake.rows.pop(10)
        fake.calls.clear()
        await poll(h)
        assert [c.get("symbol") for c in fake.calls] == [None, None, gone["symbol"]]
        assert h.lifecycle().count("closed") == 1

        # a row that slipped between pages (still open when asked alone) is kept
        fake.rows.append(gone)
        await poll(h)
        slipped = fake.rows[5]
        fake.script = [fake._env(fake.rows[:5] + fake.rows[6:200], "200")]
        await poll(h)
        assert h.book.get(("linear", slipped["symbol"], 0)) is not None  # type: ignore[arg-type]
        assert h.lifecycle().count("closed") == 1

    drive(t)


def test_rate_limit_slows_down_then_recovers() -> None:
    async def t(h: Harness, fake: FakeListing) -> None:
        fake.rows = [row("AUSDT")]
        await poll(h)
        fake.script = [ccxt_async.RateLimitExceeded("10006 Too many visits!")] * 2
        assert await poll(h) == pytest.approx(0.1)
        assert await poll(h) == pytest.approx(0.2)
        assert h.ctx.counters["rate_limited"] == 2 and h.feed.slowdown == 4
        assert h.states()[-1] == ("degraded", "rate_limited") and h.lifecycle() == ["opened"]
        await poll(h)  # within the cooldown: stays slow
        assert h.feed.slowdown == 4 and h.states()[-1] == ("healthy", "recovered")
        h.feed._last_rate_limit -= 1000
        await poll(h)
        await poll(h)
        assert h.feed.slowdown == 1

    drive(t, slowdown_cooldown=5)


def test_network_errors_back_off_then_reconnect_and_resync() -> None:
    async def t(h: Harness, fake: FakeListing) -> None:
        fake.rows = [row("AUSDT")]
        await poll(h)
        fake.script = [ccxt_async.ExchangeNotAvailable("503"), ccxt_async.NetworkError("reset"),
                       OSError("unreachable")]
        for _ in range(3):
            delay = await poll(h)
            assert delay is not None and 0 <= delay <= 0.02
        assert h.ctx.counters["errors"] == 3 and h.ctx.counters["reconnects"] == 1
        assert h.states()[-1] == ("reconnecting", "reconnect")
        await poll(h)
        assert h.states()[-1] == ("healthy", "resync_done") and h.ctx.counters["resyncs"] == 2
        assert h.lifecycle() == ["opened"]

    drive(t, reconnect_after=3)


def test_authentication_error_is_fatal_and_names_the_variables() -> None:
    async def t(h: Harness, fake: FakeListing) -> None:
        fake.script = [ccxt_async.AuthenticationError('bybit {"retCode":10003} key k3y')]
        with pytest.raises(FatalFeedError) as info:
            await poll(h)
        msg = str(info.value)
        assert "FEEDCTL_<PROFILE>__ACCOUNT__API_KEY" in msg and "k3y" not in msg

    drive(t, api_key="k3y")


def test_unexpected_exception_degrades_but_does_not_kill() -> None:
    async def t(h: Harness, fake: FakeListing) -> None:
        fake.rows = [row("AUSDT")]
        fake.script = [RuntimeError("boom")]
        assert await poll(h) is not None
        assert h.ctx.state is FeedState.CONNECTING  # never healthy yet
        assert await poll(h) is None and h.ctx.state is FeedState.HEALTHY

    drive(t)


def test_symbols_setting_restricts_the_book() -> None:
    async def t(h: Harness, fake: FakeListing) -> None:
        fake.rows = [row("AUSDT"), row("BUSDT")]
        await poll(h)
        assert {k.symbol for k in h.book.positions} == {"AUSDT"}

    drive(t, symbols=["AUSDT"])


def test_stale_row_does_not_regress_the_book() -> None:
    async def t(h: Harness, fake: FakeListing) -> None:
        fake.rows = [row("AUSDT", size="2", seq=5)]
        await poll(h)
        fake.rows = [row("AUSDT", size="1", seq=4)]
        await poll(h)
        assert h.book.positions[next(iter(h.book.positions))].size == 2
        assert h.lifecycle() == ["opened"]

    drive(t)


def test_generic_exchange_path_fetch_positions_and_mark_prices() -> None:
    """A venue without Bybit's raw listing: ccxt's fetch_positions, unified fields, and
    the cheapest mark-price call its ``has`` offers (binanceusdm: fetchMarkPrices)."""
    h = make_harness(exchange="binanceusdm", interval=0.05)
    client = PollerClient.create(feed="r", settings=h.feed.settings, account=h.ctx.account,
                                 endpoints=h.ctx.endpoints)
    h.feed.client = client
    ex = client.exchange
    ex.timeout_on_exit = 0
    assert not client.paginates and client.mark_call == "fetchMarkPrices"
    market = {"id": "BTCUSDT", "symbol": "BTC/USDT:USDT", "linear": True, "inverse": False}
    ex.markets, ex.markets_by_id = {market["symbol"]: market}, {"BTCUSDT": [market]}
    positions: list[Any] = [{"symbol": "BTC/USDT:USDT", "contracts": 0.5, "side": "long",
                             "entryPrice": 100.0, "markPrice": None, "info": {}}]
    calls: list[str] = []

    async def fetch_positions(symbols: Any = None, params: Any = None) -> Any:
        calls.append("positions")
        return positions

    async def fetch_mark_prices(symbols: Any = None, params: Any = None) -> Any:
        calls.append(f"marks {symbols}")
        return {"BTC/USDT:USDT": {"markPrice": 101.5, "timestamp": NOW, "info": {}}}

    async def load_markets(reload: bool = False, params: Any = None) -> Any:
        calls.append(f"markets reload={reload}")
        return ex.markets

    ex.fetch_positions, ex.fetch_mark_prices, ex.load_markets = (
        fetch_positions, fetch_mark_prices, load_markets)

    async def t() -> None:
        try:
            await poll(h)
            (opened,) = h.events
            assert opened.kind.value == "opened" and opened.position.symbol == "BTCUSDT"
            assert str(opened.position.size) == "0.5"
            assert opened.position.mark_price == Decimal("101.5")
            assert calls == ["positions", "marks ['BTC/USDT:USDT']"]
            positions.append({"symbol": "NEW/USDT:USDT", "contracts": 1, "side": "short",
                              "entryPrice": 5, "info": {}})
            await poll(h)  # a market listed after start: malformed, markets reloaded next
            assert h.ctx.counters["malformed"] == 1 and h.lifecycle() == ["opened"]
            positions.pop()
            positions.pop()
            await poll(h)
            assert "markets reload=True" in calls and h.lifecycle() == ["opened", "closed"]
        finally:
            await client.close()

    run(t())


def test_exchange_needing_a_passphrase_names_the_setting() -> None:
    h = make_harness(exchange="okx")
    with pytest.raises(FatalFeedError, match=r"'okx' \(feeds\.r\.exchange\) also needs "
                                             r"password: export "
                                             r"FEEDCTL_<PROFILE>__ACCOUNT__PASSWORD"):
        run(h.feed.run(), timeout=5)


def test_a_passphrase_from_the_account_is_handed_to_ccxt() -> None:
    from feedctl import AccountSettings, Endpoints
    from feedctl.plugins.rest_polling.client import PollerClient
    from feedctl.plugins.rest_polling.config import RestPollingSettings

    acc = AccountSettings(exchange="okx", api_key="k" * 8, api_secret="s" * 8,
                          password="p" * 8)
    client = PollerClient.create(feed="r", settings=RestPollingSettings(), account=acc,
                                 endpoints=Endpoints())
    assert client.exchange.password == "p" * 8
    assert client.redact("x" + "p" * 8) == "x***"
