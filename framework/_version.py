"""Version of the feedctl distribution and of the plugin API."""

__version__ = "0.2.0"

#: Version of the plugin API (hooks, FeedKind, FeedContext). A plugin declares the
#: version it was built for in its ``FeedKind.api_version``; the plugin manager
#: refuses a kind whose major version differs from this one.
API_VERSION = 1
