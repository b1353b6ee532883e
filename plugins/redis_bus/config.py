"""``[<profile>.redis_bus]``: where the bus lives and how much of it is kept."""

from __future__ import annotations

from pydantic import Field, SecretStr

from feedctl import Duration, StrictModel


class BusSettings(StrictModel):
    """Off unless ``url`` is set. The URL may carry an ACL user and password
    (``rediss://user:pass@host:6380/0``): set it from the environment
    (``FEEDCTL_<PROFILE>__REDIS_BUS__URL``) or .secrets.toml, never settings.toml."""

    url: SecretStr | None = None
    #: Key prefix: several deployments may share one Redis.
    prefix: str = Field(default="feedctl", pattern=r"^[A-Za-z0-9_.-]+$")
    #: Entries kept per account's events stream (trimmed on every write, MAXLEN ~).
    events_maxlen: int = Field(default=10_000, ge=100)
    #: Age beyond which events entries are trimmed (MINID ~); 0 keeps by length only.
    retention: Duration = 86_400.0
    #: Entries kept per (exchange, category) marks stream: latest wins.
    marks_maxlen: int = Field(default=1_000, ge=100)
    #: Lifecycle and status events an account may hold while Redis is slow or down;
    #: past it the account is marked dirty and resynced from the book when Redis is back.
    outbox_max: int = Field(default=10_000, ge=10)
    #: Items written per script call.
    batch: int = Field(default=200, ge=1, le=5_000)
    #: Lease time of an account's writer (a worker's takeover waits at most this long).
    lease_ttl: Duration = Field(default=5.0, ge=0.3)
    #: Seconds a Redis command may take before the connection counts as down.
    timeout: Duration = Field(default=2.0, gt=0)
