"""Jira and QTest webhooks through the ASGI app: verified, stored once, mapped from the inbox."""

from __future__ import annotations

import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

import orjson
import pytest
from fastapi.testclient import TestClient

import integrations.processor
import projections.runner
from api.main import create_app
from api.tokens import create_token
from integrations.inbox import Arrival, Inbox, Integration
from integrations.processor import jira_turn
from integrations.signatures import signature
from ledger.application import ReleaseLedger
from ledger.config import Database, Settings
from projections.schema import engine_for, prepare
from tests.conftest import at, event_count
from tests.fakes.qtest import FakeQTest
from tests.integration.test_api import api_url  # noqa: F401 - a fixture
from tests.scenarios import plan_scoped_train

JIRA_SECRET = "jira-webhook-secret"
QTEST_SECRET = "qtest-webhook-secret"
DRAIN_SECONDS = 30.0


@dataclass
class Hooks:
    """A running app with both integrations configured, its ledger, and an admin token."""

    client: TestClient
    ledger: ReleaseLedger
    admin: dict[str, str]
    qtest: FakeQTest

    def jira(
        self, payload: Any, delivery: str, *, secret: str | None = JIRA_SECRET
    ) -> dict[str, Any]:
        body = orjson.dumps(payload)
        headers = {"Content-Type": "application/json", "X-Atlassian-Webhook-Identifier": delivery}
        if secret is not None:
            headers["X-Hub-Signature"] = f"sha256={signature(secret, body)}"
        response = self.client.post("/v1/webhooks/jira", content=body, headers=headers)
        return {"status": response.status_code, "body": response.json()}

    def qtest_log(self, test_log_id: int, *, sign: bool = True) -> int:
        body = self.qtest.webhook_body(test_log_id)
        headers = {"Content-Type": "application/json"}
        if sign:
            headers["x-qtest-signature"] = signature(QTEST_SECRET, body)
        response = self.client.post("/v1/webhooks/qtest", content=body, headers=headers)
        return response.status_code

    def inbox(self, **params: Any) -> dict[str, Any]:
        response = self.client.get("/v1/inbox", params=params, headers=self.admin)
        assert response.status_code == 200, response.text
        body: dict[str, Any] = response.json()
        return body

    def drained(self) -> dict[str, int]:
        """Wait until no delivery is pending; the counts per status then."""
        deadline = time.monotonic() + DRAIN_SECONDS
        while True:
            counts: dict[str, int] = self.inbox()["counts"]
            if counts["pending"] == 0 or time.monotonic() > deadline:
                return counts
            time.sleep(0.05)

    def delivery(self, delivery_id: int) -> dict[str, Any]:
        response = self.client.get(f"/v1/inbox/{delivery_id}", headers=self.admin)
        assert response.status_code == 200, response.text
        body: dict[str, Any] = response.json()
        return body


@contextmanager
def open_hooks(url: str, monkeypatch: pytest.MonkeyPatch) -> Iterator[Hooks]:
    monkeypatch.setattr(projections.runner, "POLL_INTERVAL", 0.02)
    monkeypatch.setattr(integrations.processor.InboxWorker, "POLL_SECONDS", 0.05)
    with FakeQTest() as qtest:
        settings = Settings(
            database_url=url,
            jira_webhook_secret=JIRA_SECRET,
            qtest_webhook_secret=QTEST_SECRET,
            qtest_base_url=qtest.base_url,
            qtest_token=qtest.token,
        )
        app = create_app(settings)
        with TestClient(app) as client:
            resources = app.state.resources
            token = create_token(resources.engine, "ops-admin", "admin")
            yield Hooks(client, resources.ledger, {"Authorization": f"Bearer {token}"}, qtest)


@pytest.fixture
def hooks(api_url: str, monkeypatch: pytest.MonkeyPatch) -> Iterator[Hooks]:  # noqa: F811
    """Webhooks on each backend a server runs on."""
    with open_hooks(api_url, monkeypatch) as opened:
        yield opened


def fix_version_move(key: str, source: str, target: str, *, changelog: str = "10105") -> Any:
    """A ``jira:issue_updated`` whose changelog moves ``key`` from one fix version to another."""
    return {
        "timestamp": int(time.time() * 1000) - 60_000,
        "webhookEvent": "jira:issue_updated",
        "issue_event_type_name": "issue_generic",
        "user": {"accountId": "5b10ac8d82e05b22cc7d4ef5", "displayName": "Maria Lopez"},
        "issue": {
            "id": "10003",
            "key": key,
            "fields": {"summary": "Inline deduplication", "labels": []},
        },
        "changelog": {
            "id": changelog,
            "items": [
                {
                    "field": "Fix Version",
                    "fieldtype": "jira",
                    "fieldId": "fixVersions",
                    "from": "10001",
                    "fromString": source,
                    "to": None,
                    "toString": None,
                },
                {
                    "field": "Fix Version",
                    "fieldtype": "jira",
                    "fieldId": "fixVersions",
                    "from": None,
                    "fromString": None,
                    "to": "10002",
                    "toString": target,
                },
            ],
        },
    }


def two_trains(ledger: ReleaseLedger) -> None:
    """5.5 with DEDUP-7 and SNAP-3 in scope, gate 1 passed; 5.6 planned beside it."""
    plan_scoped_train(ledger, "5.5")
    ledger.plan_train("5.6", "major", "Ada Planner", context=at(40))


# ===================================================================== Jira


def test_a_jira_fix_version_move_moves_the_feature_between_trains(hooks: Hooks) -> None:
    """A signed fixVersions move is acknowledged at once, then recorded as a move by its user."""
    two_trains(hooks.ledger)

    answer = hooks.jira(fix_version_move("DEDUP-7", "5.5", "5.6"), "delivery-move-1")

    assert answer["status"] == 202
    assert answer["body"]["duplicate"] is False
    assert hooks.drained()["applied"] == 1
    delivery = hooks.delivery(answer["body"]["delivery"])
    assert delivery["status"] == "applied"
    assert delivery["positions"]
    assert hooks.ledger.feature("DEDUP-7")["train"] == "5.6"
    feed = hooks.client.get("/v1/events", headers=hooks.admin).json()["items"]
    recorded = [item for item in feed if item["position"] in delivery["positions"]]
    assert len(recorded) == len(delivery["positions"])
    for event in recorded:
        assert event["actor"] == "Maria Lopez"
        assert (event["source"], event["recorded_by"]) == ("jira", "jira")
        assert event["source_ref"] == "jira:delivery-move-1:10105:1"
    assert any("changelog 10105" in event["data"].get("reason", "") for event in recorded)


def test_a_retried_jira_delivery_is_stored_once_and_records_nothing_new(hooks: Hooks) -> None:
    """The same delivery id twice: both 202, the second a duplicate, one set of events."""
    two_trains(hooks.ledger)
    payload = fix_version_move("DEDUP-7", "5.5", "5.6")

    first = hooks.jira(payload, "delivery-retried")
    hooks.drained()
    events_after_first = event_count(hooks.ledger)
    second = hooks.jira(payload, "delivery-retried")
    hooks.drained()

    assert (first["status"], second["status"]) == (202, 202)
    assert second["body"] == first["body"] | {"duplicate": True}
    assert event_count(hooks.ledger) == events_after_first
    assert hooks.inbox()["counts"]["applied"] == 1


def test_an_unsigned_or_wrongly_signed_jira_delivery_is_refused_and_not_stored(
    hooks: Hooks,
) -> None:
    """With a secret configured, no signature or another secret's is 401 and stores nothing."""
    payload = fix_version_move("DEDUP-7", "5.5", "5.6")

    unsigned = hooks.jira(payload, "forged-1", secret=None)
    forged = hooks.jira(payload, "forged-2", secret="guessed")

    assert unsigned["status"] == forged["status"] == 401
    assert unsigned["body"]["type"] == "/problems/unverified-webhook"
    assert sum(hooks.inbox()["counts"].values()) == 0


def test_a_jira_body_that_is_not_json_is_400_and_not_stored(hooks: Hooks) -> None:
    """A truncated body, correctly signed, is a malformed request: 400, nothing stored."""
    body = b'{"webhookEvent": "jira:issue_upd'
    response = hooks.client.post(
        "/v1/webhooks/jira",
        content=body,
        headers={"X-Hub-Signature": f"sha256={signature(JIRA_SECRET, body)}"},
    )

    assert response.status_code == 400
    assert sum(hooks.inbox()["counts"].values()) == 0


def test_an_event_the_ledger_does_not_map_is_stored_and_ignored(hooks: Hooks) -> None:
    """A comment on an issue is acknowledged and kept, and records no event."""
    before = event_count(hooks.ledger)
    answer = hooks.jira(
        {"timestamp": 1764151200000, "webhookEvent": "comment_created", "comment": {"id": 7}},
        "delivery-comment",
    )

    assert answer["status"] == 202
    assert hooks.drained()["ignored"] == 1
    assert event_count(hooks.ledger) == before
    (item,) = hooks.inbox(status="ignored")["items"]
    assert item["event_type"] == "comment_created"
    assert item["reason"]


def test_a_move_to_an_unplanned_train_fails_then_maps_after_a_retry(hooks: Hooks) -> None:
    """A move to 5.7 before 5.7 exists fails with its reason; once planned, a retry moves it."""
    two_trains(hooks.ledger)
    answer = hooks.jira(fix_version_move("DEDUP-7", "5.5", "5.7"), "delivery-early")
    counts = hooks.drained()
    failed = hooks.delivery(answer["body"]["delivery"])

    hooks.ledger.plan_train("5.7", "major", "Ada Planner", context=at(30))
    retried = hooks.client.post(
        f"/v1/inbox/{answer['body']['delivery']}/retry", headers=hooks.admin
    )

    assert counts["failed"] == 1
    assert "5.7" in failed["reason"]
    assert retried.status_code == 200, retried.text
    assert retried.json()["status"] == "applied"
    assert hooks.ledger.feature("DEDUP-7")["train"] == "5.7"


def test_the_inbox_is_for_admins_alone(hooks: Hooks) -> None:
    """No token is 401; reader and writer tokens are 403; an admin reads it."""
    engine = hooks.client.app.state.resources.engine  # type: ignore[attr-defined]
    reader = create_token(engine, "pm-reader", "reader")
    writer = create_token(engine, "ci-writer", "writer")

    assert hooks.client.get("/v1/inbox").status_code == 401
    for token in (reader, writer):
        response = hooks.client.get("/v1/inbox", headers={"Authorization": f"Bearer {token}"})
        assert response.status_code == 403
    assert hooks.client.get("/v1/inbox/1/retry").status_code == 405
    assert hooks.client.post("/v1/inbox/999/retry", headers=hooks.admin).status_code == 404


# ==================================================================== QTest


def golden_cycle(qtest: FakeQTest, runs: int) -> tuple[int, list[int]]:
    """A QTest release "Release 5.5" with a "Golden Run" cycle of ``runs`` test runs."""
    release = qtest.add_release("Release 5.5")
    cycle = qtest.add_cycle("Golden Run", release=release)
    return cycle, [qtest.add_test_run(cycle) for _ in range(runs)]


def test_qtest_logs_become_the_golden_cycles_exact_totals(hooks: Hooks) -> None:
    """Each test run counts once at its latest status; the QA run equals QTest's truth."""
    plan_scoped_train(hooks.ledger, "5.5")
    cycle, runs = golden_cycle(hooks.qtest, 6)
    statuses = ["Passed", "Passed", "Failed", "Blocked", "Passed", "Incomplete"]
    logs = [hooks.qtest.submit_log(run, status) for run, status in zip(runs, statuses, strict=True)]
    logs.append(hooks.qtest.submit_log(runs[2], "Passed"))  # the failed run passes a retest

    answers = [hooks.qtest_log(log) for log in logs]
    counts = hooks.drained()

    assert answers == [202] * len(logs)
    assert counts["applied"] == len(logs)
    golden = hooks.ledger.train("5.5")["qa"]["golden"]
    truth = hooks.qtest.cycle_totals(cycle)
    assert truth == {"total": 6, "passed": 4, "failed": 0, "blocked": 1}
    assert {name: golden[name] for name in truth} == truth


def test_a_qtest_delivery_signed_with_another_secret_is_refused(hooks: Hooks) -> None:
    """A forged x-qtest-signature is 401; a valid URL token instead of a signature is taken."""
    plan_scoped_train(hooks.ledger, "5.5")
    _, runs = golden_cycle(hooks.qtest, 1)
    body = hooks.qtest.webhook_body(hooks.qtest.submit_log(runs[0], "Passed"))

    forged = hooks.client.post(
        "/v1/webhooks/qtest", content=body, headers={"x-qtest-signature": signature("x", body)}
    )
    wrong_token = hooks.client.post("/v1/webhooks/qtest?token=guess", content=body)
    by_token = hooks.client.post(f"/v1/webhooks/qtest?token={QTEST_SECRET}", content=body)

    assert (forged.status_code, wrong_token.status_code, by_token.status_code) == (401, 401, 202)
    assert hooks.drained()["applied"] == 1


def test_qtest_down_leaves_deliveries_pending_until_it_answers(hooks: Hooks) -> None:
    """While QTest answers 503 the delivery waits with its reason; then it is applied."""
    plan_scoped_train(hooks.ledger, "5.5")
    _, runs = golden_cycle(hooks.qtest, 1)
    log = hooks.qtest.submit_log(runs[0], "Passed")
    hooks.qtest.failure_rate = 1.0  # every answer a 503

    hooks.qtest_log(log)
    deadline = time.monotonic() + DRAIN_SECONDS
    while not (waiting := hooks.inbox(status="pending")["items"])[0]["reason"]:
        assert time.monotonic() < deadline
        time.sleep(0.05)
    hooks.qtest.failure_rate = 0.0

    assert "QTest unavailable" in waiting[0]["reason"]
    assert hooks.drained()["applied"] == 1
    assert hooks.ledger.train("5.5")["qa"]["golden"]["passed"] == 1


def test_a_qtest_release_that_names_no_train_fails_with_its_reason(hooks: Hooks) -> None:
    """Logs of a release called "Backlog" cannot be placed: failed, saying which release."""
    release = hooks.qtest.add_release("Backlog")
    cycle = hooks.qtest.add_cycle("Phase 1", release=release)
    log = hooks.qtest.submit_log(hooks.qtest.add_test_run(cycle), "Passed")

    hooks.qtest_log(log)

    assert hooks.drained()["failed"] == 1
    (item,) = hooks.inbox(status="failed")["items"]
    assert "Backlog" in item["reason"]


def test_mapping_every_delivery_again_records_nothing_twice(hooks: Hooks) -> None:
    """Reprocessing applied Jira and QTest deliveries replays: the log does not grow."""
    two_trains(hooks.ledger)
    _, runs = golden_cycle(hooks.qtest, 3)
    for run in runs:
        hooks.qtest_log(hooks.qtest.submit_log(run, "Passed"))
    hooks.jira(fix_version_move("DEDUP-7", "5.5", "5.6"), "delivery-again")
    hooks.drained()
    before = event_count(hooks.ledger)

    resources = hooks.client.app.state.resources  # type: ignore[attr-defined]
    reopened = resources.inbox.reopen(statuses=("applied",))
    counts = hooks.drained()

    assert reopened == 4
    assert counts["applied"] == 4
    assert event_count(hooks.ledger) == before


def test_one_batch_stores_a_delivery_sent_twice_once(hooks: Hooks) -> None:
    """Two copies of a delivery in one group commit: one row, the second told it is a copy."""
    inbox = hooks.client.app.state.resources.inbox  # type: ignore[attr-defined]
    first, second = (
        Arrival(
            Integration.JIRA, key, "comment_created", {}, b'{"webhookEvent": "comment_created"}'
        )
        for key in ("hook-a", "hook-b")
    )

    stored = inbox.receive([first, second, first])
    again = inbox.receive([second])

    assert [new for _, new in stored] == [True, True, False]
    assert stored[2][0] == stored[0][0] != stored[1][0]
    assert again == [(stored[1][0], False)]


def test_one_process_at_a_time_applies_jira_deliveries(api_url: str) -> None:  # noqa: F811
    """While one holds the Jira turn, another asks in vain; once released, it is free."""
    engine = engine_for(Database.from_url(api_url))
    try:
        with jira_turn(engine) as first, jira_turn(engine) as second:
            assert (first, second) == (True, False)
        with jira_turn(engine) as after:
            assert after
    finally:
        engine.dispose()


def test_jira_deliveries_wait_behind_an_earlier_one_that_waits(api_url: str) -> None:  # noqa: F811
    """While the first delivery waits to retry, in-order taking takes none after it."""
    engine = engine_for(Database.from_url(api_url))
    prepare(engine, Database.from_url(api_url))
    inbox = Inbox(engine)
    try:
        arrivals = [
            Arrival(Integration.JIRA, f"hook-{n}", "jira:issue_updated", {}, b"{}")
            for n in range(3)
        ]
        first, *later = [delivery for delivery, _ in inbox.receive(arrivals)]
        inbox.postpone([first], "a concurrent writer; retrying", timedelta(hours=1))

        in_order = inbox.take_due(Integration.JIRA, 10, in_order=True)
        any_order = inbox.take_due(Integration.JIRA, 10)

        assert in_order == []
        assert [delivery.id for delivery in any_order] == later
    finally:
        engine.dispose()


def test_a_server_without_its_own_worker_only_stores(
    api_url: str,  # noqa: F811
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """With LEDGER_INBOX_WORKER off, deliveries are acknowledged and wait for ``inbox run``."""
    monkeypatch.setattr(integrations.processor.InboxWorker, "POLL_SECONDS", 0.05)
    app = create_app(Settings(database_url=api_url, inbox_worker=False))
    with TestClient(app) as client:
        token = create_token(app.state.resources.engine, "ops-admin", "admin")
        answer = client.post(
            "/v1/webhooks/jira",
            json={"webhookEvent": "comment_created"},
            headers={"X-Atlassian-Webhook-Identifier": "hook-idle"},
        )
        time.sleep(0.3)  # several polls of a worker, had there been one
        counts = client.get("/v1/inbox", headers={"Authorization": f"Bearer {token}"}).json()

    assert answer.status_code == 202
    assert counts["counts"]["pending"] == 1
