"""The dashboard in a real headless Chromium, on ``ledger serve`` with the demo on SQLite.

The browser is the one ``scripts/find_chromium.py`` finds: Debian's ``chromium`` package
(``.ci/run`` installs it) or Playwright's own, which ``make test`` fetches when there is no
other; Playwright drives it through ``executable_path``. Screenshots of every page
go to ``$LEDGER_TEST_ARTEFACTS`` (default ``test-artifacts/screenshots``).
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx
import pytest
from playwright.sync_api import Browser, Page, expect, sync_playwright

from scripts.find_chromium import NoChromium, find_chromium
from tests.conftest import SERVER_LOG
from tests.served import finish, serve_ledger, start_ledger, stop, wait_until_ready

pytestmark = pytest.mark.e2e

ARTEFACTS = Path(os.environ.get("LEDGER_TEST_ARTEFACTS", "test-artifacts")) / "screenshots"
CATCH_UP_TIMEOUT = 60.0


@dataclass
class Dashboard:
    base_url: str
    reader_token: str
    login_link: str
    calendar: list[dict[str, object]]

    def url(self, path: str) -> str:
        return self.base_url + path


@pytest.fixture(scope="module")
def dashboard(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Dashboard]:
    """``ledger serve`` on 127.0.0.1 over a SQLite file holding the demo, and a reader token."""
    workdir = tmp_path_factory.mktemp("dashboard")
    env = {**os.environ, "LEDGER_DATABASE_URL": f"sqlite:///{workdir / 'ledger.sqlite3'}"}
    finish(start_ledger("demo", env=env, cwd=workdir))
    token = finish(
        start_ledger("token", "create", "--name", "pm", "--role", "reader", env=env, cwd=workdir)
    ).strip()
    log_path = workdir / "serve.log"
    request.node.stash[SERVER_LOG] = log_path  # shown beneath a failing test (conftest)
    process, base_url = serve_ledger(env, workdir, log_path)
    try:
        wait_until_ready(process, base_url, log_path)
        calendar = caught_up_calendar(base_url, token)
        yield Dashboard(base_url, token, login_link(log_path), calendar)
    finally:
        stop(process)
    assert token not in log_path.read_text(), "the reader token reached the server log"


def login_link(log_path: Path) -> str:
    """The dashboard's login link ``ledger serve`` printed, its token in the fragment."""
    found = re.search(r"(http://\S+/login#token=rlt_\S+)", log_path.read_text())
    assert found, f"ledger serve printed no login link:\n{log_path.read_text()}"
    return found.group(1)


def caught_up_calendar(base_url: str, token: str) -> list[dict[str, object]]:
    """The trains once the projections have applied the whole demo."""
    headers = {"Authorization": f"Bearer {token}"}
    with httpx.Client(base_url=base_url, headers=headers, timeout=30) as client:
        last = client.get("/v1/events", params={"after": 0, "limit": 1}).json()["last_position"]
        trains = client.get("/v1/trains", params={"min_position": last}, timeout=CATCH_UP_TIMEOUT)
        assert trains.status_code == 200, trains.text
        items: list[dict[str, object]] = trains.json()["items"]
        return items


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    """Chromium, headless; a missing browser fails the run rather than skipping it."""
    try:
        chromium = find_chromium()
    except NoChromium as missing:
        pytest.fail(str(missing), pytrace=False)
    with sync_playwright() as playwright:
        launched = playwright.chromium.launch(
            executable_path=chromium, headless=True, args=["--no-sandbox"]
        )
        yield launched
        launched.close()


@pytest.fixture
def page(browser: Browser, dashboard: Dashboard) -> Iterator[Page]:
    """A tab signed in through the login link ``ledger serve`` printed, as a user would."""
    context = browser.new_context(viewport={"width": 1366, "height": 900})
    tab = context.new_page()
    tab.goto(dashboard.login_link)
    tab.wait_for_url(dashboard.url("/"))
    yield tab
    context.close()


def screenshot(page: Page, name: str) -> None:
    ARTEFACTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(ARTEFACTS / f"{name}.png"), full_page=True)


def test_a_browser_without_a_session_is_sent_to_sign_in(
    browser: Browser, dashboard: Dashboard
) -> None:
    """An unsigned browser lands on the sign-in form and gets in by pasting its token."""
    context = browser.new_context()
    tab = context.new_page()

    tab.goto(dashboard.url("/audit"))
    expect(tab.locator("h1")).to_have_text("Sign in")
    screenshot(tab, "sign-in")
    tab.fill("#token", "rlt_not-a-token")
    tab.click("button[type=submit]")
    expect(tab.locator(".error")).to_contain_text("unknown, expired or revoked")
    tab.fill("#token", dashboard.reader_token)
    tab.click("button[type=submit]")

    tab.wait_for_url(dashboard.url("/audit"))
    cookie = next(c for c in context.cookies() if c["name"] == "ledger_session")
    assert cookie["httpOnly"]
    assert cookie["sameSite"] == "Lax"
    context.close()


def test_the_timeline_shows_every_train_and_every_gate(page: Page, dashboard: Dashboard) -> None:
    """Each train is a bar and each scheduled gate a marker coloured by its outcome."""
    bars = page.locator("#timeline a.train-bar")
    markers = page.locator("#timeline .gate-marker")

    expect(bars).to_have_count(len(dashboard.calendar))
    shown = {bars.nth(i).get_attribute("data-train") for i in range(bars.count())}
    assert shown == {row["train"] for row in dashboard.calendar}
    expected = {
        (row["train"], gate["gate"], gate["outcome"] or "pending")
        for row in dashboard.calendar
        for gate in row["gates"]  # type: ignore[attr-defined]
        if gate["scheduled_for"] is not None
    }
    drawn = {
        (
            markers.nth(i).get_attribute("data-train"),
            int(markers.nth(i).get_attribute("data-gate") or 0),
            markers.nth(i).get_attribute("data-outcome"),
        )
        for i in range(markers.count())
    }
    assert drawn == expected
    expect(page.locator("#today-line")).to_have_count(1)
    assert page.locator("#timeline .slip-origin").count() >= 1
    screenshot(page, "timeline")


def test_a_train_shows_readiness_criteria_and_the_qa_chart(
    page: Page, dashboard: Dashboard
) -> None:
    """Opening 5.5 from the timeline shows its gates' criteria, board and QA against target."""
    page.click("#timeline a.train-bar[data-train='5.5']")
    page.wait_for_url(dashboard.url("/trains/5.5"))

    expect(page.locator("h1")).to_contain_text("Train 5.5")
    gate_3 = page.locator("#readiness .gate[data-gate='3']")
    expect(gate_3.locator(".criterion")).to_have_count(4)
    expect(gate_3).to_contain_text("QA phase 1 recorded")
    expect(page.locator("#qa-chart .qa-column")).to_have_count(3)
    expect(page.locator("#qa-target")).to_have_count(1)
    expect(page.locator("#board .column[data-status='committed'] .card")).not_to_have_count(0)
    screenshot(page, "train-5.5")


def test_a_feature_card_leads_to_its_journey(page: Page, dashboard: Dashboard) -> None:
    """The moved feature's card on 5.5 opens its journey, with the move and its reason."""
    page.goto(dashboard.url("/trains/5.5"))
    page.click("#board .card[data-feature='STOR-506'] a.key")
    page.wait_for_url(dashboard.url("/features/STOR-506"))

    move = page.locator("#journey .step[data-action='move']")
    expect(move).to_have_count(1)
    expect(move).to_contain_text("Hiroshi Tanaka")
    expect(move).to_contain_text("EC 8+3")
    expect(page.locator("#journey .badge.late").first).to_be_visible()
    screenshot(page, "feature-STOR-506")


def test_changing_as_of_shows_the_board_as_it_was(page: Page, dashboard: Dashboard) -> None:
    """Picking a day before the move puts STOR-506 back among 5.5's proposed features."""
    page.goto(dashboard.url("/trains/5.5"))
    moved = page.locator("#board .column[data-status='moved_out'] .card[data-feature='STOR-506']")
    expect(moved).to_have_count(1)
    expect(page.locator("#past-banner")).to_have_count(0)
    before_move = (datetime.now(UTC) - timedelta(days=20)).date().isoformat()

    page.fill("#as_of", before_move)
    page.click("form.as-of button[type=submit]")
    page.wait_for_url(f"**/trains/5.5?as_of={before_move}")

    expect(page.locator("#past-banner")).to_be_visible()
    expect(moved).to_have_count(0)
    proposed = page.locator("#board .column[data-status='proposed'] .card[data-feature='STOR-506']")
    expect(proposed).to_have_count(1)
    screenshot(page, "train-5.5-as-of")


def test_the_audit_log_filters_and_pages(page: Page, dashboard: Dashboard) -> None:
    """Filtering by action narrows the log; the first page links to the next."""
    page.goto(dashboard.url("/audit?limit=10"))
    expect(page.locator("#audit tr.decision")).to_have_count(10)
    page.click("#next-page")
    expect(page.locator("#audit tr.decision").first).to_be_visible()
    expect(page.locator("text=First page")).to_have_count(1)
    screenshot(page, "audit")

    page.select_option("#audit-filters select[name=action]", "move")
    page.click("#audit-filters button[type=submit]")

    rows = page.locator("#audit tr.decision")
    expect(rows.first).to_be_visible()
    for i in range(rows.count()):
        expect(rows.nth(i).locator("td").nth(3)).to_contain_text("move")
