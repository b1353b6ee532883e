"""The processes of a bus campaign: a real redis-server (Debian's, append-only file
fsynced on every write, so a SIGKILL loses nothing Redis acknowledged) and ``feedctl
worker`` processes, each of which the campaign may kill, pause and resume."""

from __future__ import annotations

import asyncio
import contextlib
import os
import shutil
import signal
import socket
import sys
import time
from pathlib import Path
from typing import Any

FEEDCTL = str(Path(sys.executable).with_name("feedctl"))


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class RedisProc:
    """One redis-server on 127.0.0.1; ``kill()`` then ``start()`` keeps the port and the
    directory (a restart after a crash, from the append-only file)."""

    def __init__(self, folder: Path) -> None:
        binary = shutil.which("redis-server")
        if binary is None:
            raise SystemExit("redis-server is not installed: apt-get install -y redis-server")
        self.binary, self.folder, self.port = binary, folder, free_port()
        self.proc: asyncio.subprocess.Process | None = None
        self.kills = 0

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    async def start(self, timeout: float = 10.0) -> None:
        self.proc = await asyncio.create_subprocess_exec(
            *[self.binary, "--port", str(self.port), "--bind", "127.0.0.1",
             "--dir", str(self.folder), "--daemonize", "no", "--loglevel", "warning",
             "--logfile", str(self.folder / "redis.log"), "--save", "",
             "--appendonly", "yes", "--appendfsync", "always"],
            stdout=asyncio.subprocess.DEVNULL, stderr=asyncio.subprocess.DEVNULL)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.returncode is not None:
                raise RuntimeError("redis-server exited at start; see "
                                   f"{self.folder / 'redis.log'}")
            if await self._answers():
                return
            await asyncio.sleep(0.02)
        raise RuntimeError(f"redis-server did not answer on port {self.port}")

    async def _answers(self) -> bool:
        with contextlib.suppress(OSError):
            reader, writer = await asyncio.open_connection("127.0.0.1", self.port)
            try:
                writer.write(b"PING\r\n")
                await writer.drain()
                async with asyncio.timeout(0.5):
                    line = await reader.readline()
                return line.startswith(b"+PONG")
            finally:
                writer.close()
                with contextlib.suppress(OSError):
                    await writer.wait_closed()
        return False

    async def kill(self) -> None:
        if self.proc is not None and self.proc.returncode is None:
            self.proc.send_signal(signal.SIGKILL)
            await self.proc.wait()
            self.kills += 1

    async def stop(self) -> None:
        if self.proc is not None and self.proc.returncode is None:
            self.proc.terminate()
            try:
                async with asyncio.timeout(10):
                    await self.proc.wait()
            except TimeoutError:
                await self.kill()


class WorkerProc:
    """One ``feedctl worker`` serving ``profile`` (its accounts shared with peers)."""

    def __init__(self, name: str, settings: Path, profile: str, url: str, env: dict[str, str],
                 folder: Path) -> None:
        self.name, self.settings, self.profile, self.url = name, settings, profile, url
        self.env, self.log = env, folder / f"{name}.log"
        self.proc: asyncio.subprocess.Process | None = None
        self.paused = False
        #: set once the campaign killed it (its exit is then no failure)
        self.killed = False

    async def start(self) -> None:
        with self.log.open("wb") as err:
            self.proc = await asyncio.create_subprocess_exec(
                FEEDCTL, "worker", "--profile", self.profile, "--settings",
                str(self.settings), "--redis", self.url, "--owner", self.name,
                stdout=asyncio.subprocess.DEVNULL, stderr=err, env={**os.environ, **self.env})

    @property
    def alive(self) -> bool:
        return self.proc is not None and self.proc.returncode is None

    def send(self, sig: int) -> None:
        assert self.proc is not None
        if self.proc.returncode is None:
            self.proc.send_signal(sig)
            if sig == signal.SIGSTOP:
                self.paused = True
            elif sig == signal.SIGCONT:
                self.paused = False

    async def kill(self) -> None:
        self.killed = True
        self.send(signal.SIGKILL)
        assert self.proc is not None
        await self.proc.wait()

    async def stop(self, timeout: float = 15.0) -> int | None:
        """SIGTERM (after SIGCONT if paused), then SIGKILL past ``timeout``; the exit code."""
        if self.proc is None:
            return None
        if self.proc.returncode is None:
            if self.paused:
                self.send(signal.SIGCONT)
            self.proc.send_signal(signal.SIGTERM)
            try:
                async with asyncio.timeout(timeout):
                    await self.proc.wait()
            except TimeoutError:
                self.proc.kill()
                await self.proc.wait()
        return self.proc.returncode

    def log_lines(self, *needles: str) -> dict[str, Any]:
        """How many log lines contain each needle, and a few of them."""
        text = self.log.read_text(errors="replace") if self.log.exists() else ""
        out: dict[str, Any] = {}
        for needle in needles:
            hits = [ln for ln in text.splitlines() if needle in ln]
            out[needle] = {"count": len(hits), "samples": [h[:300] for h in hits[:3]]}
        return out
