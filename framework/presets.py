"""Which feeds a profile runs, in which roles: explicit roles, else the mode's preset
resolved for the profile's exchange from what the loaded kinds declare.

The core names no exchange. A mode preset (``settings.MODE_PRESETS``) maps roles to
rollout slots (live, fallback); a slot is filled by the feed of the profile whose kind
declares that slot for the profile's exchange (``FeedKind.exchange``/``rollout``), else by
such a kind with its default settings, as a feed named after the kind. A kind for exactly
the exchange wins over one that serves any exchange (``exchange = "*"``).
"""

from __future__ import annotations

from .config import LoadedProfile
from .errors import ConfigError
from .feed import FeedKind
from .manager import Registry
from .settings import MODE_PRESETS, FeedEntry, ProfileSettings, Role, Rollout


def resolve_roles(
    settings: ProfileSettings, registry: Registry, loaded: LoadedProfile,
    problems: list[ConfigError],
) -> tuple[dict[str, Role], dict[str, FeedEntry], str | None]:
    """Feed name -> role, the profile's feed tables with the implicit ones added, and the
    profile's exchange. Problems are appended to ``problems`` (every one is found before
    any is raised)."""
    entries = dict(settings.feeds)
    exchange = settings.account.exchange
    explicit = {n: f.role for n, f in entries.items() if f.role is not None and f.enabled}
    if exchange is None and explicit:
        # feeds given roles by hand, all of kinds for one exchange: that is the exchange
        named = {k.exchange for n in explicit if (k := registry.kind(entries[n].kind))}
        if len(named) == 1 and None not in named and "*" not in named:
            exchange = named.pop()
    if exchange is None:
        problems.append(ConfigError(
            f"profile {loaded.name!r} names no exchange; set [{loaded.name}.account] "
            f"exchange = \"...\" ({_served(registry)})", setting="account.exchange"))
        return {}, entries, None
    if explicit:
        return explicit, entries, exchange
    roles: dict[str, Role] = {}
    for role, slot in MODE_PRESETS[settings.mode].items():
        try:
            name = _fill(slot, exchange, settings, registry, loaded, entries)
        except ConfigError as exc:
            problems.append(exc)
            continue
        roles[name] = role
    return roles, entries, exchange


def _fill(slot: Rollout, exchange: str, settings: ProfileSettings, registry: Registry,
          loaded: LoadedProfile, entries: dict[str, FeedEntry]) -> str:
    def fits(kind: FeedKind | None) -> bool:
        return kind is not None and kind.rollout is slot and kind.serves(exchange)

    mode = settings.mode.value
    defined = [n for n, e in entries.items() if e.enabled and fits(registry.kind(e.kind))]
    if len(defined) > 1:
        own = [n for n in defined if _kind_of(registry, entries[n]).exchange == exchange]
        defined = own if len(own) == 1 else defined
    if len(defined) == 1:
        return defined[0]
    if defined:
        raise ConfigError(
            f"mode {mode!r} of profile {loaded.name!r} needs one {slot.value} feed for "
            f"{exchange!r}, and feeds {', '.join(sorted(defined))} can each be it; give the "
            "profile's feeds explicit roles (feeds.<name>.role) or disable all but one",
            setting="feeds")
    kinds = [k for k, _plugin in registry.kinds.values() if fits(k)]
    exact = [k for k in kinds if k.exchange == exchange]
    pick = exact or kinds
    if not pick:
        raise ConfigError(
            f"mode {mode!r} of profile {loaded.name!r} needs a {slot.value} feed for exchange "
            f"{exchange!r}, and no loaded plugin provides one ({_served(registry)}); install "
            f"the exchange's plugin, fix account.exchange, or choose another mode",
            setting="account.exchange" if not any(k.serves(exchange) for k, _ in
                                                  registry.kinds.values()) else "mode")
    if len(pick) > 1:
        raise ConfigError(
            f"mode {mode!r} of profile {loaded.name!r}: kinds "
            f"{', '.join(sorted(k.name for k in pick))} can each be the {slot.value} feed for "
            f"{exchange!r}; define [{loaded.name}.feeds.<name>] kind = one of them",
            setting="feeds")
    kind = pick[0]
    entry = entries.get(kind.name)
    if entry is not None and entry.kind != kind.name:
        raise ConfigError(
            f"mode {mode!r} of profile {loaded.name!r} runs kind {kind.name!r} as a feed named "
            f"{kind.name!r}, but feeds.{kind.name} is of kind {entry.kind!r}; rename that feed",
            setting=f"feeds.{kind.name}.kind")
    if entry is None:
        entries[kind.name] = FeedEntry(kind=kind.name)
    return kind.name


def _kind_of(registry: Registry, entry: FeedEntry) -> FeedKind:
    kind = registry.kind(entry.kind)
    assert kind is not None
    return kind


def _served(registry: Registry) -> str:
    exchanges = sorted({k.exchange for k, _ in registry.kinds.values()
                        if k.exchange and k.exchange != "*"})
    return ("exchanges of the loaded feed kinds: " + ", ".join(exchanges)) if exchanges \
        else "no loaded feed kind names an exchange"
