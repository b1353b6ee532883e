"""The chaos campaign's matching rules (bench/chaoslib/analysis.py; docs/reliability.md,
"How exchange transitions are matched with consumer events"), on hand-made histories."""

from __future__ import annotations

from typing import Any

import pytest

from tests.chaos.conftest import bench_package

analysis = bench_package("chaoslib.analysis")
MS = 1_000_000  # ns per ms: consumer times are wall-clock ns, exchange times ms


# ------------------------------------------------------------------ hand-made histories
class History:
    """An exchange transition log and the consumer's (and primary book's) events."""

    def __init__(self) -> None:
        self.transitions: list[dict[str, Any]] = []
        self.consumer: list[dict[str, Any]] = []
        self.taps: list[dict[str, Any]] = []

    def ex(self, kind: str, seq: int, ms: int, side: str = "Buy", size: str = "1",
           symbol: str = "BTCUSDT") -> History:
        flat = kind == "closed"
        self.transitions.append({
            "id": len(self.transitions) + 1, "time": ms, "kind": kind, "seq": seq,
            "symbol": symbol, "positionIdx": 0, "side": "" if flat else side,
            "size": "0" if flat else size})
        return self

    def saw(self, kind: str, seq: int, ms: int, side: str = "long", size: str = "1",
            feed: str = "bybit_hybrid", synthetic: bool = False, symbol: str = "BTCUSDT",
            active: str | None = None) -> History:
        ev = {"t": ms * MS, "kind": kind, "symbol": symbol, "idx": 0, "seq": seq,
              "side": side, "size": size, "entry": "100", "synthetic": synthetic,
              "feed": feed}
        if active is None:
            self.consumer.append(ev)
        else:
            self.taps.append({**ev, "active": active})
        return self

    def analyse(self, **kw: Any) -> dict[str, Any]:
        return analysis.analyse(transitions=self.transitions, consumer=self.consumer,
                                primary_taps=self.taps, **kw)


pytestmark = pytest.mark.unit


def test_a_lifecycle_delivered_as_it_happened() -> None:
    h = (History().ex("opened", 10, 1000).ex("changed", 11, 1100, size="2")
         .ex("closed", 12, 1200)
         .saw("opened", 10, 1001).saw("changed", 11, 1101, size="2")
         .saw("closed", 12, 1201, size="2"))
    r = h.analyse()
    assert r["lifecycles"]["delivered"] == 1
    assert r["lost"] == r["duplicates"] == r["split"] == r["unexplained"] == 0
    assert r["exchange_transitions"] == {"opened": 1, "changed": 1, "closed": 1}


def test_a_flip_is_two_lifecycles_sharing_one_seq() -> None:
    h = (History().ex("opened", 10, 1000).ex("closed", 11, 1100).ex("opened", 11, 1100,
                                                                    side="Sell")
         .saw("opened", 10, 1001).saw("closed", 11, 1101)
         .saw("opened", 11, 1101, side="short"))
    r = h.analyse()
    assert r["lifecycles"]["delivered"] == 2 and r["unexplained"] == 0


def test_a_flip_seen_late_closes_with_the_next_lifecycles_seq() -> None:
    """A poller sees a flip only at its next poll, after a further change: its closed
    carries that later state's seq, which belongs to the next lifecycle."""
    h = (History().ex("opened", 10, 1000).ex("closed", 11, 1100)
         .ex("opened", 11, 1100, side="Sell").ex("changed", 14, 1150, side="Sell", size="2")
         .saw("opened", 10, 1001).saw("closed", 14, 1500)
         .saw("opened", 14, 1500, side="short", size="2"))
    r = h.analyse()
    assert r["lifecycles"]["delivered"] == 2 and r["split"] == 0, r


def test_coalescing_changes_is_fine_but_a_missed_close_is_not() -> None:
    h = (History().ex("opened", 10, 1000).ex("changed", 11, 1100, size="2")
         .ex("changed", 12, 1200, size="3").ex("closed", 13, 1300)
         .ex("opened", 14, 1400).ex("closed", 15, 1500)
         .saw("opened", 10, 1001).saw("changed", 12, 1250, size="3")  # one for two
         .saw("changed", 14, 1450).saw("closed", 15, 1501))  # close/reopen seen as a change
    r = h.analyse()
    assert r["lifecycles"]["coalesced"] == 2  # the first's close, the second's open
    assert r["lost"] == 2 and r["unexplained"] == 2


def test_a_lifecycle_consumers_lack_is_lost_even_inside_a_failover_window() -> None:
    """No excuse: the primary's own book saw it (replayed after its outage) while the
    router delivered the standby; consumers lacking it is a loss, attributed."""
    h = (History().ex("opened", 10, 1000).ex("closed", 11, 1100)
         .saw("opened", 10, 2000, active="rest_polling")
         .saw("closed", 11, 2000, active="rest_polling"))
    r = h.analyse()
    assert r["lifecycles"]["missed"] == 1 and r["lost"] == 1
    assert r["lost_detail"][0]["primary_saw"] == (
        "primary saw the open and close while the standby delivered")


def test_a_lifecycle_the_primary_delivered_but_consumers_lack_is_lost() -> None:
    h = (History().ex("opened", 10, 1000).ex("closed", 11, 1100)
         .saw("opened", 10, 1001, active="bybit_hybrid")
         .saw("closed", 11, 1101, active="bybit_hybrid"))
    r = h.analyse()
    assert r["lost"] == 1 and r["lost_detail"][0]["primary_saw"].startswith("primary emitted")


def test_duplicates_are_counted() -> None:
    h = (History().ex("opened", 10, 1000).ex("closed", 11, 1100)
         .saw("opened", 10, 1001).saw("opened", 10, 1002).saw("closed", 11, 1101)
         .saw("closed", 11, 1102))
    r = h.analyse()
    assert r["duplicates"] == 2
    assert {d["why"] for d in r["duplicate_detail"]} == {"opened while open",
                                                         "closed while not open"}


def test_a_false_close_and_stale_reopen_is_a_split_explained_by_f1_f2() -> None:
    h = (History().ex("opened", 10, 1000).ex("closed", 20, 5000)
         .saw("opened", 10, 1001).saw("closed", 10, 3000)  # closed too early...
         .saw("opened", 10, 3100)  # ... and reopened from the same, older state
         .saw("closed", 20, 5001))
    r = h.analyse()
    assert r["split"] == 1 and r["premature_closes"] == 1
    assert r["known_findings"] == {analysis.F_STALE_REOPEN: 2} and r["unexplained"] == 0


def test_a_state_the_exchange_never_had_is_a_phantom() -> None:
    h = (History().ex("opened", 10, 1000).ex("changed", 11, 1100, size="2")
         .saw("opened", 10, 1001).saw("changed", 11, 1101, size="3"))
    r = h.analyse()
    assert r["phantom_states"] == 1 and r["unexplained"] == 1


def test_a_loss_inside_an_unnoticed_stall_is_l1() -> None:
    t0 = 1_000
    h = History().ex("opened", 10, t0 + 100).ex("closed", 11, t0 + 200)
    stall = [{"t": t0 * MS, "fault": "stall", "kind": "private", "seconds": 1.0}]
    r = h.analyse(faults=stall, statuses=[])
    assert r["known_findings"] == {analysis.L_SILENT: 1} and r["unexplained"] == 0
    noticed = [{"t": (t0 + 500) * MS, "feed": "bybit_hybrid", "state": "reconnecting",
                "reason": "reconnect"}]
    r = h.analyse(faults=stall, statuses=noticed)
    assert r["unexplained"] == 1  # noticed in time: the gap replay had to recover it


def test_a_loss_the_hybrid_reported_is_attributed_to_its_report() -> None:
    h = History().ex("opened", 10, 1_100).ex("closed", 11, 1_200)
    r = h.analyse(reported=[{"symbol": "BTCUSDT", "seqs": [10, 11]}])
    assert r["lost"] == 1 and r["known_findings"] == {analysis.L_REPORTED: 1}
    r = h.analyse(reported=[{"symbol": "BTCUSDT", "seqs": [11]}])  # not its open
    assert r["unexplained"] == 1


def test_compare_positions_reports_every_difference() -> None:
    from decimal import Decimal

    from feedctl import Position, Side

    pos = Position(exchange="bybit", account="a", feed="f", category="linear",
                   symbol="BTCUSDT", side=Side.LONG, size=Decimal("0.01"),
                   entry_price=Decimal("100"), leverage=Decimal(10), received_ns=1)
    ex = {"side": "Buy", "size": "0.01", "entryPrice": "100", "leverage": "10",
          "takeProfit": "0", "stopLoss": "0", "trailingStop": "0"}
    assert analysis.compare_positions({("BTCUSDT", 0): ex}, {("BTCUSDT", 0): pos}) == []
    assert analysis.compare_positions({("BTCUSDT", 0): {**ex, "size": "0.02"}},
                                      {("BTCUSDT", 0): pos})[0]["diffs"] == {
        "size": ["0.02", "0.01"]}
    assert analysis.compare_positions({}, {("BTCUSDT", 0): pos})[0]["exchange"] is None


def test_a_synthetic_close_reopened_at_once_is_f11() -> None:
    h = (History().ex("opened", 10, 1000).ex("closed", 20, 5000)
         .saw("opened", 10, 1001).saw("closed", 10, 3000, synthetic=True)
         .saw("opened", 10, 3000).saw("closed", 20, 5001))
    r = h.analyse()
    assert r["split"] == 1 and r["known_findings"] == {analysis.F_ORPHAN_CLOSE: 2}


def test_a_close_and_reopen_the_standby_merged_is_lost_and_attributed_f15() -> None:
    """The standby delivered one lifecycle for two (it saw the reopen as a change) and
    closed it; the primary saw the close and the reopen only later: lost, and named."""
    h = (History().ex("opened", 10, 1000).ex("closed", 11, 1100)
         .ex("opened", 12, 1200).ex("closed", 13, 1300)
         .saw("opened", 10, 1001, feed="rest_polling")
         .saw("changed", 12, 1201, feed="rest_polling")
         .saw("closed", 13, 1301, feed="rest_polling")
         .saw("opened", 10, 1001, active="bybit_hybrid")
         .saw("closed", 11, 2000, active="rest_polling")
         .saw("opened", 12, 2000, active="rest_polling")
         .saw("closed", 13, 2000, active="rest_polling"))
    r = h.analyse()
    assert r["lifecycles"]["coalesced"] == 2 and r["lost"] == 2
    assert r["known_findings"] == {analysis.F_MERGED_CLOSED: 2} and r["unexplained"] == 0


def test_a_primary_whose_book_diverged_at_the_end_fails_the_verdict() -> None:
    """Consumers may agree with the exchange while the primary, delivering again, holds
    another state (a push lost that no audit repaired yet): what it delivers next would be
    wrong, so the run fails."""
    ok = {"feeds": {"bybit_hybrid": {"diverged_from_exchange": 0}}}
    bad = {"feeds": {"bybit_hybrid": {"diverged_from_exchange": 1}}}
    assert analysis.verdict(ok) == (True, [])
    passed, failures = analysis.verdict(bad)
    assert not passed and "primary's book diverged" in failures[0]
