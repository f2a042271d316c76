"""Process crash: ``ledger serve`` is SIGKILLed mid-load and mid-webhook-burst, then
started again on the same database and port.

Writers keep their Idempotency-Keys and resend until they hear a final answer; QTest and
Jira resend every delivery they saw no 202 for. Afterwards nothing acknowledged is lost,
nothing is recorded twice, the inbox drains, and the golden cycle's totals are QTest's.
"""

from __future__ import annotations

import json
import random
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass

import pytest

from tests.fakes.qtest import FakeQTest
from tests.integration.test_webhooks import fix_version_move
from tests.reliability.audit import audit, record_figures
from tests.reliability.load import Outcome, Tally, Write, keep_writing, scaled
from tests.reliability.webhooks import DRAIN_SECONDS, Delivery, Sent, plan_moves, send_all
from tests.served import Served, serving_with_qtest

pytestmark = [pytest.mark.e2e, pytest.mark.postgres]

WRITERS = 8
SENDERS = 8
LOGS = int(scaled(1500))
FEATURES = int(scaled(60))
KILL_AFTER_SECONDS = 3.0
DOWN_SECONDS = 2.0
LOAD_SECONDS = KILL_AFTER_SECONDS + DOWN_SECONDS + 6.0
SEED = 20261127


@dataclass
class Arena:
    served: Served
    qtest: FakeQTest


@pytest.fixture(scope="module")
def arena(
    request: pytest.FixtureRequest,
    postgres_server: str,
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[Arena]:
    """``ledger serve`` wired to a fake QTest, with 7.1 (its features proposed) and 7.2."""
    with serving_with_qtest(request, postgres_server, tmp_path_factory) as (served, qtest):
        plan_moves(served, "7.1", "7.2", [f"CRASH-{n}" for n in range(FEATURES)])
        yield Arena(served, qtest)


def golden_logs(qtest: FakeQTest, rng: random.Random) -> tuple[int, list[int]]:
    """A "Golden" cycle of 7.1, each run executed once and a few retested."""
    cycle = qtest.add_cycle("Golden", release=qtest.add_release("Release 7.1"))
    runs = [qtest.add_test_run(cycle) for _ in range(LOGS)]
    logs = [qtest.submit_log(run, rng.choice(["Passed", "Passed", "Failed"])) for run in runs]
    logs += [qtest.submit_log(run, "Passed") for run in rng.sample(runs, LOGS // 20)]
    return cycle, logs


def qa_run(rng: random.Random) -> Write:
    passed = rng.randint(90, 100)
    body = {"cycle": "phase1", "build": "7.1-b2", "total": 100, "passed": passed}
    return Write("/v1/trains/7.2/qa-runs", body | {"failed": 100 - passed, "actor": "Quinn QA"})


def test_a_server_killed_mid_load_loses_and_doubles_nothing(arena: Arena) -> None:
    """After a SIGKILL and a restart, every acknowledged write and delivery is there once,
    the inbox drains, and the golden totals equal QTest's."""
    served, rng = arena.served, random.Random(SEED)
    cycle, logs = golden_logs(arena.qtest, rng)
    moves = [
        Delivery(
            "jira",
            json.dumps(fix_version_move(f"CRASH-{n}", "7.1", "7.2", changelog=str(n))).encode(),
        )
        for n in range(FEATURES)
    ]
    deliveries = [Delivery("qtest", arena.qtest.webhook_body(log)) for log in logs] + moves
    rng.shuffle(deliveries)

    outcomes: list[Outcome] = []
    sent: list[Sent] = []
    loads = [
        threading.Thread(
            target=lambda: outcomes.extend(
                keep_writing(
                    served.base_url, served.tokens["writer"], WRITERS, LOAD_SECONDS, qa_run
                )
            )
        ),
        threading.Thread(target=lambda: sent.extend(send_all(served, deliveries, SENDERS))),
    ]
    for load in loads:
        load.start()
    time.sleep(KILL_AFTER_SECONDS)
    served.server.kill()
    killed = time.monotonic()
    time.sleep(DOWN_SECONDS)
    served.server.start()
    restarted = time.monotonic()
    for load in loads:
        load.join(timeout=300)
        assert not load.is_alive(), "a load did not finish"
    counts = served.drained_inbox(DRAIN_SECONDS)
    drained_after = time.monotonic() - restarted

    tally = Tally.of(outcomes)
    assert (tally.unresolved, tally.refused) == (0, 0), tally
    assert 0 in tally.statuses, f"no write was cut off by the kill: {tally}"
    assert all(s.acknowledged for s in sent), [s.answers for s in sent if not s.acknowledged]
    assert counts == {"pending": 0, "applied": len(deliveries), "ignored": 0, "failed": 0}
    assert served.qa_totals("7.1", "golden") == arena.qtest.cycle_totals(cycle)
    assert moved_features(served) == {f"CRASH-{n}" for n in range(FEATURES)}
    report = audit(served.database_url, outcomes)
    record_figures(
        "process crash",
        report,
        tally,
        deliveries=len(deliveries),
        deliveries_resent=sum(len(s.answers) > 1 for s in sent),
        down_seconds=round(restarted - killed, 1),
        inbox_drained_after_restart_seconds=round(drained_after, 1),
    )


def moved_features(served: Served) -> set[str]:
    scope = served.get("/v1/trains/7.2").json()["scope"]
    return {item["feature"] for item in scope if item["status"] != "moved_out"}
