"""Validator: agreement over a window, settle time, mark deviation, who saw it first."""

from __future__ import annotations

from decimal import Decimal

import pytest

from feedctl import MarkPrice, PositionBook, PositionEvent, PositionUpdate, Side
from feedctl.settings import ValidationSettings
from feedctl.validator import Validator

pytestmark = pytest.mark.unit
D = Decimal


class Clock:
    t = 0.0

    def __call__(self) -> float:
        return self.t


def setup(settle: float = 5.0) -> tuple[Validator, PositionBook, PositionBook, Clock]:
    clock = Clock()
    holder: list[Validator] = []
    primary = PositionBook(exchange="x", account="a", feed="hybrid",
                           emit=lambda e: holder[0].on_primary_event(e))
    shadow = PositionBook(exchange="x", account="a", feed="rest",
                          emit=lambda e: holder[0].on_shadow_event("rest", e))
    v = Validator(primary, [shadow], ValidationSettings(interval=1, window=60, settle=settle),
                  clock)
    holder.append(v)
    return v, primary, shadow, clock


def upd(size: str, seq: int, entry: str = "100", received_ns: int = 0,
        side: Side = Side.LONG) -> PositionUpdate:
    return PositionUpdate(symbol="BTCUSDT", side=side if D(size) else None, size=D(size),
                          entry_price=D(entry), seq=seq, received_ns=received_ns)


def test_identical_books_agree_fully() -> None:
    v, p, s, clock = setup()
    p.apply(upd("1", 1))
    s.apply(upd("1", 1))
    for i in range(10):
        clock.t = i
        (report,) = v.tick()
    assert report.agreement == 1.0 and report.agreeing == 10 and report.disagreeing == 0


def test_a_lagging_shadow_is_pending_until_settle_then_disagrees() -> None:
    v, p, s, clock = setup(settle=5)
    p.apply(upd("1", 1))
    s.apply(upd("1", 1))
    p.apply(upd("2", 2))  # the shadow has not seen the add yet
    for i in range(4):
        clock.t = i
        (report,) = v.tick()
    assert report.pending == 4 and report.disagreeing == 0 and report.agreement is None
    clock.t = 6
    (report,) = v.tick()
    assert report.disagreeing == 1 and report.size_disagreements == 1
    assert report.current[0].field == "size"
    assert (report.current[0].primary, report.current[0].shadow) == ("2", "1")


def test_a_wrong_side_is_a_side_disagreement() -> None:
    v, p, s, _ = setup(settle=0)
    p.apply(upd("1", 1))
    s.apply(upd("1", 1, side=Side.SHORT))
    (report,) = v.tick()
    assert report.side_disagreements == 1 and report.agreement == 0.0


def test_mark_deviation_in_basis_points() -> None:
    v, p, s, _ = setup()
    p.apply(upd("1", 1))
    s.apply(upd("1", 1))
    p.apply_mark(MarkPrice(symbol="BTCUSDT", mark_price=D("100")))
    s.apply_mark(MarkPrice(symbol="BTCUSDT", mark_price=D("100.05")))
    (report,) = v.tick()
    assert report.mark_deviation_bps_max == pytest.approx(5.0)


def test_who_saw_a_change_first_and_by_how_much() -> None:
    v, p, s, _ = setup()
    p.apply(upd("1", 1, received_ns=1_000_000_000))
    s.apply(upd("1", 1, received_ns=3_500_000_000))
    s.apply(upd("2", 2, received_ns=4_000_000_000))
    p.apply(upd("2", 2, received_ns=4_100_000_000))
    (report,) = v.tick()
    assert report.changes_matched == 2
    assert (report.primary_first, report.shadow_first) == (1, 1)
    assert sorted([report.lead_ms_p50, report.lead_ms_p99]) == [-100.0, 2500.0]


def test_samples_leave_the_window() -> None:
    v, p, s, clock = setup(settle=0)
    p.apply(upd("1", 1))
    v.tick()  # disagreement: the shadow has nothing
    s.apply(upd("1", 1))
    clock.t = 100
    (report,) = v.tick()
    assert report.samples == 1 and report.agreement == 1.0


def test_only_lifecycle_events_of_real_feeds_are_timed() -> None:
    v, p, _, _ = setup()
    p.apply(upd("1", 1))
    comparison = v.comparisons["rest"]
    assert len(comparison._seen) == 1
    synthetic = PositionEvent(kind="opened", feed="hybrid", synthetic=True,
                              position=p.positions[upd("1", 1).key])
    v.on_primary_event(synthetic)
    assert len(comparison._seen) == 1


def test_a_reported_difference_is_the_sampled_one_never_the_live_books() -> None:
    v, p, s, clock = setup(settle=1.0)
    p.apply(upd("2", 2))
    s.apply(upd("1", 1))
    for t in (0.0, 1.5):
        clock.t = t
        v.tick()
    s.apply(upd("2", 2))  # the shadow catches up between two samples
    (d,) = v.comparisons["rest"].report().current
    assert (d.field, d.primary, d.shadow, d.settled) == ("size", "2", "1", True)
    clock.t = 2.5
    (report,) = v.tick()  # the next sample: no difference left
    assert report.current == ()


def test_a_report_reads_as_one_line_with_every_figure() -> None:
    from feedctl.validator import describe_report

    v, p, s, clock = setup(settle=1.0)
    p.apply(upd("2", 2, received_ns=1_000_000_000))
    s.apply(upd("1", 1))
    s.apply(upd("2", 2, received_ns=1_800_000_000))  # the shadow saw it 800 ms later
    p.apply(upd("3", 3))
    for t in (0.0, 1.5):
        clock.t = t
        (report,) = v.tick()
    line = describe_report(report.model_dump(mode="json"))
    assert line.startswith("rest vs hybrid: agrees 0.0% (0/1 position samples over 60s, "
                           "1 pending)")
    assert "first: primary 1, shadow 0 of 1 changes, median lead +800 ms" in line
    assert "now differ: BTCUSDT size 3≠2 (1.5s)" in line
    assert "{" not in line


def test_the_exit_summary_is_a_small_table_one_row_per_shadow() -> None:
    from feedctl.summary import format_validation_table

    v, p, s, clock = setup(settle=1.0)
    p.apply(upd("2", 2, received_ns=1_000_000_000))
    s.apply(upd("1", 1))
    s.apply(upd("2", 2, received_ns=1_800_000_000))
    p.apply(upd("3", 3))
    for t in (0.0, 1.5):
        clock.t = t
        (report,) = v.tick()
    title, header, row = format_validation_table([report.model_dump(mode="json")]).splitlines()
    assert title == "validation at the end of the run (rolling window 60s):"
    assert header.split() == ["shadow", "vs", "primary", "agreement", "samples", "pending",
                              "mark", "Δ", "p50", "mark", "Δ", "max", "first", "p/s", "lead",
                              "p50", "differ", "now"]
    assert row.split() == ["rest", "hybrid", "0.0%", "0/1", "1", "-", "-", "1/0", "+800", "ms",
                           "BTCUSDT", "size", "3≠2"]
    assert header.index("agreement") + len("agreement") == row.index("0.0%") + len("0.0%")


def test_line_output_prints_a_report_as_one_readable_line() -> None:
    """`feedctl run` off a terminal: one line per report (one per validation.interval)."""
    import io
    import re

    from feedctl.output import TextPrinter
    from feedctl.validator import describe_report

    v, p, s, clock = setup(settle=1.0)
    p.apply(upd("2", 2))
    s.apply(upd("2", 2))
    out = io.StringIO()
    printer = TextPrinter(out)
    for t in (0.0, 1.0):
        clock.t = t
        (report,) = v.tick()
        printer(report)
    lines = out.getvalue().splitlines()
    assert len(lines) == 2
    assert re.fullmatch(r"\d\d:\d\d:\d\d valid\.  rest vs hybrid: agrees 100\.0% .*", lines[1])
    assert lines[1].endswith(describe_report(report.model_dump(mode="json")))
