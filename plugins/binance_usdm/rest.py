"""The REST client: server time, listenKey, positionRisk, position mode, premiumIndex.

Why aiohttp and not ccxt or python-binance: the feed needs the raw error ``code``
(-1021 means re-measure the clock, -2014/-2015 are fatal, -1125 means the listenKey is
gone), the ``X-MBX-USED-WEIGHT-1M`` header on every answer, ``Retry-After`` on 429 and
418, and each row's ``updateTime``; ccxt hides the first three behind exception classes
and rate-limit guesses, and python-binance is synchronous or its own event loop.

Weights: before a call the client checks the weight the exchange last reported for
the current minute; if the call would take it above ``WEIGHT_LIMIT_1M -
weight_reserve``, it waits for the next minute. HTTP 429 waits ``Retry-After`` (the
minute's end if missing) and retries; HTTP 418 (IP banned) stops every call until
``Retry-After`` has passed and raises :class:`Banned` so the feed reports it.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable
from decimal import Decimal
from typing import Any
from urllib.parse import urlencode

import aiohttp
import orjson
from pydantic import SecretStr, ValidationError
from yarl import URL

from feedctl import (
    Backoff,
    FatalFeedError,
    MarkPrice,
    PositionUpdate,
    RetryableFeedError,
    env_var_name,
    redact,
    wire_decimal,
)

from .config import BinanceSettings
from .constants import (
    ERR_NO_LISTEN_KEY,
    ERR_TIMESTAMP,
    ERR_TOO_MANY,
    FATAL_CODES,
    PATH_INCOME,
    PATH_LISTEN_KEY,
    PATH_POSITION_MODE,
    PATH_POSITIONS,
    PATH_PREMIUM_INDEX,
    PATH_SYMBOL_CONFIG,
    PATH_TIME,
    PATH_USER_TRADES,
    USED_WEIGHT_HEADER,
    WEIGHT_LIMIT_1M,
    WEIGHTS,
)
from .gap import Trade, income_symbols, parse_trades
from .models import ErrorBody, ListenKey, PositionMode, PremiumIndex, ServerTime, SymbolConfig
from .parse import Problem, position_rows
from .signing import ServerClock, key_header, signed_query


def setting_hint(profile: str, key: str, section: str = "ACCOUNT") -> str:
    """The variable that sets ``section.key`` in ``profile``."""
    return env_var_name(profile or "<PROFILE>", f"{section}.{key}".lower())


class ListenKeyGone(RetryableFeedError):
    """-1125: the listenKey does not exist (expired or closed); create a new one."""


class NotServed(RetryableFeedError):
    """HTTP 404 from an endpoint the feed can do without (symbolConfig, income)."""


class Banned(RetryableFeedError):
    """HTTP 418: the IP is banned until ``until`` (monotonic seconds)."""

    def __init__(self, message: str, until: float) -> None:
        super().__init__(message)
        self.until = until


class _Retry(Exception):
    def __init__(self, reason: str, wait: float | None = None, code: int | None = None) -> None:
        super().__init__(reason)
        self.wait, self.code = wait, code


class WeightDeferred(RetryableFeedError):
    """A call that only improves the data (a stale symbol's REST mark) was not sent: the
    minute's weight is past the share such calls may use."""


#: Calls marked ``deferrable`` are not sent once the minute's used weight passes this
#: share of the budget: what recovers the lifecycle (listenKey, snapshot, fills) keeps
#: room however long the market socket is down (the weight is the IP's, shared with any
#: other client on it, e.g. a REST poller standby).
DEFERRABLE_SHARE = 0.5


class Weights:
    """The IP's request weight in the current minute, as the exchange reports it."""

    def __init__(self, reserve: int) -> None:
        self.budget = WEIGHT_LIMIT_1M - reserve
        self.used = 0
        self.minute = 0  # the server minute ``used`` belongs to
        self.banned_until = 0.0  # monotonic

    def note(self, header: str | None, server_ms: int) -> None:
        if header is None:
            return
        try:
            used = int(header)
        except ValueError:
            return
        self.used, self.minute = used, server_ms // 60_000

    def spare(self, weight: int, server_ms: int) -> bool:
        """Whether a deferrable call of ``weight`` fits in its share of the budget."""
        if self.banned_until > time.monotonic():
            return False
        used = self.used if server_ms // 60_000 == self.minute else 0
        return used + weight <= self.budget * DEFERRABLE_SHARE

    def wait_for(self, weight: int, server_ms: int) -> float:
        """Seconds to wait before a call of ``weight`` fits into the budget."""
        ban = self.banned_until - time.monotonic()
        if ban > 0:
            return ban
        if server_ms // 60_000 != self.minute:
            return 0.0
        if self.used + weight <= self.budget:
            return 0.0
        return (60_000 - server_ms % 60_000) / 1000 + 0.05


class RestClient:
    """Binance USDⓈ-M REST with retries, weights, clock and error codes."""

    def __init__(
        self, session: aiohttp.ClientSession, base_url: str, api_key: SecretStr,
        api_secret: SecretStr, clock: ServerClock, settings: BinanceSettings,
        log: logging.LoggerAdapter[logging.Logger], count: Callable[[str], None],
        profile: str = "",
    ) -> None:
        self._session, self._base = session, base_url.rstrip("/")
        self._key, self._secret = api_key, api_secret
        self.clock, self._s, self._log, self._count = clock, settings, log, count
        self._profile = profile
        self.weights = Weights(settings.weight_reserve)

    # ----------------------------------------------------------------- endpoints
    async def sync_clock(self) -> int:
        sent = time.time_ns()
        body = await self._call("GET", PATH_TIME, sync_on_skew=False)
        received = time.time_ns()
        try:
            server = ServerTime.model_validate(body)
        except ValidationError:
            raise RetryableFeedError(f"{PATH_TIME} answered without a time: "
                                     f"{str(body)[:200]}") from None
        offset = self.clock.update(server.server_ms, sent, received)
        self._log.info("server clock offset %+d ms (rtt %.1f ms)", offset, self.clock.rtt_ms,
                       extra={"clock_offset_ms": offset})
        return offset

    async def create_listen_key(self) -> str:
        """POST: a new listenKey, or the active one with its validity extended."""
        body = await self._call("POST", PATH_LISTEN_KEY, keyed=True)
        try:
            return ListenKey.model_validate(body).listen_key
        except ValidationError:
            raise RetryableFeedError(f"{PATH_LISTEN_KEY} answered without a listenKey: "
                                     f"{str(body)[:120]}") from None

    async def keepalive(self, listen_key: str) -> None:
        """PUT: extend the key by 60 minutes; :class:`ListenKeyGone` on -1125."""
        await self._call("PUT", PATH_LISTEN_KEY, [("listenKey", listen_key)], keyed=True)

    async def close_listen_key(self, listen_key: str) -> None:
        await self._call("DELETE", PATH_LISTEN_KEY, [("listenKey", listen_key)], keyed=True,
                         attempts=1)

    async def hedge_mode(self) -> bool:
        body = await self._call("GET", PATH_POSITION_MODE, signed=True)
        try:
            return PositionMode.model_validate(body).dual_side
        except ValidationError:
            raise RetryableFeedError(f"{PATH_POSITION_MODE} answered {str(body)[:120]}"
                                     ) from None

    async def leverages(self) -> dict[str, Decimal]:
        """Every symbol's leverage (rows that do not parse are counted and skipped)."""
        body = await self._call("GET", PATH_SYMBOL_CONFIG, signed=True, attempts=2,
                                optional=True)
        if not isinstance(body, list):
            raise RetryableFeedError(f"{PATH_SYMBOL_CONFIG} answered {str(body)[:120]}")
        out: dict[str, Decimal] = {}
        for raw in body:
            try:
                row = SymbolConfig.model_validate(raw)
            except ValidationError:
                self._count("bad_field")
                continue
            out[row.symbol] = Decimal(row.leverage)
        return out

    async def trades(self, symbol: str, since_ms: int) -> list[Trade]:
        """The account's fills of ``symbol`` since ``since_ms`` (up to 1000)."""
        body = await self._call("GET", PATH_USER_TRADES, [
            ("symbol", symbol), ("startTime", str(since_ms)), ("limit", "1000")], signed=True)
        trades, problems = parse_trades(body)
        for p in problems:
            self._problem(p)
        if problems and not isinstance(body, list):
            raise RetryableFeedError(f"{PATH_USER_TRADES} answered {str(body)[:120]}")
        return [t for t in trades if t.time_ms >= since_ms]

    async def income_symbols(self, since_ms: int) -> set[str]:
        """Symbols with any income (every fill pays a commission) since ``since_ms``."""
        body = await self._call("GET", PATH_INCOME, [("startTime", str(since_ms)),
                                                     ("limit", "1000")], signed=True,
                                attempts=2, optional=True)
        return income_symbols(body)

    async def positions(self, hedge: bool | None, leverage: dict[str, Decimal]
                        ) -> tuple[list[PositionUpdate], int]:
        """Every open position and the snapshot's time: the server-corrected send time
        of the attempt that answered (a push with a later ``T`` may be newer than the
        rows; retries after 429s or 5xx pages served the rows later than the first)."""
        sent: list[int] = []
        body = await self._call("GET", PATH_POSITIONS, signed=True, sent=sent)
        as_of = sent[-1]
        if not isinstance(body, list):  # read as "no rows" it would close every position
            raise RetryableFeedError(f"{PATH_POSITIONS} answered {str(body)[:120]}, not a "
                                     "list of rows")
        rows, problems = position_rows(body, time.time_ns(), hedge=hedge, leverage=leverage,
                                       as_of_ms=as_of)
        for p in problems:
            self._problem(p)
        return rows, as_of

    async def mark(self, symbol: str) -> MarkPrice | None:
        """A symbol's mark from premiumIndex; deferrable (:class:`WeightDeferred`)."""
        body = await self._call("GET", PATH_PREMIUM_INDEX, [("symbol", symbol)],
                                deferrable=True)
        try:
            row = PremiumIndex.model_validate(body)
        except ValidationError:
            self._count("bad_field")
            return None
        price = wire_decimal(row.mark_price)
        if price is None or price <= 0 or row.symbol != symbol:
            self._count("bad_field")
            return None
        return MarkPrice(symbol=symbol, mark_price=price, exchange_ms=row.time_ms)

    def _problem(self, p: Problem) -> None:
        self._count(p.counter)
        self._log.warning("REST: %s", p.detail, extra={"problem": p.counter})

    # ----------------------------------------------------------------- transport
    async def _call(self, method: str, path: str, params: list[tuple[str, str]] | None = None,
                    *, signed: bool = False, keyed: bool = False, sync_on_skew: bool = True,
                    attempts: int | None = None, optional: bool = False,
                    deferrable: bool = False, sent: list[int] | None = None) -> Any:
        """``sent``, if given, gets the server-corrected send time of each attempt (the
        last one's is that of the answer returned)."""
        backoff = Backoff(self._s.backoff_base, self._s.backoff_cap)
        tries = attempts or self._s.rest_attempts
        last = ""
        for attempt in range(1, tries + 1):
            if deferrable and not self.weights.spare(WEIGHTS.get((method, path), 1),
                                                     self.clock.now_ms()):
                self._count("weight_deferred")
                raise WeightDeferred(f"REST {method} {path} deferred: weight "
                                     f"{self.weights.used} of {WEIGHT_LIMIT_1M} used this "
                                     "minute")
            await self._respect_weights(method, path)
            if sent is not None:
                sent.append(self.clock.now_ms())
            try:
                return await self._once(method, path, params or [], signed, keyed, optional)
            except _Retry as exc:
                last = str(exc)
                self._count("rest_retries")
                if exc.code == ERR_TIMESTAMP and sync_on_skew:
                    await self.sync_clock()
                wait = exc.wait if exc.wait is not None else backoff.next()
                self._log.warning("REST %s %s failed (attempt %d/%d): %s; retrying in %.2fs",
                                  method, path, attempt, tries, last, wait,
                                  extra={"path": path, "attempt": attempt})
                if attempt < tries:
                    await asyncio.sleep(wait)
        raise RetryableFeedError(f"REST {method} {path} failed {tries} times: {last}")

    async def _respect_weights(self, method: str, path: str) -> None:
        wait = self.weights.wait_for(WEIGHTS.get((method, path), 1), self.clock.now_ms())
        if wait <= 0:
            return
        if self.weights.banned_until > time.monotonic():
            raise Banned(f"the IP is banned by Binance (HTTP 418) for {wait:.0f}s more",
                         self.weights.banned_until)
        self._count("weight_waits")
        self._log.warning("REST weight %d of %d used this minute: waiting %.1fs",
                          self.weights.used, WEIGHT_LIMIT_1M, wait,
                          extra={"used_weight": self.weights.used})
        await asyncio.sleep(wait)

    async def _once(self, method: str, path: str, params: list[tuple[str, str]],
                    signed: bool, keyed: bool, optional: bool = False) -> Any:
        headers = {"Accept": "application/json"}
        if signed or keyed:
            headers.update(key_header(self._key))
        if signed:
            query = signed_query(self._secret, params, self.clock.now_ms(),
                                 self._s.recv_window)
        else:
            query = urlencode(params)
        url = URL(f"{self._base}{path}" + (f"?{query}" if query else ""), encoded=True)
        try:
            async with self._session.request(method, url, headers=headers) as resp:
                body = await resp.read()
                status, resp_headers = resp.status, resp.headers
        except (aiohttp.ClientError, TimeoutError, OSError) as exc:
            raise _Retry(f"{type(exc).__name__}: {exc}") from None
        self.weights.note(resp_headers.get(USED_WEIGHT_HEADER), self.clock.now_ms())
        if status == 418:
            wait = _retry_after(resp_headers) or 120.0
            self.weights.banned_until = time.monotonic() + wait
            self._count("ip_banned")
            raise Banned(f"Binance banned this IP (HTTP 418) for {wait:.0f}s: too many "
                         "requests after 429 answers", self.weights.banned_until)
        if status == 429:
            self._count("rate_limited")
            after = _retry_after(resp_headers)
            if after is None:  # wait for the next minute of the weight window
                now = self.clock.now_ms()
                after = (60_000 - now % 60_000) / 1000
            raise _Retry(f"HTTP 429 (weight {self.weights.used})", wait=after)
        if status == 404 and optional:  # an endpoint this exchange (or stand-in) lacks
            raise NotServed(f"{method} {path} is not served here (HTTP 404)")
        if status == 404:
            raise FatalFeedError(f"Binance REST {method} {path} answered 404: check "
                                 f"{setting_hint(self._profile, 'REST', 'ENDPOINTS')} "
                                 f"({self._base})")
        try:
            data = orjson.loads(body) if body else {}
        except orjson.JSONDecodeError:
            raise _Retry(f"HTTP {status} with a non-JSON body {body[:80]!r}") from None
        if status == 200:
            return data
        err = _error(data)
        if err is None:
            raise _Retry(f"HTTP {status}: {str(data)[:120]}")
        msg = redact(err.msg, self._key, self._secret)
        if err.code in FATAL_CODES:
            what, setting = FATAL_CODES[err.code]
            extra = (f" and {setting_hint(self._profile, 'API_SECRET')}"
                     if setting == "API_KEY" else "")
            raise FatalFeedError(f"{what}: {msg}; check "
                                 f"{setting_hint(self._profile, setting)}{extra}")
        if err.code == ERR_NO_LISTEN_KEY:
            raise ListenKeyGone(f"listenKey gone (-1125: {msg})")
        if err.code == ERR_TOO_MANY:  # weight exhausted: the next minute has room
            self._count("rate_limited")
            now = self.clock.now_ms()
            raise _Retry(f"HTTP {status} code {err.code}: {msg}",
                         wait=(60_000 - now % 60_000) / 1000, code=err.code)
        tag = " (clock skew: re-measuring)" if err.code == ERR_TIMESTAMP else ""
        raise _Retry(f"HTTP {status} code {err.code}{tag}: {msg}", code=err.code)


def _error(data: Any) -> ErrorBody | None:
    try:
        return ErrorBody.model_validate(data)
    except ValidationError:
        return None


def _retry_after(headers: Any) -> float | None:
    raw = headers.get("Retry-After")
    try:
        return max(0.0, float(raw)) if raw is not None else None
    except ValueError:
        return None
