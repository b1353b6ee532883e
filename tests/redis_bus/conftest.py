"""A real redis-server per test: Debian's binary on 127.0.0.1, a free port, a temporary
directory, no persistence unless a test asks for it; stopped (and waited for) after."""

from __future__ import annotations

import contextlib
import shutil
import signal
import socket
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class RedisServer:
    """One redis-server process. ``kill()`` and ``start()`` again keep the port and the
    directory (a restart after a crash)."""

    def __init__(self, folder: Path, *, persist: bool = False, extra: list[str] | None = None,
                 tls: dict[str, Path] | None = None) -> None:
        binary = shutil.which("redis-server")
        if binary is None:
            pytest.fail("redis-server is not installed: apt-get install -y redis-server "
                        "(.ci/run does it)")
        self.binary = binary
        self.folder = folder
        self.port = free_port()
        self.persist = persist
        self.extra = extra or []
        #: With ``{"cert": ..., "key": ..., "ca": ...}``: TLS only (no plain port).
        self.tls = tls
        self.proc: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        if self.tls:
            return f"rediss://127.0.0.1:{self.port}/0?ssl_ca_certs={self.tls['ca']}"
        return f"redis://127.0.0.1:{self.port}/0"

    def user_url(self, user: str, password: str) -> str:
        return self.url.replace("://", f"://{user}:{password}@", 1)

    def args(self) -> list[str]:
        save = ["--save", "1 1", "--appendonly", "yes"] if self.persist else [
            "--save", "", "--appendonly", "no"]
        ports = ["--port", str(self.port)]
        if self.tls:
            ports = ["--port", "0", "--tls-port", str(self.port), "--tls-cert-file",
                     str(self.tls["cert"]), "--tls-key-file", str(self.tls["key"]),
                     "--tls-ca-cert-file", str(self.tls["ca"]), "--tls-auth-clients", "no"]
        return [self.binary, *ports, "--bind", "127.0.0.1",
                "--dir", str(self.folder), "--daemonize", "no", "--loglevel", "warning",
                "--logfile", str(self.folder / "redis.log"), *save, *self.extra]

    def start(self, timeout: float = 10.0) -> None:
        self.proc = subprocess.Popen(self.args(), stdout=subprocess.DEVNULL,
                                     stderr=subprocess.DEVNULL)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                log = (self.folder / "redis.log")
                raise RuntimeError("redis-server exited at start: "
                                   + (log.read_text()[-500:] if log.exists() else ""))
            if self.ping():
                return
            time.sleep(0.02)
        raise RuntimeError(f"redis-server did not answer on port {self.port}")

    def ping(self) -> bool:
        """Whether the server answers (any answer: an ACL may refuse the default user)."""
        with contextlib.suppress(OSError), socket.create_connection(
                ("127.0.0.1", self.port), timeout=0.5) as raw:
            s = raw
            if self.tls:
                import ssl

                ctx = ssl.create_default_context(cafile=str(self.tls["ca"]))
                s = ctx.wrap_socket(raw, server_hostname="127.0.0.1")
            s.sendall(b"PING\r\n")
            return s.recv(16)[:1] in (b"+", b"-")
        return False

    def kill(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGKILL)
            self.proc.wait(10)

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.kill()


@pytest.fixture
def redis_server(tmp_path: Path) -> Iterator[RedisServer]:
    folder = tmp_path / "redis"
    folder.mkdir()
    server = RedisServer(folder)
    server.start()
    try:
        yield server
    finally:
        server.stop()
