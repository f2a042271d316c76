"""``make test`` finds its browser first: the configured one, the system's, or Playwright's,
and otherwise stops in seconds with one line on how to get one."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

from scripts.find_chromium import NoChromium, find_chromium

SCRIPT = Path(__file__).resolve().parents[2] / "scripts" / "find_chromium.py"


def executable(path: Path) -> Path:
    path.write_text("#!/bin/sh\nexit 0\n")
    path.chmod(0o755)
    return path


@pytest.fixture
def no_browser_anywhere(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> dict[str, str]:
    """An environment whose PATH and Playwright cache hold no browser."""
    empty = tmp_path / "bin"
    empty.mkdir()
    env = {
        "PATH": str(empty),
        "PLAYWRIGHT_BROWSERS_PATH": str(tmp_path / "playwright-browsers"),
        # A download that is refused at once, whatever network the machine has.
        "PLAYWRIGHT_DOWNLOAD_HOST": "http://127.0.0.1:9",
    }
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    monkeypatch.delenv("LEDGER_TEST_CHROMIUM", raising=False)
    return env


def test_a_configured_chromium_comes_first(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """LEDGER_TEST_CHROMIUM names the browser, whatever else is installed."""
    configured = executable(tmp_path / "my-chromium")
    monkeypatch.setenv("LEDGER_TEST_CHROMIUM", str(configured))

    assert find_chromium() == str(configured)


def test_the_system_browser_is_found_on_the_path(
    tmp_path: Path, no_browser_anywhere: dict[str, str]
) -> None:
    """Debian's package installs ``chromium`` on PATH; that is the one driven."""
    system = executable(tmp_path / "bin" / "chromium")

    assert find_chromium() == str(system)


def test_a_configured_path_that_is_no_browser_is_refused(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A wrong LEDGER_TEST_CHROMIUM is named, not silently replaced by another browser."""
    monkeypatch.setenv("LEDGER_TEST_CHROMIUM", str(tmp_path / "missing"))

    with pytest.raises(NoChromium, match=r"LEDGER_TEST_CHROMIUM=.*missing is not an executable"):
        find_chromium()


@pytest.mark.parametrize("arguments", [[], ["--install"]])
def test_without_a_browser_it_stops_in_seconds_with_one_line(
    no_browser_anywhere: dict[str, str], arguments: list[str]
) -> None:
    """No browser, and none to download: exit 1 and one error line saying how to get one."""
    env = {**os.environ, **no_browser_anywhere}
    started = time.monotonic()

    done = subprocess.run(
        [sys.executable, str(SCRIPT), *arguments],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )

    assert done.returncode == 1
    errors = [line for line in done.stderr.splitlines() if line.startswith("error:")]
    assert len(errors) == 1, done.stderr
    assert "apt-get install -y chromium" in errors[0]
    assert time.monotonic() - started < 60
