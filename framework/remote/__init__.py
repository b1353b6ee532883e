"""Consumers anywhere: feedctl's events read back from Redis Streams (docs/redis.md).

Nothing here imports redis-py until a :class:`RemoteSession` starts: the package works
without the ``[redis]`` extra until one is used.
"""

from .events import EntryMeta, GapEvent, decode
from .layout import DEFAULT_PREFIX, BusKeys, lifecycle_id, position_field, stream_id_tuple
from .session import RemoteEventStream, RemoteSession

__all__ = ["DEFAULT_PREFIX", "BusKeys", "EntryMeta", "GapEvent", "RemoteEventStream",
           "RemoteSession", "decode", "lifecycle_id", "position_field", "stream_id_tuple"]
