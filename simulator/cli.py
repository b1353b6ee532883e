"""`feedctl sim` (and `python -m simulator`): run the exchange until SIGINT/SIGTERM.

The first stdout line is one JSON object with the URLs and the API key and secret;
everything else goes to the `feedctl.simulator` logger (stderr).
"""

from __future__ import annotations

import asyncio
import errno
import json
import logging
import signal
import sys

import click
from pydantic import ValidationError

from .config import SimConfig, generated_symbols


def _symbols(value: str | None) -> list[str] | None:
    if value is None:
        return None
    value = value.strip()
    if value.isdigit():
        return generated_symbols(int(value))
    return [s for s in value.split(",") if s.strip()]


class _ListenError(click.ClickException):
    exit_code = 2  # bad usage (a busy port, an address not ours), like the option errors


async def _serve(cfg: SimConfig) -> None:
    loop = asyncio.get_running_loop()
    stop = asyncio.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    from .server import Simulator

    sim = Simulator(cfg)
    try:
        await sim.start()
    except OSError as exc:  # the port is taken, the address is not ours...
        fix = ("choose another --port (0 picks a free one)" if exc.errno == errno.EADDRINUSE
               else "--host must be an address of this machine, such as 127.0.0.1")
        raise _ListenError(
            f"cannot listen on {cfg.host}:{cfg.port}: {exc.strerror or exc}; {fix}") from None
    try:
        line = dict(sim.urls, api_key=sim.api_key, api_secret=sim.api_secret)
        sys.stdout.write(json.dumps(line) + "\n")
        sys.stdout.flush()
        await stop.wait()
    finally:
        await sim.stop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.remove_signal_handler(sig)


@click.command("sim")
@click.option("--host", default="127.0.0.1", show_default=True, help="address to bind")
@click.option("--port", default=0, show_default=True, type=int, help="0 = an ephemeral port")
@click.option("--symbols", default=None,
              help="comma-separated symbols, or a number N for N symbols (defaults, then "
                   "SYM001USDT...)")
@click.option("--seed", default=42, show_default=True, type=int, help="random-walk seed")
@click.option("--demo", is_flag=True, help="run the demo trader")
@click.option("--tick-interval", default=0.1, show_default=True, type=float,
              help="seconds between ticker deltas")
@click.option("--exchange", default="bybit", show_default=True,
              type=click.Choice(["bybit", "binanceusdm"]),
              help="the exchange to speak: Bybit V5, or Binance USDⓈ-M futures")
@click.option("--log-level", default="WARNING", show_default=True,
              type=click.Choice(["DEBUG", "INFO", "WARNING", "ERROR"], case_sensitive=False))
def sim_command(host: str, port: int, symbols: str | None, seed: int, demo: bool,
                tick_interval: float, exchange: str, log_level: str) -> None:
    """Run the embedded exchange (Bybit V5, or Binance USDⓈ-M with --exchange
    binanceusdm) on loopback."""
    logging.basicConfig(level=log_level.upper(), stream=sys.stderr,
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    kwargs: dict = {"host": host, "port": port, "seed": seed, "demo": demo,
                    "tick_interval": tick_interval, "exchange": exchange}
    parsed = _symbols(symbols)
    if parsed is not None:
        kwargs["symbols"] = parsed
    try:
        cfg = SimConfig(**kwargs)
    except ValidationError as exc:
        problems = "; ".join(
            f"--{'-'.join(str(p) for p in e['loc']).replace('_', '-')}: "
            f"{e['msg'].removeprefix('Value error, ')}" for e in exc.errors())
        raise click.UsageError(problems) from None
    asyncio.run(_serve(cfg))


def main() -> None:
    sim_command(prog_name="feedctl sim")


if __name__ == "__main__":
    main()
