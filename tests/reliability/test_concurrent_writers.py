"""Concurrent writers: 32 clients deciding on the same two trains lose and double nothing.

The clients commit, stretch, drop and move the same 32 features between 8.1 and 8.2,
propose new ones and record QA runs, all at once. Most carry an Idempotency-Key; a
quarter carry none. Conflicts are retried inside the ledger or answered 409, never
recorded twice or half.
"""

from __future__ import annotations

import itertools
import random
from typing import Any

import pytest

from tests.api_client import at
from tests.reliability.audit import audit, record_figures
from tests.reliability.load import Tally, Write, keep_writing, scaled
from tests.served import Served

pytestmark = [pytest.mark.e2e, pytest.mark.postgres]

TRAINS = ("8.1", "8.2")
FEATURES = [f"RACE-{n}" for n in range(32)]
CLIENTS = 32
SECONDS = scaled(8)
ANSWERS = {201, 404, 409, 422}
"""Recorded, or refused by the rules (a move of a feature another client just moved)."""
OUT_OF_SCOPE = {"dropped", "moved_out"}


def plan(served: Served) -> None:
    """Both trains planned, each feature proposed on one of them."""
    for train in TRAINS:
        served.write(
            "/v1/trains",
            {"train": train, "kind": "major", "actor": "Ada Planner", "occurred_at": at(30)},
        )
    for n, feature in enumerate(FEATURES):
        served.write(
            f"/v1/trains/{TRAINS[n % 2]}/scope",
            {
                "feature": feature,
                "classification": "committed",
                "actor": "Ada Planner",
                "occurred_at": at(29),
            },
        )


def in_scope(served: Served, train: str) -> set[str]:
    """The features ``train`` holds now: neither dropped nor moved out."""
    scope = served.get(f"/v1/trains/{train}").json()["scope"]
    return {item["feature"] for item in scope if item["status"] not in OUT_OF_SCOPE}


PROPOSALS = itertools.count()


def next_write(rng: random.Random) -> Write:
    """A random decision, proposal or QA run on one of the two trains."""
    train = rng.choice(TRAINS)
    roll = rng.random()
    body: dict[str, Any] = {"actor": rng.choice(["Grace Director", "Ada Planner"])}
    if roll < 0.55:
        action = rng.choice(["commit", "stretch", "drop", "move", "move"])
        body |= {"feature": rng.choice(FEATURES), "action": action}
        if action != "commit":
            body["reason"] = "capacity review"
        if action == "move":
            body["to_train"] = TRAINS[1 - TRAINS.index(train)]
        path = f"/v1/trains/{train}/decisions"
    elif roll < 0.7:
        body |= {"feature": f"NEW-{next(PROPOSALS)}", "classification": "stretch"}
        path = f"/v1/trains/{train}/scope"
    else:
        passed = rng.randint(800, 1000)
        body |= {"cycle": "phase1", "build": "8.x-b1", "total": 1000, "passed": passed}
        body |= {"failed": 1000 - passed, "blocked": 0}
        path = f"/v1/trains/{train}/qa-runs"
    return Write(path, body, keyed=rng.random() < 0.75)


def test_concurrent_conflicting_writers_lose_and_double_nothing(served: Served) -> None:
    """32 clients' conflicting decisions are recorded once or refused, never lost or doubled."""
    plan(served)
    outcomes = keep_writing(served.base_url, served.tokens["writer"], CLIENTS, SECONDS, next_write)
    tally = Tally.of(outcomes)

    assert set(tally.statuses) <= ANSWERS, tally
    assert tally.unresolved == 0, tally
    assert tally.acknowledged >= 100, tally
    report = audit(served.database_url, outcomes)
    scopes = [in_scope(served, train) for train in TRAINS]
    for f in scopes[0] & scopes[1]:
        import json

        print(json.dumps(served.get(f"/v1/features/{f}/journey").json(), indent=1))
        for t in TRAINS:
            print(
                t, [i for i in served.get(f"/v1/trains/{t}").json()["scope"] if i["feature"] == f]
            )
    assert not scopes[0] & scopes[1], f"in the scope of both trains: {scopes[0] & scopes[1]}"
    record_figures("concurrent writers", report, tally, clients=CLIENTS, seconds=SECONDS)
