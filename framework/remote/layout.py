"""The wire layout of feedctl's events on Redis Streams, shared by publisher and consumers.

Keys (``prefix`` defaults to ``feedctl``)::

    {prefix}:events:{account}            stream: lifecycle, status and route events
    {prefix}:snap:{account}              hash: the account's state as of the stream's last entry
    {prefix}:marks:{exchange}:{category} stream: price events, trimmed tight (latest wins)
    {prefix}:lease:{account}             string: "{owner}:{token}", the writer's lease (PX)
    {prefix}:fence:{account}             integer: the last fencing token handed out
    {prefix}:accounts                    set: every account ever published

An entry of an events stream has the fields ``id`` (the event id, stable across
workers: exchange:account:category:symbol:position_idx:lifecycle:n for a position,
exchange:account:status:feed:n for a status), ``kind``, ``prev`` (the stream id of the
entry before it: a consumer whose last entry is not ``prev`` has a gap) and ``body``
(the event's JSON, exactly as ``feedctl run --output jsonl`` prints it). The snapshot
hash holds ``p:{key}`` (the last lifecycle event of each open position), ``lc:{key}``
and ``n:{key}`` (the lifecycle number and the event number within it), ``s:{feed}``
(the last status event of each feed), ``_last`` (the stream id the snapshot is as of)
and ``_exchange``. Both are written by one Lua script, so a snapshot and its ``_last``
always agree. Nothing in this layout holds a secret.
"""

from __future__ import annotations

from dataclasses import dataclass

from ..models import Category, PositionKey

DEFAULT_PREFIX = "feedctl"


@dataclass(frozen=True)
class BusKeys:
    """Key names of one deployment (one ``prefix``)."""

    prefix: str = DEFAULT_PREFIX

    def events(self, account: str) -> str:
        return f"{self.prefix}:events:{account}"

    def snapshot(self, account: str) -> str:
        return f"{self.prefix}:snap:{account}"

    def marks(self, exchange: str, category: Category | str) -> str:
        return f"{self.prefix}:marks:{exchange}:{category}"

    def lease(self, account: str) -> str:
        return f"{self.prefix}:lease:{account}"

    def fence(self, account: str) -> str:
        return f"{self.prefix}:fence:{account}"

    @property
    def accounts(self) -> str:
        return f"{self.prefix}:accounts"

    def account_of(self, key: str) -> str:
        """The account of an ``events``/``snap``/``lease`` key."""
        return key.split(":", 2)[2]


def position_field(key: PositionKey) -> str:
    """The snapshot field of an open position: ``p:linear:BTCUSDT:0``."""
    return f"p:{key}"


def lifecycle_id(exchange: str, account: str, key: PositionKey, lifecycle: int, n: int) -> str:
    """The event id of the ``n``-th event (0: its ``opened``) of a position's lifecycle."""
    return f"{exchange}:{account}:{key.category}:{key.symbol}:{key.position_idx}:{lifecycle}:{n}"


def status_id(exchange: str, account: str, feed: str, n: int) -> str:
    return f"{exchange}:{account}:status:{feed}:{n}"


def stream_id_tuple(sid: str) -> tuple[int, int]:
    """A stream id ``"1700000000000-3"`` as a comparable tuple."""
    ms, _, seq = sid.partition("-")
    return int(ms), int(seq or 0)
