"""The simulator as a feedctl plugin: the ``feedctl sim`` command, the ``[simulator]``
settings section, and the embedded exchange service behind the ``sim`` profile.

Owned by the lead (wiring only); the simulator itself lives in the other modules.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import click
from pydantic import Field, model_validator

from feedctl import ProfileSettings, StrictModel, hookimpl


class SimulatorSection(StrictModel):
    """``[<profile>.simulator]``: run the embedded exchange inside the session."""

    embedded: bool = False
    symbols: list[str] = Field(default_factory=lambda: ["BTCUSDT", "ETHUSDT", "SOLUSDT"])
    seed: int = 7
    demo: bool = True
    demo_interval: float = Field(3.0, gt=0)
    host: str = "127.0.0.1"
    port: int = Field(0, ge=0, le=65535)

    @model_validator(mode="after")
    def _buildable(self) -> SimulatorSection:
        """What start() would refuse, refused now (so `feedctl check` does too)."""
        from pydantic import ValidationError

        try:
            self.sim_config()
        except ValidationError as exc:
            problems = []
            for e in exc.errors():
                name = ".".join(str(p) for p in e["loc"])
                msg = e["msg"].removeprefix("Value error, ")
                problems.append(msg if msg.startswith(name + ":") else f"{name}: {msg}")
            raise ValueError("; ".join(problems)) from None
        return self

    def sim_config(self, exchange: str = "bybit") -> Any:
        from .config import SimConfig

        return SimConfig(host=self.host, port=self.port, symbols=self.symbols, seed=self.seed,
                         demo=self.demo, demo_interval=self.demo_interval, exchange=exchange)


class EmbeddedSimulator:
    """A feedctl.Service: starts the simulator and points the profile at it."""

    name = "simulator"
    provides = frozenset({"account", "endpoints"})

    def __init__(self, section: SimulatorSection, exchange: str = "bybit",
                 accounts: list[str] | None = None) -> None:
        self.section = section
        self.exchange = exchange
        #: The profile's accounts (``[<profile>.accounts.<name>]``): one simulated account
        #: (own key, own demo trader) each.
        self.accounts = list(accounts or [])
        self.sim: Any = None

    async def start(self) -> dict[str, Any]:
        from .accounts import MultiAccountSimulator
        from .server import Simulator

        cfg = self.section.sim_config(self.exchange)
        if self.accounts and self.exchange == "bybit":
            self.sim = MultiAccountSimulator(cfg, accounts=len(self.accounts))
        else:
            self.sim = Simulator(cfg)
        await self.sim.start()
        urls = self.sim.urls
        if self.accounts and self.exchange == "bybit":
            return {
                "accounts": {name: {"api_key": a.api_key, "api_secret": a.api_secret}
                             for name, a in zip(self.accounts, self.sim.sim_accounts,
                                                strict=True)},
                "endpoints": {"rest": urls["rest"], "public_ws": urls["public_ws"],
                              "private_ws": urls["private_ws"],
                              "public_ws_inverse": urls.get("public_ws_inverse",
                                                            urls["public_ws"])},
            }
        if self.exchange == "binanceusdm":
            # the endpoint names of the binance_usdm feed kind (rest, market_ws, private_ws)
            return {
                "account": {"api_key": self.sim.api_key, "api_secret": self.sim.api_secret,
                            "name": "sim"},
                "endpoints": {"rest": urls["rest"], "market_ws": urls["market_ws"],
                              "private_ws": urls["private_ws"]},
            }
        return {
            "account": {"api_key": self.sim.api_key, "api_secret": self.sim.api_secret,
                        "name": "sim"},
            "endpoints": {"rest": urls["rest"], "public_ws": urls["public_ws"],
                          "private_ws": urls["private_ws"],
                          "public_ws_inverse": urls.get("public_ws_inverse",
                                                        urls["public_ws"])},
        }

    async def stop(self) -> None:
        if self.sim is not None:
            await self.sim.stop()
            self.sim = None

    def __repr__(self) -> str:
        return f"<EmbeddedSimulator {self.exchange} symbols={self.section.symbols}>"


@hookimpl
def feedctl_profiles() -> Path:
    """``sim``: the embedded exchange with a demo trader, no account, no network."""
    return Path(__file__).with_name("profiles.toml")


@hookimpl
def feedctl_settings_sections(register: Any) -> None:
    register("simulator", SimulatorSection)


@hookimpl
def feedctl_services(settings: ProfileSettings) -> list[Any] | None:
    section = settings.plugins.get("simulator")
    if isinstance(section, SimulatorSection) and section.embedded:
        exchange = settings.account.exchange
        if exchange not in ("bybit", "binanceusdm"):
            raise ValueError(f"simulator.embedded: the embedded exchange speaks bybit or "
                             f"binanceusdm, not {exchange!r}; set account.exchange to one of "
                             "them or turn simulator.embedded off")
        return [EmbeddedSimulator(section, exchange, list(settings.accounts))]
    return None


@hookimpl
def feedctl_cli_commands(cli: click.Group) -> None:
    from .cli import sim_command

    cli.add_command(sim_command, name="sim")
