"""``feedctl worker`` processes against an in-test simulator and redis-server."""

from __future__ import annotations

import asyncio
import os
import signal
import sys
from pathlib import Path
from typing import Any

from feedctl.simulator import Simulator
from tests.rollout.conftest import FAST_HYBRID


def worker_settings(folder: Path, sim: Simulator, profiles: tuple[str, ...] = ("t",),
                    **bus: str) -> Path:
    """A settings file whose profiles each watch the simulator's account under the
    account name of the profile ("t": "main")."""
    hybrid = "\n".join(f'{k} = "{v}"' for k, v in FAST_HYBRID.items())
    extra = "\n".join(f'{k} = "{v}"' for k, v in {"lease_ttl": "3s", "timeout": "0.5s",
                                                    **bus}.items())
    urls = sim.urls
    path = folder / "settings.toml"
    text = ""
    for p in profiles:
        account = "main" if p == "t" else p
        text += f"""
[{p}]
mode = "production"
[{p}.account]
exchange = "bybit"
name = "{account}"
[{p}.endpoints]
rest = "{urls['rest']}"
public_ws = "{urls['public_ws']}"
public_ws_inverse = "{urls['public_ws_inverse']}"
private_ws = "{urls['private_ws']}"
[{p}.feeds.bybit_hybrid]
kind = "bybit_hybrid"
{hybrid}
[{p}.feeds.rest_polling]
kind = "rest_polling"
interval = "0.5s"
[{p}.redis_bus]
{extra}
"""
    path.write_text(text)
    return path


class WorkerProc:
    def __init__(self, name: str, settings: Path, sim: Simulator, redis_url: str,
                 folder: Path, profiles: tuple[str, ...] = ("t",)) -> None:
        self.name, self.settings, self.sim, self.url = name, settings, sim, redis_url
        self.profiles = profiles
        self.log = folder / f"{name}.log"
        self.proc: asyncio.subprocess.Process | None = None

    async def start(self) -> None:
        exe = str(Path(sys.executable).with_name("feedctl"))
        env = dict(os.environ)
        profile_args: list[str] = []
        for p in self.profiles:
            env[f"FEEDCTL_{p.upper()}__ACCOUNT__API_KEY"] = self.sim.api_key
            env[f"FEEDCTL_{p.upper()}__ACCOUNT__API_SECRET"] = self.sim.api_secret
            profile_args += ["--profile", p]
        with self.log.open("wb") as err:
            self.proc = await asyncio.create_subprocess_exec(
                exe, "worker", *profile_args, "--settings", str(self.settings),
                "--redis", self.url, "--owner", self.name, "--for", "120",
                stdout=asyncio.subprocess.DEVNULL, stderr=err, env=env)

    def signal(self, sig: int) -> None:
        assert self.proc is not None
        self.proc.send_signal(sig)

    async def stop(self) -> None:
        if self.proc is None or self.proc.returncode is not None:
            return
        self.proc.send_signal(signal.SIGCONT)
        self.proc.terminate()
        try:
            async with asyncio.timeout(10):
                await self.proc.wait()
        except TimeoutError:
            self.proc.kill()
            await self.proc.wait()

    def text(self) -> str:
        return self.log.read_text(errors="replace")


async def lease_owner(redis: Any, account: str = "main") -> str | None:
    value = await redis.get(f"feedctl:lease:{account}")
    return value.rpartition(":")[0] if value else None
