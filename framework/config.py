"""Loading a profile: dynaconf layers, provenance, and one-line errors.

Layers, later wins:

1. built-in defaults (``framework/defaults.toml``, shipped in the package), then the
   profiles plugins ship (``feedctl_profiles``: the embedded exchange's ``sim``, an
   exchange plugin's ``mainnet``/``testnet``...);
2. the settings file: ``--settings PATH``, else ``$FEEDCTL_SETTINGS``, else
   ``./settings.toml`` when it exists;
3. ``.secrets.toml`` beside that file (untracked; for API keys);
4. environment variables: ``FEEDCTL_<KEY>`` for the selected profile, nested with
   ``__`` (``FEEDCTL_ACCOUNT__API_KEY``); ``FEEDCTL_<PROFILE>__<KEY>`` applies to one
   profile only (``FEEDCTL_MAINNET__ACCOUNT__API_KEY``) and wins over the former.

A profile is a dynaconf environment (``[default]``, ``[sim]``, ``[testnet]``,
``[mainnet]``...). ``FEEDCTL_PROFILE`` or ``--profile`` selects it; ``sim`` is the default.
"""

from __future__ import annotations

import copy
import difflib
import logging
import os
import tomllib
import typing
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

from pydantic import BaseModel, ValidationError

from .errors import ConfigError
from .settings import ProfileSettings

DEFAULTS_FILE = Path(__file__).with_name("defaults.toml")
DEFAULT_PROFILE = "sim"
ENV_PREFIX = "FEEDCTL"
#: The tool's own variables: read by feedctl's commands and test tools, never as
#: settings (README, "Environment variables").
TOOL_VARIABLES: dict[str, str] = {
    "FEEDCTL_PROFILE": "the profile when --profile is not given",
    "FEEDCTL_SETTINGS": "the settings file when --settings is not given",
    "FEEDCTL_LOAD_PLUGINS": "load only these plugins (comma-separated names)",
    "FEEDCTL_DISABLE_PLUGIN_AUTOLOAD": "1: load no installed plugin",
    "FEEDCTL_MONITOR_URL": "the monitor `feedctl status` reads",
    "FEEDCTL_MONITOR_TOKEN": "the token `feedctl status` sends",
    "FEEDCTL_REDIS_URL": "the Redis URL of `feedctl worker`, `tail` and `bus` (--redis)",
    "FEEDCTL_FUZZ_EXAMPLES": "examples per property in the test suite's fuzz tests",
}
_RESERVED = {name.removeprefix(ENV_PREFIX + "_") for name in TOOL_VARIABLES}
log = logging.getLogger("feedctl.config")


@dataclass
class LoadedProfile:
    """A profile's merged raw settings and where each leaf came from."""

    name: str
    raw: dict[str, Any]
    sources: dict[str, str] = field(default_factory=dict)
    files: list[Path] = field(default_factory=list)
    #: Top-level keys set only by unscoped environment variables, with one of them.
    env_only: dict[str, str] = field(default_factory=dict)
    #: Profiles the settings files define.
    profiles: set[str] = field(default_factory=set)

    def source_of(self, dotted: str) -> str:
        """Where the setting ``dotted`` (or its nearest parent) was set."""
        key = dotted
        while key:
            if key in self.sources:
                return self.sources[key]
            key = key.rpartition(".")[0]
        return "built-in default"


def env_var_name(profile: str, dotted: str) -> str:
    """The profile-scoped variable that sets ``dotted``: FEEDCTL_MAINNET__ACCOUNT__API_KEY."""
    parts = [profile, *dotted.split(".")]
    return ENV_PREFIX + "_" + "__".join(p.upper() for p in parts)


def _lower_keys(value: Any) -> Any:
    if isinstance(value, dict):
        return {str(k).lower(): _lower_keys(v) for k, v in value.items()}
    return value


def merge_settings(base: dict[str, Any], top: dict[str, Any]) -> dict[str, Any]:
    out = dict(base)
    for k, v in top.items():
        if isinstance(v, dict) and isinstance(out.get(k), dict):
            out[k] = merge_settings(out[k], v)
        else:
            out[k] = v
    return out


def _leaves(value: dict[str, Any], prefix: str = "") -> list[str]:
    out: list[str] = []
    for k, v in value.items():
        path = f"{prefix}.{k}" if prefix else k
        if isinstance(v, dict) and v:
            out.extend(_leaves(v, path))
        else:
            out.append(path)
    return out


def _profiles_in(files: list[Path]) -> set[str]:
    """Profile names: the top-level tables of every settings file."""
    names: set[str] = set()
    for f in files:
        try:
            with f.open("rb") as fh:
                names.update(k.lower() for k, v in tomllib.load(fh).items() if isinstance(v, dict))
        except (OSError, tomllib.TOMLDecodeError) as exc:
            raise ConfigError(f"cannot read settings file {str(f)!r}: {exc}") from exc
    return names


def _env_vars() -> list[tuple[str, list[str]]]:
    """(variable, lower-case key path) of every FEEDCTL_ variable that is not a tool's."""
    out = []
    for var in sorted(os.environ):
        if not var.startswith(ENV_PREFIX + "_"):
            continue
        rest = var[len(ENV_PREFIX) + 1:]
        if rest.upper() in _RESERVED or not rest:
            continue
        out.append((var, [p.lower() for p in rest.split("__")]))
    return out


def _first_var(key: str) -> str:
    return next((v for v, path in _env_vars() if path[0] == key), f"{ENV_PREFIX}_{key.upper()}")


def _env_sources(profile: str, profiles: set[str]) -> dict[str, str]:
    """Per leaf, the variable that sets it (a profile-scoped one wins)."""
    unscoped: dict[str, str] = {}
    scoped: dict[str, str] = {}
    for var, path in _env_vars():
        if path[0] in profiles:
            if path[0] == profile and len(path) > 1:
                scoped[".".join(path[1:])] = f"environment ({var})"
        else:
            unscoped[".".join(path)] = f"environment ({var})"
    return {**unscoped, **scoped}


def _file_sources(files: list[Path], profile: str) -> dict[str, str]:
    """Per leaf, the last file table that sets it (``[default]``, then ``[<profile>]``)."""
    out: dict[str, str] = {}
    for f in files:
        with f.open("rb") as fh:
            data = _lower_keys(tomllib.load(fh))
        for env in ("default", "global", profile):
            table = data.get(env)
            if not isinstance(table, dict):
                continue
            for leaf in _leaves(table):
                # the table that holds the key: [sim.router] for router.failover_after
                parent = leaf.rpartition(".")[0]
                out[leaf] = ("built-in default" if f == DEFAULTS_FILE
                             else f"{f} [{env}{'.' + parent if parent else ''}]")
    return out


def settings_file(explicit: str | os.PathLike[str] | None = None) -> Path | None:
    """The user settings file in effect, or None when only built-in defaults apply."""
    if explicit:
        path = Path(explicit)
        if not path.is_file():
            raise ConfigError(f"settings file {str(path)!r} does not exist", setting="--settings")
        return path.resolve()
    env = os.environ.get(f"{ENV_PREFIX}_SETTINGS")
    if env:
        path = Path(env)
        if not path.is_file():
            raise ConfigError(
                f"FEEDCTL_SETTINGS points to {env!r}, which does not exist",
                setting="FEEDCTL_SETTINGS",
            )
        return path.resolve()
    cwd = Path.cwd() / "settings.toml"
    return cwd if cwd.is_file() else None


def load_profile(
    profile: str | None = None, settings_path: str | os.PathLike[str] | None = None,
    builtin: Sequence[Path] = (),
) -> LoadedProfile:
    """Merge every layer for ``profile`` (default: $FEEDCTL_PROFILE or ``sim``);
    ``builtin``: the profile files plugins ship, layered over the core's defaults."""
    name = (profile or os.environ.get(f"{ENV_PREFIX}_PROFILE") or DEFAULT_PROFILE).lower()
    user_file = settings_file(settings_path)
    files = [DEFAULTS_FILE, *builtin]
    if user_file is not None:
        files.append(user_file)
        secrets = user_file.with_name(".secrets.toml")
        if secrets.is_file():
            files.append(secrets)
    elif (Path.cwd() / ".secrets.toml").is_file():
        files.append(Path.cwd() / ".secrets.toml")
    known_profiles = _profiles_in(files)  # first: a TOML error names its file
    # dynaconf loads here, not with this module: `feedctl plugins` (the plugins import
    # env_var_name) and `--version` never read a profile
    from dynaconf import Dynaconf
    from dynaconf.utils.inspect import get_history

    try:
        dyn = Dynaconf(
            settings_files=[str(f) for f in files],
            environments=True,
            envvar_prefix=ENV_PREFIX,
            env=name,
            env_switcher=f"{ENV_PREFIX}_PROFILE_SWITCH_UNUSED",
            merge_enabled=True,
            load_dotenv=False,
        )
        dyn.as_dict()  # force loading now, so file errors surface here
        history = get_history(dyn)
    except Exception as exc:  # dynaconf raises assorted parse errors
        raise ConfigError(f"cannot read settings files {[str(f) for f in files]}: {exc}") from exc

    raw: dict[str, Any] = {}
    scoped: dict[str, Any] = {}
    sources: dict[str, str] = {}
    from_env: dict[str, str] = {}
    from_files: set[str] = set()
    for entry in history:
        loader, env = entry.get("loader"), str(entry.get("env", "")).lower()
        value = _lower_keys(entry.get("value") or {})
        if loader == "toml":
            if env not in ("default", "global", name):
                continue
            raw = merge_settings(raw, value)
            from_files.update(value)
        elif loader == "env_global":
            for k, v in value.items():
                if k.upper() in _RESERVED:
                    continue
                if k in known_profiles:
                    if k == name and isinstance(v, dict):
                        scoped = merge_settings(scoped, v)
                    continue
                raw = merge_settings(raw, {k: v})
                from_env.setdefault(k, _first_var(k))
    # where each leaf came from, read from the files themselves: dynaconf's history of a
    # merged environment holds the merged value (a [default] key shows as the profile's)
    sources = {**_file_sources(files, name), **_env_sources(name, known_profiles)}
    known_profiles.discard("default")
    known_profiles.discard("global")
    if name not in known_profiles:
        raise ConfigError(
            f"profile {name!r} is not defined; known profiles: "
            f"{', '.join(sorted(known_profiles)) or 'none'}"
            f" (define [{name}] in settings.toml{_switched_off()})",
            setting="--profile",
        )
    raw = merge_settings(raw, scoped)
    raw.pop("dynaconf_merge", None)
    if user_file is not None:
        _warn_secrets_in(user_file, name, raw, sources)
    env_only = {k: v for k, v in from_env.items() if k not in from_files}
    return LoadedProfile(name=name, raw=raw, sources=sources, files=files, env_only=env_only,
                         profiles=known_profiles)


def _switched_off() -> str:
    """Why a shipped profile may be missing: the plugin that ships it is not loaded."""
    if os.environ.get(f"{ENV_PREFIX}_DISABLE_PLUGIN_AUTOLOAD", "") not in ("", "0"):
        return (f"; {ENV_PREFIX}_DISABLE_PLUGIN_AUTOLOAD is set, so no installed plugin is "
                "loaded, nor the profiles plugins ship (sim, mainnet, testnet...)")
    if os.environ.get(f"{ENV_PREFIX}_LOAD_PLUGINS"):
        return (f"; {ENV_PREFIX}_LOAD_PLUGINS loads only "
                f"{os.environ[ENV_PREFIX + '_LOAD_PLUGINS']}: the profiles other plugins "
                "ship are not loaded")
    return ""


#: Settings that hold secrets: they belong in .secrets.toml or the environment.
SECRET_SETTINGS = ("account.api_key", "account.api_secret", "account.password",
                   "monitor.token")


def _warn_secrets_in(user_file: Path, profile: str, raw: dict[str, Any],
                     sources: dict[str, str]) -> None:
    """A secret in the (tracked) settings file is accepted, with a warning."""
    accounts = raw.get("accounts")
    listed = [f"accounts.{name}.{key}" for name, table in
              (accounts.items() if isinstance(accounts, dict) else ())
              if isinstance(table, dict)
              for key in ("api_key", "api_secret", "password") if table.get(key)]
    for dotted in (*SECRET_SETTINGS, *listed):
        where = sources.get(dotted, "")
        *path, key = dotted.split(".")
        table: Any = raw
        for part in path:
            table = table.get(part) if isinstance(table, dict) else None
        if not (where.startswith(str(user_file) + " ")
                and isinstance(table, dict) and table.get(key)):
            continue
        log.warning("%s is set in %s: settings files are usually tracked; keep secrets in "
                    ".secrets.toml beside it (untracked) or in %s", dotted, where,
                    env_var_name(profile, dotted), extra={"setting": dotted})


def format_validation_error(
    exc: ValidationError, profile: str, prefix: str = "", *,
    model: type[BaseModel] | None = None, loaded: LoadedProfile | None = None,
) -> str:
    """The problems of :func:`validation_lines`, joined."""
    return "; ".join(line for _, line in validation_lines(exc, profile, prefix, model=model,
                                                           loaded=loaded))


def validation_lines(
    exc: ValidationError, profile: str, prefix: str = "", *,
    model: type[BaseModel] | None = None, loaded: LoadedProfile | None = None,
) -> list[tuple[str, str]]:
    """(setting, readable line) per problem: the setting, where its value came from (the
    file and table, or the variable — only that), and for an unknown key the closest
    known one."""
    lines: list[tuple[str, str]] = []
    for err in exc.errors():
        parts = [str(p) for p in err["loc"]]
        loc = ".".join((prefix.split(".") if prefix else []) + parts)
        where = loaded.source_of(loc) if loaded is not None else None
        if err["type"] == "extra_forbidden":
            origin = f" (from {where})" if where and where != "built-in default" else ""
            close = _closest(model, parts)
            hint = f"; did you mean '{close}'?" if close else " (check its spelling)"
            lines.append((loc, f"unknown setting '{loc}' in profile {profile!r}{origin}{hint}"))
            continue
        got = err.get("input")
        msg = err["msg"].removeprefix("Value error, ")
        if loaded is not None and where == "built-in default":
            loc, msg, where = _origin_below(loaded, loc, msg)
        shown = ("" if isinstance(got, dict) or got is None or "got " in msg
                 else " (the value is a secret: not shown)" if _is_secret(model, parts)
                 else f", got {got!r}")
        if where and where.startswith("environment ("):
            fix = f" (from {where[len('environment ('):-1]})"
        elif where and where != "built-in default":
            fix = f" (from {where})"
        else:
            fix = f"; set it in settings.toml [{profile}] or {env_var_name(profile, loc)}"
        lines.append((loc, f"setting '{loc}' in profile {profile!r}: {msg}{shown}{fix}"))
    return lines


def _origin_below(loaded: LoadedProfile, loc: str, msg: str) -> tuple[str, str, str]:
    """(setting, message, origin) of a problem a section's own validator reports on the
    whole section ("symbols: at least one symbol is required" on ``simulator``): the key
    its message names when that key was set (``simulator.symbols``), else the section
    with the one place every key below it came from."""
    field_name, _, rest = msg.partition(": ")
    if rest and field_name.isidentifier() and loc:
        named = loaded.sources.get(f"{loc}.{field_name}")
        if named is not None:
            return f"{loc}.{field_name}", rest, named
    below = {src for key, src in loaded.sources.items()
             if key.startswith(loc + ".") or not loc} - {"built-in default"}
    return loc, msg, below.pop() if len(below) == 1 else "built-in default"


#: Keys whose values are secrets wherever they are (a plugin's raw section too).
_SECRET_KEYS = frozenset({"api_key", "api_secret", "password", "token", "secret"})


def _is_secret(model: type[BaseModel] | None, parts: list[str]) -> bool:
    """Whether the setting at ``parts`` holds a secret (a ``SecretStr`` field, or a key
    named like one): its bad value is never quoted in an error."""
    if parts and parts[-1] in _SECRET_KEYS:
        return True
    current: Any = model
    for i, part in enumerate(parts):
        fields = getattr(current, "model_fields", None)
        if fields is None or part not in fields:
            return False
        annotation = fields[part].annotation
        if i == len(parts) - 1:
            return "SecretStr" in str(annotation)
        args = [a for a in typing.get_args(annotation) if isinstance(a, type)]
        current = annotation if isinstance(annotation, type) else (args[-1] if args else None)
    return False


def _closest(model: type[BaseModel] | None, parts: list[str]) -> str | None:
    """The known key closest to the unknown last part of ``parts`` (None: no idea)."""
    if model is None or not parts:
        return None
    current: Any = model
    for part in parts[:-1]:
        fields = getattr(current, "model_fields", None)
        if fields is None or part not in fields:
            return None  # under a dict (feeds.<name>) or a plugin's raw section
        annotation = fields[part].annotation
        current = annotation if isinstance(annotation, type) else None
        if current is None or not issubclass(current, BaseModel):
            return None
    names = list(getattr(current, "model_fields", {}))
    close = difflib.get_close_matches(parts[-1], names, 1, cutoff=0.6)
    return ".".join([*parts[:-1], close[0]]) if close else None


M = TypeVar("M", bound=BaseModel)


def validate_section(model: type[M], data: Any, profile: str, prefix: str,
                     loaded: LoadedProfile | None = None) -> M:
    try:
        return model.model_validate(data if data is not None else {})
    except ValidationError as exc:
        raise ConfigError(format_validation_error(exc, profile, prefix, model=model,
                                                  loaded=loaded), setting=prefix) from None


def core_settings(loaded: LoadedProfile, plugin_sections: set[str],
                  problems: list[ConfigError] | None = None) -> ProfileSettings:
    """Validate the core part of a profile; plugin sections are kept raw for their owners.

    With ``problems``, every problem is added to it (one ConfigError each) and the
    settings returned are the profile without the bad values (their defaults), so that
    the rest of the profile (its feeds) is still checked; without, the first
    validation's problems are raised."""
    data = dict(loaded.raw)
    settings_names = set(ProfileSettings.model_fields) | plugin_sections
    for key, var in loaded.env_only.items():
        if key in data and key not in settings_names:
            # FEEDCTL_<X>__...: X is neither a setting nor a profile of the settings files
            # (a variable meant for a profile defined elsewhere): not this profile's business
            close = difflib.get_close_matches(key, sorted(settings_names | loaded.profiles), 1)
            hint = f"; did you mean {close[0]!r}?" if close else ""
            log.warning("%s is ignored: %r is neither a setting nor a profile in the settings "
                        "files%s", var, key, hint, extra={"variable": var})
            data.pop(key)
    plugins = {k: data.pop(k) for k in list(data) if k in plugin_sections}
    feeds = data.get("feeds")
    if isinstance(feeds, dict):  # a feed table's kind defaults to the feed's name
        data["feeds"] = {name: {"kind": name, **table} if isinstance(table, dict) else table
                         for name, table in feeds.items()}
    data["profile"] = loaded.name
    data["plugins"] = plugins
    data = copy.deepcopy(data)  # the bad values are dropped from it, not from the profile
    found: list[ConfigError] = []
    for _ in range(10):  # each round drops the bad values the last one found
        try:
            settings = ProfileSettings.model_validate(data)
        except ValidationError as exc:
            found.extend(ConfigError(line, setting=loc) for loc, line in validation_lines(
                exc, loaded.name, model=ProfileSettings, loaded=loaded))
            if problems is None or not all([_drop(data, e["loc"], e["type"] == "missing")
                                            for e in exc.errors()]):
                raise ConfigError.of(found) from None
            continue
        if problems is not None:
            problems.extend(found)
        return settings
    raise ConfigError.of(found)


def _drop(data: dict[str, Any], loc: tuple[int | str, ...], missing: bool) -> bool:
    """Remove the value at ``loc`` (its table, for a missing key; the list, for an item)
    from ``data``, so that it validates with the default; False if there is none."""
    path: list[str] = []
    for part in loc:  # down to a list's item: the list goes
        if not isinstance(part, str):
            break
        path.append(part)
    if missing:
        path = path[:-1]
    table: Any = data
    for part in path[:-1]:
        table = table.get(part) if isinstance(table, dict) else None
    if not path or not isinstance(table, dict) or path[-1] not in table:
        return False
    del table[path[-1]]
    return True

