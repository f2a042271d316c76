"""The dashboard and the API behind a reverse proxy that serves them under ``/ledger``.

The proxy strips the prefix and the server is told it (``ledger serve --root-path``), so
each request's scope carries ``root_path`` and a path that starts with it, as uvicorn
makes them. Every link, form, redirect and cookie must then stay under the prefix.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from urllib.parse import quote

import pytest
from fastapi.testclient import TestClient

from api.routers.dashboard import SESSION_COOKIE
from tests.integration.dashboard_fixtures import demo_api
from tests.integration.test_api import Api

PREFIX = "/ledger"
LOCAL_URL = re.compile(r'(?:href|action)="(/[^"]*)"')


@pytest.fixture(scope="module")
def demo(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Api]:
    """The app holding the demo, projected."""
    yield from demo_api(tmp_path_factory)


@pytest.fixture
def proxied(demo: Api) -> Iterator[TestClient]:
    """A browser reaching the app through the proxy: every path starts with the prefix.
    (Not entered: the app's lifespan is already running, for ``demo``.)"""
    client = TestClient(demo.client.app, root_path=PREFIX, follow_redirects=False)
    yield client
    client.close()


@pytest.fixture
def signed_in(proxied: TestClient, demo: Api) -> TestClient:
    response = proxied.post(f"{PREFIX}/login", data={"token": demo.tokens["reader"]})
    assert response.status_code == 303, response.text
    return proxied


def local_urls(html: str) -> list[str]:
    return LOCAL_URL.findall(html)


def test_a_page_without_a_session_sends_the_browser_to_sign_in_under_the_prefix(
    proxied: TestClient,
) -> None:
    """The sign-in redirect, and the page it remembers, are both under the prefix."""
    response = proxied.get(f"{PREFIX}/trains/5.5")

    assert response.status_code == 303
    assert response.headers["location"] == f"{PREFIX}/login?next=" + quote(
        f"{PREFIX}/trains/5.5", safe=""
    )
    form = proxied.get(response.headers["location"])
    assert f'action="{PREFIX}/login"' in form.text


def test_signing_in_returns_under_the_prefix_with_a_cookie_for_its_paths(
    proxied: TestClient, demo: Api
) -> None:
    """With no page to return to, sign-in lands on the prefixed timeline; the cookie's
    path is the prefix, so it goes to no other application on the proxy's host."""
    response = proxied.post(f"{PREFIX}/login", data={"token": demo.tokens["reader"]})

    assert response.headers["location"] == f"{PREFIX}/"
    assert f"Path={PREFIX};" in response.headers["set-cookie"]
    assert "Secure" not in response.headers["set-cookie"]


@pytest.mark.parametrize(
    "page", ["/", "/trains/5.5", "/trains/5.5/report", "/features/OBJ-405", "/audit?train=5.5"]
)
def test_every_link_and_form_of_a_page_stays_under_the_prefix(
    signed_in: TestClient, page: str
) -> None:
    """No link, form or as-of picker points outside the prefix."""
    response = signed_in.get(PREFIX + page)

    assert response.status_code == 200, response.text
    urls = local_urls(response.text)
    assert urls
    assert [url for url in urls if not url.startswith(f"{PREFIX}/")] == []


def test_the_error_page_links_back_under_the_prefix(signed_in: TestClient) -> None:
    """A page that cannot be shown still links to the prefixed timeline and audit log."""
    response = signed_in.get(f"{PREFIX}/trains/9.9")

    assert response.status_code == 404
    assert {f"{PREFIX}/", f"{PREFIX}/audit"} <= set(local_urls(response.text))


def test_signing_out_clears_the_prefixed_cookie_and_returns_to_sign_in(
    signed_in: TestClient,
) -> None:
    """Sign out answers with the prefixed sign-in page and expires the cookie it set."""
    response = signed_in.post(f"{PREFIX}/logout")

    assert response.headers["location"] == f"{PREFIX}/login"
    assert f'{SESSION_COOKIE}=""' in response.headers["set-cookie"]
    assert f"Path={PREFIX};" in response.headers["set-cookie"]


def test_the_api_and_its_document_answer_under_the_prefix(proxied: TestClient, demo: Api) -> None:
    """The API reads through the prefix, and the OpenAPI document names it as its server."""
    train = proxied.get(f"{PREFIX}/v1/trains/5.5", headers=demo.auth("reader"))
    document = proxied.get(f"{PREFIX}/openapi.json").json()
    docs = proxied.get(f"{PREFIX}/docs")

    assert train.status_code == 200, train.text
    assert train.json()["train"] == "5.5"
    assert {"url": PREFIX} in document["servers"]
    assert f"{PREFIX}/openapi.json" in docs.text
