"""The life of a release train, through a served API alone, over real HTTP on PostgreSQL.

7.1 is planned, scoped, decided, tested and shipped while 7.2 takes one of its features;
every read passes the position of the last write as ``min_position`` to read its own write.
"""

from __future__ import annotations

from typing import Any

import pytest

from tests.api_client import assert_problem, at, plan_scoped_train
from tests.served import Served

pytestmark = [pytest.mark.e2e, pytest.mark.postgres]

TRAIN = "/v1/trains/7.1"
SUCCESSOR = "/v1/trains/7.2"


def scope(train: dict[str, Any]) -> dict[str, tuple[str, str]]:
    """Each feature of a train document with its classification and status."""
    return {e["feature"]: (e["classification"], e["status"]) for e in train["scope"]}


def gate(train: dict[str, Any], number: int) -> dict[str, Any]:
    found: dict[str, Any] = next(g for g in train["gates"] if g["gate"] == number)
    return found


def test_a_train_lives_from_planning_to_support_through_the_api(served: Served) -> None:
    """Plan, gates, scope, decisions, a move, beta, QA, release and support, read back."""
    api = served
    api.write(
        "/v1/trains",
        {
            "train": "7.1",
            "kind": "major",
            "title": "Replication",
            "actor": "Ada",
            "occurred_at": at(90),
        },
    )
    api.write(
        "/v1/trains",
        {
            "train": "7.2",
            "kind": "major",
            "title": "Tiering",
            "actor": "Ada",
            "occurred_at": at(90),
        },
    )
    for number, date in (
        (1, "2026-03-02"),
        (2, "2026-04-06"),
        (3, "2026-05-04"),
        (4, "2026-06-01"),
    ):
        api.write(
            f"{TRAIN}/gates/{number}/schedule",
            {"date": date, "actor": "Ada", "occurred_at": at(89)},
        )
    slip = api.write(
        f"{TRAIN}/gates/2/schedule",
        {
            "date": "2026-04-20",
            "actor": "Ada",
            "reason": "late design review",
            "occurred_at": at(85),
        },
    )
    planned = api.read(TRAIN, slip)
    assert planned["status"] == "planning"
    assert gate(planned, 2)["scheduled_for"] == "2026-04-20"
    assert gate(planned, 2)["original_date"] == "2026-04-06"
    assert gate(planned, 2)["slips"][0]["reason"] == "late design review"

    proposals = [
        ("REPL-1", "anchor", [{"name": "Initech", "weight": 9, "note": "renewal"}]),
        ("CACHE-2", "committed", [{"name": "Globex", "weight": 3}]),
        ("QUOTA-4", "stretch", []),
        ("LEGACY-3", "committed", []),
    ]
    for key, classification, customers in proposals:
        api.write(
            f"{TRAIN}/scope",
            {
                "feature": key,
                "title": f"{key} work",
                "classification": classification,
                "customers": customers,
                "actor": "Ada",
                "occurred_at": at(88),
            },
        )
    gate_1 = api.write(
        f"{TRAIN}/gates/1/decision",
        {
            "outcome": "passed",
            "actor": "Grace",
            "notes": "anchor has a customer",
            "occurred_at": at(80),
        },
    )
    assert api.read(TRAIN, gate_1)["status"] == "scoped"

    decisions = [
        {"feature": "REPL-1", "action": "commit", "actor": "Grace"},
        {"feature": "QUOTA-4", "action": "stretch", "reason": "capacity", "actor": "Grace"},
        {"feature": "LEGACY-3", "action": "drop", "reason": "no customer", "actor": "Hal"},
        {
            "feature": "CACHE-2",
            "action": "move",
            "to_train": "7.2",
            "reason": "QA found a regression",
            "requested_by": "Globex",
            "actor": "Grace",
        },
    ]
    for decision in decisions:
        moved = api.write(f"{TRAIN}/decisions", {**decision, "occurred_at": at(75)})
    decided = api.read(TRAIN, moved)
    assert scope(decided) == {
        "REPL-1": ("anchor", "committed"),
        "CACHE-2": ("committed", "moved_out"),
        "QUOTA-4": ("stretch", "stretched"),
        "LEGACY-3": ("committed", "dropped"),
    }
    moved_out = next(entry for entry in decided["scope"] if entry["feature"] == "CACHE-2")
    assert moved_out["moved_to"] == "7.2"
    assert scope(api.read(SUCCESSOR, moved)) == {"CACHE-2": ("committed", "proposed")}
    cache = api.read("/v1/features/CACHE-2", moved)
    assert (cache["train"], cache["status"]) == ("7.2", "proposed")
    assert cache["customers"] == [{"customer": "Globex", "weight": 3.0, "note": None}]
    journey = api.read("/v1/features/CACHE-2/journey", moved)["items"]
    assert [(step["action"], step["train"]) for step in journey] == [
        ("registered", None),
        ("proposed", "7.1"),
        ("customer_demand", None),
        ("move", "7.2"),
    ]
    move = journey[-1]
    assert move["details"] == {"from_train": "7.1", "to_train": "7.2", "status": "proposed"}
    assert (move["actor"], move["reason"], move["requested_by"]) == (
        "Grace",
        "QA found a regression",
        "Globex",
    )
    assert (move["recorded_by"], move["source"]) == ("e2e-writer", "api")
    assert move["late"] is True  # backfilled: it occurred 75 days before it was recorded
    audit = api.read("/v1/audit", moved, train="7.1", action="move")["items"]
    assert [(entry["feature"], entry["to_train"]) for entry in audit] == [("CACHE-2", "7.2")]

    api.write(
        f"{TRAIN}/gates/2/decision", {"outcome": "passed", "actor": "Grace", "occurred_at": at(70)}
    )
    api.write(
        f"{TRAIN}/beta-drops",
        {
            "build": "7.1-beta1",
            "customers": ["Initech"],
            "features": ["REPL-1"],
            "actor": "Bea",
            "occurred_at": at(65),
        },
    )
    for cycle, passed, days in (("phase1", 19_200, 62), ("phase2", 500, 58)):
        qa = api.write(
            f"{TRAIN}/qa-runs",
            {
                "cycle": cycle,
                "build": "7.1-rc1",
                "total": 20_000,
                "passed": passed,
                "failed": 200,
                "blocked": 50,
                "actor": "Quinn",
                "occurred_at": at(days),
            },
        )
    readiness = api.read(f"{TRAIN}/gates/3/readiness", qa)
    assert readiness["ready"] is True, readiness
    tested = api.read(TRAIN, qa)
    assert set(tested["qa"]["cycles"]) == {"phase1", "phase2"}
    assert tested["qa"]["effective_phase2_rate"] == 98.5
    assert tested["beta_drops"][0]["customers"] == ["Initech"]

    api.write(
        f"{TRAIN}/gates/3/decision", {"outcome": "passed", "actor": "Grace", "occurred_at": at(50)}
    )
    golden = api.post(
        f"{TRAIN}/qa-runs",
        {
            "cycle": "golden",
            "build": "7.1-rc2",
            "total": 500,
            "passed": 495,
            "failed": 5,
            "actor": "Quinn",
            "occurred_at": at(45),
        },
    )
    assert golden.status_code == 201, golden.text
    known_before_release = golden.json()["events"][-1]["recorded_at"]
    released = api.write(
        f"{TRAIN}/gates/4/decision", {"outcome": "passed", "actor": "Grace", "occurred_at": at(40)}
    )
    last = api.write(
        f"{TRAIN}/support",
        {"status": "hotfix_only", "actor": "Grace", "reason": "7.2 is out", "occurred_at": at(10)},
    )

    now = api.read(TRAIN, last)
    assert (now["status"], now["support"]) == ("released", "hotfix_only")
    assert scope(now)["REPL-1"] == ("anchor", "delivered")
    assert gate(now, 4)["outcome"] == "passed"
    evidence = gate(now, 4)["evidence"]
    assert evidence, "a decided gate keeps the readiness it was decided on"
    assert all(criterion["met"] for criterion in evidence)
    assert now["qa"]["cycles"]["golden"]["success_rate"] == 99.0
    # Valid time: before the move, CACHE-2 was still proposed on 7.1 and 7.2 had nothing.
    assert scope(api.read(TRAIN, last, as_of=at(76)))["CACHE-2"] == ("committed", "proposed")
    assert api.read(SUCCESSOR, last, as_of=at(76))["scope"] == []
    assert api.read(TRAIN, last, as_of=at(30))["support"] == "supported"
    assert api.read(TRAIN, last, as_of=at(42))["status"] == "frozen"
    # Transaction time: before gate 4 was recorded, the ledger knew the train as frozen.
    as_known = api.read(TRAIN, last, known_at=known_before_release)
    assert (as_known["status"], as_known["support"]) == ("frozen", None)
    assert [t["train"] for t in api.read("/v1/trains", released, status="released")["items"]] == [
        "7.1"
    ]

    # A released train's scope is closed: refused as a problem, and nothing is recorded.
    head = api.head()
    closed = api.post(
        f"{TRAIN}/scope", {"feature": "LATE-9", "classification": "committed", "actor": "Ada"}
    )
    assert_problem(closed, 409, "rule-violation")
    assert api.head() == head


def test_rule_violations_are_problems_and_record_nothing(served: Served) -> None:
    """Each refused command answers its documented 4xx problem and the log does not move."""
    api = served
    plan_scoped_train(api, "8.1")
    api.write("/v1/trains", {"train": "8.2", "kind": "major", "actor": "Ada"})
    head = api.head()
    oversized = b'{"title": "' + b"x" * (2 * 1024 * 1024) + b'"}'
    json_headers = {**api.auth("writer"), "Content-Type": "application/json"}

    refusals = {
        (404, "not-found"): api.post(
            "/v1/trains/8.9/scope", {"feature": "X-1", "classification": "anchor", "actor": "A"}
        ),
        (409, "rule-violation"): api.post(
            "/v1/trains", {"train": "8.1", "kind": "major", "actor": "A"}
        ),
        (409, None): api.post(
            "/v1/trains/8.1/gates/2/decision", {"outcome": "passed", "actor": "A"}
        ),
        (422, "invalid-command"): api.post(
            "/v1/trains/8.1/decisions", {"feature": "SNAP-3", "action": "drop", "actor": "Hal"}
        ),
        (422, "validation-error"): api.post(
            "/v1/trains/8.1/qa-runs",
            {
                "cycle": "phase1",
                "build": "b",
                "total": "many",
                "passed": 1,
                "failed": 0,
                "actor": "Q",
            },
        ),
        (400, "malformed-json"): api.client.post(
            "/v1/trains", content=b'{"train": "8.3", ', headers=json_headers
        ),
        (413, "body-too-large"): api.client.post(
            "/v1/trains", content=oversized, headers=json_headers
        ),
    }
    taken = api.post(
        "/v1/trains/8.2/scope", {"feature": "DEDUP-7", "classification": "anchor", "actor": "A"}
    )
    too_early = api.post(
        "/v1/trains/8.1/beta-drops",
        {"build": "b1", "customers": ["Globex"], "features": ["DEDUP-7"], "actor": "Bea"},
    )

    for (status, kind), response in refusals.items():
        assert_problem(response, status, kind)
    assert_problem(taken, 409)
    assert_problem(too_early, 409)
    assert api.head() == head
