"""What differs between the exchange personalities a campaign runs against: the primary
feed, how activity, faults and records are made, and what the exchange holds."""

from __future__ import annotations

import random
from collections.abc import Callable
from dataclasses import dataclass
from decimal import Decimal
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from feedctl import Session
    from feedctl.simulator import SimControl, Simulator

    from .config import CampaignConfig
    from .injector import Injector
    from .recorder import Recorder
    from .trader import Trader


@dataclass(frozen=True)
class Flavour:
    #: the feed whose book and taps the analysis reads (the live feed)
    primary: str
    recorder: Callable[[Simulator], Recorder]
    trader: Callable[[Simulator, SimControl, random.Random, Decimal], Trader]
    injector: Callable[[SimControl, Session, random.Random, int], Injector]
    #: the open positions on the exchange, by (symbol, position index)
    exchange_view: Callable[[Simulator], dict[tuple[str, int], dict[str, Any]]]
    #: how long after a stall's end the primary may take to notice it
    detect_slack_s: Callable[[CampaignConfig], float]
