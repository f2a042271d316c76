"""The HTTP API v1 through its ASGI app: writes, reads, time travel, paging, errors, auth."""

from __future__ import annotations

import re
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from eventsourcing.persistence import OperationalError as StoreOperationalError
from fastapi.testclient import TestClient
from sqlalchemy import Engine

import projections.runner
from api.main import create_app
from api.tokens import create_token, revoke_token
from ledger.application import ReleaseLedger
from ledger.config import Database, Settings
from ledger.exceptions import ConcurrencyConflict, ConfigurationError, IntegrityViolation
from projections.schema import engine_for, upgrade
from tests.api_client import PROBLEM, ApiClient, assert_problem, at, plan_scoped_train
from tests.conftest import days_ago

__all__ = ["PROBLEM", "Api", "assert_problem", "at", "open_api", "plan_scoped_train"]


@dataclass
class Api(ApiClient):
    """A running app (lifespan entered), its ledger and engine, and a token per role."""

    client: TestClient
    ledger: ReleaseLedger
    engine: Engine

    def last_position(self) -> int:
        return self.ledger.event_log.last_position()


@pytest.fixture(params=["sqlite", "postgres"])
def api_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """A fresh database on each backend a server runs on; PostgreSQL upgraded by hand."""
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'ledger.sqlite3'}"
    url: str = request.getfixturevalue("postgres_url")
    engine = engine_for(Database.from_url(url))
    try:
        upgrade(engine)  # what an operator's `ledger db upgrade` does before serving
    finally:
        engine.dispose()
    return url


@contextmanager
def open_api(
    url: str, monkeypatch: pytest.MonkeyPatch, *, raise_server_exceptions: bool = True
) -> Iterator[Api]:
    # The SQLite projector polls; a short interval keeps read-your-write tests fast.
    monkeypatch.setattr(projections.runner, "POLL_INTERVAL", 0.02)
    app = create_app(Settings(database_url=url))
    with TestClient(app, raise_server_exceptions=raise_server_exceptions) as client:
        resources = app.state.resources
        tokens = {
            role: create_token(resources.engine, f"{role}-token", role)
            for role in ("reader", "writer", "admin")
        }
        yield Api(client, tokens, resources.ledger, resources.engine)


@pytest.fixture
def api(api_url: str, monkeypatch: pytest.MonkeyPatch) -> Iterator[Api]:
    """The API on each backend."""
    with open_api(api_url, monkeypatch) as opened:
        yield opened


@pytest.fixture
def sqlite_api(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Api]:
    """The API on SQLite alone, for behaviour that does not depend on the backend."""
    with open_api(f"sqlite:///{tmp_path / 'ledger.sqlite3'}", monkeypatch) as opened:
        yield opened


# ================================================================ writes, reads


def test_a_planned_train_reads_back_once_projected(api: Api) -> None:
    """A train planned with POST is served by GET once min_position is reached."""
    response = api.post(
        "/v1/trains",
        {"train": "5.6", "kind": "major", "title": "Tiering", "actor": "Ada", "occurred_at": at(3)},
    )

    assert response.status_code == 201, response.text
    assert response.headers["location"] == "/v1/trains/5.6"
    body = response.json()
    (event,) = body["events"]
    assert event["type"] == "Planned"
    assert event["recorded_at"].endswith("+00:00")
    assert body["state"]["train"] == "5.6"
    assert body["state"]["status"] == "planning"
    train = api.read("/v1/trains/5.6", event["position"])
    assert train["title"] == "Tiering"
    assert train["planned_at"] == body["state"]["planned_at"]
    assert [gate["gate"] for gate in train["gates"]] == [1, 2, 3, 4]
    listed = api.read("/v1/trains", event["position"], kind="major")
    assert [item["train"] for item in listed["items"]] == ["5.6"]


def test_a_train_read_again_after_a_write_shows_the_write(api: Api) -> None:
    """A train read (and cached) before a QA run is recorded shows the run once projected."""
    position = plan_scoped_train(api)
    before = api.read("/v1/trains/5.5", position)
    assert api.read("/v1/trains/5.5", position) == before

    recorded = api.write(
        "/v1/trains/5.5/qa-runs",
        {
            "cycle": "phase1",
            "build": "rc1",
            "total": 400,
            "passed": 390,
            "failed": 10,
            "actor": "Q",
        },
    )

    after = api.read("/v1/trains/5.5", recorded)
    assert before["qa"]["cycles"] == {}
    assert after["qa"]["cycles"]["phase1"]["passed"] == 390
    assert after["version"] == before["version"] + 1


def test_the_current_train_body_is_the_one_the_response_model_gives(api: Api) -> None:
    """The current document's pre-rendered body is byte for byte the replayed one's."""
    position = plan_scoped_train(api)
    current = api.get("/v1/trains/5.5", min_position=position)
    replayed = api.get("/v1/trains/5.5", as_of=days_ago(-1).isoformat())

    assert current.status_code == replayed.status_code == 200
    assert current.headers["content-type"] == replayed.headers["content-type"]
    assert current.content == replayed.content


def test_a_release_history_runs_through_every_write_endpoint(api: Api) -> None:
    """Gates, scope, decisions, beta drops, QA runs and support are all recorded over HTTP."""
    plan_scoped_train(api)
    api.write(
        "/v1/trains", {"train": "5.6", "kind": "major", "actor": "Ada", "occurred_at": at(60)}
    )
    train = "/v1/trains/5.5"
    api.write(f"{train}/gates/1/schedule", {"date": "2026-01-15", "actor": "Ada"})
    api.write(f"{train}/gates/1/decision", {"outcome": "passed", "actor": "Grace"})
    api.write(f"{train}/decisions", {"feature": "DEDUP-7", "action": "commit", "actor": "Grace"})
    api.write(
        f"{train}/decisions",
        {"feature": "SNAP-3", "action": "move", "to_train": "5.6", "reason": "QA", "actor": "G"},
    )
    api.write(f"{train}/gates/2/decision", {"outcome": "passed", "actor": "Grace"})
    api.write(
        f"{train}/beta-drops",
        {"build": "b-1", "customers": ["Globex"], "features": ["DEDUP-7"], "actor": "Bea"},
    )
    for cycle, passed in (("phase1", 19_000), ("phase2", 1_500)):
        api.write(
            f"{train}/qa-runs",
            {
                "cycle": cycle,
                "build": "rc1",
                "total": 21_000,
                "passed": passed,
                "failed": 100,
                "actor": "Quinn",
            },
        )
    api.write(f"{train}/gates/3/decision", {"outcome": "passed", "actor": "Grace"})
    api.write(
        f"{train}/qa-runs",
        {"cycle": "golden", "build": "rc2", "total": 100, "passed": 99, "failed": 1, "actor": "Q"},
    )
    api.write(f"{train}/gates/4/decision", {"outcome": "passed", "actor": "Grace"})
    last = api.write(
        f"{train}/support",
        {"status": "eol", "eol_date": "2031-01-01", "actor": "Grace", "reason": "major minus two"},
    )

    state = api.read(train, last)
    assert state["status"] == "released"
    assert state["support"] == "eol"
    assert state["eol_date"] == "2031-01-01"
    assert {entry["feature"]: entry["status"] for entry in state["scope"]} == {
        "DEDUP-7": "delivered",
        "SNAP-3": "moved_out",
    }
    assert state["qa"]["effective_phase2_rate"] == 97.62
    assert state["beta_drops"][0]["features"] == ["DEDUP-7"]
    feature = api.read("/v1/features/SNAP-3", last)
    assert (feature["train"], feature["status"]) == ("5.6", "proposed")


def test_gate_readiness_lists_each_criterion_with_its_evidence(sqlite_api: Api) -> None:
    """GET readiness answers every exit criterion of the gate with met and evidence."""
    last = plan_scoped_train(sqlite_api)

    readiness = sqlite_api.read("/v1/trains/5.5/gates/1/readiness", last)

    assert readiness["ready"] is True
    assert [(c["key"], c["met"]) for c in readiness["criteria"]] == [
        ("anchor-feature", True),
        ("anchors-have-customers", True),
    ]
    assert readiness["criteria"][0]["evidence"] == {"anchors": ["DEDUP-7"]}
    gate_2 = sqlite_api.read("/v1/trains/5.5/gates/2/readiness", last)
    assert gate_2["ready"] is False


def test_a_feature_and_its_journey_show_who_did_what_and_why(sqlite_api: Api) -> None:
    """GET a feature gives its train and customers; its journey lists each step with reasons."""
    plan_scoped_train(sqlite_api)
    last = sqlite_api.write(
        "/v1/trains/5.5/decisions",
        {"feature": "SNAP-3", "action": "drop", "reason": "no capacity", "actor": "Grace"},
    )

    feature = sqlite_api.read("/v1/features/DEDUP-7", last)
    journey = sqlite_api.read("/v1/features/SNAP-3/journey", last)

    assert feature["train"] == "5.5"
    assert feature["customers"] == [{"customer": "Globex", "weight": 8.0, "note": "renewal"}]
    assert [step["action"] for step in journey["items"]][-1] == "drop"
    drop = journey["items"][-1]
    assert (drop["actor"], drop["reason"], drop["recorded_by"]) == (
        "Grace",
        "no capacity",
        "writer-token",
    )
    assert drop["occurred_at"].endswith("+00:00")


def test_every_event_is_recorded_by_the_tokens_name(api: Api) -> None:
    """recorded_by on each event is the name of the token that posted it, source api."""
    plan_scoped_train(api)

    feed = api.get("/v1/events").json()

    assert {item["recorded_by"] for item in feed["items"]} == {"writer-token"}
    assert {item["source"] for item in feed["items"]} == {"api"}


def test_a_correlation_header_ties_the_events_of_one_request_together(sqlite_api: Api) -> None:
    """X-Correlation-ID is stored on the events the request records."""
    response = sqlite_api.client.post(
        "/v1/trains",
        json={"train": "5.5", "kind": "major", "actor": "Ada"},
        headers={**sqlite_api.auth("writer"), "X-Correlation-ID": "change-board-42"},
    )

    assert response.status_code == 201
    (event,) = sqlite_api.get("/v1/events").json()["items"]
    assert event["correlation_id"] == "change-board-42"


# ================================================================= time travel


def test_as_of_and_known_at_show_the_train_as_it_was_and_as_it_was_known(api: Api) -> None:
    """as_of folds only what occurred by then; known_at only what was recorded by then."""
    plan_scoped_train(api)
    before_drop = api.get("/v1/events").json()["items"][-1]["recorded_at"]
    last = api.write(
        "/v1/trains/5.5/decisions",
        {
            "feature": "SNAP-3",
            "action": "drop",
            "reason": "late news",
            "actor": "Grace",
            "occurred_at": at(30),
        },
    )

    def scope(document: dict[str, Any]) -> dict[str, str]:
        return {entry["feature"]: entry["status"] for entry in document["scope"]}

    assert scope(api.read("/v1/trains/5.5", last))["SNAP-3"] == "dropped"
    assert scope(api.read("/v1/trains/5.5", last, as_of=at(40)))["SNAP-3"] == "proposed"
    assert "SNAP-3" not in scope(api.read("/v1/trains/5.5", last, as_of=at(59.5)))
    known_then = api.read("/v1/trains/5.5", last, known_at=before_drop)
    assert scope(known_then)["SNAP-3"] == "proposed"
    assert api.read("/v1/trains", last, as_of=at(61))["items"] == []
    assert_problem(api.get("/v1/trains/5.5", as_of=at(61)), 404, "not-found")


def test_a_time_without_an_offset_is_refused(sqlite_api: Api) -> None:
    """as_of and occurred_at need a UTC offset; a naive time is a 422 naming the field."""
    plan_scoped_train(sqlite_api)
    before = sqlite_api.last_position()

    naive_read = sqlite_api.get("/v1/trains/5.5", as_of="2026-01-01T00:00:00")
    naive_write = sqlite_api.post(
        "/v1/trains", {"train": "5.7", "kind": "major", "actor": "A", "occurred_at": "2026-01-01"}
    )
    far_future = sqlite_api.post(
        "/v1/trains",
        {"train": "5.7", "kind": "major", "actor": "A", "occurred_at": at(-1)},
    )
    year_one = sqlite_api.get("/v1/audit", since="0001-01-01T00:00:00+05:00")

    assert assert_problem(naive_read, 422)["errors"][0]["field"] == "as_of"
    assert assert_problem(naive_write, 422)["errors"][0]["field"] == "occurred_at"
    assert assert_problem(far_future, 422, "invalid-command")["errors"][0]["field"] == (
        "occurred_at"
    )
    assert assert_problem(year_one, 422)["errors"][0]["field"] == "since"
    assert sqlite_api.last_position() == before


@pytest.mark.parametrize("number", ["0.5", "1764547200", "0"])
@pytest.mark.parametrize(
    ("path", "field"),
    [("/v1/trains/5.5", "known_at"), ("/v1/trains/5.5", "as_of"), ("/v1/audit", "since")],
)
def test_a_number_is_not_taken_as_a_unix_time_in_a_query(
    sqlite_api: Api, number: str, path: str, field: str
) -> None:
    """known_at=0.5 is a 422 naming the field, as any time that is not ISO 8601."""
    plan_scoped_train(sqlite_api)

    response = sqlite_api.get(path, **{field: number})

    error = assert_problem(response, 422)["errors"][0]
    assert error["field"] == field
    assert "ISO 8601" in error["message"]


def test_a_number_is_not_taken_as_a_time_or_a_date_in_a_body(sqlite_api: Api) -> None:
    """occurred_at 0.5 and a gate date 0 are refused, and nothing is recorded."""
    plan_scoped_train(sqlite_api)
    before = sqlite_api.last_position()

    moment = sqlite_api.post(
        "/v1/trains", {"train": "5.7", "kind": "major", "actor": "A", "occurred_at": 0.5}
    )
    day = sqlite_api.post("/v1/trains/5.5/gates/3/schedule", {"date": 0, "actor": "A"})
    numeric_day = sqlite_api.post("/v1/trains/5.5/gates/3/schedule", {"date": "0", "actor": "A"})

    assert assert_problem(moment, 422)["errors"][0]["field"] == "occurred_at"
    assert assert_problem(day, 422)["errors"][0]["field"] == "date"
    assert assert_problem(numeric_day, 422)["errors"][0]["field"] == "date"
    assert sqlite_api.last_position() == before


# ============================================================ audit and events


def test_the_audit_log_pages_by_cursor_and_filters(api: Api) -> None:
    """Decisions page oldest first; next_cursor leads to the next page and is null at the end."""
    plan_scoped_train(api)
    for key in ("F-1", "F-2", "F-3"):
        api.write(
            "/v1/trains/5.5/scope", {"feature": key, "classification": "committed", "actor": "A"}
        )
    last = 0
    for key in ("DEDUP-7", "F-1", "F-2", "F-3"):
        last = api.write(
            "/v1/trains/5.5/decisions", {"feature": key, "action": "commit", "actor": "Grace"}
        )
    last = api.write(
        "/v1/trains/5.5/decisions",
        {"feature": "SNAP-3", "action": "drop", "reason": "capacity", "actor": "Hal"},
    )

    first = api.read("/v1/audit", last, limit=2)
    second = api.read("/v1/audit", last, limit=2, after=first["next_cursor"])
    third = api.read("/v1/audit", last, limit=2, after=second["next_cursor"])

    pages = [first, second, third]
    assert [len(page["items"]) for page in pages] == [2, 2, 1]
    assert third["next_cursor"] is None
    features = [item["feature"] for page in pages for item in page["items"]]
    assert features == ["DEDUP-7", "F-1", "F-2", "F-3", "SNAP-3"]
    assert [i["feature"] for i in api.read("/v1/audit", last, actor="Hal")["items"]] == ["SNAP-3"]
    assert len(api.read("/v1/audit", last, action="commit")["items"]) == 4
    assert api.read("/v1/audit", last, train="5.4")["items"] == []
    assert api.read("/v1/audit", last, until=at(1))["items"] == []


def test_page_limits_are_clamped_never_refused(sqlite_api: Api) -> None:
    """limit 0, negative or huge is clamped into 1..1000 on the audit log and the feed."""
    last = plan_scoped_train(sqlite_api)
    for key in ("DEDUP-7", "SNAP-3"):
        last = sqlite_api.write(
            "/v1/trains/5.5/decisions", {"feature": key, "action": "commit", "actor": "G"}
        )

    assert len(sqlite_api.read("/v1/audit", last, limit=0)["items"]) == 1
    assert len(sqlite_api.read("/v1/audit", last, limit=-5)["items"]) == 1
    assert len(sqlite_api.read("/v1/audit", last, limit=10**30)["items"]) == 2
    assert len(sqlite_api.get("/v1/events", limit=0).json()["items"]) == 1
    assert len(sqlite_api.get("/v1/events", limit=10**30).json()["items"]) == last


def test_the_event_feed_pages_after_a_position_with_every_events_fields(api: Api) -> None:
    """The feed lists position, type, stream, version, both times, actor, source and data."""
    plan_scoped_train(api)
    head = api.last_position()

    first = api.get("/v1/events", limit=2).json()
    rest = api.get("/v1/events", after=first["next_cursor"], limit=1000).json()
    beyond = api.get("/v1/events", after=head).json()

    assert [item["position"] for item in first["items"]] == [1, 2]
    assert first["next_cursor"] == 2
    assert rest["next_cursor"] is None
    assert rest["last_position"] == head
    planned = first["items"][0]
    assert planned["type"] == "Planned"
    assert planned["version"] == 1
    assert planned["actor"] == "Ada"
    assert planned["data"] == {"train_id": "5.5", "kind": "major", "parent": None, "title": "Dedup"}
    assert planned["occurred_at"].endswith("+00:00")
    demand = next(i for i in rest["items"] if i["type"] == "CustomerDemandRecorded")
    assert demand["data"] == {"customer": "Globex", "weight": 8.0, "note": "renewal"}
    assert beyond == {"items": [], "next_cursor": None, "last_position": head}


# ================================================================ consistency


def test_a_read_waits_for_min_position_and_gives_up_with_503(
    sqlite_api: Api, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A position the projections never reach is a 503 with Retry-After, after the wait."""
    monkeypatch.setattr("api.deps.MIN_POSITION_TIMEOUT", 0.2)
    last = plan_scoped_train(sqlite_api)

    response = sqlite_api.get("/v1/trains/5.5", min_position=last + 1000)

    problem = assert_problem(response, 503, "projections-behind")
    assert response.headers["retry-after"] == "1"
    assert str(last + 1000) in problem["detail"]


# ===================================================================== errors


def test_a_refused_command_is_a_problem_and_records_nothing(api: Api) -> None:
    """404, 409 and 422 from the ledger are problems, and the log does not move."""
    plan_scoped_train(api)
    before = api.last_position()

    unknown = api.post(
        "/v1/trains/5.9/scope", {"feature": "X-1", "classification": "anchor", "actor": "A"}
    )
    duplicate = api.post("/v1/trains", {"train": "5.5", "kind": "major", "actor": "A"})
    no_reason = api.post(
        "/v1/trains/5.5/decisions", {"feature": "SNAP-3", "action": "drop", "actor": "A"}
    )
    gate_2_first = api.post("/v1/trains/5.5/gates/2/decision", {"outcome": "passed", "actor": "A"})
    no_gate_9 = api.post("/v1/trains/5.5/gates/9/decision", {"outcome": "failed", "actor": "A"})

    assert_problem(unknown, 404, "not-found")
    assert_problem(duplicate, 409, "rule-violation")
    assert assert_problem(no_reason, 422, "invalid-command")["errors"] == [
        {"field": "reason", "message": "a 'drop' decision needs a reason", "type": "invalid"}
    ]
    assert_problem(gate_2_first, 409)
    assert_problem(no_gate_9, 404, "not-found")
    assert_problem(api.get("/v1/trains/5.9"), 404, "not-found")
    assert_problem(api.get("/v1/features/NOPE-1/journey"), 404, "not-found")
    assert api.last_position() == before


def test_passing_a_gate_with_unmet_criteria_lists_them(api: Api) -> None:
    """A 'passed' decision with unmet criteria is a 409 carrying each unmet criterion."""
    api.write("/v1/trains", {"train": "5.5", "kind": "major", "actor": "Ada"})
    before = api.last_position()

    response = api.post("/v1/trains/5.5/gates/1/decision", {"outcome": "passed", "actor": "G"})

    problem = assert_problem(response, 409, "gate-criteria-unmet")
    assert [criterion["key"] for criterion in problem["unmet"]] == [
        "anchor-feature",
        "anchors-have-customers",
    ]
    assert all(criterion["met"] is False for criterion in problem["unmet"])
    assert api.last_position() == before


def test_an_invalid_body_is_422_listing_every_field(api: Api) -> None:
    """Types, ranges, enums, unknown and missing fields are each listed in errors."""
    before = api.last_position()

    response = api.post(
        "/v1/trains",
        {"train": "five", "kind": "giant", "actor": "", "title": 7, "colour": "red"},
    )

    problem = assert_problem(response, 422, "validation-error")
    fields = {error["field"] for error in problem["errors"]}
    assert fields == {"train", "kind", "actor", "title", "colour"}
    assert all(error["in"] == "body" and error["message"] for error in problem["errors"])
    # Python's json reads 1e400 as infinity and NaN as not-a-number: neither is a count.
    qa = api.client.post(
        "/v1/trains/5.5/qa-runs",
        content=b'{"cycle": "phase1", "build": "b", "total": -1, "passed": "x", '
        b'"failed": 1e400, "blocked": NaN, "actor": "Q"}',
        headers={**api.auth("writer"), "Content-Type": "application/json"},
    )
    assert {e["field"] for e in assert_problem(qa, 422)["errors"]} == {
        "total",
        "passed",
        "failed",
        "blocked",
    }
    nested = api.post(
        "/v1/trains/5.5/scope",
        {
            "feature": "A-1",
            "classification": "anchor",
            "actor": "A",
            "customers": [{"name": "Globex", "weight": 0}],
        },
    )
    assert [e["field"] for e in assert_problem(nested, 422)["errors"]] == ["customers.0.weight"]
    assert api.last_position() == before


@pytest.mark.parametrize(
    ("error", "status", "kind"),
    [
        (ConcurrencyConflict("plan_train kept conflicting"), 409, "concurrency-conflict"),
        (StoreOperationalError("database is locked"), 503, "database-unavailable"),
        (IntegrityViolation("the chain of 5.5 is broken"), 500, "internal-error"),
        (RuntimeError("a bug with a secret in it"), 500, "internal-error"),
    ],
)
def test_failures_on_the_servers_side_are_problems_too(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, error: Exception, status: int, kind: str
) -> None:
    """Conflicts, a busy database and bugs answer as problems; a bug's detail reveals nothing."""
    url = f"sqlite:///{tmp_path / 'ledger.sqlite3'}"
    with open_api(url, monkeypatch, raise_server_exceptions=False) as opened:

        def fail(*_args: Any, **_kwargs: Any) -> None:
            raise error

        monkeypatch.setattr(opened.ledger, "plan_train", fail)

        response = opened.post("/v1/trains", {"train": "5.5", "kind": "major", "actor": "A"})

    problem = assert_problem(response, status, kind)
    assert "secret" not in problem["detail"]
    if status in (409, 503):
        assert response.headers["retry-after"] == "1"


def test_malformed_json_is_400(sqlite_api: Api) -> None:
    """A body that does not parse as JSON is a 400 problem, and nothing is recorded."""
    response = sqlite_api.client.post(
        "/v1/trains",
        content=b'{"train": "5.5", "kind": ',
        headers={**sqlite_api.auth("writer"), "Content-Type": "application/json"},
    )

    assert "not valid JSON" in assert_problem(response, 400, "malformed-json")["detail"]
    assert sqlite_api.last_position() == 0


def test_a_body_that_is_not_json_is_415(sqlite_api: Api) -> None:
    """A form-encoded or untyped body is refused as an unsupported media type."""
    form = sqlite_api.client.post(
        "/v1/trains", data={"train": "5.5"}, headers=sqlite_api.auth("writer")
    )
    untyped = sqlite_api.client.post(
        "/v1/trains", content=b'{"train": "5.5"}', headers=sqlite_api.auth("writer")
    )

    assert_problem(form, 415, "unsupported-media-type")
    assert_problem(untyped, 415, "unsupported-media-type")


def test_a_body_over_one_mebibyte_is_413_before_it_is_parsed(sqlite_api: Api) -> None:
    """2 MiB is refused by its Content-Length, and also when streamed without one."""
    body = b'{"title": "' + b"x" * (2 * 1024 * 1024) + b'"}'
    headers = {**sqlite_api.auth("writer"), "Content-Type": "application/json"}

    declared = sqlite_api.client.post("/v1/trains", content=body, headers=headers)
    streamed = sqlite_api.client.post(
        "/v1/trains",
        content=(body[i : i + 65536] for i in range(0, len(body), 65536)),
        headers=headers,
    )
    lying = sqlite_api.client.post(
        "/v1/trains", content=body, headers={**headers, "Content-Length": "10"}
    )

    for response in (declared, streamed, lying):
        assert_problem(response, 413, "body-too-large")
    assert sqlite_api.last_position() == 0


def test_a_body_of_exactly_one_mebibyte_is_parsed(sqlite_api: Api) -> None:
    """The limit is inclusive: 1 MiB of body reaches validation (and fails it there)."""
    padding = 1024 * 1024 - len(b'{"title": ""}')
    body = b'{"title": "' + b"x" * padding + b'"}'

    response = sqlite_api.client.post(
        "/v1/trains",
        content=body,
        headers={**sqlite_api.auth("writer"), "Content-Type": "application/json"},
    )

    assert_problem(response, 422, "validation-error")


def test_unknown_routes_and_methods_are_problems(sqlite_api: Api) -> None:
    """An unknown path is a 404 problem, a wrong method a 405 problem with Allow."""
    missing = sqlite_api.client.get("/v2/trains")
    wrong_method = sqlite_api.client.delete("/v1/trains", headers=sqlite_api.auth("admin"))

    assert_problem(missing, 404)
    assert_problem(wrong_method, 405)
    assert "GET" in wrong_method.headers["allow"]


@pytest.mark.parametrize(
    ("method", "path", "allowed"),
    [
        ("DELETE", "/v1/trains", "GET, POST"),
        ("PUT", "/v1/trains/5.5", "GET"),
        ("GET", "/v1/trains/5.5/decisions", "POST"),
        ("DELETE", "/v1/trains/5.5/gates/2/decision", "POST"),
        ("PUT", "/login", "GET, POST"),
    ],
)
def test_a_wrong_method_names_every_method_the_path_takes(
    sqlite_api: Api, method: str, path: str, allowed: str
) -> None:
    """Allow lists each method a route takes on the path, not only the first route's."""
    response = sqlite_api.client.request(method, path, headers=sqlite_api.auth("admin"))

    assert_problem(response, 405)
    assert response.headers["allow"] == allowed
    assert response.json()["detail"].endswith(f"allowed: {allowed}")


@pytest.mark.parametrize(
    ("path", "params"),
    [
        ("/v1/trains/not a train", {}),
        ("/v1/trains/5.5/gates/two/readiness", {}),
        ("/v1/features/-bad-", {}),
        ("/v1/audit", {"actor": "nul\x00byte"}),
        ("/v1/audit", {"after": str(2**80)}),
        ("/v1/events", {"after": "-1"}),
        ("/v1/trains", {"status": "shipped"}),
        ("/v1/trains/5.5", {"min_position": "soon"}),
    ],
)
def test_malformed_parameters_are_422_never_500(
    sqlite_api: Api, path: str, params: dict[str, str]
) -> None:
    """Bad path and query parameters are client errors, whatever they contain."""
    assert_problem(sqlite_api.get(path, **params), 422)


def test_control_characters_in_a_filter_are_refused_on_postgres(
    postgres_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A NUL byte, which PostgreSQL cannot hold in text, is a 422 rather than a driver error."""
    engine = engine_for(Database.from_url(postgres_url))
    upgrade(engine)
    engine.dispose()
    with open_api(postgres_url, monkeypatch) as opened:
        assert_problem(opened.get("/v1/audit", feature="A\x00"), 422)
        assert_problem(
            opened.post("/v1/trains", {"train": "5.5", "kind": "major", "actor": "A\x00"}), 422
        )


# ======================================================================= auth


@pytest.mark.parametrize(
    ("role", "read", "write"),
    [
        (None, 401, 401),
        ("bogus", 401, 401),
        ("reader", 200, 403),
        ("writer", 200, 201),
        ("admin", 200, 201),
    ],
)
def test_roles_gate_reads_and_writes(api: Api, role: str | None, read: int, write: int) -> None:
    """Reads need reader or above, writes writer or above; no valid token is a 401."""
    headers = {}
    if role == "bogus":
        headers = {"Authorization": "Bearer rlt_not-a-real-token"}
    elif role is not None:
        headers = api.auth(role)

    got = api.client.get("/v1/trains", headers=headers)
    posted = api.client.post(
        "/v1/trains", json={"train": "5.5", "kind": "major", "actor": "A"}, headers=headers
    )

    assert (got.status_code, posted.status_code) == (read, write)
    for response in (got, posted):
        if response.status_code == 401:
            assert_problem(response, 401, "unauthorized")
            assert response.headers["www-authenticate"].startswith("Bearer")
        if response.status_code == 403:
            assert "reader" in assert_problem(response, 403, "forbidden")["detail"]
    assert api.last_position() == (1 if write == 201 else 0)


def test_a_revoked_token_is_refused(sqlite_api: Api) -> None:
    """Once revoked, a token's requests are 401 like an unknown token's."""
    assert sqlite_api.get("/v1/trains").status_code == 200

    assert revoke_token(sqlite_api.engine, "reader-token") is True

    assert_problem(sqlite_api.get("/v1/trains"), 401, "unauthorized")
    assert revoke_token(sqlite_api.engine, "reader-token") is False


def test_authentication_comes_before_validation(sqlite_api: Api) -> None:
    """An anonymous client with an invalid body learns only that it needs a token."""
    response = sqlite_api.client.post("/v1/trains", json={"train": "nope"})

    assert_problem(response, 401)


def test_tokens_are_stored_only_as_hashes(sqlite_api: Api) -> None:
    """The token table holds a SHA-256 of each token, never the token itself."""
    with sqlite_api.engine.connect() as connection:
        rows = connection.exec_driver_sql("SELECT name, role, token_hash FROM api_tokens").all()

    assert {(row.name, row.role) for row in rows} == {
        (f"{role}-token", role) for role in ("reader", "writer", "admin")
    }
    stored = " ".join(row.token_hash for row in rows)
    assert all(token not in stored for token in sqlite_api.tokens.values())
    assert all(len(row.token_hash) == 64 for row in rows)


# ===================================================================== health


def test_every_answer_carries_the_security_headers_and_no_cors(sqlite_api: Api) -> None:
    """Reads, problems and dashboard pages forbid framing and sniffing; no origin is allowed."""
    cross_site = {"Origin": "https://evil.example"}
    answers = [
        sqlite_api.client.get("/v1/trains", headers={**sqlite_api.auth("reader"), **cross_site}),
        sqlite_api.get("/v1/trains/9.9"),
        sqlite_api.client.get("/healthz", headers=cross_site),
        sqlite_api.client.get("/login"),
    ]

    for answer in answers:
        assert answer.headers["x-content-type-options"] == "nosniff"
        assert answer.headers["x-frame-options"] == "DENY"
        assert answer.headers["content-security-policy"] == "frame-ancestors 'none'"
        assert answer.headers["referrer-policy"] == "no-referrer"
        assert not [name for name in answer.headers if name.startswith("access-control-")]
    assert [answer.status_code for answer in answers] == [200, 404, 200, 200]


@pytest.mark.parametrize("path", ["/v1/trains", "/v1/trains/5.5/decisions"])
def test_a_cors_preflight_is_not_granted(sqlite_api: Api, path: str) -> None:
    """A cross-site preflight gets no Access-Control-Allow-* answer, so no browser sends."""
    preflight = sqlite_api.client.options(
        path,
        headers={
            "Origin": "https://evil.example",
            "Access-Control-Request-Method": "POST",
            "Access-Control-Request-Headers": "authorization, content-type",
        },
    )

    assert not [name for name in preflight.headers if name.startswith("access-control-")]
    assert_problem(preflight, 405)
    assert preflight.headers["x-frame-options"] == "DENY"
    assert preflight.headers["x-content-type-options"] == "nosniff"


def test_liveness_and_readiness_answer_without_a_token(api: Api) -> None:
    """/healthz is always ok; /readyz reports the database and each projection's lag."""
    last = plan_scoped_train(api)
    api.read("/v1/trains/5.5", last)

    live = api.client.get("/healthz")
    ready = api.client.get("/readyz")

    assert (live.status_code, live.json()) == (200, {"status": "ok"})
    assert ready.status_code == 200
    body = ready.json()
    assert (body["status"], body["database"], body["head"]) == ("ready", True, last)
    assert {p["name"]: p["lag"] for p in body["projections"]} == {
        "trains": 0,
        "features": 0,
        "journeys": 0,
        "audit": 0,
        "qa_runs": 0,
    }


def test_the_openapi_document_names_every_operation_and_its_problems(sqlite_api: Api) -> None:
    """Operation ids are stable, and error responses are documented as problem+json."""
    document = sqlite_api.client.get("/openapi.json").json()

    operations = {
        operation["operationId"]
        for path in document["paths"].values()
        for operation in path.values()
    }
    assert {
        "planTrain",
        "listTrains",
        "getTrain",
        "scheduleGate",
        "decideGate",
        "getGateReadiness",
        "getTrainReport",
        "getTrainForecast",
        "proposeScope",
        "recordDecision",
        "shipBetaDrop",
        "recordQARun",
        "changeSupport",
        "getFeature",
        "getFeatureJourney",
        "listAudit",
        "listEvents",
        "receiveJiraWebhook",
        "receiveQTestWebhook",
        "listInbox",
        "getInboxDelivery",
        "retryInboxDelivery",
        "checkLiveness",
        "checkReadiness",
    } == operations
    conflict = document["paths"]["/v1/trains"]["post"]["responses"]["409"]
    assert list(conflict["content"]) == [PROBLEM]
    examples = document["components"]["schemas"]["PlanTrain"]["examples"]
    assert examples[0]["train"] == "5.6"


def _string_schemas(
    document: dict[str, Any], schema: dict[str, Any], path: str
) -> Iterator[tuple[str, dict[str, Any]]]:
    """Each string schema inside ``schema`` with where it is, following $ref and anyOf."""
    if "$ref" in schema:
        name = schema["$ref"].rsplit("/", 1)[-1]
        yield from _string_schemas(document, document["components"]["schemas"][name], path)
    for option in schema.get("anyOf", []):
        yield from _string_schemas(document, option, path)
    for name, property_schema in schema.get("properties", {}).items():
        yield from _string_schemas(document, property_schema, f"{path}.{name}")
    if "items" in schema:
        yield from _string_schemas(document, schema["items"], f"{path}[]")
    if schema.get("type") == "string":
        yield path, schema


def test_the_openapi_document_states_the_limits_of_every_text_in_a_command(sqlite_api: Api) -> None:
    """Every string a command takes has its length and its pattern (or choices) documented."""
    document = sqlite_api.client.get("/openapi.json").json()

    unbounded = []
    for path, operations in document["paths"].items():
        body = operations.get("post", {}).get("requestBody", {}).get("content", {})
        schema = body.get("application/json", {}).get("schema")
        if schema is None or path.startswith("/v1/webhooks"):
            continue  # webhooks take the sender's own documents, stored raw
        for where, string in _string_schemas(document, schema, path):
            bounded = "enum" in string or "format" in string or "maxLength" in string
            if not (bounded and ("pattern" in string or "enum" in string)):
                unbounded.append(where)

    assert unbounded == []


def _pattern(document: dict[str, Any], model: str, field: str) -> re.Pattern[str]:
    schema = document["components"]["schemas"][model]["properties"][field]
    (string,) = [option for option in [schema, *schema.get("anyOf", [])] if "pattern" in option]
    return re.compile(string["pattern"])


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("actor", "Ada Planner"),
        ("actor", "  Ada  "),
        ("actor", "   "),
        ("actor", "Ada\x07"),
        ("actor", "Ada\nPlanner"),
        ("title", ""),
        ("title", "Object\ttiering"),
        ("occurred_at", "2026-11-02T14:30:00+01:00"),
        ("occurred_at", "1899-12-31T12:00:00+00:00"),
        ("occurred_at", "9999-01-01T00:00:00+00:00"),
    ],
)
def test_the_documented_patterns_agree_with_what_the_server_takes(
    sqlite_api: Api, field: str, value: str
) -> None:
    """A value the document's pattern refuses is refused with 422; one it allows is taken."""
    document = sqlite_api.client.get("/openapi.json").json()
    allowed = bool(_pattern(document, "PlanTrain", field).search(value))
    body = {
        "train": "5.7",
        "kind": "major",
        "actor": "Ada",
        "occurred_at": "2026-11-02T14:30:00+01:00",
    }

    response = sqlite_api.post("/v1/trains", {**body, field: value})

    assert response.status_code == (201 if allowed else 422), response.text


@pytest.mark.parametrize(
    ("model", "field", "value", "allowed"),
    [
        ("ChangeSupport", "reason", "major minus two\nas agreed", True),
        ("ChangeSupport", "reason", "\n\t", False),
        ("ChangeSupport", "reason", "bell\x07", False),
        ("ScheduleGate", "date", "2199-12-31", True),
        ("ScheduleGate", "date", "2200-01-01", False),
        ("ScheduleGate", "date", "1899-12-31", False),
    ],
)
def test_the_document_states_the_prose_and_date_limits(
    sqlite_api: Api, model: str, field: str, value: str, allowed: bool
) -> None:
    """Prose may break lines but holds no other control character; dates run 1900 to 2199."""
    document = sqlite_api.client.get("/openapi.json").json()

    assert bool(_pattern(document, model, field).search(value)) is allowed


def test_the_server_refuses_an_out_of_date_postgres_schema(postgres_url: str) -> None:
    """Starting on a PostgreSQL database never upgraded fails, naming ledger db upgrade."""
    app = create_app(Settings(database_url=postgres_url))

    with pytest.raises(ConfigurationError, match="run 'ledger db upgrade'"), TestClient(app):
        pass


def test_shutdown_stops_the_projector(tmp_path: Path) -> None:
    """Leaving the lifespan stops the projector thread and lets go of the resources."""
    app = create_app(Settings(database_url=f"sqlite:///{tmp_path / 'ledger.sqlite3'}"))
    with TestClient(app):
        projector = app.state.resources.projector
        assert projector.thread.is_alive()

    assert not projector.thread.is_alive()
    assert not hasattr(app.state, "resources")


def test_a_day_in_the_future_is_refused_but_five_minutes_ahead_is_not(sqlite_api: Api) -> None:
    """occurred_at may run at most five minutes ahead of the server's clock."""
    soon = (days_ago(0) + timedelta(minutes=2)).isoformat()

    response = sqlite_api.post(
        "/v1/trains", {"train": "5.5", "kind": "major", "actor": "A", "occurred_at": soon}
    )

    assert response.status_code == 201, response.text
