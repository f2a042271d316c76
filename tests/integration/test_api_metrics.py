"""GET /metrics: requests by route template, events recorded by type, projection lag."""

from __future__ import annotations

import time
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import psycopg
import pytest
from prometheus_client.parser import text_string_to_metric_families
from prometheus_client.samples import Sample

from api.metrics import UNMATCHED
from api.routers.health import READY_TIMEOUT
from ledger.application import CommandContext
from ledger.config import Database
from projections.schema import engine_for, upgrade
from tests.integration.test_api import Api, at, open_api, plan_scoped_train

SCRAPE_TIMEOUT = 10.0
"""Seconds Prometheus waits for a scrape by default."""
PROJECTIONS = {"trains", "features", "journeys", "audit", "qa_runs"}


@dataclass
class Scrape:
    """One scrape of /metrics, parsed as Prometheus text."""

    families: set[str]
    samples: list[Sample]

    def value(self, name: str, **labels: str) -> float:
        """The sample called ``name`` with these labels; 0 when there is none yet."""
        matching = [
            sample.value
            for sample in self.samples
            if sample.name == name and all(sample.labels.get(k) == v for k, v in labels.items())
        ]
        assert len(matching) <= 1, f"{name} {labels} matches {len(matching)} samples"
        return matching[0] if matching else 0.0

    def labels(self, name: str, label: str) -> set[str]:
        return {sample.labels[label] for sample in self.samples if sample.name == name}


def scrape(api: Api) -> Scrape:
    """Scrape as Prometheus does: no token."""
    response = api.client.get("/metrics")
    assert response.status_code == 200, response.text
    families = list(text_string_to_metric_families(response.text))
    return Scrape(
        {family.name for family in families},
        [sample for family in families for sample in family.samples],
    )


@pytest.fixture
def sqlite_api(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Api]:
    with open_api(f"sqlite:///{tmp_path / 'ledger.sqlite3'}", monkeypatch) as opened:
        yield opened


def upgraded(postgres_url: str) -> str:
    """``postgres_url`` after what an operator's ``ledger db upgrade`` does."""
    engine = engine_for(Database.from_url(postgres_url))
    try:
        upgrade(engine)
    finally:
        engine.dispose()
    return postgres_url


@pytest.fixture
def postgres_api(postgres_url: str, monkeypatch: pytest.MonkeyPatch) -> Iterator[Api]:
    with open_api(upgraded(postgres_url), monkeypatch) as opened:
        yield opened


def plan(api: Api, train: str) -> dict[str, Any]:
    response = api.post(
        "/v1/trains",
        {"train": train, "kind": "major", "title": "Tiering", "actor": "Ada", "occurred_at": at(3)},
    )
    assert response.status_code == 201, response.text
    body: dict[str, Any] = response.json()
    return body


# ==================================================================== requests


def test_requests_are_counted_and_timed_by_route_template_and_status(sqlite_api: Api) -> None:
    """A write, reads and 404s show under their route templates with the status they got."""
    position = max(event["position"] for event in plan(sqlite_api, "5.6")["events"])
    sqlite_api.read("/v1/trains/5.6", position)
    sqlite_api.read("/v1/trains/5.6", position)
    assert sqlite_api.get("/v1/trains/9.9").status_code == 404
    assert sqlite_api.get("/v1/nowhere").status_code == 404

    metrics = scrape(sqlite_api)

    requests = "ledger_http_requests_total"
    assert metrics.value(requests, method="POST", route="/v1/trains", status="201") == 1
    assert metrics.value(requests, method="GET", route="/v1/trains/{train}", status="200") == 2
    assert metrics.value(requests, method="GET", route="/v1/trains/{train}", status="404") == 1
    assert metrics.value(requests, method="GET", route=UNMATCHED, status="404") == 1
    durations = "ledger_http_request_duration_seconds"
    assert metrics.value(f"{durations}_count", method="GET", route="/v1/trains/{train}") == 3
    assert metrics.value(f"{durations}_sum", method="GET", route="/v1/trains/{train}") > 0


def test_a_scrape_needs_no_token_and_speaks_prometheus_text(sqlite_api: Api) -> None:
    """/metrics answers without a token in the classic text format, OpenMetrics on request."""
    plain = sqlite_api.client.get("/metrics")
    open_metrics = sqlite_api.client.get(
        "/metrics", headers={"Accept": "application/openmetrics-text; version=1.0.0"}
    )

    assert plain.status_code == 200
    assert plain.headers["content-type"] == "text/plain; version=0.0.4; charset=utf-8"
    assert open_metrics.headers["content-type"].startswith("application/openmetrics-text;")
    assert open_metrics.text.endswith("# EOF\n")
    assert (
        scrape(sqlite_api).value(
            "ledger_http_requests_total", method="GET", route="/metrics", status="200"
        )
        == 2
    )


def test_what_a_client_puts_in_a_url_never_becomes_a_label(sqlite_api: Api) -> None:
    """Traversal junk, unknown methods and bodies refused before routing use fixed labels."""
    junk = [
        sqlite_api.get("/v1/trains/..%2F..%2Fetc%2Fpasswd"),
        sqlite_api.get("/v1/trains/5.5/gates/%2e%2e/readiness"),
        sqlite_api.client.get("/etc/passwd?x=/v1/trains"),
        sqlite_api.client.request("BREW", "/v1/trains/coffee-pot"),
        sqlite_api.client.post(
            "/v1/trains/passwd/scope",
            content=b"x" * (1024 * 1024 + 1),
            headers=sqlite_api.auth("writer"),
        ),
    ]
    assert [response.status_code for response in junk] == [404, 422, 404, 405, 413]

    metrics = scrape(sqlite_api)

    routes = metrics.labels("ledger_http_requests_total", "route")
    templates = {"/v1/trains/{train}", "/v1/trains/{train}/gates/{gate}/readiness", "/metrics"}
    assert routes <= templates | {UNMATCHED}
    assert metrics.labels("ledger_http_requests_total", "method") == {"GET", "OTHER", "POST"}
    assert metrics.value("ledger_http_requests_total", route=UNMATCHED, status="413") == 1


def test_apps_in_one_process_count_apart(sqlite_api: Api, tmp_path: Path) -> None:
    """Each app has a registry of its own: another app's requests never show in its metrics."""
    with pytest.MonkeyPatch.context() as monkeypatch:
        url = f"sqlite:///{tmp_path / 'other.sqlite3'}"
        with open_api(url, monkeypatch) as other:
            other.get("/v1/trains/5.5")
            other.get("/v1/trains/5.5")

            assert (
                scrape(sqlite_api).value("ledger_http_requests_total", route="/v1/trains/{train}")
                == 0
            )
            assert (
                scrape(other).value(
                    "ledger_http_requests_total", route="/v1/trains/{train}", status="404"
                )
                == 2
            )


# ====================================================================== events


def test_events_recorded_grow_by_exactly_the_events_a_write_recorded(sqlite_api: Api) -> None:
    """Each event type's count grows by the events the responses list, refusals add nothing."""
    before = scrape(sqlite_api)
    recorded = plan(sqlite_api, "5.5")["events"]
    scoped = sqlite_api.post(
        "/v1/trains/5.5/scope",
        {"feature": "DEDUP-7", "classification": "anchor", "actor": "Ada", "occurred_at": at(2)},
    )
    recorded += scoped.json()["events"]
    refused = sqlite_api.post("/v1/trains", {"train": "5.5", "kind": "major", "actor": "Bob"})
    assert refused.status_code == 409

    after = scrape(sqlite_api)

    expected = Counter(event["type"] for event in recorded)
    name = "ledger_events_recorded_total"
    assert after.labels(name, "type") == set(expected)
    for event_type, count in expected.items():
        grown = after.value(name, type=event_type) - before.value(name, type=event_type)
        assert grown == count, event_type


def test_a_retried_post_counts_as_a_request_but_records_no_event(sqlite_api: Api) -> None:
    """A POST replayed for its Idempotency-Key is a request of its route and no new event."""
    body = {"train": "5.5", "kind": "major", "actor": "Ada", "occurred_at": at(3)}
    headers = {**sqlite_api.auth("writer"), "Idempotency-Key": "plan-5.5"}
    first = sqlite_api.client.post("/v1/trains", json=body, headers=headers)
    retried = sqlite_api.client.post("/v1/trains", json=body, headers=headers)
    assert (first.status_code, retried.status_code) == (201, 201)
    assert retried.headers["idempotent-replayed"] == "true"

    metrics = scrape(sqlite_api)

    assert (
        metrics.value("ledger_http_requests_total", method="POST", route="/v1/trains", status="201")
        == 2
    )
    (event,) = first.json()["events"]
    assert metrics.value("ledger_events_recorded_total", type=event["type"]) == 1


def test_a_command_answered_from_an_earlier_recording_counts_nothing(sqlite_api: Api) -> None:
    """A retried integration command (a known source_ref) records nothing and counts nothing."""
    context = CommandContext(recorded_by="jira", source_ref="jira:delivery-42")
    first = sqlite_api.ledger.plan_train("5.7", "major", "Ada", context=context)
    again = sqlite_api.ledger.plan_train("5.7", "major", "Ada", context=context)
    assert again.replayed

    metrics = scrape(sqlite_api)

    (event,) = first.events
    assert metrics.value("ledger_events_recorded_total", type=event.type) == 1
    assert metrics.labels("ledger_events_recorded_total", "type") == {event.type}


# ================================================================= projections


@pytest.mark.parametrize("backend", ["sqlite_api", "postgres_api"])
def test_projection_gauges_show_the_head_and_each_projections_lag(
    backend: str, request: pytest.FixtureRequest
) -> None:
    """Once the projections caught up, each sits at the log's head with no lag."""
    api: Api = request.getfixturevalue(backend)
    last = plan_scoped_train(api)
    api.read("/v1/trains/5.5", last)

    metrics = scrape(api)

    assert metrics.value("ledger_database_up") == 1
    assert metrics.value("ledger_log_head_position") == last
    assert metrics.labels("ledger_projection_lag_events", "projection") == PROJECTIONS
    for projection in PROJECTIONS:
        assert metrics.value("ledger_projection_position", projection=projection) == last
        assert metrics.value("ledger_projection_lag_events", projection=projection) == 0


@contextmanager
def locked_out(server: str, database_url: str) -> Iterator[None]:
    """The database refuses connections and drops the ones it had, as when it goes down."""
    name = urlsplit(database_url).path.lstrip("/")
    with psycopg.connect(server, autocommit=True) as admin:
        admin.execute(f'ALTER DATABASE "{name}" ALLOW_CONNECTIONS false')
        admin.execute(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = %s", (name,)
        )
        try:
            yield
        finally:
            admin.execute(f'ALTER DATABASE "{name}" ALLOW_CONNECTIONS true')


def test_a_scrape_while_the_database_is_down_still_answers(
    postgres_server: str, postgres_url: str, postgres_api: Api
) -> None:
    """With the database gone /metrics still answers in time: requests, database_up 0, no lag."""
    plan(postgres_api, "5.5")

    with locked_out(postgres_server, postgres_url):
        started = time.perf_counter()
        metrics = scrape(postgres_api)
        elapsed = time.perf_counter() - started

    assert elapsed < SCRAPE_TIMEOUT
    assert metrics.value("ledger_database_up") == 0
    assert not {"ledger_log_head_position", "ledger_projection_lag_events"} & metrics.families
    assert metrics.value("ledger_http_requests_total", route="/v1/trains", status="201") == 1


def test_readiness_says_not_ready_in_time_while_the_database_is_down(
    postgres_server: str, postgres_url: str, postgres_api: Api
) -> None:
    """With the database gone /readyz answers 503 "not ready" within its bound, not a hang."""
    plan(postgres_api, "5.5")

    with locked_out(postgres_server, postgres_url):
        started = time.perf_counter()
        ready = postgres_api.client.get("/readyz")
        elapsed = time.perf_counter() - started

    assert elapsed < READY_TIMEOUT + 1
    assert ready.status_code == 503
    assert (ready.json()["status"], ready.json()["database"]) == ("not ready", False)


def test_the_inbox_gauge_counts_deliveries_by_status(sqlite_api: Api) -> None:
    """A stored comment event shows as pending, then as ignored once the worker maps it."""
    stored = sqlite_api.client.post(
        "/v1/webhooks/jira",
        json={"webhookEvent": "comment_created", "comment": {"id": "10400"}},
        headers={"X-Atlassian-Webhook-Identifier": "hook-comment-1"},
    )
    assert stored.status_code == 202, stored.text

    deadline = time.monotonic() + 10
    while (metrics := scrape(sqlite_api)).value("ledger_inbox_deliveries", status="ignored") != 1:
        assert time.monotonic() < deadline, "the delivery was never mapped"
        time.sleep(0.05)

    assert metrics.labels("ledger_inbox_deliveries", "status") == {
        "pending",
        "applied",
        "ignored",
        "failed",
    }
    assert metrics.value("ledger_inbox_deliveries", status="pending") == 0
