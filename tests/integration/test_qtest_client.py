"""The QTest client against a fake QTest on loopback: enrichment, the tree, caching, failures."""

from __future__ import annotations

import time
from collections import Counter
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime

import pytest

from integrations.qtest import (
    QTestClient,
    QTestNotFound,
    QTestUnauthorized,
    QTestUnavailable,
    parse_delivery,
)
from tests.fakes.qtest import FakeQTest

PI_DAY = datetime(2025, 3, 14, 9, 26, 53, tzinfo=UTC)


@pytest.fixture
def qtest() -> Iterator[FakeQTest]:
    with FakeQTest() as fake:
        yield fake


@pytest.fixture
def client(qtest: FakeQTest) -> Iterator[QTestClient]:
    with QTestClient(qtest.base_url, qtest.token, timeout=2.0, attempts=3, backoff=0.01) as client:
        yield client


def test_a_passed_run_is_enriched_with_its_cycle_release_and_build(
    qtest: FakeQTest, client: QTestClient
) -> None:
    """The webhook's ids become the status, build, time, cycle and release QTest knows."""
    release = qtest.add_release("Release 5.5")
    phase1 = qtest.add_cycle("Phase 1", release=release)
    run = qtest.add_test_run(phase1, name="S3 multipart upload")
    log_id = qtest.submit_log(run, "Passed", build="5.5.0-1021", executed_at=PI_DAY)
    told = parse_delivery(qtest.webhook_body(log_id))

    result = client.test_run_result(told.project_id, told.test_run_id)

    assert told.test_log_id == log_id
    assert (result.project_id, result.test_run_id, result.test_log_id) == (
        qtest.project_id,
        run,
        log_id,
    )
    assert (result.status, result.status_name) == ("passed", "Passed")
    assert result.build == "5.5.0-1021"
    assert result.executed_at == PI_DAY
    assert (result.cycle_id, result.cycle_name, result.cycle_names) == (
        phase1,
        "Phase 1",
        ("Phase 1",),
    )
    assert (result.release_id, result.release_name) == (release, "Release 5.5")


@pytest.mark.parametrize(
    ("status_name", "status"),
    [("Failed", "failed"), ("Blocked", "blocked"), ("Incomplete", "other")],
)
def test_failed_blocked_and_other_runs_keep_qtests_status_name(
    qtest: FakeQTest, client: QTestClient, status_name: str, status: str
) -> None:
    """The normalized status goes with QTest's own name for it."""
    run = qtest.add_test_run(qtest.add_cycle("Phase 2", release=qtest.add_release("5.4.1")))
    qtest.submit_log(run, status_name)

    result = client.test_run_result(qtest.project_id, run)

    assert (result.status, result.status_name) == (status, status_name)
    assert result.build is None


def test_the_latest_log_wins_over_the_one_the_webhook_named(
    qtest: FakeQTest, client: QTestClient
) -> None:
    """A late delivery of an old log still reads the run as it is now."""
    run = qtest.add_test_run(qtest.add_cycle("Phase 1", release=qtest.add_release("5.5")))
    first = qtest.submit_log(run, "Failed", build="5.5.0-1000")
    latest = qtest.submit_log(run, "Passed", build="5.5.0-1001")

    result = client.test_run_result(
        qtest.project_id, parse_delivery(qtest.webhook_body(first)).test_run_id
    )

    assert (result.test_log_id, result.status, result.build) == (latest, "passed", "5.5.0-1001")


def test_nested_cycles_and_suites_are_walked_up_to_the_release(
    qtest: FakeQTest, client: QTestClient
) -> None:
    """Release > Golden run > Objects > suite > run: the innermost cycle and every one above."""
    release = qtest.add_release("Objects 5.6 GA")
    golden = qtest.add_cycle("Golden run", release=release)
    objects = qtest.add_cycle("Objects", parent=golden)
    suite = qtest.add_suite("S3 API", objects)
    run = qtest.add_test_run(suite=suite)
    qtest.submit_log(run, "Passed")

    result = client.test_run_result(qtest.project_id, run)

    assert (result.cycle_id, result.cycle_name) == (objects, "Objects")
    assert result.cycle_names == ("Objects", "Golden run")
    assert (result.release_id, result.release_name) == (release, "Objects 5.6 GA")


def test_cycles_under_the_root_have_no_release_unless_they_target_one(
    qtest: FakeQTest, client: QTestClient
) -> None:
    """A root cycle is under no release; its Target Release, when set, is its release."""
    release = qtest.add_release("Release 5.5")
    loose = qtest.add_test_run(qtest.add_cycle("Phase 1"))
    targeted = qtest.add_test_run(qtest.add_cycle("Golden", target_release=release))
    qtest.submit_log(loose, "Passed")
    qtest.submit_log(targeted, "Passed")

    assert client.test_run_result(qtest.project_id, loose).release_id is None
    assert client.test_run_result(qtest.project_id, targeted).release_name == "Release 5.5"


def test_cycles_and_releases_are_asked_once_and_runs_every_time(
    qtest: FakeQTest, client: QTestClient
) -> None:
    """The tree is cached; each result still reads its run and its latest log."""
    phase1 = qtest.add_cycle(
        "Storage", parent=qtest.add_cycle("Phase 1", release=qtest.add_release("5.5"))
    )
    runs = [qtest.add_test_run(phase1) for _ in range(5)]
    for run in runs:
        qtest.submit_log(run, "Passed")

    for run in runs:
        client.test_run_result(qtest.project_id, run)

    assert qtest.requests == Counter({"test-run": 5, "last-run": 5, "test-cycle": 2, "release": 1})


def test_a_zero_time_to_live_asks_for_the_tree_again(qtest: FakeQTest) -> None:
    """Renamed or moved cycles are seen once the cache entry expires."""
    run = qtest.add_test_run(qtest.add_cycle("Phase 1", release=qtest.add_release("5.5")))
    qtest.submit_log(run, "Passed")

    with QTestClient(qtest.base_url, qtest.token, cache_ttl=0) as client:
        client.test_run_result(qtest.project_id, run)
        client.test_run_result(qtest.project_id, run)

    assert qtest.requests["test-cycle"] == 2
    assert qtest.requests["release"] == 2


def test_two_failures_are_retried_away(qtest: FakeQTest, client: QTestClient) -> None:
    """503 twice, then the answer: the caller never sees the blip."""
    run = qtest.add_test_run(qtest.add_cycle("Phase 1", release=qtest.add_release("5.5")))
    qtest.submit_log(run, "Blocked")
    qtest.fail_next(2, status=503)

    result = client.test_run_result(qtest.project_id, run)

    assert result.status == "blocked"
    assert qtest.requests["test-run"] == 3


def test_rate_limiting_waits_as_long_as_retry_after_says_but_no_longer_than_the_cap(
    qtest: FakeQTest,
) -> None:
    """429 with Retry-After: 0 is retried at once; an hour is cut to the configured cap."""
    run = qtest.add_test_run(qtest.add_cycle("Phase 1", release=qtest.add_release("5.5")))
    qtest.submit_log(run, "Passed")
    qtest.fail_next(1, status=429, retry_after="0")
    qtest.fail_next(1, status=429, retry_after="3600")

    started = time.monotonic()
    with QTestClient(
        qtest.base_url, qtest.token, attempts=3, backoff=30.0, max_retry_after=0.05
    ) as client:
        result = client.test_run_result(qtest.project_id, run)

    assert result.status == "passed"
    assert time.monotonic() - started < 2.0


def test_qtest_failing_on_every_attempt_is_unavailable(
    qtest: FakeQTest, client: QTestClient
) -> None:
    """After ``attempts`` requests the caller gets a transient error naming the last failure."""
    run = qtest.add_test_run(qtest.add_cycle("Phase 1", release=qtest.add_release("5.5")))
    qtest.fail_next(10, status=502)

    with pytest.raises(QTestUnavailable, match=r"failed 3 times, last: HTTP 502"):
        client.test_run_result(qtest.project_id, run)

    assert qtest.request_count == 3


def test_a_qtest_slower_than_the_timeout_is_unavailable(qtest: FakeQTest) -> None:
    """Responses slower than the timeout are retried, then reported as transient."""
    run = qtest.add_test_run(qtest.add_cycle("Phase 1", release=qtest.add_release("5.5")))
    qtest.submit_log(run, "Passed")
    qtest.delay_seconds = 0.5

    with (
        QTestClient(qtest.base_url, qtest.token, timeout=0.1, attempts=2, backoff=0.01) as client,
        pytest.raises(QTestUnavailable, match="ReadTimeout"),
    ):
        client.test_run_result(qtest.project_id, run)

    assert qtest.request_count == 2


def test_an_unreachable_qtest_is_unavailable() -> None:
    """Nothing listening on the port: connection errors are transient too."""
    with FakeQTest() as gone:
        base_url = gone.base_url

    with (
        QTestClient(base_url, "any", attempts=2, backoff=0.01) as client,
        pytest.raises(QTestUnavailable, match="ConnectError"),
    ):
        client.test_run_result(10, 1)


@pytest.mark.parametrize("project_offset", [0, 1])
def test_an_unknown_test_run_is_not_found(
    qtest: FakeQTest, client: QTestClient, project_offset: int
) -> None:
    """A 404 is permanent: no retries, and the message names the run."""
    run = qtest.add_test_run(qtest.add_cycle("Phase 1", release=qtest.add_release("5.5")))
    qtest.submit_log(run, "Passed")
    unknown_run = run + 1 if project_offset == 0 else run

    with pytest.raises(QTestNotFound, match=f"test run {unknown_run}"):
        client.test_run_result(qtest.project_id + project_offset, unknown_run)

    assert qtest.request_count == 1


def test_a_run_never_executed_has_no_result(qtest: FakeQTest, client: QTestClient) -> None:
    """Without a test log there is nothing to count yet."""
    run = qtest.add_test_run(qtest.add_cycle("Phase 1", release=qtest.add_release("5.5")))

    with pytest.raises(QTestNotFound, match=f"no test log of test run {run} yet"):
        client.test_run_result(qtest.project_id, run)


def test_a_run_outside_any_test_cycle_has_no_result(qtest: FakeQTest, client: QTestClient) -> None:
    """A run directly under a release belongs to no QA cycle."""
    release = qtest.add_release("5.5")
    run = qtest.add_test_run(release=release)
    qtest.submit_log(run, "Passed")

    with pytest.raises(QTestNotFound, match=f"in no test cycle: under release {release}"):
        client.test_run_result(qtest.project_id, run)


def test_a_wrong_token_is_a_clear_error_and_not_retried(qtest: FakeQTest) -> None:
    """401 says to check LEDGER_QTEST_TOKEN, at once."""
    run = qtest.add_test_run(qtest.add_cycle("Phase 1", release=qtest.add_release("5.5")))

    with (
        QTestClient(qtest.base_url, "stale-token", attempts=4, backoff=0.01) as client,
        pytest.raises(QTestUnauthorized, match=r"HTTP 401 .* check LEDGER_QTEST_TOKEN"),
    ):
        client.test_run_result(qtest.project_id, run)

    assert qtest.request_count == 1


def test_concurrent_callers_agree_with_qtests_own_totals(qtest: FakeQTest) -> None:
    """Eight threads over one client, some requests failing, still count the cycle exactly."""
    golden = qtest.add_cycle("Golden run", release=qtest.add_release("Release 5.5"))
    statuses = ["Passed"] * 150 + ["Failed"] * 30 + ["Blocked"] * 12 + ["Incomplete"] * 8
    runs = [qtest.add_test_run(golden) for _ in statuses]
    for run, status_name in zip(runs, statuses, strict=True):
        qtest.submit_log(run, status_name)
    qtest.add_test_run(golden)  # never executed: not counted
    qtest.failure_rate = 0.1

    with (
        QTestClient(qtest.base_url, qtest.token, attempts=8, backoff=0.001) as client,
        ThreadPoolExecutor(8) as pool,
    ):
        results = list(pool.map(lambda run: client.test_run_result(qtest.project_id, run), runs))

    counted = Counter(result.status for result in results)
    assert qtest.cycle_totals(golden) == {
        "total": len(results),
        "passed": counted["passed"],
        "failed": counted["failed"],
        "blocked": counted["blocked"],
    }
    assert qtest.cycle_totals(golden) == {"total": 200, "passed": 150, "failed": 30, "blocked": 12}


def test_the_fakes_totals_count_each_run_once_at_its_latest_status(qtest: FakeQTest) -> None:
    """Re-runs replace a run's status; runs in sub-cycles and suites count for the cycle."""
    phase1 = qtest.add_cycle("Phase 1", release=qtest.add_release("5.5"))
    flaky = qtest.add_test_run(phase1)
    qtest.submit_log(flaky, "Failed")
    qtest.submit_log(flaky, "Passed")
    nested = qtest.add_test_run(
        suite=qtest.add_suite("S3 API", qtest.add_cycle("Objects", parent=phase1))
    )
    qtest.submit_log(nested, "Blocked")
    skipped = qtest.add_test_run(phase1)
    qtest.submit_log(skipped, "Skipped")

    assert qtest.cycle_totals(phase1) == {"total": 3, "passed": 1, "failed": 0, "blocked": 1}
