"""``feedctl worker --metrics-port``: the bus's Prometheus metrics over HTTP."""

from __future__ import annotations

from aiohttp import web
from prometheus_client import CollectorRegistry, generate_latest

from .metrics import BusCollector
from .plugin import plugin


async def serve_metrics(port: int, host: str = "127.0.0.1") -> web.AppRunner:
    registry = CollectorRegistry(auto_describe=False)
    registry.register(BusCollector(plugin.metrics))

    async def metrics(_: web.Request) -> web.Response:
        return web.Response(body=generate_latest(registry),
                            content_type="text/plain", charset="utf-8")

    app = web.Application()
    app.router.add_get("/metrics", metrics)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    await web.TCPSite(runner, host, port).start()
    return runner
