"""A golden run's burst of QTest deliveries against ``ledger serve`` on PostgreSQL.

21,000 test logs of a golden cycle (20,000 test runs, 1,000 of them retested) arrive as
webhooks from 16 senders at once, shuffled, some sent twice at once and some retried
later. Afterwards the inbox holds each delivery once, nothing is pending or failed, and
the ledger's golden QA run equals what the fake QTest says, exactly. ``LEDGER_BURST_LOGS``
makes the burst smaller for a quick local run.
"""

from __future__ import annotations

import os
import random
import time
from collections import Counter
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

import pytest

from integrations.signatures import signature
from ledger.application import ReleaseLedger
from ledger.config import Settings
from tests.conftest import at
from tests.fakes.qtest import FakeQTest
from tests.served import WEBHOOK_SECRETS, Served, serving_with_qtest

pytestmark = [pytest.mark.e2e, pytest.mark.postgres]

LOGS = int(os.environ.get("LEDGER_BURST_LOGS", "21000"))
RETESTS = LOGS // 21
SENDERS = 16
DUPLICATES = LOGS // 20
"""Deliveries sent twice at once, as a sender whose acknowledgement was lost would."""
RETRIED = LOGS // 40
"""Deliveries sent again after the burst, as QTest retries a delivery it thinks failed."""
DRAIN_SECONDS = 600.0
SEED = 20261126


@dataclass
class Burst:
    """The served ledger and the fake QTest it enriches from."""

    served: Served
    qtest: FakeQTest


@pytest.fixture(scope="module")
def burst(
    request: pytest.FixtureRequest,
    postgres_server: str,
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[Burst]:
    """``ledger serve`` on a new database with 5.5 planned, wired to a fake QTest."""
    with serving_with_qtest(request, postgres_server, tmp_path_factory) as (served, qtest):
        ledger = ReleaseLedger.from_settings(Settings(database_url=served.database_url))
        try:
            ledger.plan_train("5.5", "major", "Ada Planner", context=at(90))
        finally:
            ledger.close()
        yield Burst(served, qtest)


def golden_run(qtest: FakeQTest, rng: random.Random) -> tuple[int, list[int]]:
    """A "Golden" cycle of 5.5 executed once per run and partly retested: its test logs."""
    release = qtest.add_release("Release 5.5")
    cycle = qtest.add_cycle("Golden", release=release)
    runs = [qtest.add_test_run(cycle) for _ in range(LOGS - RETESTS)]
    first = rng.choices(["Passed", "Failed", "Blocked", "Incomplete"], [96, 2, 1, 1], k=len(runs))
    logs = [
        qtest.submit_log(run, status, build="5.5.0-rc7")
        for run, status in zip(runs, first, strict=True)
    ]
    for run in rng.sample(runs, RETESTS):
        logs.append(qtest.submit_log(run, rng.choice(["Passed", "Failed"]), build="5.5.0-rc8"))
    return cycle, logs


def test_a_golden_burst_is_absorbed_and_counted_exactly(burst: Burst) -> None:
    """Every delivery acknowledged, stored once, applied; the golden totals equal QTest's."""
    rng = random.Random(SEED)
    cycle, logs = golden_run(burst.qtest, rng)
    secret = WEBHOOK_SECRETS["LEDGER_QTEST_WEBHOOK_SECRET"]
    bodies = {log: burst.qtest.webhook_body(log) for log in logs}
    burst_order = logs + rng.sample(logs, DUPLICATES)
    rng.shuffle(burst_order)  # out of order: a retest may arrive before its first run

    def send(log: int) -> tuple[int, bool]:
        body = bodies[log]
        response = burst.served.client.post(
            "/v1/webhooks/qtest",
            content=body,
            headers={"x-qtest-signature": signature(secret, body)},
        )
        duplicate = response.status_code == 202 and response.json()["duplicate"]
        return response.status_code, duplicate

    started = time.monotonic()
    with ThreadPoolExecutor(SENDERS) as senders:
        answers = list(senders.map(send, burst_order))
        accepted_in = time.monotonic() - started
        answers += list(senders.map(send, rng.sample(logs, RETRIED)))
    counts = burst.served.drained_inbox(DRAIN_SECONDS)
    drained_in = time.monotonic() - started

    statuses = Counter(status for status, _ in answers)
    assert statuses == {202: len(burst_order) + RETRIED}
    assert sum(not duplicate for _, duplicate in answers) == len(logs)
    assert counts == {"pending": 0, "applied": len(logs), "ignored": 0, "failed": 0}
    truth = burst.qtest.cycle_totals(cycle)
    golden = burst.served.qa_totals("5.5", "golden")
    print(
        f"{len(answers):,} deliveries ({len(logs):,} distinct) accepted in {accepted_in:.1f} s "
        f"({len(burst_order) / accepted_in:,.0f}/s); inbox drained after {drained_in:.1f} s; "
        f"golden {golden}"
    )
    assert golden == truth
