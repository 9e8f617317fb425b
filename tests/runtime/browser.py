"""Headless Chromium for the dashboard's test and benchmark (Debian's chromium and
chromium-driver, driven by Selenium).

The driver and the browser are named by path, so Selenium Manager never runs (it would
try to download a driver); the flags keep Chromium from reaching out to the network
(component updates, sync, background fetches, QUIC) and each browser gets a fresh
profile directory (its temporary directory too), removed afterwards. The browser process
tree is stopped by ``driver.quit()``, which ends chromedriver, which ends its Chromium.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from selenium.webdriver.chrome.webdriver import WebDriver

CHROMIUM = Path("/usr/bin/chromium")
CHROMEDRIVER = Path("/usr/bin/chromedriver")
FLAGS = (
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--disable-quic",
)


def missing() -> str | None:
    """Why no browser can run here, or None when one can."""
    for path, package in ((CHROMIUM, "chromium"), (CHROMEDRIVER, "chromium-driver")):
        if not path.exists():
            return f"{path} is missing (install Debian's {package}; .ci/sysdeps.sh does as root)"
    try:
        import selenium  # noqa: F401
    except ImportError:
        return "selenium is not installed (pip install -e '.[dev]')"
    return None


@contextlib.contextmanager
def chromium(width: int = 1280, height: int = 800) -> Iterator[WebDriver]:
    """A headless Chromium with a ``width`` x ``height`` viewport; quit on exit."""
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    profile = tempfile.mkdtemp(prefix="covey-chromium-")
    options = webdriver.ChromeOptions()
    options.binary_location = str(CHROMIUM)
    for flag in (*FLAGS, f"--user-data-dir={profile}"):
        options.add_argument(flag)
    try:
        # TMPDIR too: Chromium keeps a singleton socket directory there, left behind
        # when it is stopped rather than exits.
        service = Service(executable_path=str(CHROMEDRIVER), env={**os.environ, "TMPDIR": profile})
        driver = webdriver.Chrome(service=service, options=options)
        try:
            # The viewport itself (a window's size would include the browser's frame).
            driver.execute_cdp_cmd(
                "Emulation.setDeviceMetricsOverride",
                {"width": width, "height": height, "deviceScaleFactor": 1, "mobile": False},
            )
            yield driver
        finally:
            driver.quit()
    finally:
        shutil.rmtree(profile, ignore_errors=True)
