"""Building a session plan: the validated profile, its feeds and roles — no I/O.

``feedctl check`` prints a plan; :class:`feedctl.Session` runs one.
"""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass, field
from typing import Any

from pydantic import BaseModel, ValidationError

from .config import (
    LoadedProfile,
    core_settings,
    env_var_name,
    load_profile,
    merge_settings,
    validate_section,
)
from .endpoints import check_endpoint_names, feed_endpoints
from .errors import ConfigError, PluginError
from .feed import FeedKind
from .manager import (
    FeedctlPluginManager,
    Registry,
    build_plugin_manager,
    call_plain,
    collect_registry,
    plugin_callers,
    profile_files,
)
from .presets import resolve_roles
from .services import Service
from .settings import AccountSettings, Endpoints, FeedEntry, Mode, ProfileSettings, Role

log = logging.getLogger("feedctl.config")


@dataclass
class FeedPlan:
    name: str
    kind: FeedKind
    plugin: str
    role: Role
    settings: Any
    #: The kind's endpoints for the profile's environment with the profile's overrides
    #: (a service such as the embedded exchange may replace them at start).
    endpoints: Endpoints = field(default_factory=Endpoints)


@dataclass
class AccountPlan:
    """One account of a session: the profile as it sees it (its ``account``, exchange,
    environment, feed settings) and its feeds in their roles."""

    name: str
    #: Where the account's settings live: ``account`` or ``accounts.<name>``.
    prefix: str
    settings: ProfileSettings
    feeds: list[FeedPlan]

    @property
    def account(self) -> AccountSettings:
        return self.settings.account

    @property
    def roles(self) -> dict[str, Role]:
        return {f.name: f.role for f in self.feeds}


@dataclass
class SessionPlan:
    loaded: LoadedProfile
    settings: ProfileSettings
    registry: Registry
    pm: FeedctlPluginManager
    feeds: list[FeedPlan]
    plugin_settings: dict[str, BaseModel] = field(default_factory=dict)
    services: list[Service] = field(default_factory=list)
    #: Every account the session serves (one for the single ``[account]`` form);
    #: ``settings`` and ``feeds`` are the first one's.
    accounts: list[AccountPlan] = field(default_factory=list)

    def __post_init__(self) -> None:
        if not self.accounts:
            self.accounts = [AccountPlan(self.settings.account.name, "account", self.settings,
                                         self.feeds)]

    @property
    def multi(self) -> bool:
        """True when the profile lists its accounts (``[<profile>.accounts.<name>]``)."""
        return bool(self.settings.accounts)

    @property
    def roles(self) -> dict[str, Role]:
        return {f.name: f.role for f in self.feeds}

    def credentials_provided_by(self) -> str | None:
        for svc in self.services:
            if "account" in svc.provides:
                return svc.name
        return None


def build_plan(
    profile: str | None = None,
    *,
    settings_path: str | os.PathLike[str] | None = None,
    mode: str | None = None,
    overrides: dict[str, Any] | None = None,
    pm: FeedctlPluginManager | None = None,
) -> SessionPlan:
    """Load, merge and validate a profile; resolve feeds and roles. Connects to nothing."""
    pm = pm or build_plugin_manager()
    registry = collect_registry(pm)
    loaded = load_profile(profile, settings_path, builtin=profile_files(pm))
    if overrides:
        loaded.raw = merge_settings(loaded.raw, overrides)
        for k in overrides:
            loaded.sources[k] = "overridden in code"
    if mode is not None:
        try:
            Mode(mode)
        except ValueError:
            raise ConfigError(
                f"--mode {mode!r} is not a mode; choose one of "
                f"{', '.join(m.value for m in Mode)}", setting="--mode") from None
        loaded.raw["mode"] = mode
        loaded.sources["mode"] = "command line (--mode)"
    problems: list[ConfigError] = []  # every problem is found, then all are raised
    # the profile's bad core values are left out (defaults), so its feeds are still checked
    settings = core_settings(loaded, set(registry.sections), problems)
    # a bad value the roles depend on (the mode, the exchange, a feed's role or kind) was
    # left out: the roles the defaults give would only add problems that are not there
    roles_unknown = any(_shapes_roles(p.setting) for p in problems)
    plugin_settings: dict[str, BaseModel] = {}
    for name, (model, _plugin) in registry.sections.items():
        try:
            plugin_settings[name] = validate_section(model, settings.plugins.get(name),
                                                     loaded.name, name, loaded)
        except ConfigError as exc:
            problems.append(exc)
    failed_sections = set(registry.sections) - set(plugin_settings)
    settings = settings.model_copy(update={"plugins": plugin_settings})
    if mode is not None and settings.explicit_roles:
        problems.append(ConfigError(
            f"--mode {mode} cannot apply: profile {loaded.name!r} gives feeds explicit roles "
            "(feeds.<name>.role); remove them to use mode presets", setting="--mode"))
    accounts: list[AccountPlan] = []
    seen: set[str] = set()
    for name, prefix, view in account_views(settings, problems):
        found: list[ConfigError] = []
        accounts.append(_account_plan(name, prefix, view, registry, loaded, found,
                                      roles_unknown=roles_unknown))
        for problem in found:
            if len(settings.accounts) > 0:
                problem = ConfigError(
                    f"account {name!r}: {problem}",
                    setting=f"{prefix}.{problem.setting}" if problem.setting else prefix)
            if str(problem) not in seen:  # a problem of the profile's feeds, said once
                seen.add(str(problem))
                problems.append(problem)
    if settings.accounts and not any(e.enabled for e in settings.accounts.values()):
        problems.append(ConfigError(
            f"profile {loaded.name!r} has no enabled account; enable one of "
            f"[{loaded.name}.accounts.<name>] (enabled = true)", setting="accounts"))
    if not problems:
        warned: set[str] = set()  # one line per distinct problem, however many accounts
        for acct in accounts:
            _warn_uneven_coverage(acct.feeds, acct.settings, loaded.name, warned)
    if accounts:
        settings = accounts[0].settings
    services = _services(pm, settings)
    # a section that failed may be a service's that provides endpoints: not known then
    refused = _kind_checks(accounts, loaded.name, multi=len(settings.accounts) > 0,
                           endpoints_provided=bool(failed_sections) or any(
                               "endpoints" in svc.provides for svc in services))
    problems.extend(refused)
    plan = SessionPlan(loaded, settings, registry, pm, accounts[0].feeds if accounts else [],
                       plugin_settings, services, accounts)
    if problems:
        # the keys too, so that one `check` lists everything to fix (when nothing else is
        # wrong, `check` shows the plan first, then refuses the keys)
        if plan.credentials_provided_by() is None and not failed_sections:
            bad = {p.setting for p in problems if p.setting}  # a key set wrong is said
            problems.extend(c for c in credential_problems(plan) if not any(
                b.startswith(f"{(c.setting or '').rpartition('.')[0]}.api_") for b in bad))
        raise ConfigError.of(problems)
    return plan


def _services(pm: FeedctlPluginManager, settings: ProfileSettings) -> list[Service]:
    services: list[Service] = []
    for plugin, caller in plugin_callers(pm, "feedctl_services"):
        for result in call_plain(caller, plugin, "feedctl_services",
                                 what="feedctl_services", settings=settings):
            for svc in result or []:
                if not isinstance(svc, Service):
                    raise PluginError(
                        f"plugin {plugin!r} returned {svc!r} from feedctl_services, "
                        "which is not a feedctl.Service", plugin=plugin)
                services.append(svc)
    return services


def _kind_checks(accounts: list[AccountPlan], profile: str, *, multi: bool,
                 endpoints_provided: bool) -> list[ConfigError]:
    """What the feeds would refuse when they start (``FeedKind.check``), refused now, so
    that `check` and `run` refuse alike; endpoints a service provides at start are not
    known yet (None)."""
    problems: list[ConfigError] = []
    seen: set[str] = set()
    for acct in accounts:
        for f in acct.feeds:
            if f.kind.check is None:
                continue
            for msg in f.kind.check(f.name, f.settings, acct.settings.account,
                                    acct.settings.environment,
                                    None if endpoints_provided else f.endpoints,
                                    _account_var(profile, acct.prefix)):
                text = f"feed {f.name!r} (kind {f.kind.name!r}): {msg}"
                if multi:
                    text = f"account {acct.name!r}: {text}"
                if text not in seen:
                    seen.add(text)
                    problems.append(ConfigError(text, setting=f"feeds.{f.name}"))
    return problems


def _account_var(profile: str, prefix: str) -> Any:
    """``env_var(setting)`` of one account: ``account.password`` is set by
    ``FEEDCTL_<P>__ACCOUNT__PASSWORD``, or ``FEEDCTL_<P>__ACCOUNTS__<N>__PASSWORD`` for
    the account of ``[<p>.accounts.<n>]``."""
    def env_var(setting: str) -> str:
        head, dot, rest = setting.partition(".")
        return env_var_name(profile, f"{prefix}.{rest}" if head == "account" and dot
                            else setting)
    return env_var


def account_views(settings: ProfileSettings, problems: list[ConfigError] | None = None,
                  ) -> list[tuple[str, str, ProfileSettings]]:
    """(name, settings prefix, the profile as the account sees it) of every enabled
    account: the one ``[account]``, or each of ``[accounts.<name>]`` with its exchange,
    environment, keys and per-account feed settings laid over the profile's. An account
    whose feed settings are invalid is left out, its problem added to ``problems`` (raised
    without)."""
    if not settings.accounts:
        return [(settings.account.name, "account", settings)]
    out = []
    for name, entry in settings.accounts.items():
        if not entry.enabled:
            continue
        account = AccountSettings(
            name=name, exchange=entry.exchange or settings.account.exchange,
            api_key=entry.api_key, api_secret=entry.api_secret, password=entry.password,
            uid=entry.uid)
        feeds = dict(settings.feeds)
        bad: list[ConfigError] = []
        for feed, table in entry.feeds.items():
            base = feeds.get(feed)
            merged: dict[str, Any] = (
                {"kind": base.kind, "role": base.role, "enabled": base.enabled,
                 **base.kind_settings()} if base is not None else {"kind": feed})
            try:
                feeds[feed] = FeedEntry.model_validate({**merged, **table})
            except ValidationError as exc:
                bad.append(ConfigError(f"account {name!r}: setting 'accounts.{name}.feeds."
                                       f"{feed}': {exc.errors()[0]['msg']}",
                                       setting=f"accounts.{name}.feeds.{feed}"))
        if bad:
            if problems is None:
                raise bad[0]
            problems.extend(bad)
            continue
        view = settings.model_copy(update={
            "account": account, "feeds": feeds,
            "environment": entry.environment or settings.environment})
        out.append((name, f"accounts.{name}", view))
    return out


def _shapes_roles(setting: str | None) -> bool:
    parts = (setting or "").split(".")
    if parts[0] in ("mode", "feeds"):
        return len(parts) <= 2 or parts[2] in ("role", "kind", "enabled")
    return parts[:2] in (["account"], ["account", "exchange"])


def _account_plan(name: str, prefix: str, settings: ProfileSettings, registry: Registry,
                  loaded: LoadedProfile, problems: list[ConfigError], *,
                  roles_unknown: bool = False) -> AccountPlan:
    roles, entries, exchange = resolve_roles(settings, registry, loaded,
                                             [] if roles_unknown else problems)
    if roles_unknown:  # every feed table is still checked, as one the mode leaves out
        roles = {}
    account = settings.account.model_copy(update={"exchange": exchange})
    settings = settings.model_copy(update={"feeds": entries, "account": account})
    feeds: list[FeedPlan] = []
    for feed, role in roles.items():
        try:
            feeds.append(_feed_plan(settings, registry, loaded, feed, role))
        except ConfigError as exc:
            problems.append(exc)
    if roles and len(feeds) == len(roles):
        try:
            _check_roles(feeds, loaded.name)
        except ConfigError as exc:
            problems.append(exc)
    problems.extend(_check_unselected_feeds(settings, registry, loaded, set(roles),
                                            roles_known=not roles_unknown))
    problems.extend(check_endpoint_names(settings, registry, loaded, settings.feeds))
    return AccountPlan(name, prefix, settings, feeds)


def _feed_plan(settings: ProfileSettings, registry: Registry, loaded: LoadedProfile,
               name: str, role: Role) -> FeedPlan:
    entry = settings.feeds.get(name)
    if entry is None:
        raise ConfigError(
            f"mode {settings.mode.value!r} of profile {loaded.name!r} needs a feed named "
            f"{name!r}; define [{loaded.name}.feeds.{name}] with kind = \"...\"",
            setting=f"feeds.{name}")
    if not entry.enabled:
        raise ConfigError(
            f"feed {name!r} has role {role.value} but is disabled "
            f"(feeds.{name}.enabled = false)", setting=f"feeds.{name}.enabled")
    kind = registry.kind(entry.kind)
    if kind is None:
        known = ", ".join(sorted(registry.kinds)) or "none"
        raise ConfigError(
            f"feed {name!r} names kind {entry.kind!r}, which no loaded plugin provides "
            f"(known kinds: {known}); install the plugin or fix feeds.{name}.kind",
            setting=f"feeds.{name}.kind")
    exchange = settings.account.exchange
    if not kind.serves(exchange):
        raise ConfigError(
            f"feed {name!r} (kind {kind.name!r}) serves exchange {kind.exchange!r}, but "
            f"profile {loaded.name!r} is for {exchange!r} (account.exchange); "
            f"use a kind for {exchange!r} or remove the feed's role", setting=f"feeds.{name}")
    kind_settings = validate_section(
        kind.settings_model, entry.kind_settings(), loaded.name, f"feeds.{name}", loaded)
    endpoints = feed_endpoints(kind, settings, loaded)
    return FeedPlan(name, kind, registry.kinds[entry.kind][1], role, kind_settings, endpoints)


def _check_unselected_feeds(settings: ProfileSettings, registry: Registry,
                            loaded: LoadedProfile, selected: set[str], *,
                            roles_known: bool = True) -> list[ConfigError]:
    """Feed tables the mode does not select are validated too: a typo must not wait for
    the day the mode changes. A built-in table whose kind is not loaded is skipped (the
    defaults name the built-in kinds; a profile may run without them)."""
    problems: list[ConfigError] = []
    for name, entry in settings.feeds.items():
        if name in selected:
            continue
        kind = registry.kind(entry.kind)
        if kind is None:
            if loaded.source_of(f"feeds.{name}.kind") == "built-in default":
                continue
            known = ", ".join(sorted(registry.kinds)) or "none"
            problems.append(ConfigError(
                f"feed {name!r} names kind {entry.kind!r}, which no loaded plugin provides "
                f"(known kinds: {known}); install the plugin or fix feeds.{name}.kind"
                + (f" (the feed is not used in mode {settings.mode.value!r}, but is checked)"
                   if roles_known else ""),
                setting=f"feeds.{name}.kind"))
            continue
        try:
            validate_section(kind.settings_model, entry.kind_settings(), loaded.name,
                             f"feeds.{name}", loaded)
        except ConfigError as exc:
            problems.append(exc)
    return problems


def _covers(scope: frozenset[str] | None, item: str) -> bool:
    if scope is None:
        return True
    return item in scope or f"{item.partition(':')[0]}:*" in scope


def _warn_uneven_coverage(feeds: list[FeedPlan], settings: ProfileSettings,
                          profile: str, warned: set[str]) -> None:
    """Feeds of one profile whose snapshots cover different categories or settle coins:
    after a failover (or in a comparison), what the other one does not list is not
    watched. Said at check and run, naming both feeds; not refused."""
    scopes = {f.name: f.kind.coverage(f.settings, settings.account.exchange)
              for f in feeds if f.kind.coverage is not None}
    for name, scope in scopes.items():
        for other, other_scope in scopes.items():
            if other == name or scope is None:
                continue
            missing = sorted(i for i in scope if not _covers(other_scope, i))
            said = f"{name}>{other}:{missing}"
            if missing and said not in warned:
                warned.add(said)
                log.warning("profile %r: feed %r covers %s, which feed %r does not list; "
                            "positions there are not watched while %r delivers — widen "
                            "feeds.%s (categories, settle_coins)", profile, name,
                            ", ".join(missing), other, other, other,
                            extra={"setting": f"feeds.{other}"})


def _check_roles(feeds: list[FeedPlan], profile: str) -> None:
    primaries = [f.name for f in feeds if f.role is Role.PRIMARY]
    standbys = [f.name for f in feeds if f.role is Role.STANDBY]
    if len(primaries) != 1:
        raise ConfigError(
            f"profile {profile!r} must give exactly one feed the role primary, "
            f"found {len(primaries)} ({', '.join(primaries) or 'none'})", setting="feeds.*.role")
    if len(standbys) > 1:
        raise ConfigError(
            f"profile {profile!r} may have at most one standby feed, found "
            f"{', '.join(standbys)}", setting="feeds.*.role")


def check_credentials(plan: SessionPlan) -> None:
    """Fail with one message naming the variables when an account's feeds need keys that
    are not set (every such account is named)."""
    problems = credential_problems(plan)
    if problems:
        raise ConfigError.of(problems)


def credential_problems(plan: SessionPlan) -> list[ConfigError]:
    return [p for acc in plan.accounts if (p := _missing_keys(plan, acc)) is not None]


def _missing_keys(plan: SessionPlan, acc: AccountPlan) -> ConfigError | None:
    account = acc.account
    if account.has_credentials():
        return None
    needing = [f.name for f in acc.feeds if f.kind.requires_credentials]
    if not needing:
        return None
    missing = ("API_KEY" if not (account.api_key and account.api_key.get_secret_value())
               else "API_SECRET")
    setting = f"{acc.prefix}.{missing.lower()}"
    var = env_var_name(plan.loaded.name, setting)
    whose = f"account {acc.name!r}: " if plan.multi else ""
    theirs = "its" if plan.multi else "the account's"
    return ConfigError(
        f"{whose}{var} is not set (feeds {', '.join(needing)} need {theirs} API key and "
        f"secret); export it or put {missing.lower()} under "
        f"[{plan.loaded.name}.{acc.prefix}] in .secrets.toml", setting=setting)
