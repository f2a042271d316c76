"""QTest names become trains and QA cycles; webhook bodies become ids, or a clear refusal."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import pytest
from pydantic import ValidationError

from integrations.qtest import (
    QTestMapping,
    QTestPayloadError,
    TestLogDelivery,
    normalize_status,
    parse_delivery,
)
from ledger.values import QACycle

DEFAULTS = QTestMapping()


@pytest.mark.parametrize(
    ("release_name", "train"),
    [
        ("5.5", "5.5"),
        ("Release 5.5", "5.5"),
        ("Objects 5.5 GA", "5.5"),
        ("v5.6 beta program", "5.6"),
        ("Release-5.4.1", "5.4.1"),
        ("Hotfix 5.1.7-hf2 (Acme)", "5.1.7-hf2"),
        ("Release 15.5", "15.5"),
        ("Release 5.5.", "5.5"),
    ],
)
def test_a_release_named_after_a_train_is_that_train(release_name: str, train: str) -> None:
    """The train id standing alone in a release's name is the train, by default."""
    assert DEFAULTS.train_for(release_name) == train


@pytest.mark.parametrize(
    "release_name",
    ["Sprint 42", "v15.5x", "Release5.5", "5.5.1.2.3", "Objects 5.5-GA", "Q3 2025", ""],
)
def test_a_release_without_a_standalone_train_id_names_no_train(release_name: str) -> None:
    """A number glued to letters, with too many parts or an odd suffix names no train."""
    assert DEFAULTS.train_for(release_name) is None


def test_the_explicit_release_map_wins_over_the_name() -> None:
    """An entry in ``releases`` decides, matched exactly or ignoring case and blanks."""
    mapping = QTestMapping(releases={"Objects Autumn": "5.6", "Release 5.5 (was 5.4)": "5.5"})

    assert mapping.train_for("Objects Autumn") == "5.6"
    assert mapping.train_for("  objects AUTUMN ") == "5.6"
    assert mapping.train_for("Release 5.5 (was 5.4)") == "5.5"
    assert mapping.train_for("Release 5.3") == "5.3"


def test_a_release_map_to_something_that_is_no_train_is_refused() -> None:
    """The configuration names the bad entry instead of failing on a delivery later."""
    with pytest.raises(ValidationError, match="maps to 'five-five'"):
        QTestMapping(releases={"Objects Autumn": "five-five"})


@pytest.mark.parametrize(
    ("cycle_name", "cycle"),
    [
        ("Phase 1", QACycle.PHASE1),
        ("PHASE1 - full regression", QACycle.PHASE1),
        ("phase 2 re-runs", QACycle.PHASE2),
        ("Golden run", QACycle.GOLDEN),
        ("5.5 GOLDEN", QACycle.GOLDEN),
    ],
)
def test_cycle_names_match_the_default_patterns(cycle_name: str, cycle: QACycle) -> None:
    """``phase ?1``, ``phase ?2`` and ``golden`` are searched case-insensitively."""
    assert DEFAULTS.cycle_for(cycle_name) == cycle


def test_a_cycle_matching_no_pattern_is_no_qa_cycle() -> None:
    """A smoke-test cycle is not one of the three QA cycles."""
    assert DEFAULTS.cycle_for("Smoke tests") is None


def test_changing_one_pattern_keeps_the_other_defaults() -> None:
    """A file that renames the golden run leaves phase 1 and phase 2 as they were."""
    mapping = QTestMapping.model_validate({"cycles": {"golden": r"final|release candidate"}})

    assert mapping.cycle_for("Final pass") == QACycle.GOLDEN
    assert mapping.cycle_for("Golden run") is None
    assert mapping.cycle_for("Phase 2") == QACycle.PHASE2


@pytest.mark.parametrize(
    ("cycles", "message"),
    [
        ({"golden": "gold(en"}, "not a regular expression"),
        ({"phase1": ""}, "empty pattern"),
        ({"phase3": "phase 3"}, "Extra inputs are not permitted"),
    ],
)
def test_unusable_cycle_patterns_are_refused(cycles: dict[str, str], message: str) -> None:
    """A broken regex, an empty one or an unknown cycle is a configuration error."""
    with pytest.raises(ValidationError, match=message):
        QTestMapping.model_validate({"cycles": cycles})


def test_the_nearest_enclosing_cycle_with_a_phase_decides() -> None:
    """Runs kept in a sub-cycle of Phase 1 are phase 1; the innermost match wins."""
    assert DEFAULTS.cycle_for_any(["S3 API", "Storage", "Phase 1"]) == QACycle.PHASE1
    assert DEFAULTS.cycle_for_any(["Golden rerun", "Phase 2"]) == QACycle.GOLDEN
    assert DEFAULTS.cycle_for_any(["S3 API", "Nightly"]) is None


@pytest.mark.parametrize(
    ("status_name", "status"),
    [
        ("Passed", "passed"),
        ("FAILED", "failed"),
        (" blocked ", "blocked"),
        ("Incomplete", "other"),
        ("Unexecuted", "other"),
        ("Skipped", "other"),
    ],
)
def test_statuses_are_passed_failed_blocked_or_other(status_name: str, status: str) -> None:
    """Anything but passed, failed and blocked counts in a cycle's total only."""
    assert normalize_status(status_name) == status


def test_a_testlog_submitted_body_gives_its_ids_and_time() -> None:
    """The SPEC §6 shape: ids of the log, its project and its test run, epoch milliseconds."""
    delivery = parse_delivery(
        {
            "event_timestamp": 1_741_944_413_000,
            "event_type": "testlog_submitted",
            "testlog": {"id": 88_001, "project_id": 12, "testrun_id": 345_678},
        }
    )

    assert delivery == TestLogDelivery(
        event_type="testlog_submitted",
        event_timestamp=datetime(2025, 3, 14, 9, 26, 53, tzinfo=UTC),
        project_id=12,
        test_run_id=345_678,
        test_log_id=88_001,
    )


def test_the_raw_bytes_of_a_body_parse_the_same() -> None:
    """The route may hand over the body as it arrived."""
    body = b'{"event_type": "testlog_modified", "testlog": {"project_id": 12, "testrun_id": 7}}'

    delivery = parse_delivery(body)

    assert (delivery.event_type, delivery.project_id, delivery.test_run_id) == (
        "testlog_modified",
        12,
        7,
    )
    assert delivery.test_log_id is None
    assert delivery.event_timestamp is None


@pytest.mark.parametrize(
    ("timestamp", "expected"),
    [
        (1_741_944_413, datetime(2025, 3, 14, 9, 26, 53, tzinfo=UTC)),
        ("1741944413000", datetime(2025, 3, 14, 9, 26, 53, tzinfo=UTC)),
        ("2025-03-14T10:26:53+01:00", datetime(2025, 3, 14, 9, 26, 53, tzinfo=UTC)),
        ("2025-03-14T09:26:53Z", datetime(2025, 3, 14, 9, 26, 53, tzinfo=UTC)),
        ("2025-03-14T09:26:53", datetime(2025, 3, 14, 9, 26, 53, tzinfo=UTC)),
    ],
)
def test_event_timestamps_are_read_in_every_form_seen(timestamp: Any, expected: datetime) -> None:
    """Epoch seconds or milliseconds, as numbers or digits, or ISO 8601 (naive means UTC)."""
    delivery = parse_delivery(
        {
            "event_timestamp": timestamp,
            "event_type": "testlog_submitted",
            "testlog": {"id": 1, "project_id": 2, "testrun_id": 3},
        }
    )

    assert delivery.event_timestamp == expected


def test_ids_sent_as_strings_are_ids() -> None:
    """Some senders quote numbers; digits are accepted."""
    delivery = parse_delivery(
        {
            "event_type": "testlog_submitted",
            "testlog": {"id": "88001", "project_id": " 12 ", "testrun_id": "345678"},
        }
    )

    assert (delivery.project_id, delivery.test_run_id, delivery.test_log_id) == (
        12,
        345_678,
        88_001,
    )


def _body(**testlog: Any) -> dict[str, Any]:
    return {"event_type": "testlog_submitted", "testlog": testlog}


@pytest.mark.parametrize(
    ("payload", "reason"),
    [
        (b"{not json", "not JSON"),
        ([1, 2, 3], "JSON list, not an object"),
        ({"testlog": {"project_id": 1, "testrun_id": 2}}, "no event_type"),
        ({"event_type": "testrun_created", "testrun": {"id": 5}}, "testrun_created .* no testlog"),
        (_body(project_id=12), "testlog.testrun_id is None"),
        (_body(project_id="twelve", testrun_id=7), "testlog.project_id is 'twelve'"),
        (_body(project_id=12, testrun_id=-7), "testlog.testrun_id is -7"),
        (_body(project_id=True, testrun_id=7), "testlog.project_id is True"),
        (_body(id=1.5, project_id=12, testrun_id=7), "testlog.id is 1.5"),
        (
            {"event_type": "testlog_submitted", "event_timestamp": "yesterday", "testlog": {}},
            "event_timestamp 'yesterday'",
        ),
    ],
)
def test_a_body_that_is_no_test_log_delivery_is_refused_with_why(payload: Any, reason: str) -> None:
    """Garbage is a QTestPayloadError naming what is wrong, never a crash."""
    with pytest.raises(QTestPayloadError, match=reason):
        parse_delivery(payload)
