"""Appending on PostgreSQL: one statement that keeps the library's lock, rows and errors."""

from __future__ import annotations

import threading
import uuid

import psycopg
import pytest
from eventsourcing.persistence import IntegrityError, StoredEvent

from ledger.application import ReleaseLedger
from ledger.event_log import PostgresLedgerRecorder

LOCK_HELD_SECONDS = 0.5


def _recorder(ledger: ReleaseLedger) -> PostgresLedgerRecorder:
    recorder = ledger.recorder
    assert isinstance(recorder, PostgresLedgerRecorder)
    return recorder


def test_an_append_returns_each_events_position_in_order(postgres_ledger: ReleaseLedger) -> None:
    """Three events appended together get three rising positions, stored as given."""
    recorder = _recorder(postgres_ledger)
    stream = uuid.uuid4()
    events = [
        StoredEvent(stream, version, "qa.run", f"run {version}".encode()) for version in (1, 2, 3)
    ]

    positions = recorder.insert_events(events)

    assert positions is not None
    assert len(positions) == 3
    assert positions == sorted(positions)
    stored = recorder.select_events(stream)
    assert [(event.originator_version, event.state) for event in stored] == [
        (1, b"run 1"),
        (2, b"run 2"),
        (3, b"run 3"),
    ]
    assert [n.id for n in recorder.select_notifications(0, 10)] == positions


def test_a_conflicting_append_writes_nothing_and_the_next_one_succeeds(
    postgres_ledger: ReleaseLedger,
) -> None:
    """A batch with a version already taken is refused whole; the connection stays usable."""
    recorder = _recorder(postgres_ledger)
    stream = uuid.uuid4()
    recorder.insert_events([StoredEvent(stream, 1, "qa.run", b"first")])

    with pytest.raises(IntegrityError):
        recorder.insert_events(
            [StoredEvent(stream, 2, "qa.run", b"new"), StoredEvent(stream, 1, "qa.run", b"rival")]
        )

    assert [event.state for event in recorder.select_events(stream)] == [b"first"]
    assert recorder.insert_events([StoredEvent(stream, 2, "qa.run", b"second")])
    assert len(recorder.select_events(stream)) == 2


def test_an_append_waits_for_an_uncommitted_insert_so_positions_commit_in_order(
    postgres_ledger: ReleaseLedger, postgres_url: str
) -> None:
    """While another writer's insert is uncommitted, an append waits for it to commit.

    Inserts alone would not wait for each other, and the later position could commit
    first: a reader following positions would pass the earlier one for good. The table
    lock each append takes is what makes it wait.
    """
    recorder = _recorder(postgres_ledger)
    table = f"{recorder.datastore.schema}.{recorder.events_table_name}"
    appended = threading.Event()

    def append() -> None:
        recorder.insert_events([StoredEvent(uuid.uuid4(), 1, "qa.run", b"late")])
        appended.set()

    with psycopg.connect(postgres_url) as rival:
        rival.execute(f"LOCK TABLE {table} IN ROW EXCLUSIVE MODE")  # what an INSERT takes
        writer = threading.Thread(target=append)
        writer.start()
        waited = not appended.wait(LOCK_HELD_SECONDS)
        rival.commit()
    writer.join(10)

    assert waited, "the append did not wait for the uncommitted insert"
    assert appended.is_set()
