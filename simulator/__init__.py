"""feedctl's embedded exchange: a Bybit V5-compatible simulator on loopback.

    from feedctl.simulator import Simulator, SimConfig, SimControl

    async with Simulator(SimConfig(symbols=["BTCUSDT"], seed=1)) as sim:
        sim.urls["rest"], sim.api_key, sim.api_secret
"""

from .config import DEFAULT_SYMBOLS, SimConfig, generated_symbols
from .control import SimControl, SimControlError
from .errors import SimError
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
