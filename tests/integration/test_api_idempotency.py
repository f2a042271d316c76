"""Idempotency-Key on every POST: a retry gets the first answer and records nothing new."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
from sqlalchemy import insert, select

from api.idempotency import STALE_AFTER, fingerprint, utc_now
from api.resources import THREADPOOL_TOKENS
from ledger.application import CommandContext
from ledger.config import Database
from ledger.exceptions import ConcurrencyConflict
from projections.schema import engine_for, upgrade
from projections.tables import idempotency_keys
from tests.conftest import event_count
from tests.integration.test_api import Api, assert_problem, open_api, plan_scoped_train

PLAN_5_6 = {"train": "5.6", "kind": "major", "title": "Tiering", "actor": "Grace"}
PLAN_5_7 = {"train": "5.7", "kind": "major", "title": "Archive", "actor": "Grace"}


@pytest.fixture(params=["sqlite", "postgres"])
def api(
    request: pytest.FixtureRequest, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> Iterator[Api]:
    """The API on each backend; PostgreSQL upgraded first, as an operator would."""
    if request.param == "sqlite":
        url = f"sqlite:///{tmp_path / 'ledger.sqlite3'}"
    else:
        url = request.getfixturevalue("postgres_url")
        engine = engine_for(Database.from_url(url))
        try:
            upgrade(engine)
        finally:
            engine.dispose()
    with open_api(url, monkeypatch) as opened:
        yield opened


@pytest.fixture
def sqlite_api(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Api]:
    """The API on SQLite alone, for behaviour that does not depend on the backend."""
    with open_api(f"sqlite:///{tmp_path / 'ledger.sqlite3'}", monkeypatch) as opened:
        yield opened


def claim_plan_5_6_elsewhere(api: Api, claimed_at: datetime) -> None:
    """Leave key ``plan-5.6`` claimed for PLAN_5_6 at ``claimed_at`` and not answered, as a
    request still running (or a server that died running it) leaves it."""
    with api.engine.begin() as connection:
        connection.execute(
            insert(idempotency_keys).values(
                principal="writer-token",
                key="plan-5.6",
                fingerprint=fingerprint("POST", "/v1/trains", json.dumps(PLAN_5_6).encode()),
                status="pending",
                created_at=claimed_at,
                claimed_at=claimed_at,
            )
        )


def post(
    api: Api, path: str, body: dict[str, Any] | bytes, key: str, role: str = "writer"
) -> httpx.Response:
    """A POST with ``Idempotency-Key: key``; a bytes body is sent exactly as given."""
    headers = api.auth(role) | {"Idempotency-Key": key, "Content-Type": "application/json"}
    content = body if isinstance(body, bytes) else json.dumps(body).encode()
    response: httpx.Response = api.client.post(path, content=content, headers=headers)
    return response


def test_a_retried_post_answers_as_the_first_and_records_nothing_new(api: Api) -> None:
    """The same key and body give the first status, headers and body byte for byte."""
    first = post(api, "/v1/trains", PLAN_5_6, "plan-5.6")
    recorded = event_count(api.ledger)

    again = post(api, "/v1/trains", PLAN_5_6, "plan-5.6")

    assert first.status_code == again.status_code == 201
    assert again.content == first.content
    assert again.headers["location"] == first.headers["location"] == "/v1/trains/5.6"
    assert again.headers["content-type"] == first.headers["content-type"]
    assert again.headers["idempotent-replayed"] == "true"
    assert "idempotent-replayed" not in first.headers
    assert event_count(api.ledger) == recorded


def test_the_same_key_with_another_body_or_path_is_422_and_records_nothing(api: Api) -> None:
    """A key is bound to its first request: another body or another path is refused."""
    post(api, "/v1/trains", PLAN_5_6, "plan-5.6")
    recorded = event_count(api.ledger)

    other_body = post(api, "/v1/trains", PLAN_5_6 | {"train": "5.7"}, "plan-5.6")
    other_path = post(
        api,
        "/v1/trains/5.6/scope",
        {"feature": "TIER-2", "classification": "anchor", "actor": "Grace"},
        "plan-5.6",
    )

    for refused in (other_body, other_path):
        problem = assert_problem(refused, 422, "idempotency-key-reused")
        assert "'plan-5.6'" in problem["detail"]
    assert event_count(api.ledger) == recorded
    assert assert_problem(api.get("/v1/trains/5.7"), 404)


def test_spacing_and_key_order_in_the_body_are_the_same_request(sqlite_api: Api) -> None:
    """A body re-serialised with other whitespace and key order replays the first answer."""
    first = post(sqlite_api, "/v1/trains", PLAN_5_6, "plan-5.6")
    reordered = json.dumps(dict(reversed(PLAN_5_6.items())), indent=4).encode()

    again = post(sqlite_api, "/v1/trains", reordered, "plan-5.6")

    assert again.status_code == 201
    assert again.headers["idempotent-replayed"] == "true"
    assert again.content == first.content


def test_each_token_has_keys_of_its_own(sqlite_api: Api) -> None:
    """Two tokens using the same key record two commands, each by its own token."""
    writer = post(sqlite_api, "/v1/trains", PLAN_5_6, "monday-plan")
    admin = post(sqlite_api, "/v1/trains", PLAN_5_6 | {"train": "5.7"}, "monday-plan", "admin")

    assert writer.status_code == admin.status_code == 201
    assert "idempotent-replayed" not in admin.headers
    assert sqlite_api.ledger.train("5.6")["train"] == "5.6"
    assert sqlite_api.ledger.train("5.7")["train"] == "5.7"


def test_a_refused_command_replays_its_problem_and_records_nothing(api: Api) -> None:
    """A 409 is the key's answer: retried, even once the state would allow it, it stays."""
    plan_scoped_train(api)
    early = {"outcome": "passed", "actor": "Grace"}
    first = post(api, "/v1/trains/5.5/gates/2/decision", early, "gate-2")
    api.write("/v1/trains/5.5/gates/1/decision", {"outcome": "passed", "actor": "Grace"})
    recorded = event_count(api.ledger)

    again = post(api, "/v1/trains/5.5/gates/2/decision", early, "gate-2")

    assert_problem(first, 409)
    assert again.status_code == 409
    assert again.content == first.content
    assert again.headers["content-type"] == "application/problem+json"
    assert again.headers["idempotent-replayed"] == "true"
    assert event_count(api.ledger) == recorded


def test_concurrent_requests_with_one_key_record_once(api: Api) -> None:
    """Eight requests at once with one key record one train and all get the same answer."""
    recorded = event_count(api.ledger)

    with ThreadPoolExecutor(max_workers=8) as pool:
        responses = list(
            pool.map(lambda _: post(api, "/v1/trains", PLAN_5_6, "plan-5.6"), range(8))
        )

    assert {response.status_code for response in responses} == {201}
    assert len({response.content for response in responses}) == 1
    assert sum("idempotent-replayed" not in response.headers for response in responses) == 1
    # The Planned event and the ledger's claim on the request's source_ref.
    assert event_count(api.ledger) == recorded + 2
    assert [event["type"] for event in responses[0].json()["events"]] == ["Planned"]


def test_a_stale_claim_of_a_crashed_server_is_taken_over_and_records_once(api: Api) -> None:
    """A claim left pending by a server that recorded, then died, is retried without a repeat."""
    # What the crashed server got done: the claim, and the command under its source_ref.
    claim_plan_5_6_elsewhere(api, utc_now() - STALE_AFTER - timedelta(seconds=1))
    crashed = api.ledger.plan_train(
        "5.6",
        "major",
        "Grace",
        title="Tiering",
        context=CommandContext(recorded_by="writer-token", source_ref="api:writer-token:plan-5.6"),
    )
    recorded = event_count(api.ledger)

    retried = post(api, "/v1/trains", PLAN_5_6, "plan-5.6")
    again = post(api, "/v1/trains", PLAN_5_6, "plan-5.6")

    assert retried.status_code == 201, retried.text
    assert [event["position"] for event in retried.json()["events"]] == [
        event.position for event in crashed.events
    ]
    assert again.content == retried.content
    assert event_count(api.ledger) == recorded
    with api.engine.connect() as connection:
        status = connection.execute(select(idempotency_keys.c.status)).scalar_one()
    assert status == "done"


def test_a_request_still_in_progress_is_409_with_retry_after(
    sqlite_api: Api, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A fresh claim without an answer makes a retry wait, then answer 409 in progress."""
    monkeypatch.setattr("api.idempotency.WAIT_SECONDS", 0.2)
    claim_plan_5_6_elsewhere(sqlite_api, utc_now())
    recorded = event_count(sqlite_api.ledger)

    response = post(sqlite_api, "/v1/trains", PLAN_5_6, "plan-5.6")

    assert_problem(response, 409, "idempotency-key-in-progress")
    assert response.headers["retry-after"] == "1"
    assert event_count(sqlite_api.ledger) == recorded


def test_retries_waiting_on_a_running_key_do_not_hold_up_other_writes(
    sqlite_api: Api, monkeypatch: pytest.MonkeyPatch
) -> None:
    """More retries of a still-running key than there are threads wait for it without
    holding one: a plain write sent after them is answered before any of them."""
    monkeypatch.setattr("api.idempotency.WAIT_SECONDS", 1.0)
    claim_plan_5_6_elsewhere(sqlite_api, utc_now())
    retries = THREADPOOL_TOKENS + 4
    answered: list[str] = []

    def retry(_: int) -> httpx.Response:
        response = post(sqlite_api, "/v1/trains", PLAN_5_6, "plan-5.6")
        answered.append("retry")
        return response

    with ThreadPoolExecutor(max_workers=retries + 1) as pool:
        waiting = [pool.submit(retry, n) for n in range(retries)]
        time.sleep(0.3)  # let the retries reach their wait
        plain = sqlite_api.client.post(
            "/v1/trains", json=PLAN_5_7, headers=sqlite_api.auth("writer")
        )
        answered.append("plain")
        responses = [future.result() for future in waiting]

    assert plain.status_code == 201, plain.text
    assert answered[0] == "plain", answered
    for response in responses:
        assert_problem(response, 409, "idempotency-key-in-progress")


def test_a_conflict_that_asks_for_a_retry_frees_the_key(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A 409 with Retry-After (writers kept colliding) is not kept: the retry runs the command."""
    with open_api(f"sqlite:///{tmp_path / 'ledger.sqlite3'}", monkeypatch) as opened:
        with monkeypatch.context() as patched:

            def collide(*_args: Any, **_kwargs: Any) -> None:
                raise ConcurrencyConflict("plan_train on train:5.6 kept conflicting")

            patched.setattr(opened.ledger, "plan_train", collide)
            conflicted = post(opened, "/v1/trains", PLAN_5_6, "plan-5.6")

        retried = post(opened, "/v1/trains", PLAN_5_6, "plan-5.6")

    assert_problem(conflicted, 409, "concurrency-conflict")
    assert conflicted.headers["retry-after"] == "1"
    assert retried.status_code == 201, retried.text
    assert "idempotent-replayed" not in retried.headers


def test_a_server_failure_frees_the_key_for_the_same_request_only(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """After a 500 the same request runs again; the key still refuses another body."""
    with open_api(
        f"sqlite:///{tmp_path / 'ledger.sqlite3'}", monkeypatch, raise_server_exceptions=False
    ) as opened:
        with monkeypatch.context() as patched:

            def fail(*_args: Any, **_kwargs: Any) -> None:
                raise RuntimeError("the disk caught fire")

            patched.setattr(opened.ledger, "plan_train", fail)
            failed = post(opened, "/v1/trains", PLAN_5_6, "plan-5.6")

        other = post(opened, "/v1/trains", PLAN_5_6 | {"train": "5.7"}, "plan-5.6")
        retried = post(opened, "/v1/trains", PLAN_5_6, "plan-5.6")

    assert_problem(failed, 500, "internal-error")
    assert_problem(other, 422, "idempotency-key-reused")
    assert retried.status_code == 201, retried.text
    assert "idempotent-replayed" not in retried.headers


def test_an_invalid_request_does_not_use_up_its_key(sqlite_api: Api) -> None:
    """A body refused before any command runs leaves the key free for the corrected body."""
    invalid = post(sqlite_api, "/v1/trains", PLAN_5_6 | {"kind": "giant"}, "plan-5.6")
    malformed = post(sqlite_api, "/v1/trains", b'{"train": "5.6",', "plan-5.6")
    anonymous = sqlite_api.client.post(
        "/v1/trains", json=PLAN_5_6 | {"train": "5.9"}, headers={"Idempotency-Key": "plan-5.6"}
    )

    corrected = post(sqlite_api, "/v1/trains", PLAN_5_6, "plan-5.6")

    assert_problem(invalid, 422, "validation-error")
    assert_problem(malformed, 400, "malformed-json")
    assert_problem(anonymous, 401)
    assert corrected.status_code == 201, corrected.text
    assert "idempotent-replayed" not in corrected.headers


@pytest.mark.parametrize("key", ["two words", "k" * 201, "caf\u00e9"])
def test_a_malformed_key_is_422_naming_the_header(sqlite_api: Api, key: str) -> None:
    """Keys are 1 to 200 printable ASCII characters without spaces."""
    headers = {name.encode(): value.encode() for name, value in sqlite_api.auth("writer").items()}
    response = sqlite_api.client.post(
        "/v1/trains", json=PLAN_5_6, headers=headers | {b"Idempotency-Key": key.encode()}
    )

    problem = assert_problem(response, 422, "validation-error")
    assert [error["field"] for error in problem["errors"]] == ["Idempotency-Key"]


def test_the_events_of_a_keyed_request_carry_its_source_ref(sqlite_api: Api) -> None:
    """The feed shows which key recorded an event, scoped by the token that sent it."""
    position = max(
        event["position"]
        for event in post(sqlite_api, "/v1/trains", PLAN_5_6, "plan-5.6").json()["events"]
    )

    (event,) = sqlite_api.get("/v1/events", after=position - 1, limit=1).json()["items"]

    assert event["source_ref"] == "api:writer-token:plan-5.6"


def test_every_post_documents_the_idempotency_key_header(sqlite_api: Api) -> None:
    """Each command POST documents an optional Idempotency-Key header.

    Webhooks are deduplicated on their delivery identity instead, and an inbox retry maps
    a delivery again without recording twice: neither takes a key.
    """
    document = sqlite_api.client.get("/openapi.json").json()

    posts = {
        path: operation
        for path, operations in document["paths"].items()
        for method, operation in operations.items()
        if method == "post" and not path.startswith(("/v1/webhooks/", "/v1/inbox/"))
    }
    assert len(posts) >= 8
    for path, operation in posts.items():
        headers = {
            parameter["name"]: parameter
            for parameter in operation.get("parameters", [])
            if parameter["in"] == "header"
        }
        assert "Idempotency-Key" in headers, path
        assert headers["Idempotency-Key"]["required"] is False
        assert headers["Idempotency-Key"]["schema"]["anyOf"][0]["maxLength"] == 200
