"""The ccxt side of the poller: one async exchange per feed, and the calls it makes.

:meth:`PollerClient.create` checks everything it can without the network (known
exchange id, ``has["fetchPositions"]``, credentials, URL keys, mark-price source) and
raises :class:`feedctl.FatalFeedError` naming the setting. Afterwards the client
loads the markets once, takes complete position snapshots and fetches mark prices.
ccxt errors pass through unchanged: the feed classifies them.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit

import ccxt.async_support as ccxt_async

from feedctl import (
    AccountSettings,
    Category,
    Endpoints,
    FatalFeedError,
    MarkPrice,
    env_var_name,
    now_ns,
    redact,
)

from . import constants as c
from .config import RestPollingSettings
from .facts import exchange_id, facts_of, refusals, unknown_exchange
from .parse import MalformedRow, ParsedRow, envelope_list, mark_from_ticker, position_row

log = logging.getLogger("feedctl.feed.rest_polling")

#: Pages of one listing before the poller gives up on a cursor that never ends.
MAX_PAGES = 500


@dataclass
class Snapshot:
    """The positions of the account at one moment, complete (pagination followed)."""

    rows: list[ParsedRow]
    #: Exchange time of the first page (ms), when the exchange tells it.
    as_of_ms: int | None = None
    #: Per settle coin, the exchange time of its listing's first page (ms): a position
    #: that listing lacks was flat then (Bybit lists settle coin by settle coin; a later
    #: listing's answer may come well after the first one's).
    listing_as_of_ms: dict[str, int] = field(default_factory=dict)
    pages: int = 0
    #: (exchange send time ms, local receive time ns) per answer, for latency figures.
    samples: list[tuple[int, int]] = field(default_factory=list)


def _category(coin: str) -> Category:
    return Category.LINEAR if coin in c.BYBIT_LINEAR_SETTLE else Category.INVERSE


class PollerClient:
    """A ccxt async exchange plus the few calls the poller needs."""

    def __init__(self, exchange: Any, settings: RestPollingSettings, secrets: tuple[str, ...],
                 mark_call: str | None) -> None:
        self.exchange = exchange
        self.settings = settings
        self.mark_call = mark_call
        self._secrets = tuple(s for s in secrets if s)
        self._symbols = frozenset(settings.symbols) if settings.symbols else None

    # ------------------------------------------------------------------ building
    @classmethod
    def create(cls, *, feed: str, settings: RestPollingSettings, account: AccountSettings,
               endpoints: Endpoints, on_request: Callable[[], None] | None = None,
               profile: str = "<PROFILE>", environment: str = "mainnet") -> PollerClient:
        """Build the exchange object (no network) or raise FatalFeedError naming the setting."""
        ex_id, where = exchange_id(feed, settings, account)
        ex_class = getattr(ccxt_async, ex_id, None) if ex_id in ccxt_async.exchanges else None
        if ex_class is None:
            raise FatalFeedError(unknown_exchange(ex_id, where))
        probe = ex_class()
        if not account.has_credentials():
            raise FatalFeedError(
                "rest_polling needs API credentials: set "
                f"{env_var_name(profile, 'account.api_key')} and "
                f"{env_var_name(profile, 'account.api_secret')} "
                "(account.api_key / account.api_secret)")
        # the rules `feedctl check` applies to the same facts read from ccxt's source
        refused = refusals(facts_of(probe), feed=feed, settings=settings, account=account,
                           environment=environment, endpoints=endpoints,
                           env_var=lambda setting: env_var_name(profile, setting))
        if refused:
            raise FatalFeedError(refused[0])
        extra = {"password": account.password.get_secret_value() if account.password else None,
                 "uid": account.uid}
        mark_call = _mark_call(probe.has, settings.mark_price_source)
        key = account.api_key.get_secret_value()
        secret = account.api_secret.get_secret_value()
        options = probe.deep_extend(_default_options(ex_id, settings), settings.ccxt_options)
        exchange = ex_class({
            "apiKey": key,
            "secret": secret,
            **{k: v for k, v in extra.items() if v},
            "enableRateLimit": True,
            "timeout": int(settings.timeout * 1000),
            "options": options,
        })
        if ex_id == "bybit":
            # the poller never needs currencies: skip a signed request and its permission
            exchange.has["fetchCurrencies"] = False
        _apply_urls(exchange, settings, endpoints, feed, ex_id, environment)
        if on_request is not None:
            _count_requests(exchange, on_request)
        return cls(exchange, settings, (key, secret, extra["password"] or ""), mark_call)

    @property
    def id(self) -> str:
        return str(self.exchange.id)

    def redact(self, text: str) -> str:
        """``text`` with the API key and secret replaced: ccxt errors quote URLs and bodies."""
        return redact(text, *self._secrets)

    # ------------------------------------------------------------------ lifecycle
    async def load_markets(self, reload: bool = False) -> None:
        await self.exchange.load_markets(reload)

    async def sync_clock(self) -> None:
        """Measure the exchange clock's offset; ccxt signs with it from then on."""
        await self.exchange.load_time_difference()

    async def reconnect(self) -> None:
        """Drop the HTTP session (and its pooled sockets); the next request opens anew."""
        await self.exchange.close()
        self.exchange.open()

    async def close(self) -> None:
        await self.exchange.close()

    # ------------------------------------------------------------------ positions
    @property
    def paginates(self) -> bool:
        """Bybit: the raw V5 listing with its cursor; elsewhere ccxt's fetch_positions."""
        return callable(getattr(self.exchange, "privateGetV5PositionList", None))

    async def snapshot(self) -> Snapshot:
        if self.paginates:
            snap = Snapshot(rows=[])
            for coin in self.settings.settle_coins:
                await self._bybit_listing(snap, {"category": _category(coin).value,
                                                 "settleCoin": coin})
            return snap
        return await self._generic_snapshot()

    async def rows_for(self, symbols: Iterable[tuple[Category, str]]) -> Snapshot:
        """Bybit: the rows of single symbols (a flat one too): confirms a disappearance."""
        snap = Snapshot(rows=[])
        for cat, sym in sorted(set(symbols)):
            await self._bybit_listing(snap, {"category": cat.value, "symbol": sym})
        return snap

    async def _bybit_listing(self, snap: Snapshot, params: dict[str, Any]) -> None:
        category = Category(params["category"])
        cursor, seen = "", set[str]()
        while True:
            request = {**params, "limit": c.BYBIT_PAGE_LIMIT}
            if cursor:
                request["cursor"] = cursor
            response = await self.exchange.privateGetV5PositionList(request)
            received = now_ns()
            rows, cursor, server_ms = envelope_list(response)
            snap.pages += 1
            if server_ms is not None:
                snap.samples.append((server_ms, received))
                if snap.as_of_ms is None:
                    snap.as_of_ms = server_ms
                coin = params.get("settleCoin")
                if isinstance(coin, str) and coin not in snap.listing_as_of_ms:
                    snap.listing_as_of_ms[coin] = server_ms
            for raw in rows:
                if not isinstance(raw, Mapping):
                    raise MalformedRow("position row is not an object")
                market = self._market(raw.get("symbol"), category)
                snap.rows.append(self._parse(raw, market, category, received))
            if not cursor or not rows:
                return
            if cursor in seen or len(seen) >= MAX_PAGES:
                raise MalformedRow(f"position list pagination does not end (cursor {cursor!r})")
            seen.add(cursor)

    def _parse(self, raw: Mapping[str, Any], market: Any, category: Category | None,
               received: int) -> ParsedRow:
        try:
            unified = self.exchange.parse_position(dict(raw), market)
        except Exception as exc:  # ccxt's parser on odd input: the row is malformed
            raise MalformedRow(f"ccxt could not parse a position row: {exc}") from exc
        return position_row(unified, market, category=category, received_ns=received)

    async def _generic_snapshot(self) -> Snapshot:
        positions = await self.exchange.fetch_positions()
        received = now_ns()
        if not isinstance(positions, list):
            raise MalformedRow(f"fetch_positions returned a {type(positions).__name__}")
        snap = Snapshot(rows=[], pages=1)
        markets = self.exchange.markets or {}
        for pos in positions:
            if not isinstance(pos, Mapping):
                raise MalformedRow("position is not an object")
            market = markets.get(pos.get("symbol"))
            if market is None:
                raise MalformedRow(f"position in unknown market {pos.get('symbol')!r}")
            snap.rows.append(position_row(pos, market, raw_fields=False, received_ns=received))
        return snap

    def wanted(self, row: ParsedRow) -> bool:
        return self._symbols is None or row.update.symbol in self._symbols

    def _market(self, native: Any, category: Category) -> Any:
        for m in (self.exchange.markets_by_id or {}).get(native, ()):
            if m.get(category.value):
                return m
        return None

    # ------------------------------------------------------------------ mark prices
    async def mark_prices(self, symbols: Iterable[tuple[Category, str]]) -> list[MarkPrice]:
        """Mark prices of ``symbols`` through ``self.mark_call`` (grouped by category)."""
        if self.mark_call is None:
            return []
        by_cat: dict[Category, dict[str, Any]] = {}
        for cat, sym in symbols:
            market = self._market(sym, cat)
            if market is not None:
                by_cat.setdefault(cat, {})[market["symbol"]] = market
        out: list[MarkPrice] = []
        for wanted in by_cat.values():
            tickers = await self._tickers(sorted(wanted))
            received = now_ns()
            if not isinstance(tickers, Mapping):
                raise MalformedRow(f"{self.mark_call} returned a {type(tickers).__name__}")
            for unified, market in wanted.items():
                ticker = tickers.get(unified)
                mark = mark_from_ticker(ticker, market, received_ns=received) if ticker else None
                if mark is not None:
                    out.append(mark)
        return out

    async def _tickers(self, unified: list[str]) -> Any:
        ex, call = self.exchange, self.mark_call
        if call == "fetchMarkPrices":
            return await ex.fetch_mark_prices(unified)
        if call == "fetchTickers":
            return await ex.fetch_tickers(unified)
        single = ex.fetch_mark_price if call == "fetchMarkPrice" else ex.fetch_ticker
        return {s: await single(s) for s in unified}


# ---------------------------------------------------------------------- helpers
def _mark_call(has: Mapping[str, Any], source: str) -> str | None:
    """The ccxt call for mark prices the positions did not carry, by ``has`` flags (a
    source the exchange lacks is refused before, by ``facts.refusals``)."""
    if source == "positions":
        return None
    if source in ("mark_prices", "tickers"):
        return "fetchMarkPrices" if source == "mark_prices" else "fetchTickers"
    return next((call for call in c.MARK_PRICE_CALLS if has.get(call)), None)


def _default_options(ex_id: str, settings: RestPollingSettings) -> dict[str, Any]:
    if ex_id != "bybit":
        return {}
    types = sorted({_category(coin).value for coin in settings.settle_coins})
    return {"fetchMarkets": {"types": types}}


def _apply_urls(exchange: Any, settings: RestPollingSettings, endpoints: Endpoints, feed: str,
                ex_id: str, environment: str = "mainnet") -> None:
    rest: str | None = getattr(endpoints, "rest", None)
    if rest is None and settings.urls is None:
        if environment == "testnet":  # ccxt has a sandbox (facts.refusals said so)
            exchange.set_sandbox_mode(True)
        return
    urls = dict(exchange.urls)
    api = urls.get("api")
    if not isinstance(api, dict):  # and no feeds.<name>.urls (facts.refusals)
        return
    api = dict(api)
    rest_keys = [k for k, v in api.items() if isinstance(v, str) and v.startswith("http")]
    if settings.urls is None and rest is not None:
        origin = rest.rstrip("/")
        for k in rest_keys:  # the exchange's own paths (/fapi/v1...) stay
            parts = urlsplit(api[k])
            api[k] = origin + parts.path.rstrip("/") if parts.path not in ("", "/") else origin
    for key, url in (settings.urls or {}).items():  # known keys (facts.refusals)
        for k in rest_keys if key == "*" else [key]:
            api[k] = url.rstrip("/")
    urls["api"] = api
    exchange.urls = urls


def _count_requests(exchange: Any, on_request: Callable[[], None]) -> None:
    """Call ``on_request`` before every HTTP request ccxt makes (ccxt's single ``fetch``)."""
    fetch = exchange.fetch

    async def counting_fetch(*args: Any, **kwargs: Any) -> Any:
        on_request()
        return await fetch(*args, **kwargs)

    exchange.fetch = counting_fetch
