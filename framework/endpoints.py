"""A feed's endpoints: its kind's defaults for the profile's environment, overridden key by
key by the profile's ``[endpoints]`` table (and, at start, by a service such as the
embedded exchange). The core knows no URL; the kinds declare them (``FeedKind``)."""

from __future__ import annotations

import difflib
import logging
from collections.abc import Iterable, Mapping

from pydantic import ValidationError

from .config import LoadedProfile
from .errors import ConfigError
from .feed import FeedKind
from .manager import Registry
from .settings import Endpoints, ProfileSettings

log = logging.getLogger("feedctl.config")


def feed_endpoints(kind: FeedKind, settings: ProfileSettings, loaded: LoadedProfile,
                   overrides: Mapping[str, str] | None = None) -> Endpoints:
    """``kind``'s endpoints in this profile; a ConfigError naming the setting and where its
    value came from when one is not a URL the kind accepts, or is missing."""
    values = {**settings.endpoints, **(overrides or {})}
    env = settings.environment
    try:
        endpoints = kind.endpoints_for(env, values)
    except ValidationError as exc:
        raise ConfigError(_describe(exc, kind, settings, loaded), setting="endpoints") from None
    if overrides is None:
        _warn_partial(kind, settings, loaded)
    return endpoints


def _describe(exc: ValidationError, kind: FeedKind, settings: ProfileSettings,
              loaded: LoadedProfile) -> str:
    profile, env = loaded.name, settings.environment
    lines = []
    for err in exc.errors():
        name = ".".join(str(p) for p in err["loc"])
        if err["type"] == "missing":
            has = ", ".join(sorted(kind.default_endpoints)) or "none"
            lines.append(
                f"feed kind {kind.name!r} needs endpoint {name!r} and has no default for "
                f"environment {env!r} (it has defaults for: {has}); set endpoints.{name} in "
                f"[{profile}.endpoints] or choose environment = one of those")
            continue
        where = loaded.source_of(f"endpoints.{name}")
        src = (f" (from {where})" if where != "built-in default"
               else f" (default of kind {kind.name!r} for {env!r})")
        msg = err["msg"].removeprefix("Value error, ")
        lines.append(f"setting 'endpoints.{name}' in profile {profile!r}: {msg}, got "
                     f"{err.get('input')!r}{src}")
    return "; ".join(lines)


def _warn_partial(kind: FeedKind, settings: ProfileSettings, loaded: LoadedProfile) -> None:
    """Some of a kind's endpoints moved off its defaults while others stayed: a REST
    override alone leaves the sockets on the exchange's real servers. Said, not refused."""
    defaults = kind.default_endpoints.get(settings.environment)
    if not defaults:
        return
    moved = [k for k in defaults if k in settings.endpoints and settings.endpoints[k]
             != defaults[k]]
    kept = [k for k in defaults if k not in moved]
    if moved and kept:
        log.warning("profile %r: endpoints %s are overridden but %s are still at kind %r's "
                    "%s defaults (%s); set them too if they belong to the same exchange",
                    loaded.name, ", ".join(moved), ", ".join(kept), kind.name,
                    settings.environment, ", ".join(defaults[k] for k in kept),
                    extra={"setting": "endpoints"})


def check_endpoint_names(settings: ProfileSettings, registry: Registry,
                         loaded: LoadedProfile, feeds: Iterable[str]) -> list[ConfigError]:
    """Every name in ``[endpoints]`` is declared by the kind of one of ``feeds`` or by a
    kind for the profile's exchange (another mode may run it): a typo (``privat_ws``)
    must not leave a socket on its default."""
    declared: set[str] = set()
    open_kind = False
    kinds = [k for k, _ in registry.kinds.values()
             if k.exchange is not None and k.serves(settings.account.exchange)]
    for name in feeds:
        entry = settings.feeds.get(name)
        if entry is not None and (kind := registry.kind(entry.kind)) is not None:
            kinds.append(kind)
    for kind in kinds:
        if kind.endpoints_model is Endpoints:
            open_kind = True  # a kind that declares none takes every URL
        declared.update(kind.endpoints_model.model_fields)
    if open_kind:
        return []
    problems = []
    for key in settings.endpoints:
        if key in declared:
            continue
        close = difflib.get_close_matches(key, sorted(declared), 1)
        hint = f"; did you mean '{close[0]}'?" if close else ""
        where = loaded.source_of(f"endpoints.{key}")
        origin = f" (from {where})" if where != "built-in default" else ""
        problems.append(ConfigError(
            f"unknown endpoint 'endpoints.{key}' in profile {loaded.name!r}{origin}: the feeds "
            f"of this profile take {', '.join(sorted(declared)) or 'no endpoints'}{hint}",
            setting=f"endpoints.{key}"))
    return problems

