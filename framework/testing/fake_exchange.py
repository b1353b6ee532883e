"""An in-memory exchange, a feed kind for it and its harness: the conformance kit's own
test subject, shipped so that a plugin author can start from a feed and a harness that
pass the kit (``from feedctl.testing.fake_exchange import FakeHarness``; docs/plugins.md,
"Starting from the fake exchange").

With ``bug="none"`` the feed is conformant; every other ``bug`` breaks one duty, and the
kit must say which — run the kit against ``FakeHarness("healthy_early")`` to see how a
failure reads. It imports only the public ``feedctl`` API and the kit, like a plugin.
"""

from __future__ import annotations

import asyncio
import itertools
import socket
from decimal import Decimal
from typing import Any, ClassVar, Literal

from pydantic import SecretStr

from feedctl import (
    AccountSettings,
    Endpoints,
    FatalFeedError,
    Feed,
    FeedContext,
    FeedKind,
    FeedState,
    HttpEndpoint,
    MarkPrice,
    PositionUpdate,
    Side,
    StrictModel,
    hookimpl,
)
from feedctl.testing import ExchangeAccess, FeedHarness

Bug = Literal["none", "healthy_early", "no_resync", "stays_healthy", "leak_task",
              "swallow_cancel", "secret_in_details", "logs_secret", "unclosed_socket",
              "stale_replay"]
_ids = itertools.count(1)


class Lost(Exception):
    """The fake connection is gone."""


class FakeExchange:
    """Positions, marks and subscribers in memory; ``cut()`` is an outage."""

    by_url: ClassVar[dict[str, FakeExchange]] = {}

    def __init__(self) -> None:
        self.url = f"http://exchange-{next(_ids)}.invalid"  # a key, never dialled
        self.key, self.secret = f"fake-key-{id(self)}", f"fake-secret-{id(self)}"
        self.positions: dict[str, tuple[Side, Decimal, int]] = {}
        self.marks: dict[str, Decimal] = {}
        self.queues: set[asyncio.Queue[tuple[Any, ...]]] = set()
        self.down = False
        self._seq = itertools.count(1)

    def row(self, symbol: str) -> PositionUpdate:
        side, size, seq = self.positions.get(symbol, (None, Decimal(0), 0))
        return PositionUpdate(symbol=symbol, side=side if size else None, size=size,
                              entry_price=Decimal(100) if size else Decimal(0),
                              mark_price=self.marks.get(symbol), seq=seq)

    def subscribe(self) -> asyncio.Queue[tuple[Any, ...]]:
        if self.down:
            raise Lost("exchange unreachable")
        queue: asyncio.Queue[tuple[Any, ...]] = asyncio.Queue()
        self.queues.add(queue)
        return queue

    def snapshot(self) -> list[PositionUpdate]:
        if self.down:
            raise Lost("exchange unreachable")
        return [self.row(s) for s, (_, size, _) in self.positions.items() if size]

    def _push(self, *item: Any) -> None:
        for queue in self.queues:
            queue.put_nowait(item)

    def set_position(self, symbol: str, side: Side | None, size: Decimal) -> None:
        self.positions[symbol] = (side or Side.LONG, size, next(self._seq))
        if not self.down:
            self._push("position", self.row(symbol))

    def set_mark(self, symbol: str, price: Decimal) -> None:
        self.marks[symbol] = price
        if not self.down:
            self._push("mark", symbol, price)

    def garbage(self) -> None:
        self._push("garbage")

    def cut(self) -> None:
        self.down = True
        self._push("lost")
        self.queues.clear()


class FakeEndpoints(Endpoints):
    """The one URL the fake kind reads: which in-memory exchange (never dialled)."""

    rest: HttpEndpoint


class FakeSettings(StrictModel):
    bug: Bug = "none"


class FakeFeed(Feed):
    settings: FakeSettings

    def __init__(self, ctx: FeedContext, settings: FakeSettings) -> None:
        super().__init__(ctx, settings)
        self.last_open: PositionUpdate | None = None

    async def run(self) -> None:
        ex, bug = FakeExchange.by_url[self.ctx.endpoints.rest], self.settings.bug
        key = self.ctx.account.api_key
        if key is None or key.get_secret_value() != ex.key:
            raise FatalFeedError("fake exchange: bad key")
        if bug == "leak_task":
            asyncio.get_running_loop().create_task(asyncio.sleep(3600), name="forgotten")
        if bug == "unclosed_socket":
            sock = socket.socket()  # never closed: a ResourceWarning when collected
            sock.setblocking(False)
        if bug == "logs_secret":
            self.ctx.log.debug("connecting with key %s", key.get_secret_value())
        self.ctx.set_state(FeedState.CONNECTING, "connecting", reason="start")
        first = True
        while True:
            try:
                queue = ex.subscribe()
                await self._session(ex, queue, resync=first or bug != "no_resync")
            except Lost as exc:
                if bug != "stays_healthy":
                    self.ctx.count("reconnects")
                    self.ctx.set_state(FeedState.RECONNECTING, str(exc), reason="reconnect")
            except asyncio.CancelledError:
                if bug == "swallow_cancel":
                    return
                raise
            first = False
            await asyncio.sleep(0.02)

    async def _session(self, ex: FakeExchange, queue: asyncio.Queue[tuple[Any, ...]],
                       resync: bool) -> None:
        ctx = self.ctx
        if self.settings.bug == "healthy_early":
            ctx.set_state(FeedState.HEALTHY, "optimistic", reason="resync_done")
        await asyncio.sleep(0.01)  # the snapshot takes a moment
        if resync:
            ctx.set_state(FeedState.RESYNCING, "snapshot")
            ctx.reconcile(ex.snapshot())
        ctx.count("resyncs")
        ctx.set_state(FeedState.HEALTHY, "in sync", reason="resync_done")
        while True:
            item = await queue.get()
            ctx.message_received()
            if item[0] == "lost":
                raise Lost("connection dropped")
            if item[0] == "garbage":
                ctx.count("malformed")
                continue
            if item[0] == "mark":
                ctx.apply_mark(MarkPrice(symbol=item[1], mark_price=item[2]))
                continue
            update: PositionUpdate = item[1]
            ctx.apply(update)
            if update.is_open:
                self.last_open = update
            elif self.settings.bug == "stale_replay" and self.last_open is not None:
                ctx.apply(self.last_open.model_copy(update={"seq": None}))

    def details(self) -> dict[str, Any]:
        if self.settings.bug == "secret_in_details":
            secret = self.ctx.account.api_secret
            return {"auth": secret.get_secret_value() if secret else None}
        return {}


FAKE = FeedKind(name="fake", factory=FakeFeed, settings_model=FakeSettings,
                description="in-memory exchange (kit self-tests)",
                capabilities=frozenset({"resync"}), exchange="fake",
                endpoints_model=FakeEndpoints)


@hookimpl
def feedctl_feed_kinds(register: Any) -> None:
    register(FAKE)


class FakeHarness(FeedHarness):
    kind = FAKE
    timeout = 1.0
    settle = 0.1
    outage_hold = 0.05

    def __init__(self, bug: Bug = "none") -> None:
        self.settings = {"bug": bug}
        self.ex: FakeExchange | None = None

    async def start(self) -> ExchangeAccess:
        self.ex = FakeExchange()
        FakeExchange.by_url[self.ex.url] = self.ex
        return ExchangeAccess(AccountSettings(exchange="fake", api_key=SecretStr(self.ex.key),
                                              api_secret=SecretStr(self.ex.secret)),
                              FakeEndpoints(rest=self.ex.url))

    async def stop(self) -> None:
        if self.ex is not None:
            FakeExchange.by_url.pop(self.ex.url, None)

    @property
    def exchange(self) -> FakeExchange:
        assert self.ex is not None
        return self.ex

    async def open_position(self, symbol: str, side: Side, size: Decimal) -> None:
        self.exchange.set_position(symbol, side, size)

    async def increase_position(self, symbol: str, size: Decimal) -> None:
        side, current, _ = self.exchange.positions[symbol]
        self.exchange.set_position(symbol, side, current + size)

    async def close_position(self, symbol: str) -> None:
        self.exchange.set_position(symbol, None, Decimal(0))

    async def set_mark_price(self, symbol: str, price: Decimal) -> None:
        self.exchange.set_mark(symbol, price)

    async def begin_outage(self) -> None:
        self.exchange.cut()

    async def end_outage(self) -> None:
        self.exchange.down = False

    async def send_malformed(self) -> None:
        self.exchange.garbage()
