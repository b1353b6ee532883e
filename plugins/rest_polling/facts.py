"""What the poller needs to know of a ccxt exchange before it builds one, and the rules
it refuses a profile by.

Two readings of the same facts (:class:`ExchangeFacts`):

- :func:`facts_of` reads a built ccxt exchange (the feed, at start);
- :func:`read_facts` reads the exchange's source file in ccxt's package folder, without
  importing ccxt (its import takes most of a second and ``feedctl check`` must stay
  quick): ccxt's Python exchanges are generated from its TypeScript, each a class whose
  ``describe()`` returns ``deep_extend(super().describe(), {...literal...})``, so the
  literal ``has``, ``requiredCredentials`` and ``urls`` of the class and its parents are
  parsed (``ast``) and merged as ``deep_extend`` merges them. A test compares both
  readings for every exchange of the installed ccxt.

:func:`refusals` holds the rules; ``feedctl check`` (through ``FeedKind.check``) lists
every one, the feed raises the first: one message whatever says it.
"""

from __future__ import annotations

import ast
import difflib
import functools
import importlib.util
import logging
import re
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from feedctl import AccountSettings, Endpoints

from .config import RestPollingSettings

log = logging.getLogger("feedctl.feed.rest_polling")

#: The ``has`` flags the poller reads.
HAS_FLAGS = ("fetchPositions", "fetchMarkPrices", "fetchTickers", "fetchMarkPrice",
             "fetchTicker")

#: ccxt credentials feedctl's account settings carry, by ccxt name: the setting.
ACCOUNT_FIELDS = {"password": "password", "uid": "uid"}


@dataclass(frozen=True)
class ExchangeFacts:
    id: str
    #: ``has[flag]`` is true, per flag of :data:`HAS_FLAGS`.
    has: frozenset[str]
    #: ``requiredCredentials`` set to true, apiKey and secret included.
    required_credentials: frozenset[str]
    #: ``urls['test']`` is set: ccxt has a sandbox for it.
    has_sandbox: bool
    #: The keys of ``urls['api']``, or None when it is not a table.
    api_keys: frozenset[str] | None


def facts_of(exchange: Any) -> ExchangeFacts:
    """The facts of a built ccxt exchange."""
    has = exchange.has or {}
    urls = exchange.urls or {}
    api = urls.get("api")
    return ExchangeFacts(
        id=str(exchange.id),
        has=frozenset(f for f in HAS_FLAGS if has.get(f)),
        required_credentials=frozenset(
            k for k, v in (exchange.requiredCredentials or {}).items() if v),
        has_sandbox=bool(urls.get("test")),
        api_keys=frozenset(api) if isinstance(api, dict) else None)


# ------------------------------------------------------------------ the source reading
@functools.cache
def _ccxt_folder() -> Path | None:
    spec = importlib.util.find_spec("ccxt")
    if spec is None or not spec.submodule_search_locations:
        return None
    return Path(next(iter(spec.submodule_search_locations)))


@functools.cache
def ccxt_ids() -> frozenset[str] | None:
    """ccxt's exchange ids (one module per exchange in its package folder); None if ccxt
    is not installed."""
    folder = _ccxt_folder()
    if folder is None:
        return None
    return frozenset(p.stem for p in (folder / "async_support").glob("*.py")
                     if not p.stem.startswith("_"))


class _Opaque:
    """A value that is not a literal (``self.id``, a call): set, but not read."""

    def __bool__(self) -> bool:
        return True


_OPAQUE = _Opaque()
_CLASS = re.compile(r"^class (\w+)\((\w+)", re.M)


def _literal(node: ast.AST) -> Any:
    if isinstance(node, ast.Constant):
        return node.value
    if isinstance(node, ast.Dict):
        return {_literal(k): _literal(v) for k, v in zip(node.keys, node.values, strict=True)
                if isinstance(k, ast.Constant)}
    return _OPAQUE


def _deep_extend(base: Any, top: Any) -> Any:
    """ccxt's ``deep_extend`` of two values: tables merge, anything else replaces."""
    if not (isinstance(base, dict) and isinstance(top, dict)):
        return top
    out = dict(base)
    for key, value in top.items():
        out[key] = _deep_extend(out.get(key), value)
    return out


#: The keys of ``describe()`` read (each a first-level key of its literal).
_KEYS = ("has", "requiredCredentials", "urls")
_KEY = re.compile(r"^ {12}'(" + "|".join(_KEYS) + r")': ", re.M)
_NEXT = re.compile(r"^(?: {12}'| {8}\S| {4}\S|\S)", re.M)


def _describe_literal(source: str) -> tuple[dict[str, Any], bool]:
    """(the ``has``, ``requiredCredentials`` and ``urls`` of the literal ``describe()``
    returns, whether it extends its parent's). Only those keys' lines are parsed: the
    whole literal (every REST route of the exchange) takes ten times longer."""
    start = source.index("    def describe(self)")
    ends = re.compile(r"^    (?:def |@)", re.M).search(source, start + 1)
    body = source[start:ends.start() if ends else len(source)]
    ret = re.search(r"^        return (.*)$", body, re.M)
    if ret is None:
        raise ValueError("describe() returns nothing ccxt's generator writes")
    extends = ret.group(1).startswith("self.deep_extend(super(")
    out: dict[str, Any] = {}
    for match in _KEY.finditer(body):
        nxt = _NEXT.search(body, match.end())
        snippet = body[match.start():nxt.start() if nxt else len(body)]
        tree = ast.parse("{\n" + snippet + "\n}", mode="eval")
        out.update(_literal(tree.body))
    return out, extends


@functools.cache
def _described(folder: Path, module: str) -> Any:
    """The merged ``describe()`` literal of ``async_support/<module>.py``'s class ("" is
    ccxt's base Exchange) in ccxt's package ``folder``."""
    if not module:
        return _describe_literal((folder / "base" / "exchange.py").read_text("utf-8"))[0]
    source = (folder / "async_support" / f"{module}.py").read_text("utf-8")
    match = _CLASS.search(source)
    if match is None:
        raise ValueError(f"no exchange class in ccxt's {module}.py")
    own, extends = _describe_literal(source)
    if not extends:  # ccxt's exchanges all extend their parent's
        raise ValueError(f"ccxt's {module}.py describes without its parent")
    parent = "" if match.group(2) == "Exchange" else match.group(2)
    return _deep_extend(_described(folder, parent), own)


def source_facts(folder: Path, ex_id: str) -> ExchangeFacts:
    """The facts of ``ex_id`` read from the source files of ccxt's package ``folder``;
    ValueError (or SyntaxError) when they are not written the way ccxt writes them."""
    described = _described(folder, ex_id)
    if not isinstance(described, dict):
        raise ValueError(f"ccxt's {ex_id}.py describes no table")
    has = described.get("has") or {}
    urls = described.get("urls") or {}
    api = urls.get("api") if isinstance(urls, dict) else None
    required = described.get("requiredCredentials") or {}
    if not (isinstance(has, dict) and isinstance(required, dict)):
        raise ValueError(f"ccxt's {ex_id}.py has no literal has or requiredCredentials")
    return ExchangeFacts(
        id=ex_id,
        has=frozenset(f for f in HAS_FLAGS if has.get(f) and has.get(f) is not _OPAQUE),
        required_credentials=frozenset(k for k, v in required.items() if v),
        has_sandbox=isinstance(urls, dict) and bool(urls.get("test")),
        api_keys=frozenset(api) if isinstance(api, dict) else None)


@functools.cache
def read_facts(ex_id: str) -> ExchangeFacts | None:
    """The facts of ccxt's ``ex_id``, or None if ccxt does not have it (or is not
    installed): read from its source; should a ccxt release write an exchange otherwise,
    from the exchange built (ccxt imported: slower, never wrong)."""
    folder, ids = _ccxt_folder(), ccxt_ids()
    if folder is None or ids is None or ex_id not in ids:
        return None
    try:
        return source_facts(folder, ex_id)
    except (ValueError, SyntaxError, OSError, StopIteration):
        log.debug("ccxt's %s.py read otherwise than expected; importing ccxt", ex_id)
        import ccxt.async_support as ccxt_async

        return facts_of(getattr(ccxt_async, ex_id)())


# ------------------------------------------------------------------ the rules
def exchange_id(feed: str, settings: RestPollingSettings,
                account: AccountSettings) -> tuple[str, str]:
    """(the ccxt id the feed uses, the setting that names it)."""
    from .constants import DEFAULT_EXCHANGE

    ex_id = settings.exchange or account.exchange or DEFAULT_EXCHANGE
    return ex_id, (f"feeds.{feed}.exchange" if settings.exchange else "account.exchange")


def unknown_exchange(ex_id: str, where: str) -> str:
    ids = sorted(ccxt_ids() or ())
    close = difflib.get_close_matches(ex_id, ids, 1)
    return (f"{ex_id!r} is not a ccxt exchange id ({where})"
            + (f"; did you mean {close[0]!r}?" if close else ""))


def refusals(facts: ExchangeFacts, *, feed: str, settings: RestPollingSettings,
             account: AccountSettings, environment: str, endpoints: Endpoints | None,
             env_var: Callable[[str], str]) -> list[str]:
    """Every reason the poller refuses to start on ``facts``, in the order it meets them;
    ``env_var(setting)`` names the variable that sets an account setting.
    ``endpoints`` is None when a service provides them at start (not known yet). Missing
    API key or secret are not said here: the core refuses them (``requires_credentials``)."""
    where = exchange_id(feed, settings, account)[1]
    ex_id = facts.id
    out: list[str] = []
    if "fetchPositions" not in facts.has:
        out.append(f"exchange {ex_id!r} does not support fetchPositions; rest_polling "
                   f"needs it ({where})")
    extra = {"password": account.password.get_secret_value() if account.password else None,
             "uid": account.uid}
    needed = sorted(facts.required_credentials - {"apiKey", "secret"})
    unset = [n for n in needed if n in ACCOUNT_FIELDS and not extra.get(n)]
    if unset:
        names = " and ".join(unset)
        out.append(f"exchange {ex_id!r} ({where}) also needs {names}: export "
                   + " and ".join(env_var(f"account.{ACCOUNT_FIELDS[n]}") for n in unset)
                   + f" or put {names} in .secrets.toml")
    foreign = [n for n in needed if n not in ACCOUNT_FIELDS]
    if foreign:
        out.append(f"exchange {ex_id!r} ({where}) signs with {' and '.join(foreign)}, which "
                   "feedctl's account settings do not carry: rest_polling cannot serve it")
    source = settings.mark_price_source
    if source in ("mark_prices", "tickers"):
        call = "fetchMarkPrices" if source == "mark_prices" else "fetchTickers"
        if call not in facts.has:
            out.append(f"this exchange has no {call}; choose another "
                       f"feeds.{feed}.mark_price_source")
    rest = None if endpoints is None else getattr(endpoints, "rest", None)
    if endpoints is not None and rest is None and settings.urls is None:
        if environment == "testnet" and not facts.has_sandbox:
            out.append(f"ccxt has no testnet for {ex_id!r}: set endpoints.rest "
                       f"(or feeds.{feed}.urls) to its REST URL")
        elif environment not in ("mainnet", "testnet"):
            out.append(f"rest_polling knows no {environment!r} URL for {ex_id!r}: set "
                       f"endpoints.rest (or feeds.{feed}.urls)")
    if settings.urls:
        if facts.api_keys is None:
            out.append(f"{ex_id} has no urls['api'] to override (feeds.{feed}.urls)")
        else:
            for key in settings.urls:
                if key != "*" and key not in facts.api_keys:
                    out.append(f"{ex_id} has no REST URL key {key!r} (feeds.{feed}.urls); "
                               f"known keys: {', '.join(sorted(facts.api_keys))}, or '*' "
                               "for all")
    return out
