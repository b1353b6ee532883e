"""What a remote consumer receives besides the events of a :class:`~feedctl.Session`."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, TypeAdapter

from ..models import PositionEvent, RouteEvent, StatusEvent


class GapEvent(BaseModel):
    """Entries of an account's stream were trimmed before this consumer read them. A
    fresh snapshot of the account follows at once (its ``opened`` events marked
    synthetic, as at the start): a consumer keeping positions by key resets the
    account's positions to it."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    type: Literal["gap"] = "gap"
    account: str
    #: The last stream id this consumer had of the account, and the ``prev`` of the
    #: entry that arrived instead of its successor.
    expected: str
    got: str


_Wire = Annotated[PositionEvent | StatusEvent | RouteEvent, Field(discriminator="type")]
WIRE: TypeAdapter[PositionEvent | StatusEvent | RouteEvent] = TypeAdapter(_Wire)


def decode(body: str) -> PositionEvent | StatusEvent | RouteEvent:
    """An entry's ``body`` as the event it was published from."""
    return WIRE.validate_json(body)


@dataclass(frozen=True, slots=True)
class EntryMeta:
    """Where the event just returned by a remote stream came from."""

    account: str
    #: The stream entry id (None for events made from a snapshot).
    stream_id: str | None
    #: The event id, stable across workers (None for snapshot and price events).
    event_id: str | None
