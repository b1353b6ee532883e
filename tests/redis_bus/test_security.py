"""TLS and ACL users: the publisher and the consumers run with the rules docs/redis.md
shows, a read-only consumer cannot write, and no password reaches a log line."""

from __future__ import annotations

import logging
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest
import redis.asyncio as aioredis
from redis.exceptions import NoPermissionError

from feedctl import EventKind, PositionEvent, RemoteSession
from feedctl.plugins.redis_bus.acl import group_reader_rules, publisher_rules, reader_rules
from tests.conftest import run_async
from tests.redis_bus.conftest import RedisServer
from tests.redis_bus.helpers import publishing
from tests.rollout.conftest import wait_for

pytestmark = [pytest.mark.integration, pytest.mark.timeout(120)]
DOCS = Path(__file__).resolve().parents[2] / "docs" / "redis.md"
PASSWORDS = {"pub": "pub-Secret-1", "reader": "read-Secret-2", "bots": "group-Secret-3"}


def certificates(folder: Path) -> dict[str, Path]:
    """A CA and a server certificate for 127.0.0.1, made with openssl."""
    ca_key, ca, key, csr, cert = (folder / n for n in ("ca.key", "ca.crt", "srv.key",
                                                       "srv.csr", "srv.crt"))
    run = lambda *a: subprocess.run(["openssl", *a], check=True,  # noqa: E731
                                    capture_output=True, timeout=30)
    run("req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", str(ca_key), "-out",
        str(ca), "-days", "1", "-subj", "/CN=feedctl test CA")
    run("req", "-newkey", "rsa:2048", "-nodes", "-keyout", str(key), "-out", str(csr),
        "-subj", "/CN=127.0.0.1")
    ext = folder / "san.ext"
    ext.write_text("subjectAltName=IP:127.0.0.1\n")
    run("x509", "-req", "-in", str(csr), "-CA", str(ca), "-CAkey", str(ca_key),
        "-CAcreateserial", "-out", str(cert), "-days", "1", "-extfile", str(ext))
    return {"cert": cert, "key": key, "ca": ca}


@pytest.fixture
def tls_acl_server(tmp_path: Path) -> Iterator[RedisServer]:
    folder = tmp_path / "redis"
    folder.mkdir()
    users = ["--user", "default", "off"]
    for name, rules in (("pub", publisher_rules()), ("reader", reader_rules()),
                        ("bots", group_reader_rules())):
        users += ["--user", name, "on", f">{PASSWORDS[name]}", *rules.split()]
    server = RedisServer(folder, tls=certificates(folder), extra=users)
    server.start()
    try:
        yield server
    finally:
        server.stop()


def test_publisher_and_consumers_over_tls_with_acl_users(
        tmp_path: Path, tls_acl_server: RedisServer, caplog: pytest.LogCaptureFixture) -> None:
    server = tls_acl_server
    caplog.set_level(logging.DEBUG)

    async def main() -> tuple[list[PositionEvent], list[PositionEvent], str]:
        pub = server.user_url("pub", PASSWORDS["pub"])
        async with publishing(tmp_path, pub) as (_, ctl, session), \
                RemoteSession(server.user_url("reader", PASSWORDS["reader"]),
                              accounts=["main"]) as plain, \
                RemoteSession(server.user_url("bots", PASSWORDS["bots"]), accounts=["main"],
                              group="bots") as grouped:
            got: dict[str, list[PositionEvent]] = {"plain": [], "grouped": []}
            streams = {"plain": plain.events(), "grouped": grouped.events()}
            for s in streams.values():
                await anext(s)  # snapshot read
            await ctl.set_position("BTCUSDT", "Buy", "0.1")
            await wait_for(lambda: session.router.delivered, 15)
            for name, s in streams.items():
                while not got[name]:
                    ev = await anext(s)
                    if isinstance(ev, PositionEvent) and ev.kind is EventKind.OPENED:
                        got[name].append(ev)
            refused = ""
            reader = aioredis.from_url(server.user_url("reader", PASSWORDS["reader"]))
            try:
                await reader.xadd("feedctl:events:main", {"body": "forged"})
            except NoPermissionError as exc:
                refused = str(exc)
            finally:
                await reader.aclose()
            return got["plain"], got["grouped"], refused

    plain, grouped, refused = run_async(main(), timeout=90)
    assert plain[0].position.symbol == grouped[0].position.symbol == "BTCUSDT"
    assert "permission" in refused.lower()
    logged = "\n".join(r.getMessage() + str(r.__dict__) for r in caplog.records)
    for password in PASSWORDS.values():
        assert password not in logged


def test_the_docs_show_the_acl_rules_the_tests_run() -> None:
    text = DOCS.read_text()
    for rules in (publisher_rules(), reader_rules(), group_reader_rules()):
        assert rules in text.replace("\\\n", "")


@pytest.mark.unit
def test_a_url_shown_in_a_log_line_has_no_password() -> None:
    from feedctl.plugins.redis_bus.connect import safe_url

    shown = safe_url("rediss://worker:s3cret-Pass@redis.internal:6380/0?ssl_ca_certs=/ca.pem")
    assert "s3cret-Pass" not in shown
    assert shown.startswith("rediss://worker:***@redis.internal:6380/0")
    assert safe_url("redis://127.0.0.1:6379/0") == "redis://127.0.0.1:6379/0"
