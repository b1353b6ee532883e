"""The dashboard in a real browser: Debian's headless Chromium driven by Selenium.

Never downloads a browser or a driver: Chromium and chromedriver come from the
system (apt: chromium, chromium-driver; CI installs them because .ci/needs-chromium
exists), and Selenium is handed the driver's path so selenium-manager stays idle.
"""

from __future__ import annotations

import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
CHROMEDRIVER = shutil.which("chromedriver") or "/usr/bin/chromedriver"
ARTIFACTS = Path(__file__).resolve().parents[2] / "artifacts"

pytestmark = [
    pytest.mark.browser,
    pytest.mark.slow,
    pytest.mark.skipif(not (Path(CHROMIUM).exists() and Path(CHROMEDRIVER).exists()),
                       reason="needs Debian's chromium and chromium-driver "
                              "(apt-get install chromium chromium-driver)"),
]

webdriver = pytest.importorskip("selenium.webdriver", reason="needs selenium (test extra)")


@pytest.fixture
def browser() -> Iterator[Any]:
    from selenium.webdriver.chrome.options import Options
    from selenium.webdriver.chrome.service import Service

    profile = tempfile.mkdtemp(prefix="feedctl-chromium-")
    options = Options()
    options.binary_location = CHROMIUM
    for flag in ("--headless", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                 "--no-first-run", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync", "--window-size=1280,800",
                 f"--user-data-dir={profile}"):
        options.add_argument(flag)
    options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    driver = webdriver.Chrome(service=Service(CHROMEDRIVER), options=options)
    try:
        yield driver
    finally:
        driver.quit()
        shutil.rmtree(profile, ignore_errors=True)


def test_dashboard_shows_a_position_appear_and_its_mark_price_move(
    threaded_monitor: str, browser: Any
) -> None:
    from selenium.webdriver.support.ui import WebDriverWait

    def text(selector: str) -> str | None:  # read in one step: rows update in place
        return browser.execute_script(
            "const e = document.querySelector(arguments[0]); return e ? e.textContent : null",
            selector)

    browser.get(threaded_monitor + "/")
    wait = WebDriverWait(browser, 10, poll_frequency=0.05)
    row = 'tr[data-symbol="BTCUSDT"]'
    wait.until(lambda d: text(f"{row} td.mark") not in (None, "-"))
    first = text(f"{row} td.mark")
    assert first is not None and first.replace(".", "").isdigit(), first
    wait.until(lambda d: text(f"{row} td.mark") != first)
    # the sparkline has drawn a line by now, and the feed table is live
    points = ("const l = document.querySelector(arguments[0]);"
              "return l ? l.getAttribute('points').split(' ').filter(Boolean).length : 0")
    wait.until(lambda d: d.execute_script(points, f"{row} svg.spark polyline") >= 6)
    assert text(f"{row} td.side") == "long" and text(f"{row} td.entry") == "65000.0"
    mark = text(f"{row} td.mark") or ""
    assert len(mark.split(".")[1]) == 1, mark  # to the instrument's 0.1 tick
    assert (text(f"{row} td.pnl") or "").endswith(" USDT")
    wait.until(lambda d: text('#positions tfoot tr[data-coin="USDT"] td.pnl') not in (None, ""))
    assert (text('#positions tfoot tr[data-coin="USDT"] td.pnl') or "").endswith(" USDT")
    assert text('tr[data-feed="main"] td.state') == "healthy"
    assert text("#conn") == "live"
    ARTIFACTS.mkdir(exist_ok=True)
    browser.save_screenshot(str(ARTIFACTS / "monitor-dashboard.png"))
    # no page reload happened, and the page logged no errors (CSP, JS)
    assert browser.execute_script("return performance.getEntriesByType('navigation').length") == 1
    errors = [e for e in browser.get_log("browser") if e["level"] == "SEVERE"]
    assert errors == []


def test_dashboard_of_a_feed_that_never_synced_says_positions_unknown(
    unsynced_monitor: str, browser: Any
) -> None:
    from selenium.webdriver.support.ui import WebDriverWait

    def text(selector: str) -> str | None:
        return browser.execute_script(
            "const e = document.querySelector(arguments[0]); return e ? e.textContent : null",
            selector)

    browser.get(unsynced_monitor + "/")
    wait = WebDriverWait(browser, 10, poll_frequency=0.05)
    wait.until(lambda d: text("#conn") == "live"
               and text('tr[data-feed="main"] td.state') == "connecting")
    wait.until(lambda d: (text("#positions-unknown") or "").startswith("positions unknown"))
    assert text("#positions-unknown") == (
        "positions unknown: not synced yet (main: connecting: REST snapshot unanswered)")
    body = text("#positions tbody") or ""
    assert "no open positions" not in body and "not synced yet" in body
    ARTIFACTS.mkdir(exist_ok=True)
    browser.save_screenshot(str(ARTIFACTS / "monitor-dashboard-unsynced.png"))


def test_dashboard_shows_validation_a_person_can_read(
    validated_monitor: str, browser: Any
) -> None:
    """Point 8: per shadow, agreement over the window, mark deviation (median and max),
    who saw changes first and by how much, and what differs now: one line."""
    import re

    from selenium.webdriver.support.ui import WebDriverWait

    def text(selector: str) -> str:
        return browser.execute_script(
            "const e = document.querySelector(arguments[0]); return e ? e.textContent : ''",
            selector)

    browser.get(validated_monitor + "/")
    wait = WebDriverWait(browser, 15, poll_frequency=0.05)
    wait.until(lambda d: "agrees 100.0%" in text("#validation"))
    line = text("#validation")
    assert re.search(r"shadow vs main: agrees 100\.0% \(\d+/\d+ position samples over 300s, "
                     r"\d+ pending\) · mark Δ p50 [\d.]+ bps, max [\d.]+ bps · first: primary "
                     r"\d+, shadow \d+ of \d+ changes, median lead (-|[+-]\d+ ms) · "
                     r"no difference now", line), line
    errors = [e for e in browser.get_log("browser") if e["level"] == "SEVERE"]
    assert errors == []
