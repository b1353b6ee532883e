"""The monitor's HTTP API: what it serves, and what it refuses."""

from __future__ import annotations

import re
from pathlib import Path

import aiohttp
import pytest

from feedctl.manager import FeedctlPluginManager
from feedctl.monitor.server import COOKIE
from tests.conftest import run_async
from tests.monitor.conftest import WALK_PROFILE, running, wait_for, write_settings

pytestmark = pytest.mark.integration

READ_ENDPOINTS = ["/", "/static/dashboard.js", "/static/dashboard.css", "/api/status",
                  "/api/positions", "/api/subscriptions", "/api/validation", "/metrics"]


def test_api_serves_status_positions_subscriptions_and_validation(
    clean_env: Path, mpm: FeedctlPluginManager
) -> None:
    async def main() -> None:
        async with running(write_settings(clean_env), mpm) as (session, monitor), \
                aiohttp.ClientSession(monitor.url) as http:
            assert monitor.url and re.fullmatch(r"http://127\.0\.0\.1:\d+", monitor.url)
            await wait_for(lambda: session.router is not None and session.router.delivered)
            async with http.get("/api/status") as r:
                assert r.status == 200 and r.content_type == "application/json"
                status = await r.json()
            assert status["profile"] == "t" and status["router"]["active"] == "main"
            assert status["feeds"]["main"]["state"] == "healthy"
            assert set(status) == set(session.status())
            async with http.get("/api/positions") as r:
                positions = await r.json()
            (pos,) = positions["delivered"]
            assert pos["symbol"] == "BTCUSDT" and pos["side"] == "long" and pos["size"] == "0.5"
            assert positions["books"]["main"][0]["symbol"] == "BTCUSDT"
            async with http.get("/api/subscriptions") as r:
                subs = await r.json()
            assert subs["main"]["subscriptions"] == ["tickers.BTCUSDT"]
            async with http.get("/api/validation") as r:
                assert await r.json() is None  # no validator in this profile
            async with http.head("/api/status") as r:
                assert r.status == 200 and await r.read() == b""
            async with http.head("/api/events") as r:
                assert r.status == 200 and r.content_type == "text/event-stream"
            for missing in ("/static/nope.js", "/api/nothing", "/static/../settings.toml"):
                async with http.get(missing) as r:
                    assert r.status == 404, missing
                    assert r.headers["X-Content-Type-Options"] == "nosniff"

    run_async(main())


def test_anything_but_get_and_head_is_refused_and_changes_nothing(
    clean_env: Path, mpm: FeedctlPluginManager
) -> None:
    async def main() -> None:
        async with running(write_settings(clean_env), mpm) as (session, monitor), \
                aiohttp.ClientSession(monitor.url) as http:
            before = session.feeds["main"].task
            for path in [*READ_ENDPOINTS, "/api/events", "/api/feeds/main/stop"]:
                for method in ("POST", "PUT", "DELETE", "PATCH", "OPTIONS"):
                    async with http.request(method, path, data=b"{}") as r:
                        assert r.status == 405, (method, path)
                        assert r.headers["Allow"] == "GET, HEAD"
            assert session.feeds["main"].task is before and not before.done()  # type: ignore[union-attr]

    run_async(main())


def test_a_configured_token_is_required_everywhere(
    clean_env: Path, mpm: FeedctlPluginManager
) -> None:
    token = "t0ken-for-the-monitor"

    async def main() -> None:
        async with running(write_settings(clean_env), mpm, token=token) as (_, monitor):
            async with aiohttp.ClientSession(monitor.url) as http:
                for path in [*READ_ENDPOINTS, "/api/events"]:
                    async with http.get(path) as r:
                        assert r.status == 401, path
                        assert r.headers["WWW-Authenticate"].startswith("Bearer")
                        assert token not in await r.text()
                bad = {"Authorization": "Bearer t0ken-for-the-monitoR"}
                async with http.get("/api/status", headers=bad) as r:
                    assert r.status == 401
                good = {"Authorization": f"Bearer {token}"}
                for path in READ_ENDPOINTS:
                    async with http.get(path, headers=good) as r:
                        assert r.status == 200, path
                        assert token not in await r.text()
            # a browser: ?token= once, then a same-site cookie, and the token leaves the URL
            jar = aiohttp.CookieJar(unsafe=True)
            async with aiohttp.ClientSession(monitor.url, cookie_jar=jar) as browser:
                async with browser.get(f"/?token={token}", allow_redirects=False) as r:
                    assert r.status == 303 and r.headers["Location"] == "/"
                    cookie = r.cookies[COOKIE]
                    assert cookie["httponly"] and cookie["samesite"] == "Strict"
                async with browser.get("/api/positions") as r:
                    assert r.status == 200
                async with browser.get("/api/events") as r:
                    assert r.status == 200
                    assert (await r.content.readuntil(b"event: snapshot")).endswith(b"snapshot")

    run_async(main())


def test_requests_for_another_host_name_are_refused(
    clean_env: Path, mpm: FeedctlPluginManager
) -> None:
    """A page on evil.example that rebinds its name to 127.0.0.1 cannot read the API."""
    async def main() -> None:
        async with running(write_settings(clean_env), mpm) as (_, monitor), \
                aiohttp.ClientSession(monitor.url) as http:
            port = monitor.url.rsplit(":", 1)[1]  # type: ignore[union-attr]
            async with http.get("/api/status", headers={"Host": f"evil.example:{port}"}) as r:
                assert r.status == 403
            async with http.get("/api/status", headers={"Host": f"localhost:{port}"}) as r:
                assert r.status == 200

    run_async(main())


def test_secrets_a_careless_feed_exposes_are_redacted_from_every_body(
    clean_env: Path, mpm: FeedctlPluginManager, monkeypatch: pytest.MonkeyPatch
) -> None:
    key, secret = "KEY-visible-nowhere-7731", "SECRET-visible-nowhere-9902"
    monkeypatch.setenv("FEEDCTL_T__ACCOUNT__API_KEY", key)
    monkeypatch.setenv("FEEDCTL_T__ACCOUNT__API_SECRET", secret)
    path = write_settings(clean_env, WALK_PROFILE + "leak = true\n")

    async def main() -> list[bytes]:
        bodies = []
        async with running(path, mpm) as (session, monitor), \
                aiohttp.ClientSession(monitor.url) as http:
            assert session.feeds["main"].feed.details()["oops"] == secret  # it does leak
            await wait_for(lambda: session.router is not None and session.router.delivered)
            for p in READ_ENDPOINTS:
                async with http.get(p) as r:
                    bodies.append(await r.read())
            async with http.get("/api/events") as r:
                bodies.append(await r.content.readuntil(b"\n\n"))
                bodies.append(await r.content.readuntil(b"\n\n"))
        return bodies

    bodies = run_async(main())
    everything = b"\n".join(bodies)
    assert key.encode() not in everything and secret.encode() not in everything
    assert b'"oops":"***"' in everything  # the leak reached the API and was redacted


def test_stopping_the_monitor_ends_connected_dashboards_and_leaves_no_task(
    clean_env: Path, mpm: FeedctlPluginManager
) -> None:
    async def main() -> None:
        async with running(write_settings(clean_env), mpm) as (_, monitor), \
                aiohttp.ClientSession(monitor.url) as http:
            async with http.get("/api/events") as r:
                await r.content.readuntil(b"event: snapshot")
                assert len(monitor.hub.clients) == 1
                await monitor.stop()
                rest = await r.content.read()  # the stream ends instead of hanging
                assert isinstance(rest, bytes)
            assert not monitor.hub.clients

    run_async(main(), timeout=10)  # run_async also fails on any task left pending


def test_the_dashboard_needs_nothing_from_the_internet() -> None:
    from importlib import resources

    static = resources.files("feedctl.monitor") / "static"
    for name in ("index.html", "dashboard.js", "dashboard.css"):
        text = (static / name).read_text()
        urls = set(re.findall(r"(?:https?:)?//[\w.-]+\.[a-z]{2,}[^\s\"')]*", text))
        assert urls <= {"http://www.w3.org/2000/svg"}, (name, urls)


def test_a_port_in_use_is_one_clear_configuration_error(
    clean_env: Path, mpm: FeedctlPluginManager
) -> None:
    from feedctl import ConfigError, Session
    from feedctl.monitor import Monitor
    from feedctl.settings import MonitorSettings

    async def main() -> None:
        async with Session("t", settings_path=write_settings(clean_env),
                           plugin_manager=mpm) as session, \
                Monitor(session, MonitorSettings(port=0)) as first:
            port = int(first.url.rsplit(":", 1)[1])  # type: ignore[union-attr]
            second = Monitor(session, MonitorSettings(port=port))
            with pytest.raises(ConfigError) as err:
                await second.start()
            assert err.value.setting == "monitor.port"
            assert str(err.value).startswith(f"monitor.port: cannot listen on 127.0.0.1:{port}")
            assert "FEEDCTL_T__MONITOR__PORT" in str(err.value)
            assert second.url is None

    run_async(main())


NEVER_SYNCED = WALK_PROFILE + "sync = false\n"


def test_positions_of_a_feed_that_never_synced_are_unknown_and_not_ready(
    clean_env: Path, mpm: FeedctlPluginManager
) -> None:
    async def main() -> None:
        async with running(write_settings(clean_env, NEVER_SYNCED), mpm) as (session, monitor), \
                aiohttp.ClientSession(monitor.url) as http:
            await wait_for(lambda: session.status()["feeds"]["main"]["state"] == "connecting")
            async with http.get("/api/positions") as r:
                positions = await r.json()
            assert positions["delivered"] == [] and positions["known"] is False
            assert positions["unknown_reason"] == (
                "not synced yet (main: connecting: REST snapshot unanswered)")
            async with http.get("/readyz") as r:
                assert r.status == 503
                body = await r.json()
            assert body["ready"] is False and "not synced yet" in body["reason"]
            async with http.get("/healthz") as r:
                assert r.status == 200 and (await r.json())["alive"] is True

    run_async(main())


def test_readyz_is_ready_once_the_delivering_feed_synced_and_probes_need_no_token(
    clean_env: Path, mpm: FeedctlPluginManager
) -> None:
    async def main() -> None:
        async with running(write_settings(clean_env), mpm, token="s3cret-token") as (
                session, monitor), aiohttp.ClientSession(monitor.url) as http:
            await wait_for(lambda: session.status()["feeds"]["main"]["state"] == "healthy")
            async with http.get("/readyz") as r:
                assert r.status == 200
                body = await r.json()
            assert body["ready"] is True and body["active"] == "main" and body["synced_ns"]
            assert "delivered" not in body  # a probe shows no positions
            async with http.get("/api/positions") as r:
                assert r.status == 401  # everything else still needs the token

    run_async(main())


@pytest.mark.integration
def test_a_monitor_host_that_is_not_ours_names_the_host_and_where_it_was_set(
    clean_env: Path, mpm: FeedctlPluginManager
) -> None:
    """Not the port (which is free): the host, from the settings file's [t.monitor]."""
    from feedctl import ConfigError, Session
    from feedctl.monitor import Monitor

    path = write_settings(clean_env, WALK_PROFILE + "[t.monitor]\nhost = '192.0.2.1'\n")

    async def main() -> None:
        async with Session("t", settings_path=path, plugin_manager=mpm) as session:
            monitor = Monitor(session, session.settings.monitor.model_copy(update={"port": 0}))
            with pytest.raises(ConfigError) as err:
                await monitor.start()
            assert err.value.setting == "monitor.host"
            msg = str(err.value)
            assert msg.startswith("monitor.host: cannot listen on 192.0.2.1:0: ")
            assert f"(from {path.resolve()} [t.monitor]); use an address of this machine" in msg

    run_async(main())
