"""Events recorded under an older schema still load, upcast, and verify."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from eventsourcing.persistence import StoredEvent

from ledger.application import ReleaseLedger
from ledger.chain import event_digest
from ledger.integrity import verify_events
from ledger.metadata import EventMeta
from ledger.values import train_stream_id
from tests.conftest import at

QA_RUN_TOPIC = "ledger.train:Train.QARunRecorded"


def _record_version_1_qa_run(ledger: ReleaseLedger) -> None:
    """Store a QA summary as version 1 wrote it: no ``blocked`` count, no class_version."""
    stream = train_stream_id("5.3")
    (planned,) = ledger.events.get(stream)
    occurred = planned.meta.occurred_at + timedelta(days=20)
    state = {
        "timestamp": datetime.now(UTC),
        "meta": EventMeta("Quinn QA", "qtest", "qtest", None, "c-1", occurred),
        "cycle": "phase1",
        "build": "5.3.0-rc1",
        "total": 20_800,
        "passed": 18_700,
        "failed": 2_100,
        "prev_hash": planned.digest,
    }
    state["digest"] = event_digest(QA_RUN_TOPIC, stream, 2, state)
    ledger.recorder.insert_events(
        [StoredEvent(stream, 2, QA_RUN_TOPIC, ledger.mapper.transcoder.encode(state))]
    )


def test_a_version_1_qa_run_loads_with_no_blocked_tests(ledger: ReleaseLedger) -> None:
    """A QA summary recorded before 'blocked' existed is read as having none blocked."""
    ledger.plan_train("5.3", "major", "Ada Planner", context=at(120))
    _record_version_1_qa_run(ledger)

    qa = ledger.train("5.3")["qa"]["phase1"]

    assert (qa["total"], qa["passed"], qa["failed"], qa["blocked"]) == (20_800, 18_700, 2_100, 0)


def test_an_upcast_event_still_verifies_and_the_chain_goes_on(ledger: ReleaseLedger) -> None:
    """The chain covers the event as stored, so upcasting keeps it whole; new events link on."""
    ledger.plan_train("5.3", "major", "Ada Planner", context=at(120))
    _record_version_1_qa_run(ledger)

    ledger.record_qa_run("5.3", "phase2", "5.3.0-rc2", 2_100, 1_900, 150, "Quinn QA", blocked=50)

    report = verify_events(ledger.event_log.read(), ledger.mapper)
    assert report.ok
    assert report.events == 3
    assert ledger.train("5.3")["qa"]["phase2"]["blocked"] == 50
