"""Find the Chromium the browser tests drive, fetching Playwright's own when there is none.

Looks, in order, at ``$LEDGER_TEST_CHROMIUM``, the system's browser (Debian's ``chromium``
package and its namesakes on ``PATH``) and a browser Playwright already downloaded. With
``--install`` and nothing found, runs ``playwright install chromium`` (which needs to reach
its download; bounded in time) and looks again. ``make test`` runs this first, so a
machine without a browser stops in seconds with one line on how to get one, rather than
failing the browser tests at the end of the run.

Usage: python scripts/find_chromium.py [--install]; exit 0 naming the browser, else 1.
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
from collections.abc import Sequence
from pathlib import Path

SYSTEM_BROWSERS = ("chromium", "chromium-browser", "google-chrome", "google-chrome-stable")
INSTALL_TIMEOUT = 300.0
HOW_TO_GET_ONE = (
    "install Debian's package (apt-get install -y chromium), let 'playwright install "
    "chromium' reach its download, or set LEDGER_TEST_CHROMIUM to a Chromium's path"
)


class NoChromium(Exception):
    """No browser for the browser tests; the message says what was looked for."""


def find_chromium() -> str:
    """The path of a Chromium to drive; ``NoChromium`` when there is none."""
    configured = os.environ.get("LEDGER_TEST_CHROMIUM")
    if configured:
        if not (Path(configured).is_file() and os.access(configured, os.X_OK)):
            raise NoChromium(f"LEDGER_TEST_CHROMIUM={configured} is not an executable file")
        return configured
    for name in SYSTEM_BROWSERS:
        found = shutil.which(name)
        if found:
            return found
    downloaded = playwright_chromium()
    if downloaded is None:
        raise NoChromium(f"no Chromium for the browser tests: {HOW_TO_GET_ONE}")
    return downloaded


def playwright_chromium() -> str | None:
    """The browser ``playwright install chromium`` put in its cache, when it did."""
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        path = playwright.chromium.executable_path
    return path if Path(path).is_file() else None


def install_playwright_chromium() -> str | None:
    """Ask Playwright to download its Chromium; the reason when it could not."""
    try:
        done = subprocess.run(
            [sys.executable, "-m", "playwright", "install", "chromium"],
            capture_output=True,
            text=True,
            timeout=INSTALL_TIMEOUT,
            check=False,
        )
    except subprocess.TimeoutExpired:
        return f"'playwright install chromium' did not finish in {INSTALL_TIMEOUT:.0f} s"
    if done.returncode != 0:
        lines = [line.strip() for line in (done.stderr or done.stdout).splitlines()]
        return next((line for line in lines if line), f"exit {done.returncode}")
    return None


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n\n")[0])
    parser.add_argument(
        "--install", action="store_true", help="fetch Playwright's Chromium if none is found"
    )
    arguments = parser.parse_args(argv)
    try:
        path = find_chromium()
    except NoChromium as missing:
        if not arguments.install or os.environ.get("LEDGER_TEST_CHROMIUM"):
            print(f"error: {missing}", file=sys.stderr)
            return 1
        print("no Chromium found; asking Playwright to download its own", file=sys.stderr)
        failure = install_playwright_chromium()
        try:
            path = find_chromium()
        except NoChromium:
            reason = f" ({failure})" if failure else ""
            print(
                f"error: no Chromium for the browser tests{reason}: {HOW_TO_GET_ONE}",
                file=sys.stderr,
            )
            return 1
    print(f"the browser tests drive {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
