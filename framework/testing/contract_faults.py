"""Contract tests of a feed under outages and bad input, its shutdown and its secrets."""

from __future__ import annotations

import asyncio

import pytest

from ..models import FeedState, Side
from .checks import duplicate_problems, json_text, object_texts, secret_problems, secrets_of
from .contract_base import ContractBase, checked, describe_book, expect
from .harness import FeedHarness
from .probe import ContractError, FeedProbe


class FaultContract(ContractBase):
    """Outages, resync, malformed input, cancellation, secrets."""

    def _outage(self, h: FeedHarness) -> None:
        if not (h.supports("begin_outage") and h.supports("end_outage")):
            pytest.skip(f"{type(h).__name__} has no begin_outage/end_outage")

    def test_outage_is_reported_and_recovered(self, feedctl_harness: FeedHarness,
                                              request: pytest.FixtureRequest) -> None:
        """Cut off, the feed reports a non-healthy state (with a reason); back, healthy."""
        h = checked(feedctl_harness)
        self._outage(h)

        async def scenario(probe: FeedProbe) -> None:
            await probe.healthy()
            mark = len(probe.statuses)
            await h.begin_outage()
            try:
                await probe.wait_for(lambda: probe.state is not FeedState.HEALTHY,
                                     "a non-healthy state during the outage")
            finally:
                await h.end_outage()
            await probe.healthy("healthy again after the outage")
            down = next(s for s in probe.statuses[mark:]
                        if s.status.state is not FeedState.HEALTHY)
            assert down.reason, (
                f"the status event that reported the outage has no reason: {down}")

        self.run(h, request, scenario)

    def test_resync_after_outage(self, feedctl_harness: FeedHarness,
                                 request: pytest.FixtureRequest) -> None:
        """For kinds claiming ``resync``: what changed while the feed was cut off is in
        its book before it says healthy again, and the resync is counted."""
        h = checked(feedctl_harness)
        if "resync" not in h.kind.capabilities:
            pytest.skip(f"feed kind {h.kind.name!r} does not claim the 'resync' capability")
        if not (h.supports("begin_outage") and h.supports("end_outage")):
            raise ContractError(f"feed kind {h.kind.name!r} claims 'resync', but "
                                f"{type(h).__name__} cannot cut it off: implement "
                                "begin_outage() and end_outage()")
        a, b = h.symbols
        size = h.size

        async def scenario(probe: FeedProbe) -> None:
            await probe.healthy()
            await h.open_position(a, Side.LONG, size)
            await probe.wait_for(lambda: probe.lifecycle(a) == ["opened"], f"'opened' for {a}")
            resyncs = probe.ctx.status.resyncs
            await h.begin_outage()
            try:
                await probe.wait_for(lambda: probe.state is not FeedState.HEALTHY,
                                     "a non-healthy state during the outage")
                mark = len(probe.statuses)  # from here on, until end_outage: never healthy
                await h.close_position(a)                 # closed while cut off
                await h.open_position(b, Side.SHORT, size)  # opened while cut off...
                await h.increase_position(b, size)          # ...and grown
                await h.open_position(a, Side.SHORT, size)  # opened and closed while cut off
                await h.close_position(a)
                await asyncio.sleep(h.outage_hold * probe.scale)
                assert not any(s.status.state is FeedState.HEALTHY
                               for s in probe.statuses[mark:]), (
                    "the feed said healthy while it was cut off")
            finally:
                await h.end_outage()
            await probe.healthy("healthy again after the outage")
            first = next(i for i in range(mark, len(probe.statuses))
                         if probe.statuses[i].status.state is FeedState.HEALTHY)
            book = probe.healthy_books[first]
            if a in book or b not in book or book[b].size != 2 * size or (
                    book[b].side is not Side.SHORT):
                raise ContractError(
                    f"when it said healthy again the book held {describe_book(book)}; the exchange "
                    f"had {b} short {2 * size} only; {probe.history()}")
            assert probe.ctx.status.resyncs > resyncs, (
                f"status.resyncs did not grow ({resyncs}): count each resync with "
                "ctx.count('resyncs')")
            await probe.quiet()
            expect(duplicate_problems(probe.events), "duplicate lifecycle events", probe)
            assert probe.lifecycle(a) in (["opened", "closed"],
                                          ["opened", "closed", "opened", "closed"]), (
                probe.history())
            assert probe.lifecycle(b) in (["opened"], ["opened", "changed"]), probe.history()

        self.run(h, request, scenario)

    # ------------------------------------------------------------------ bad input
    def test_malformed_input_is_counted(self, feedctl_harness: FeedHarness,
                                        request: pytest.FixtureRequest) -> None:
        """Unparseable input is counted as ``malformed``; the feed goes on."""
        h = checked(feedctl_harness)
        if not h.supports("send_malformed"):
            pytest.skip(f"{type(h).__name__} has no send_malformed")
        symbol, size = h.symbols[0], h.size

        async def scenario(probe: FeedProbe) -> None:
            await probe.healthy()
            await h.open_position(symbol, Side.LONG, size)
            await probe.wait_for(lambda: probe.lifecycle(symbol) == ["opened"], "'opened'")
            await h.send_malformed()
            await probe.wait_for(lambda: probe.ctx.counters.get("malformed", 0) > 0,
                                 "the 'malformed' counter to grow")
            await h.increase_position(symbol, size)
            await probe.wait_for(lambda: probe.lifecycle(symbol) == ["opened", "changed"],
                                 "'changed' after the malformed input")
            await probe.healthy()

        self.run(h, request, scenario)

    # ------------------------------------------------------------------ shutdown
    def test_cancellation_is_clean(self, feedctl_harness: FeedHarness,
                                   request: pytest.FixtureRequest) -> None:
        """Cancelled while connecting and while streaming, the feed closes every task
        and connection it opened and re-raises ``CancelledError``."""
        h = checked(feedctl_harness)

        async def connecting(probe: FeedProbe) -> None:
            await asyncio.sleep(0.01)

        async def streaming(probe: FeedProbe) -> None:
            await probe.healthy()
            await h.open_position(h.symbols[0], Side.LONG, h.size)
            await probe.wait_for(lambda: probe.lifecycle(h.symbols[0]) == ["opened"],
                                 "'opened'")

        for scenario in (connecting, streaming):
            probe = self.run(h, request, scenario, check_cleanup=False)
            expect(probe.cleanup_problems, f"cancelled while {scenario.__name__}, the feed "
                    "left things behind")

    # ------------------------------------------------------------------ secrets
    def test_no_secrets_in_reprs_or_logs(self, feedctl_harness: FeedHarness,
                                         request: pytest.FixtureRequest) -> None:
        """Neither the key nor the secret shows in a repr, the status, the details or
        any log record the feed emitted (an outage included, when the harness has one)."""
        h = checked(feedctl_harness)
        found: list[str] = []

        async def scenario(probe: FeedProbe) -> None:
            secrets = secrets_of(probe.access.account)
            assert secrets, "the harness's account has no API key and secret to look for"
            await probe.healthy()
            await h.open_position(h.symbols[0], Side.LONG, h.size)
            await probe.wait_for(lambda: probe.lifecycle(h.symbols[0]) == ["opened"],
                                 "'opened'")
            if h.supports("begin_outage") and h.supports("end_outage"):
                await h.begin_outage()
                try:
                    await probe.wait_for(lambda: probe.state is not FeedState.HEALTHY,
                                         "a non-healthy state during the outage")
                finally:
                    await h.end_outage()
                await probe.healthy("healthy again after the outage")
            assert probe.feed is not None
            texts = {**object_texts("feed", probe.feed), **object_texts("ctx", probe.ctx),
                     "repr(settings)": repr(probe.feed.settings),
                     "repr(account)": repr(probe.access.account),
                     "status": probe.ctx.status.model_dump_json(),
                     "details()": json_text(probe.feed.details()),
                     "events": json_text([e.model_dump(mode="json") for e in probe.events])}
            found.extend(secret_problems(texts, secrets))

        probe = self.run(h, request, scenario)
        # the records of the whole run, cancellation included
        found.extend(secret_problems(probe.logs.texts(), secrets_of(probe.access.account)))
        expect(found, "secrets leaked")
