"""The dashboard's pages through the app, on the demo history: sign-in, pages, as_of, errors."""

from __future__ import annotations

import re
from collections.abc import Iterator
from datetime import UTC, date, datetime, timedelta
from urllib.parse import quote

import pytest
from fastapi.testclient import TestClient

from api.routers.dashboard import SESSION_COOKIE
from api.templating import day
from api.tokens import create_token, revoke_token
from tests.integration.dashboard_fixtures import demo_api
from tests.integration.test_api import Api


@pytest.fixture(scope="module")
def demo(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Api]:
    """The app holding the demo, projected; shared, since the pages only read."""
    yield from demo_api(tmp_path_factory)


@pytest.fixture
def browser(demo: Api) -> Iterator[TestClient]:
    """A client signed in with the reader token, that does not follow redirects."""
    client = demo.client
    client.cookies.clear()
    client.follow_redirects = False
    response = client.post("/login", data={"token": demo.tokens["reader"], "next": "/"})
    assert response.status_code == 303, response.text
    yield client
    client.cookies.clear()
    client.follow_redirects = True


def page(client: TestClient, path: str, status: int = 200) -> str:
    response = client.get(path)
    assert response.status_code == status, response.text
    assert response.headers["content-type"].startswith("text/html")
    return response.text


def column(html: str, status: str) -> str:
    """The HTML of one scope-board column."""
    match = re.search(rf'data-status="{status}">(.*?)</section>', html, re.S)
    assert match is not None, f"no {status} column"
    return match.group(1)


def cards(html: str, status: str) -> set[str]:
    return set(re.findall(r'data-feature="([^"]+)"', column(html, status)))


# ================================================================ signing in


def test_a_page_without_a_session_sends_the_browser_to_sign_in(demo: Api) -> None:
    """Without the session cookie a page redirects to the sign-in form, remembering itself."""
    demo.client.cookies.clear()

    response = demo.client.get("/trains/5.5?as_of=2026-01-01", follow_redirects=False)

    assert response.status_code == 303
    assert response.headers["location"] == "/login?next=" + quote(
        "/trains/5.5?as_of=2026-01-01", safe=""
    )
    form = demo.client.get(response.headers["location"])
    assert form.status_code == 200
    assert 'name="token"' in form.text


def test_signing_in_sets_an_http_only_same_site_cookie_and_returns_to_the_page(
    demo: Api,
) -> None:
    """A valid token is traded for an HttpOnly, SameSite=Lax cookie and a redirect back."""
    demo.client.cookies.clear()

    response = demo.client.post(
        "/login",
        data={"token": demo.tokens["reader"], "next": "/audit?train=5.5"},
        follow_redirects=False,
    )

    assert response.status_code == 303
    assert response.headers["location"] == "/audit?train=5.5"
    cookie = response.headers["set-cookie"]
    assert cookie.startswith(f"{SESSION_COOKIE}=")
    assert "HttpOnly" in cookie
    assert "SameSite=lax" in cookie
    assert "Path=/" in cookie
    assert demo.client.get("/audit?train=5.5", follow_redirects=False).status_code == 200
    demo.client.cookies.clear()


def test_an_unknown_token_does_not_sign_in(demo: Api) -> None:
    """A wrong token answers the form again with 401 and an error, and sets no cookie."""
    demo.client.cookies.clear()

    response = demo.client.post("/login", data={"token": "rlt_guess", "next": "/"})

    assert response.status_code == 401
    assert "unknown, expired or revoked" in response.text
    assert "set-cookie" not in response.headers


def test_a_revoked_token_signs_the_browser_out(demo: Api) -> None:
    """Revoking the token behind a session sends the next page view back to sign in."""
    token = create_token(demo.engine, "pm-revoked", "reader")
    demo.client.cookies.clear()
    demo.client.post("/login", data={"token": token, "next": "/"}, follow_redirects=False)
    assert demo.client.get("/", follow_redirects=False).status_code == 200

    revoke_token(demo.engine, "pm-revoked")

    assert demo.client.get("/", follow_redirects=False).status_code == 303
    demo.client.cookies.clear()


@pytest.mark.parametrize("target", ["//evil.example/", "https://evil.example/", "/\\evil"])
def test_signing_in_never_redirects_off_the_server(demo: Api, target: str) -> None:
    """A ``next`` that leaves the server is replaced by the timeline."""
    demo.client.cookies.clear()

    response = demo.client.post(
        "/login", data={"token": demo.tokens["reader"], "next": target}, follow_redirects=False
    )

    assert response.headers["location"] == "/"
    demo.client.cookies.clear()


def test_the_session_cookie_does_not_authorise_the_api(browser: TestClient) -> None:
    """API routes keep needing a bearer token: a signed-in browser's cookie is not one."""
    response = browser.get("/v1/trains")

    assert response.status_code == 401


def test_signing_out_clears_the_cookie(browser: TestClient) -> None:
    """Sign out expires the cookie, and the next page asks to sign in again."""
    response = browser.post("/logout")

    assert response.status_code == 303
    assert f'{SESSION_COOKIE}=""' in response.headers["set-cookie"]
    assert browser.get("/").status_code == 303


# ===================================================================== pages


def test_the_timeline_draws_every_train_and_every_scheduled_gate(
    browser: TestClient, demo: Api
) -> None:
    """One bar per train and one marker per scheduled gate, carrying its outcome."""
    calendar = demo.read("/v1/trains", demo.last_position())["items"]

    html = page(browser, "/")

    bars = re.findall(r'class="train-bar" data-train="([^"]+)"', html)
    markers = set(
        re.findall(
            r'class="gate-marker" data-train="([^"]+)" data-gate="(\d)" data-outcome="(\w+)"', html
        )
    )
    assert sorted(bars) == sorted(train["train"] for train in calendar)
    assert markers == {
        (train["train"], str(gate["gate"]), gate["outcome"] or "pending")
        for train in calendar
        for gate in train["gates"]
        if gate["scheduled_for"] is not None
    }
    assert 'id="today-line"' in html
    assert "slipped from" in html
    assert "past-banner" not in html


def test_the_train_page_shows_board_readiness_qa_and_beta(browser: TestClient) -> None:
    """5.5's page has its scope by status, each gate's criteria, the QA chart and its betas."""
    html = page(browser, "/trains/5.5")

    assert cards(html, "moved_out") == {"STOR-506"}
    assert cards(html, "dropped") == {"NAS-504"}
    assert "STOR-501" in cards(html, "committed")
    assert html.count('class="criterion"') >= 8
    assert "every anchor feature still in scope has a beta customer" in html
    assert html.count('class="qa-column"') == 3
    assert 'id="qa-target"' in html
    assert "target 96 %" in html
    assert "5.5.0-b2" in html


def test_the_train_page_shows_the_forecast_the_api_gives(browser: TestClient, demo: Api) -> None:
    """5.5's page lists each undecided gate's P50, P80 and P95, as the forecast API has them,
    the golden run's odds, and whether 5.6's scope review falls in its code freeze."""
    forecast = demo.get("/v1/trains/5.5/forecast").json()

    html = page(browser, "/trains/5.5")

    section = html[html.index('<section id="forecast">') :]
    rows = re.findall(
        r'<tr data-gate="(\d)">\s*<th scope="row">[^<]*</th>\s*<td>[^<]*</td>'
        r"\s*<td>([^<]*)</td><td>([^<]*)</td><td>([^<]*)</td>",
        section,
    )
    assert rows == [
        (str(g["gate"]), *(day(date.fromisoformat(g[p])) for p in ("p50", "p80", "p95")))
        for g in forecast["gates"]
    ]
    assert f"{forecast['golden']['probability'] * 100:.0f} % likely" in section
    assert 'id="overlap" data-aligned="true"' in section


def test_the_timeline_draws_the_forecast_ranges_of_open_trains(browser: TestClient) -> None:
    """Each undecided gate with dates gets a P50-to-P95 band; released trains get none."""
    html = page(browser, "/")

    ranges = set(re.findall(r'class="forecast-range" data-train="([^"]+)" data-gate="(\d)"', html))
    assert {("5.6", "1"), ("5.5", "3"), ("5.5", "4")} <= ranges
    assert not {train for train, _ in ranges} & {"5.1", "5.2", "5.3", "5.4"}


def test_as_of_shows_the_board_as_it_was_under_a_banner(browser: TestClient) -> None:
    """Twenty days ago STOR-506 was still proposed in 5.5; the page says it shows the past."""
    day = (datetime.now(UTC) - timedelta(days=20)).date().isoformat()

    html = page(browser, f"/trains/5.5?as_of={day}")

    assert 'id="past-banner"' in html
    assert cards(html, "proposed") == {"STOR-506"}
    assert cards(html, "moved_out") == set()
    assert f'href="/features/STOR-506?as_of={day}"' in html  # links keep the time point


def test_the_feature_page_shows_its_journey_with_reasons_and_lateness(
    browser: TestClient,
) -> None:
    """STOR-506's journey names the move from 5.5 to 5.6, who decided it, why, and lateness."""
    html = page(browser, "/features/STOR-506")

    assert 'data-action="move"' in html
    assert "Hiroshi Tanaka" in html
    assert "EC 8+3 builds on the new layout of 5.6" in html
    assert "late by" in html  # the demo is recorded today about past days


def test_the_audit_page_filters_and_pages_by_cursor(browser: TestClient, demo: Api) -> None:
    """A page of ten links to the next one; a filter by action shows only those decisions."""
    moves = demo.read("/v1/audit", demo.last_position(), action="move")["items"]

    first = page(browser, "/audit?limit=10")
    filtered = page(browser, "/audit?action=move")

    assert first.count('class="decision"') == 10
    next_link = re.search(r'href="([^"]+)" id="next-page"', first)
    assert next_link is not None
    second = page(browser, next_link.group(1).replace("&amp;", "&"))
    assert second.count('class="decision"') >= 1
    assert set(re.findall(r'class="decision" data-position="(\d+)"', filtered)) == {
        str(move["position"]) for move in moves
    }


@pytest.mark.parametrize(
    ("path", "status", "says"),
    [
        ("/trains/9.9", 404, "No such train"),
        ("/features/NOPE-1", 404, "No such feature"),
        ("/trains/not-a-train", 404, "No such train"),
        ("/trains/5.5?as_of=yesterday", 400, "That date is not valid"),
        ("/audit?since=soon", 400, "That date is not valid"),
        ("/audit?action=rename", 400, "Unknown action"),
    ],
)
def test_a_page_that_cannot_be_shown_answers_a_friendly_html_page(
    browser: TestClient, path: str, status: int, says: str
) -> None:
    """Unknown trains and features, and malformed filters, answer HTML, not a problem."""
    html = page(browser, path, status)

    assert says in html
    assert "Back to the timeline" in html


def test_the_pages_stay_out_of_the_openapi_document(demo: Api) -> None:
    """The dashboard is not part of the API contract."""
    paths = demo.client.get("/openapi.json").json()["paths"]

    assert not [
        path for path in paths if not path.startswith(("/v1/", "/healthz", "/readyz", "/metrics"))
    ]
