"""The URLs ``bybit_hybrid`` reads from ``ctx.endpoints``, and Bybit's own per environment
(Bybit V5 docs, "Connect": REST and WebSocket domains)."""

from __future__ import annotations

from feedctl import Endpoints, HttpEndpoint, WsEndpoint


class BybitEndpoints(Endpoints):
    """``[<profile>.endpoints]`` of a Bybit profile."""

    rest: HttpEndpoint
    public_ws: WsEndpoint
    public_ws_inverse: WsEndpoint
    private_ws: WsEndpoint


BYBIT_ENDPOINTS: dict[str, dict[str, str]] = {
    "mainnet": {
        "rest": "https://api.bybit.com",
        "public_ws": "wss://stream.bybit.com/v5/public/linear",
        "public_ws_inverse": "wss://stream.bybit.com/v5/public/inverse",
        "private_ws": "wss://stream.bybit.com/v5/private",
    },
    "testnet": {
        "rest": "https://api-testnet.bybit.com",
        "public_ws": "wss://stream-testnet.bybit.com/v5/public/linear",
        "public_ws_inverse": "wss://stream-testnet.bybit.com/v5/public/inverse",
        "private_ws": "wss://stream-testnet.bybit.com/v5/private",
    },
    # Bybit's demo trading service: its own REST domain and private stream; public data
    # is mainnet's (Bybit V5 docs, "Demo Trading Service").
    "demo": {
        "rest": "https://api-demo.bybit.com",
        "public_ws": "wss://stream.bybit.com/v5/public/linear",
        "public_ws_inverse": "wss://stream.bybit.com/v5/public/inverse",
        "private_ws": "wss://stream-demo.bybit.com/v5/private",
    },
}
