"""feedctl's exceptions.

::

    FeedctlError
    ├── ConfigError            bad or missing setting; names the setting (CLI exit 2)
    ├── PluginError            a plugin misbehaved: names the plugin
    │   └── PluginConflictError   two plugins claim one name; names both
    ├── FeedError              raised by a feed
    │   ├── RetryableFeedError    transient: the feed reconnects/retries with backoff
    │   └── FatalFeedError        cannot recover without the user (bad key...): no retry
    └── ConsumerOverflowError  a consumer fell so far behind that lifecycle events would be lost
"""

from __future__ import annotations


class FeedctlError(Exception):
    """Base of every error feedctl raises on purpose."""


class ConfigError(FeedctlError):
    """A setting is invalid or missing. The message names the setting and how to set it."""

    def __init__(self, message: str, *, setting: str | None = None,
                 problems: list[ConfigError] | None = None) -> None:
        super().__init__(message)
        self.setting = setting
        #: every problem found when several were (each a ConfigError of its own)
        self.problems: list[ConfigError] = problems or [self]

    @classmethod
    def of(cls, problems: list[ConfigError]) -> ConfigError:
        """One error for several: its message lists them all, ``problems`` keeps each."""
        if len(problems) == 1:
            return problems[0]
        return cls("; ".join(str(p) for p in problems), setting=problems[0].setting,
                   problems=problems)


class PluginError(FeedctlError):
    """A plugin failed to load, returned something invalid, or declared an incompatible API."""

    def __init__(self, message: str, *, plugin: str | None = None) -> None:
        super().__init__(message)
        self.plugin = plugin


class PluginConflictError(PluginError):
    """Two plugins registered the same name (feed kind, settings section...)."""


class FeedError(FeedctlError):
    """Raised by a feed."""


class RetryableFeedError(FeedError):
    """A transient failure: the feed will retry with backoff."""


class FatalFeedError(FeedError):
    """A failure retrying cannot fix (invalid key, rejected signature, missing capability)."""


class ConsumerOverflowError(FeedctlError):
    """A consumer's queue of undelivered lifecycle events exceeded its bound."""
