"""The dashboard (``/ui/``) in a real headless Chromium, against real agent processes.

Three agents on loopback, the first serving HTTP; the page must show all three alive,
then turn a ``kill -9``'d one failed without a reload, and show the ``bad_key`` drops a
fourth agent with another key causes. It saves a screenshot in the test's directory, and
also at ``$COVEY_SCREENSHOT`` when that is set (that is how ``docs/dashboard.png`` is
made: ``COVEY_SCREENSHOT=docs/dashboard.png pytest tests/runtime/test_dashboard.py``).
"""

from __future__ import annotations

import os
import shutil
import signal
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING

import pytest

from covey.runtime.localcluster import LocalCluster, free_port

from .browser import chromium, missing

if TYPE_CHECKING:
    from selenium.webdriver.chrome.webdriver import WebDriver

pytestmark = pytest.mark.skipif(missing() is not None, reason=str(missing()))

#: Generous bounds on a shared two-core machine; every wait ends as soon as it holds.
START = 60.0
DETECT = 60.0


@pytest.fixture
def browser() -> Iterator[WebDriver]:
    with chromium() as driver:
        yield driver


def _wait(driver: WebDriver, timeout: float, what: str, script: str) -> object:
    """Poll ``script`` (a JS expression) in the page until it is truthy."""
    from selenium.webdriver.support.wait import WebDriverWait

    return WebDriverWait(driver, timeout, poll_frequency=0.1).until(
        lambda d: d.execute_script(f"return {script};"), message=f"the page to show {what}"
    )


def _states(driver: WebDriver) -> dict[str, str]:
    rows = driver.execute_script(
        "return [...document.querySelectorAll('#member-rows tr')]"
        ".map(r => [r.dataset.member, r.dataset.state]);"
    )
    return dict(rows)


def _status(url: str) -> int:
    try:
        with urllib.request.urlopen(url, timeout=10) as response:
            return int(response.status)
    except urllib.error.HTTPError as exc:
        return exc.code


def test_dashboard_follows_the_cluster_live(
    cluster: LocalCluster, browser: WebDriver, tmp_path: Path
) -> None:
    http = free_port()
    votes = ("--expected-votes", "3")
    specs = {
        "n1": ("--http", f"127.0.0.1:{http}", "--tag", "role=web", "--local-version", "4.13"),
        "n2": ("--tag", "role=db", "--local-version", "4.13"),
        "n3": ("--tag", "role=web", "--tag", "zone=b", "--local-version", "4.12"),
    }
    agents = {n: cluster.spawn(n, extra=(*extra, *votes), wait=False) for n, extra in specs.items()}
    for agent in agents.values():
        cluster.wait_ready(agent, START)

    browser.get(f"http://127.0.0.1:{http}/ui/")
    alive = "['n1','n2','n3'].every(n => document.querySelector(`tr[data-member='${n}']`)"
    _wait(browser, START, "three members alive", alive + "?.dataset.state === 'alive')")
    assert _states(browser) == {"n1": "alive", "n2": "alive", "n3": "alive"}
    _wait(
        browser,
        START,
        "the lowest version 4.12",
        "document.getElementById('version-lowest').textContent === '4.12'",
    )
    tags = browser.execute_script(
        "return document.querySelector(\"tr[data-member='n3'] td.tags\").textContent;"
    )
    assert "role=web" in tags and "zone=b" in tags
    # Anything the page shows from now on must come without a reload: a reload would
    # lose this variable.
    browser.execute_script("window.coveyNotReloaded = 'still the same page';")

    agents["n3"].signal(signal.SIGKILL)
    _wait(
        browser,
        DETECT,
        "n3 failed",
        "document.querySelector(\"tr[data-member='n3']\")?.dataset.state === 'failed'",
    )
    assert _states(browser) == {"n1": "alive", "n2": "alive", "n3": "failed"}
    _wait(
        browser,
        DETECT,
        "the member-failed event",
        "[...document.querySelectorAll(\"#events li[data-kind='member-failed']\")]"
        ".some(li => li.textContent.includes('n3'))",
    )
    # The survivors elect one of themselves, and the lowest version is theirs again.
    _wait(
        browser,
        DETECT,
        "a leader among the survivors",
        "['n1','n2'].includes(document.getElementById('leader').dataset.leader)",
    )
    _wait(
        browser,
        DETECT,
        "the leader stable",
        "document.getElementById('stable').dataset.stable === 'true'",
    )
    _wait(
        browser,
        DETECT,
        "the lowest version 4.13",
        "document.getElementById('version-lowest').textContent === '4.13'",
    )

    # A fourth agent with a key of its own, on the same beacon group: n1 cannot open its
    # frames and counts them as bad_key drops, which the page must show.
    other = cluster.new_key_file("other.key")
    cluster.spawn("n4", key_file=other, extra=votes, timeout=START)
    count = _wait(
        browser,
        DETECT,
        "bad_key drops",
        "Number(document.querySelector(\"#drops [data-reason='bad_key']\")?.dataset.count || 0)",
    )
    assert isinstance(count, int) and count > 0
    _wait(
        browser,
        DETECT,
        "the health degraded",
        "document.getElementById('health').dataset.status === 'degraded'",
    )
    assert "n4" not in _states(browser)  # it never got in
    # Interface health: a row per interface, from /v1/interfaces.
    assert _status(f"http://127.0.0.1:{http}/v1/interfaces") == 200
    _wait(
        browser,
        DETECT,
        "interface rows",
        "document.querySelector('#interfaces tr[data-interface]')",
    )
    assert browser.execute_script("return window.coveyNotReloaded;") == "still the same page"

    shot = tmp_path / "dashboard.png"
    assert browser.save_screenshot(str(shot))
    assert shot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    if target := os.environ.get("COVEY_SCREENSHOT"):
        shutil.copyfile(shot, target)

    # What peers write reaches the page as text, never as markup: a tag set on n2 now
    # (after the screenshot) shows up, without a reload, literally.
    markup = '<img src=x onerror="window.coveyOwned=1">'
    agents["n2"].client().request("tags", set={"note": markup})
    cell = "document.querySelector(\"tr[data-member='n2'] td.tags\")"
    _wait(browser, DETECT, "n2's new tag", f"{cell}.textContent.includes('note=<img')")
    assert browser.execute_script(f"return {cell}.querySelector('img');") is None
    assert browser.execute_script("return window.coveyOwned;") is None
    assert browser.execute_script("return window.coveyNotReloaded;") == "still the same page"
