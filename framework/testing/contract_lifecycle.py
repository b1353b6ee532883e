"""Contract tests of a feed's kind, health, lifecycle events and prices."""

from __future__ import annotations

from decimal import Decimal

import pytest
from pydantic import BaseModel, ValidationError

from .._version import API_VERSION
from ..feed import FeedKind
from ..models import EventKind, FeedState, Side
from .checks import decimal_problems, duplicate_problems
from .contract_base import ContractBase, checked, expect
from .harness import FeedHarness
from .probe import ContractError, FeedProbe


class LifecycleContract(ContractBase):
    """The feed's kind, start-up snapshot, lifecycle events and prices."""

    def test_kind_is_well_formed(self, feedctl_harness: FeedHarness) -> None:
        kind = getattr(type(checked(feedctl_harness)), "kind", None)
        if not isinstance(kind, FeedKind):
            raise ContractError(f"{type(feedctl_harness).__name__}.kind is {kind!r}, not a "
                                "feedctl.FeedKind")
        assert kind.name and kind.name.isidentifier(), (
            f"feed kind name {kind.name!r} must be a non-empty identifier (it is a settings "
            "value and a metrics label)")
        assert kind.api_version == API_VERSION, (
            f"feed kind {kind.name!r} declares plugin API {kind.api_version}; this feedctl "
            f"has {API_VERSION}")
        assert callable(kind.factory), f"feed kind {kind.name!r}: factory is not callable"
        assert isinstance(kind.settings_model, type) and issubclass(
            kind.settings_model, BaseModel), "settings_model must be a pydantic model class"
        kind.settings_model.model_validate(dict(feedctl_harness.settings))
        with pytest.raises(ValidationError, match="no_such_setting"):
            kind.settings_model.model_validate(
                {**feedctl_harness.settings, "no_such_setting": 1})
        assert all(isinstance(c, str) for c in kind.capabilities)

    # ------------------------------------------------------------------ health
    def test_reaches_healthy_after_the_snapshot(self, feedctl_harness: FeedHarness,
                                                request: pytest.FixtureRequest) -> None:
        """A position open before the feed starts is in the book when it first says
        healthy; an ``opened`` event announced it."""
        h = checked(feedctl_harness)
        symbol = h.symbols[0]

        async def scenario(probe: FeedProbe) -> None:
            await probe.healthy()
            first = next(i for i, s in enumerate(probe.statuses)
                         if s.status.state is FeedState.HEALTHY)
            book = probe.healthy_books[first]
            if symbol not in book:
                raise ContractError(f"the feed said healthy before its book held {symbol}, "
                                    f"open since before it started; {probe.history()}")
            assert book[symbol].side is Side.LONG and book[symbol].size == h.size
            assert probe.lifecycle(symbol) == ["opened"], probe.history()

        async def before() -> None:
            await h.open_position(symbol, Side.LONG, h.size)

        self.run(h, request, scenario, before=before)

    # ------------------------------------------------------------------ lifecycle
    def test_lifecycle_open_add_close(self, feedctl_harness: FeedHarness,
                                      request: pytest.FixtureRequest) -> None:
        """open → ``opened``, add → ``changed``, close → ``closed``; nothing else."""
        h = checked(feedctl_harness)
        symbol, size = h.symbols[0], h.size

        async def scenario(probe: FeedProbe) -> None:
            await probe.healthy()
            await h.open_position(symbol, Side.LONG, size)
            await probe.wait_for(lambda: probe.lifecycle(symbol) == ["opened"],
                                 f"'opened' for {symbol}")
            pos = probe.position(symbol)
            assert pos is not None and pos.side is Side.LONG and pos.size == size, pos
            await h.increase_position(symbol, size)
            await probe.wait_for(lambda: probe.lifecycle(symbol) == ["opened", "changed"],
                                 f"'changed' for {symbol} after adding {size}")
            pos = probe.position(symbol)
            assert pos is not None and pos.size == 2 * size, pos
            await h.close_position(symbol)
            await probe.wait_for(
                lambda: probe.lifecycle(symbol) == ["opened", "changed", "closed"],
                f"'closed' for {symbol}")
            await probe.quiet()
            assert probe.lifecycle(symbol) == ["opened", "changed", "closed"], probe.history()
            closed = [e for e in probe.events if e.kind is EventKind.CLOSED][-1]
            assert closed.position.size == 2 * size, "closed carries the last open state"
            assert probe.position(symbol) is None

        self.run(h, request, scenario)

    def test_no_duplicate_opened_or_closed(self, feedctl_harness: FeedHarness,
                                           request: pytest.FixtureRequest) -> None:
        """Two lifecycles of one symbol: each opened and closed exactly once."""
        h = checked(feedctl_harness)
        symbol, size = h.symbols[0], h.size

        async def scenario(probe: FeedProbe) -> None:
            await probe.healthy()
            expected: list[str] = []
            for side in (Side.SHORT, Side.LONG):
                await h.open_position(symbol, side, size)
                expected.append("opened")
                await probe.wait_for(lambda: probe.lifecycle(symbol) == expected,
                                     f"{expected} for {symbol}")
                await h.close_position(symbol)
                expected.append("closed")
                await probe.wait_for(lambda: probe.lifecycle(symbol) == expected,
                                     f"{expected} for {symbol}")
            await probe.quiet()
            expect(duplicate_problems(probe.events), "duplicate lifecycle events", probe)
            assert probe.lifecycle(symbol) == expected, probe.history()
            opened = [e for e in probe.events if e.kind is EventKind.OPENED]
            assert [e.position.side for e in opened] == [Side.SHORT, Side.LONG]
            assert [e.position.lifecycle for e in opened] == [1, 2]

        self.run(h, request, scenario)

    # ------------------------------------------------------------------ prices
    def test_prices_and_sizes_are_decimals(self, feedctl_harness: FeedHarness,
                                           request: pytest.FixtureRequest) -> None:
        """The mark price follows the exchange exactly; every price and size is a Decimal."""
        h = checked(feedctl_harness)
        symbol, size = h.symbols[0], h.size
        first, second = h.mark_prices

        def mark_is(price: Decimal, probe: FeedProbe) -> bool:
            pos = probe.position(symbol)
            return pos is not None and pos.mark_price == price

        async def scenario(probe: FeedProbe) -> None:
            await h.set_mark_price(symbol, first)
            await probe.healthy()
            await h.open_position(symbol, Side.LONG, size)
            await probe.wait_for(lambda: mark_is(first, probe), f"mark price {first}")
            await h.set_mark_price(symbol, second)
            await probe.wait_for(lambda: mark_is(second, probe), f"mark price {second}")
            prices = [e for e in probe.events if e.kind is EventKind.PRICE]
            assert any(e.position.mark_price == second for e in prices), (
                f"no 'price' event carried {second}; {probe.history()}")
            pos = probe.position(symbol)
            assert pos is not None and pos.unrealised_pnl is not None
            expect(decimal_problems(probe.events), "prices or sizes that are not Decimal",
                    probe)

        self.run(h, request, scenario)

    # ------------------------------------------------------------------ outages
