"""The busiest requests answered before FastAPI routes them, and everything else passed on.

``Shortcuts`` is put in front of a stand-in for the routes that records what reaches it,
with a real app (PostgreSQL, its watch listening) behind the scope, so each test can tell
which requests the shortcuts answered and which they handed on, and with what body.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field

import httpx
import orjson
import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient
from starlette.responses import Response
from starlette.types import Receive, Scope, Send

from api.main import create_app
from api.shortcuts import TRAIN_COMMANDS, Shortcuts
from api.tokens import create_token
from integrations.signatures import signature
from ledger.config import Database, Settings
from projections.schema import engine_for, upgrade
from tests.api_client import at
from tests.integration.test_change_watch import eventually

pytestmark = pytest.mark.postgres

JIRA_SECRET = "jira-webhook-secret"
QTEST_SECRET = "qtest-webhook-secret"
PASSED_ON = 418
QA_RUN = {
    "cycle": "phase1",
    "build": "5.5.0-b1",
    "total": 21000,
    "passed": 19950,
    "failed": 900,
    "blocked": 150,
    "actor": "Quinn Tester",
}
MOVE = {
    "timestamp": 1764151200000,
    "webhookEvent": "jira:issue_updated",
    "user": {"displayName": "Maria Lopez"},
    "issue": {"key": "OBJ-603", "fields": {"summary": "Object lock"}},
}


@dataclass
class RouteStandIn:
    """Where the shortcuts hand a request on: it records the path and body, answers 418."""

    reached: list[tuple[str, bytes]] = field(default_factory=list)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        body = b""
        while True:
            message = await receive()
            body += message.get("body", b"")
            if not message.get("more_body", False):
                break
        self.reached.append((scope["path"], body))
        await Response(status_code=PASSED_ON)(scope, receive, send)


@dataclass
class Front:
    """The real app (for the routes' own answers) and the shortcuts before a stand-in."""

    app: TestClient
    shortcuts: TestClient
    routes: RouteStandIn
    tokens: dict[str, str]

    def bearer(self, role: str) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.tokens[role]}"}


def shortcuts_before(app: FastAPI, routes: RouteStandIn) -> TestClient:
    shortcuts = Shortcuts(routes)

    async def in_front(scope: Scope, receive: Receive, send: Send) -> None:
        scope["app"] = app  # what Starlette puts in the scope, resources and all
        await shortcuts(scope, receive, send)

    return TestClient(in_front)


@pytest.fixture
def front(postgres_url: str) -> Iterator[Front]:
    engine = engine_for(Database.from_url(postgres_url))
    upgrade(engine)
    engine.dispose()
    settings = Settings(
        database_url=postgres_url,
        jira_webhook_secret=JIRA_SECRET,
        qtest_webhook_secret=QTEST_SECRET,
        inbox_worker=False,
    )
    app = create_app(settings)
    with TestClient(app) as client:
        resources = app.state.resources
        eventually(lambda: resources.watch.listening)
        tokens = {
            role: create_token(resources.engine, f"{role}-token", role)
            for role in ("reader", "writer", "admin")
        }
        routes = RouteStandIn()
        yield Front(client, shortcuts_before(app, routes), routes, tokens)


def planned_and_read(front: Front, train: str) -> bytes:
    """Plan ``train`` and read it through the app until its token and document are held."""
    admin = front.bearer("admin")
    planned = front.app.post(
        "/v1/trains",
        json={"train": train, "kind": "major", "actor": "Ada Planner", "occurred_at": at(3)},
        headers=admin,
    )
    assert planned.status_code == 201, planned.text
    position = max(event["position"] for event in planned.json()["events"])
    watch = front.app.app.state.resources.watch
    eventually(lambda: watch.states.get("trains", (0, 0))[1] >= position)
    for role in ("reader", "writer", "admin"):
        read = front.app.get(f"/v1/trains/{train}", headers=front.bearer(role))
        assert read.status_code == 200, read.text
    return read.content


def signed_jira(
    front: Front, delivery: str, *, secret: str = JIRA_SECRET, query: str = ""
) -> httpx.Response:
    body = orjson.dumps(MOVE)
    headers = {
        "Content-Type": "application/json",
        "X-Atlassian-Webhook-Identifier": delivery,
        "X-Hub-Signature": f"sha256={signature(secret, body)}",
    }
    return front.shortcuts.post(f"/v1/webhooks/jira{query}", content=body, headers=headers)


def test_a_remembered_train_read_is_answered_before_the_routes(front: Front) -> None:
    """A held document for a remembered reader is sent as the route sends it, routes unasked."""
    from_the_route = planned_and_read(front, "5.5")

    answered = front.shortcuts.get("/v1/trains/5.5", headers=front.bearer("reader"))
    waited = front.shortcuts.get("/v1/trains/5.5?min_position=1", headers=front.bearer("reader"))

    assert answered.status_code == waited.status_code == 200
    assert answered.content == waited.content == from_the_route
    assert answered.headers["content-type"] == "application/json"
    assert front.routes.reached == []


@pytest.mark.parametrize(
    ("path", "authorization"),
    [
        ("/v1/trains/5.5", None),
        ("/v1/trains/5.5", "Bearer not-a-token-anyone-made"),
        ("/v1/trains/5.5", "Basic cmVhZGVyOnNlY3JldA=="),
        ("/v1/trains/5.5?as_of=2026-01-01T00:00:00Z", "reader"),
        ("/v1/trains/5.5?min_position=999999999", "reader"),
        ("/v1/trains/5.5?min_position=-1", "reader"),
        ("/v1/trains/4.4", "reader"),
        ("/v1/trains/5.5/gates/1/readiness", "reader"),
    ],
)
def test_a_read_the_shortcuts_cannot_decide_goes_to_the_routes(
    front: Front, path: str, authorization: str | None
) -> None:
    """No token, an unknown one, another scheme, a time point, a position not yet reached,
    a train not held or another resource: the routes answer."""
    planned_and_read(front, "5.5")
    headers = {}
    if authorization is not None:
        headers["Authorization"] = (
            front.bearer(authorization)["Authorization"]
            if authorization in front.tokens
            else authorization
        )

    answer = front.shortcuts.get(path, headers=headers)

    assert answer.status_code == PASSED_ON
    assert [reached for reached, _ in front.routes.reached] == [path.partition("?")[0]]


def test_a_verified_delivery_is_stored_and_acknowledged_before_the_routes(front: Front) -> None:
    """A signed Jira delivery gets the route's receipt; its retry is the same delivery."""
    first = signed_jira(front, "delivery-1")
    retry = signed_jira(front, "delivery-1")

    assert first.status_code == retry.status_code == 202
    receipt, again = first.json(), retry.json()
    assert set(receipt) == {"delivery", "delivery_key", "duplicate"}
    assert receipt["delivery_key"] == "delivery-1"
    assert receipt["duplicate"] is False
    assert again == {**receipt, "duplicate": True}
    assert front.routes.reached == []
    inbox = front.app.get("/v1/inbox", headers=front.bearer("admin")).json()
    assert [item["delivery_key"] for item in inbox["items"]] == ["delivery-1"]


def test_a_delivery_that_does_not_verify_reaches_the_routes_with_its_body(front: Front) -> None:
    """A wrong signature, a body that is not JSON or a QTest query it does not read is the
    routes' to refuse, body intact, and nothing is stored."""
    forged = signed_jira(front, "forged-1", secret="guessed")
    not_json = front.shortcuts.post(
        "/v1/webhooks/jira",
        content=b"{not json",
        headers={"X-Hub-Signature": f"sha256={signature(JIRA_SECRET, b'{not json')}"},
    )
    body = b'{"event_type": "testlog_submitted"}'
    odd_query = front.shortcuts.post(
        "/v1/webhooks/qtest?token=a&token=b",
        content=body,
        headers={"x-qtest-signature": signature(QTEST_SECRET, body)},
    )

    assert forged.status_code == not_json.status_code == odd_query.status_code == PASSED_ON
    assert front.routes.reached == [
        ("/v1/webhooks/jira", orjson.dumps(MOVE)),
        ("/v1/webhooks/jira", b"{not json"),
        ("/v1/webhooks/qtest", body),
    ]
    inbox = front.app.get("/v1/inbox", headers=front.bearer("admin")).json()
    assert inbox["items"] == []


def test_a_jira_delivery_with_a_query_is_still_taken(front: Front) -> None:
    """Jira admins add their own query parameters to a webhook URL; the route ignores them."""
    answer = signed_jira(front, "delivery-2", query="?user_id=5b10a2844c20165700ede21g")

    assert answer.status_code == 202
    assert front.routes.reached == []


def test_a_plain_command_by_a_remembered_writer_runs_before_the_routes(front: Front) -> None:
    """A QA run with a remembered writer's token is recorded and answered in the route's
    shape, status and headers, the routes unasked."""
    planned_and_read(front, "5.5")
    writer = {**front.bearer("writer"), "Content-Type": "application/json"}
    by_route = front.app.post("/v1/trains/5.5/qa-runs", json=QA_RUN, headers=writer)
    ledger = front.app.app.state.resources.ledger
    recorded = ledger.event_log.last_position()

    second_build = {**QA_RUN, "build": "5.5.0-b2"}
    shortcut = front.shortcuts.post("/v1/trains/5.5/qa-runs", json=second_build, headers=writer)

    assert by_route.status_code == shortcut.status_code == 201, shortcut.text
    assert front.routes.reached == []
    assert shortcut.headers["content-type"] == by_route.headers["content-type"]
    route_answer, answer = by_route.json(), shortcut.json()
    assert set(answer) == set(route_answer)
    assert set(answer["state"]) == set(route_answer["state"])
    (event,) = answer["events"]
    assert event["type"] == route_answer["events"][0]["type"] == "QARunRecorded"
    assert event["position"] > recorded
    assert ledger.event_log.last_position() == event["position"]
    (stored,) = list(ledger.event_log.read(recorded))
    assert b"5.5.0-b2" in stored.state
    assert b"writer-token" in stored.state  # recorded_by: the token's name


def test_a_refused_command_gets_the_apps_problem_and_records_nothing(front: Front) -> None:
    """A QA run for a train never planned is refused by the ledger; the shortcut answers
    with the problem the app's handler gives for it."""
    planned_and_read(front, "5.5")
    writer = front.bearer("writer")
    ledger = front.app.app.state.resources.ledger
    recorded = ledger.event_log.last_position()

    by_route = front.app.post("/v1/trains/9.9/qa-runs", json=QA_RUN, headers=writer)
    shortcut = front.shortcuts.post("/v1/trains/9.9/qa-runs", json=QA_RUN, headers=writer)

    assert shortcut.status_code == by_route.status_code == 404
    assert shortcut.headers["content-type"] == "application/problem+json"
    assert shortcut.json() == by_route.json()
    assert front.routes.reached == []
    assert ledger.event_log.last_position() == recorded


@pytest.mark.parametrize(
    ("path", "headers", "body"),
    [
        ("/v1/trains/5.5/qa-runs", {"Idempotency-Key": "qa-b1"}, orjson.dumps(QA_RUN)),
        ("/v1/trains/5.5/qa-runs", {"X-Correlation-Id": "release-5.5"}, orjson.dumps(QA_RUN)),
        ("/v1/trains/5.5/qa-runs?dry_run=1", {}, orjson.dumps(QA_RUN)),
        ("/v1/trains/5.5/qa-runs", {"Content-Type": "text/plain"}, orjson.dumps(QA_RUN)),
        ("/v1/trains/5.5/qa-runs", {}, b'{"cycle": "phase1"'),
        ("/v1/trains/5.5/qa-runs", {}, orjson.dumps({**QA_RUN, "total": -1})),
        ("/v1/trains/5.5/qa-runs", {"Authorization": "reader"}, orjson.dumps(QA_RUN)),
        ("/v1/trains/5.5/qa-runs", {"Authorization": "Bearer unknown"}, orjson.dumps(QA_RUN)),
        ("/v1/trains/5.5/qa-runs", {"Authorization": ""}, orjson.dumps(QA_RUN)),
        ("/v1/trains/5..5/qa-runs", {}, orjson.dumps(QA_RUN)),
        ("/v1/trains/5.5/gates/1/decision", {}, orjson.dumps(QA_RUN)),
    ],
)
def test_a_command_the_shortcuts_cannot_decide_goes_to_the_routes_with_its_body(
    front: Front, path: str, headers: dict[str, str], body: bytes
) -> None:
    """An idempotency key, a correlation id, a query, a body that is not JSON or not the
    route's model, a reader's, unknown or missing token, an odd train id or another
    route: the routes get it, body intact, and nothing is recorded."""
    planned_and_read(front, "5.5")
    sent = {"Content-Type": "application/json", **front.bearer("writer"), **headers}
    if sent["Authorization"] == "reader":
        sent["Authorization"] = front.bearer("reader")["Authorization"]
    elif not sent["Authorization"]:
        del sent["Authorization"]
    ledger = front.app.app.state.resources.ledger
    recorded = ledger.event_log.last_position()

    answer = front.shortcuts.post(path, content=body, headers=sent)

    assert answer.status_code == PASSED_ON
    assert front.routes.reached == [(path.partition("?")[0], body)]
    assert ledger.event_log.last_position() == recorded


def test_the_train_commands_taken_are_those_with_just_a_train_a_body_and_a_writer() -> None:
    """Planning (it sets a Location) and gate routes (a gate number) stay with FastAPI."""
    assert set(TRAIN_COMMANDS) == {"/scope", "/decisions", "/beta-drops", "/qa-runs", "/support"}
    assert {command.status for command in TRAIN_COMMANDS.values()} == {201}


def test_a_command_whose_first_content_type_is_not_json_goes_to_the_routes(front: Front) -> None:
    """The route reads the first Content-Type; so does the shortcut, and passes this on."""
    planned_and_read(front, "5.5")
    body = orjson.dumps(QA_RUN)
    headers = [
        ("authorization", front.bearer("writer")["Authorization"]),
        ("content-type", "text/plain"),
        ("content-type", "application/json"),
    ]

    answer = front.shortcuts.post("/v1/trains/5.5/qa-runs", content=body, headers=headers)

    assert answer.status_code == PASSED_ON
    assert front.routes.reached == [("/v1/trains/5.5/qa-runs", body)]
