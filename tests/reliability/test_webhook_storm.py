"""Webhook storm: every Jira and QTest delivery sent three times, concurrently and out of
order, as senders do when their acknowledgements are slow.

Each distinct delivery is stored once and applied once: every feature moved once, the
golden cycle's totals exactly QTest's, the other two copies answered as duplicates.
"""

from __future__ import annotations

import json
import random
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass

import pytest

from tests.fakes.qtest import FakeQTest
from tests.integration.test_webhooks import fix_version_move
from tests.reliability.audit import audit, record_figures
from tests.reliability.load import scaled
from tests.reliability.webhooks import DRAIN_SECONDS, Delivery, plan_moves, send_all
from tests.served import Served, serving_with_qtest

pytestmark = [pytest.mark.e2e, pytest.mark.postgres]

COPIES = 3
SENDERS = 16
LOGS = int(scaled(1000))
FEATURES = int(scaled(100))
SEED = 3


@dataclass
class Storm:
    served: Served
    qtest: FakeQTest


@pytest.fixture(scope="module")
def storm(
    request: pytest.FixtureRequest,
    postgres_server: str,
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[Storm]:
    """``ledger serve`` wired to a fake QTest, with 6.1 (its features proposed) and 6.2."""
    with serving_with_qtest(request, postgres_server, tmp_path_factory) as (served, qtest):
        plan_moves(served, "6.1", "6.2", [f"STORM-{n}" for n in range(FEATURES)])
        yield Storm(served, qtest)


def test_every_delivery_sent_three_times_is_applied_once(storm: Storm) -> None:
    """Three concurrent, shuffled copies of each delivery: one stored and applied, two
    answered as duplicates; features moved once, golden totals exact."""
    rng = random.Random(SEED)
    qtest = storm.qtest
    cycle = qtest.add_cycle("Golden", release=qtest.add_release("Release 6.1"))
    runs = [qtest.add_test_run(cycle) for _ in range(LOGS)]
    logs = [qtest.submit_log(run, rng.choice(["Passed", "Failed", "Blocked"])) for run in runs]
    logs += [qtest.submit_log(run, "Passed") for run in rng.sample(runs, LOGS // 10)]
    distinct = [Delivery("qtest", qtest.webhook_body(log)) for log in logs] + [
        Delivery("jira", json.dumps(fix_version_move(f"STORM-{n}", "6.1", "6.2")).encode())
        for n in range(FEATURES)
    ]
    # Half the copies go out side by side (in flight together), the rest anywhere.
    copies = [delivery for delivery in distinct for _ in range(COPIES)]
    side_by_side = len(copies) // 2
    scattered = copies[side_by_side:]
    rng.shuffle(scattered)
    sent = send_all(storm.served, copies[:side_by_side] + scattered, SENDERS)
    counts = storm.served.drained_inbox(DRAIN_SECONDS)

    answers = Counter(s.answers[-1] for s in sent)
    stored = Counter(s.delivery for s in sent if not s.duplicate)
    assert answers == {202: len(copies)}
    assert set(stored.values()) == {1}
    assert len(stored) == len(distinct)
    assert counts == {"pending": 0, "applied": len(distinct), "ignored": 0, "failed": 0}
    assert storm.served.qa_totals("6.1", "golden") == qtest.cycle_totals(cycle)
    assert moves_recorded(storm.served) == {f"STORM-{n}": 1 for n in range(FEATURES)}
    report = audit(storm.served.database_url, [])
    record_figures(
        "webhook storm",
        report,
        deliveries_sent=len(copies),
        distinct=len(distinct),
        duplicates_answered=sum(s.duplicate for s in sent),
    )


def moves_recorded(served: Served) -> Counter[str]:
    """How many moves between trains each feature's stream holds."""
    moves: Counter[str] = Counter()
    for n in range(FEATURES):
        journey = served.get(f"/v1/features/STORM-{n}/journey").json()["items"]
        moves[f"STORM-{n}"] = sum(item["event_type"] == "MovedBetweenTrains" for item in journey)
    return moves
