"""feedctl's embedded exchange: a Bybit V5-compatible simulator on loopback.

    from feedctl.simulator import Simulator, SimConfig, SimControl

    async with Simulator(SimConfig(symbols=["BTCUSDT"], seed=1)) as sim:
        sim.urls["rest"], sim.api_key, sim.api_secret
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

from .config import DEFAULT_SYMBOLS, SimConfig, generated_symbols
from .errors import SimError

if TYPE_CHECKING:
    from .control import SimControl, SimControlError
    from .server import Simulator

__all__ = [
    "DEFAULT_SYMBOLS",
    "SimConfig",
    "SimControl",
    "SimControlError",
    "SimError",
    "Simulator",
    "generated_symbols",
]

#: aiohttp loads when the server or the control client is first used, not when the
#: plugin registers its settings section and command.
_HOME = {"Simulator": ".server", "SimControl": ".control", "SimControlError": ".control"}


def __getattr__(name: str) -> Any:
    if name in _HOME:
        return getattr(importlib.import_module(_HOME[name], __name__), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
