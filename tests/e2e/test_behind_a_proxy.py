"""``ledger serve`` behind a reverse proxy: a path prefix, and forwarded headers believed
only from the proxies the operator names (``LEDGER_TRUSTED_PROXIES``).

The test plays the proxy: it strips the prefix and sends X-Forwarded-For and
X-Forwarded-Proto from 127.0.0.1, as nginx or a load balancer would on the same host.
"""

from __future__ import annotations

from collections.abc import Iterator

import httpx
import pytest

from tests.served import Served, serving

pytestmark = [pytest.mark.e2e, pytest.mark.postgres]

PREFIX = "/ledger"
CLIENT_ADDRESS = "203.0.113.9"
FORWARDED = {"X-Forwarded-For": CLIENT_ADDRESS, "X-Forwarded-Proto": "https"}


@pytest.fixture(scope="module")
def trusting(
    request: pytest.FixtureRequest,
    postgres_server: str,
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[Served]:
    """A server under /ledger that believes forwarded headers from 127.0.0.1."""
    settings = {"LEDGER_ROOT_PATH": PREFIX, "LEDGER_TRUSTED_PROXIES": "127.0.0.1"}
    with serving(request, postgres_server, tmp_path_factory, settings) as served:
        yield served


@pytest.fixture(scope="module")
def untrusting(
    request: pytest.FixtureRequest,
    postgres_server: str,
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[Served]:
    """A server with no proxy configured: the default."""
    with serving(request, postgres_server, tmp_path_factory) as served:
        yield served


def sign_in_through_the_proxy(served: Served) -> httpx.Response:
    return served.client.post(
        "/login",  # the proxy has stripped the prefix
        data={"token": served.tokens["reader"]},
        headers=FORWARDED,
        follow_redirects=False,
    )


def test_a_trusted_proxy_makes_the_session_cookie_secure_and_names_the_client(
    trusting: Served,
) -> None:
    """Over https at the proxy, the cookie is Secure, scoped to the prefix, and the access
    log shows the client's own address rather than the proxy's."""
    response = sign_in_through_the_proxy(trusting)

    assert response.status_code == 303, response.text
    assert response.headers["location"] == f"{PREFIX}/"
    cookie = response.headers["set-cookie"]
    assert "Secure" in cookie
    assert f"Path={PREFIX};" in cookie
    assert f'{CLIENT_ADDRESS}:0 - "POST {PREFIX}/login' in trusting.log()


def test_forwarded_headers_from_an_untrusted_client_are_ignored(untrusting: Served) -> None:
    """Without LEDGER_TRUSTED_PROXIES nobody can claim https or another address."""
    response = sign_in_through_the_proxy(untrusting)

    assert response.status_code == 303, response.text
    assert "Secure" not in response.headers["set-cookie"]
    assert CLIENT_ADDRESS not in untrusting.log()


def test_the_api_answers_under_the_prefix(trusting: Served) -> None:
    """An API read through the proxy reaches its route, and the document names the prefix."""
    train = trusting.get("/v1/trains/5.5")
    document = trusting.client.get("/openapi.json")

    assert train.status_code == 404  # the route's own answer: no such train yet
    assert train.json()["type"].endswith("not-found")
    assert {"url": PREFIX} in document.json()["servers"]
