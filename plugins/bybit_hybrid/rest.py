"""REST snapshot client: server time and /v5/position/list, signed, with retries.

Why a small aiohttp client and not ccxt: the feed needs three things ccxt hides or
costs — the raw ``seq``/``updatedTime`` of each row (the book orders by them), the
raw ``retCode`` (10003/10004 are fatal, 10002 means re-measure the clock, 10006 means
wait for ``X-Bapi-Limit-Reset-Timestamp``) and explicit cursor pagination. ccxt's
``load_markets()`` alone costs three or more requests (coin info, instruments, pre-launch),
and its ``fetch_positions`` returns unified structures whose ``info`` must be re-parsed
anyway. Two GET endpoints do not justify that; aiohttp is already a dependency.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable
from typing import Any
from urllib.parse import quote

import aiohttp
import orjson
from pydantic import SecretStr
from yarl import URL

from feedctl import (
    Backoff,
    Category,
    FatalFeedError,
    Instrument,
    MarkPrice,
    PositionUpdate,
    RetryableFeedError,
    RollingBudget,
    env_var_name,
    redact,
    wire_decimal,
)

from .config import HybridSettings
from .constants import (
    FATAL_CODES,
    PATH_EXECUTIONS,
    PATH_INSTRUMENTS,
    PATH_POSITIONS,
    PATH_TICKERS,
    PATH_TIME,
    POSITION_PAGE_LIMIT,
    RET_OK,
    RET_TIMESTAMP,
    RETRY_CODES,
)
from .gap import Fill, parse_fill
from .parse import Problem, position_update
from .signing import ServerClock, rest_headers


def setting_hint(profile: str, key: str, section: str = "ACCOUNT") -> str:
    """The variable that sets ``section.key`` in ``profile``: FEEDCTL_MAINNET__ACCOUNT__API_KEY
    (feedctl.env_var_name, the core's one helper)."""
    return env_var_name(profile or "<PROFILE>", f"{section}.{key}".lower())


class _Retry(Exception):
    """One attempt failed in a way worth retrying; ``wait`` overrides the backoff."""

    def __init__(self, reason: str, wait: float | None = None, code: int | None = None) -> None:
        super().__init__(reason)
        self.wait, self.code = wait, code


class RestClient:
    """Signed GETs against Bybit V5 with capped, jittered retries."""

    def __init__(
        self,
        session: aiohttp.ClientSession,
        base_url: str,
        api_key: SecretStr,
        api_secret: SecretStr,
        clock: ServerClock,
        settings: HybridSettings,
        log: logging.LoggerAdapter[logging.Logger],
        count: Callable[[str], None],
        profile: str = "",
        budget: RollingBudget | None = None,
        uid_budget: Callable[[str], RollingBudget] | None = None,
    ) -> None:
        self._profile = profile
        #: The process's REST budget for this host, shared by every account.
        self._budget = budget
        #: Per endpoint path: this key's (Bybit: this UID's) budget, for signed calls.
        self._uid_budget = uid_budget
        self._session = session
        self._base = base_url.rstrip("/")
        self._key, self._secret = api_key, api_secret
        self.clock = clock
        self._s = settings
        self._log = log
        self._count = count
        #: monotonic time until which no request is sent (after an HTTP 403 IP ban)
        self.banned_until: float | None = None
        #: wall-clock time (s) the ban ends, for the status
        self.banned_until_wall: float | None = None
        #: called with the pause (s) when a 403 starts a ban
        self.on_ban: Callable[[float], None] | None = None

    def ban_left(self) -> float:
        """Seconds the IP ban pause still runs (0 when none)."""
        if self.banned_until is None:
            return 0.0
        left = self.banned_until - time.monotonic()
        if left <= 0:
            self.banned_until = self.banned_until_wall = None
            return 0.0
        return left

    def ban_text(self) -> str:
        until = time.strftime("%H:%M:%SZ", time.gmtime(self.banned_until_wall or 0))
        return (f"REST paused until {until} ({self.ban_left():.0f} s): Bybit answered HTTP 403 "
                f"(IP ban; Bybit says stop for at least 10 minutes)")

    # ----------------------------------------------------------------- endpoints
    async def sync_clock(self) -> int:
        """Measure the server clock offset (ms) from /v5/market/time."""
        if self._budget is not None:  # before the stopwatch: a wait there is not the rtt
            await self._budget.acquire()
        sent: list[int] = []  # each attempt's start: the rtt is the answered one's alone
        env = await self._call(PATH_TIME, [], signed=False, sync_on_skew=False,
                               budgeted=False, sent_ns=sent)
        received = time.time_ns()
        result = _result(env)
        server_ms: int | None = None
        try:
            if result.get("timeNano"):
                server_ms = int(result["timeNano"]) // 1_000_000
            elif result.get("timeSecond"):
                server_ms = int(result["timeSecond"]) * 1000
            else:
                server_ms = _time(env)
        except (TypeError, ValueError, OverflowError):
            server_ms = None
        if server_ms is not None and not 0 < server_ms < _MAX_MS:
            server_ms = None  # not a time this century: garbage, not a clock offset
        if server_ms is None:
            raise RetryableFeedError(f"{PATH_TIME} answered without a time: {str(env)[:200]}")
        offset = self.clock.update(server_ms, sent[-1], received)
        self._log.info("server clock offset %+d ms (rtt %.1f ms)", offset, self.clock.rtt_ms,
                       extra={"clock_offset_ms": offset})
        return offset

    async def positions(
        self, categories: list[Category], settle_coins: list[str]
    ) -> tuple[list[PositionUpdate], int | None]:
        """Every open position, pagination followed to the end, and the snapshot's time
        (the earliest page's server time: a push newer than that is newer than the rows)."""
        rows: list[PositionUpdate] = []
        as_of: int | None = None
        for category in categories:
            scopes: list[str | None] = (
                list(settle_coins) if category is Category.LINEAR else [None]
            )
            for coin in scopes:
                page_rows, page_time = await self._position_pages(category, coin)
                rows.extend(page_rows)
                if page_time is not None:
                    as_of = page_time if as_of is None else min(as_of, page_time)
        return rows, as_of

    async def _position_pages(
        self, category: Category, coin: str | None
    ) -> tuple[list[PositionUpdate], int | None]:
        rows: list[PositionUpdate] = []
        first_time: int | None = None
        cursor = ""
        seen: set[str] = set()
        while True:
            params = [("category", category.value)]
            if coin:
                params.append(("settleCoin", coin))
            params.append(("limit", str(POSITION_PAGE_LIMIT)))
            if cursor:
                params.append(("cursor", cursor))
            env = await self._call(PATH_POSITIONS, params, signed=True)
            received = time.time_ns()
            if first_time is None:
                first_time = _time(env)
            result, rows_raw = _listing(env, PATH_POSITIONS)
            for raw in rows_raw:
                parsed = position_update(raw, default_category=category, received_ns=received)
                if isinstance(parsed, Problem):
                    self._count(parsed.counter)
                    self._log.warning("REST position row skipped: %s", parsed.detail,
                                      extra={"problem": parsed.counter})
                elif parsed.is_open:
                    rows.append(parsed)
            cursor = str(result.get("nextPageCursor") or "")
            if not cursor:
                return rows, first_time
            if cursor in seen:  # a server repeating a cursor would loop forever
                raise RetryableFeedError(f"{PATH_POSITIONS} repeated cursor {cursor!r}")
            seen.add(cursor)

    async def hedged(self, category: Category, symbols: list[str]) -> dict[str, bool]:
        """Whether each symbol is in hedge mode: /v5/position/list with ``symbol`` lists
        its rows even when flat - one with positionIdx 0 (one-way), or two (1 and 2).
        Inverse takes up to 10 symbols per request, linear one."""
        out: dict[str, bool] = {}
        batch = 10 if category is Category.INVERSE else 1
        names = sorted(set(symbols))
        for i in range(0, len(names), batch):
            part = names[i:i + batch]
            params = [("category", category.value), ("symbol", ",".join(part))]
            env = await self._call(PATH_POSITIONS, params, signed=True)
            _, rows = _listing(env, PATH_POSITIONS)
            for row in rows:
                if not isinstance(row, dict) or row.get("symbol") not in part:
                    continue
                idx = row.get("positionIdx")
                if idx in (0, 1, 2) and not isinstance(idx, bool):
                    out[row["symbol"]] = out.get(row["symbol"], False) or idx != 0
        return out

    async def fills(self, categories: list[Category], since_ms: int,
                    max_pages: int = 20) -> list[Fill]:
        """Position-moving fills since ``since_ms`` (pages are newest first: stop at the
        first older fill, after ``max_pages`` pages, or at the last page)."""
        out: list[Fill] = []
        for category in categories:
            cursor = ""
            for _ in range(max_pages):
                params = [("category", category.value), ("startTime", str(since_ms)),
                          ("limit", "100")]
                if cursor:
                    params.append(("cursor", cursor))
                env = await self._call(PATH_EXECUTIONS, params, signed=True)
                result, rows_raw = _listing(env, PATH_EXECUTIONS)
                older = False
                for raw in rows_raw:
                    fill = parse_fill(raw, category)
                    if isinstance(fill, Problem):
                        self._count(fill.counter)
                    elif fill is not None:
                        if fill.exec_ms < since_ms:
                            older = True
                        else:
                            out.append(fill)
                cursor = str(result.get("nextPageCursor") or "")
                if older or not cursor:
                    break
        return out

    async def mark(self, category: Category, symbol: str, *, attempts: int | None = None
                   ) -> MarkPrice | None:
        """One symbol's mark price from the public tickers endpoint (unsigned), stamped
        with the answer's server time; None if the row is missing or unusable.
        ``attempts`` (default ``rest_attempts``): a caller that reads again on its own
        cadence asks once, so a refused read holds nothing while a reset is waited for."""
        env, row = await self._symbol_row(PATH_TICKERS, category, symbol, attempts)
        if row is None:
            return None
        price = wire_decimal(row.get("markPrice"))
        if price is None or price <= 0:
            self._count("bad_field")
            return None
        stamp = env.get("time")
        return MarkPrice(category=category, symbol=symbol, mark_price=price,
                         exchange_ms=stamp if isinstance(stamp, int) else None)

    async def instrument(self, category: Category, symbol: str) -> Instrument | None:
        """One symbol's tick, quantity step and settle coin (public, unsigned); None if
        the exchange lists no such instrument or its row is unusable."""
        _, row = await self._symbol_row(PATH_INSTRUMENTS, category, symbol)
        if row is None:
            return None
        try:
            return Instrument(category=category, symbol=symbol,
                              tick_size=(row.get("priceFilter") or {}).get("tickSize"),
                              qty_step=(row.get("lotSizeFilter") or {}).get("qtyStep"),
                              settle_coin=row.get("settleCoin") or None)
        except ValueError:
            self._count("bad_field")
            return None

    async def _symbol_row(self, path: str, category: Category, symbol: str,
                          attempts: int | None = None,
                          ) -> tuple[dict[str, Any], dict[str, Any] | None]:
        """A public market endpoint's answer for one symbol, and that symbol's row."""
        env = await self._call(path, [("category", category.value), ("symbol", symbol)],
                               signed=False, attempts=attempts)
        _, rows = _listing(env, path)
        row = next((r for r in rows if isinstance(r, dict) and r.get("symbol") == symbol),
                   None)
        return env, row

    # ----------------------------------------------------------------- transport
    async def _call(
        self, path: str, params: list[tuple[str, str]], *, signed: bool, sync_on_skew: bool = True,
        budgeted: bool = True, sent_ns: list[int] | None = None,
        attempts: int | None = None,
    ) -> dict[str, Any]:
        """``path``'s envelope, tried ``attempts`` (default ``rest_attempts``) times;
        ``sent_ns`` collects when each attempt was sent."""
        backoff = Backoff(self._s.backoff_base, self._s.backoff_cap)
        last = ""
        tries = attempts if attempts is not None else self._s.rest_attempts
        for attempt in range(1, tries + 1):
            if self.ban_left() > 0:  # not even one request while Bybit bans this IP
                self._count("rest_banned_skips")
                raise RetryableFeedError(f"{path} not requested: {self.ban_text()}")
            if sent_ns is not None:
                sent_ns.append(time.time_ns())
            try:
                return await self._once(path, params, signed, budgeted)
            except _Retry as exc:
                last = str(exc)
                self._count("rest_retries")
                if exc.code == RET_TIMESTAMP and sync_on_skew:
                    await self.sync_clock()
                wait = exc.wait if exc.wait is not None else backoff.next()
                self._log.warning("REST %s failed (attempt %d/%d): %s; retrying in %.2fs",
                                  path, attempt, tries, last, wait,
                                  extra={"path": path, "attempt": attempt})
                if attempt < tries:
                    await asyncio.sleep(wait)
        raise RetryableFeedError(f"REST {path} failed {tries} times: {last}")

    async def _once(self, path: str, params: list[tuple[str, str]], signed: bool,
                    budgeted: bool = True) -> dict[str, Any]:
        # first: the signature's time follows them; the UID's (narrower) turn first, so
        # that the IP's turn is not held while the UID's is awaited
        if signed and self._uid_budget is not None:
            await self._uid_budget(path).acquire()
        if budgeted and self._budget is not None:
            await self._budget.acquire()
        query = "&".join(f"{k}={quote(v, safe='%')}" for k, v in params)
        url = URL(f"{self._base}{path}" + (f"?{query}" if query else ""), encoded=True)
        headers = {"Accept": "application/json"}
        if signed:
            headers.update(rest_headers(self._key, self._secret, self.clock.now_ms(),
                                        self._s.recv_window, query))
        try:
            async with self._session.get(url, headers=headers) as resp:
                body = await resp.read()
                status, resp_headers = resp.status, resp.headers
        except (aiohttp.ClientError, TimeoutError, OSError) as exc:
            raise _Retry(f"{type(exc).__name__}: {exc}") from None
        if status == 404:
            raise FatalFeedError(
                f"Bybit REST {path} answered 404: check "
                f"{setting_hint(self._profile, 'REST', 'ENDPOINTS')} "
                f"({self._base}), and that the account supports the configured categories "
                f"(Bybit also answers 404 for a category the account mode lacks)"
            )
        if status == 403:
            self._ban()
            raise RetryableFeedError(f"{path}: {self.ban_text()}")
        if status == 429 or status >= 500:
            raise _Retry(f"HTTP {status}")
        try:
            env = orjson.loads(body)
        except orjson.JSONDecodeError:
            env = None
        if not isinstance(env, dict):
            if status == 401:  # Bybit's 401 may come without a JSON body
                raise self._unauthorized(path, _text_head(body))
            raise _Retry(f"HTTP {status} with a non-JSON or non-object body {body[:80]!r}")
        code = env.get("retCode")
        msg = redact(str(env.get("retMsg", "")), self._key, self._secret)
        if code == RET_OK:
            return env
        if isinstance(code, int) and code in FATAL_CODES:
            what, setting = FATAL_CODES[code]
            raise FatalFeedError(
                f"{what} (retCode {code}: {msg}): check {setting_hint(self._profile, setting)}"
            )
        if status == 401:
            raise self._unauthorized(path, msg)
        if code in RETRY_CODES or status != 200:
            wait = self._reset_wait(resp_headers) if code == 10006 else None
            tag = " (10002: clock skew)" if code == RET_TIMESTAMP else ""
            raise _Retry(f"retCode {code}{tag}: {msg}", wait=wait, code=code)
        raise _Retry(f"retCode {code}: {msg}", code=code)

    def _unauthorized(self, path: str, why: str) -> FatalFeedError:
        return FatalFeedError(
            f"Bybit REST {path} answered 401 ({why}): check "
            f"{setting_hint(self._profile, 'API_KEY')} and "
            f"{setting_hint(self._profile, 'API_SECRET')}"
        )

    def _ban(self) -> None:
        pause = self._s.ip_ban_pause
        self.banned_until = time.monotonic() + pause
        self.banned_until_wall = time.time() + pause
        self._count("rest_banned")
        self._log.error("Bybit answered HTTP 403 (IP ban): no REST request for %.0f s",
                        pause, extra={"pause_s": pause})
        if self.on_ban is not None:
            self.on_ban(pause)

    def _reset_wait(self, headers: Any) -> float | None:
        try:
            reset_ms = int(headers.get("X-Bapi-Limit-Reset-Timestamp", ""))
        except ValueError:
            return None
        return min(self._s.backoff_cap, max(0.0, (reset_ms - self.clock.now_ms()) / 1000))


def _text_head(body: bytes) -> str:
    """The start of a (possibly non-JSON) body, for an error message."""
    text = body[:120].decode("utf-8", "replace").strip()
    return repr(text) if text else "empty body"


#: Upper bound (ms since the epoch, year 2286) of a plausible server time.
_MAX_MS = 10**13


def _result(envelope: dict[str, Any]) -> dict[str, Any]:
    result = envelope.get("result")
    return result if isinstance(result, dict) else {}


def _time(envelope: dict[str, Any]) -> int | None:
    """The envelope's server time (ms), or None when it is missing or not a plausible int."""
    value = envelope.get("time")
    if type(value) is not int or not 0 < value < _MAX_MS:  # bool is an int: excluded
        return None
    return value


def _listing(envelope: dict[str, Any], path: str) -> tuple[dict[str, Any], list[Any]]:
    """``result`` and ``result.list`` of an OK answer. Anything but an object holding a
    list is a bad answer, not an empty one: read as 'no rows', a missing list would make
    a snapshot close every open position."""
    result = envelope.get("result")
    rows = result.get("list") if isinstance(result, dict) else None
    if not isinstance(result, dict) or not isinstance(rows, list):
        raise RetryableFeedError(
            f"{path} answered retCode 0 without a result.list list: {str(envelope)[:200]}")
    return result, rows
