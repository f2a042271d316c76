"""Appending on PostgreSQL: one statement that keeps the library's lock, rows and errors."""

from __future__ import annotations

import threading
import time
import uuid
from collections.abc import Callable

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


def _append_in_threads(
    recorder: PostgresLedgerRecorder, batches: list[list[StoredEvent]]
) -> tuple[list[threading.Thread], dict[int, object]]:
    """Start one thread per batch; each puts its positions or its error under its index."""
    outcomes: dict[int, object] = {}

    def append(index: int, batch: list[StoredEvent]) -> None:
        try:
            outcomes[index] = recorder.insert_events(batch)
        except Exception as error:
            outcomes[index] = error

    threads = [
        threading.Thread(target=append, args=(index, batch)) for index, batch in enumerate(batches)
    ]
    return threads, outcomes


def _queued_behind_a_held_lock(
    recorder: PostgresLedgerRecorder, postgres_url: str, batches: list[list[StoredEvent]]
) -> dict[int, object]:
    """Append ``batches`` from threads while another transaction holds the table lock: the
    first waits in the database, the others queue behind it; then the lock is let go."""
    table = f"{recorder.datastore.schema}.{recorder.events_table_name}"
    threads, outcomes = _append_in_threads(recorder, batches)
    with psycopg.connect(postgres_url) as rival:
        rival.execute(f"LOCK TABLE {table} IN EXCLUSIVE MODE")
        threads[0].start()
        _wait_for(lambda: recorder._appending, "the first append to start")
        for thread in threads[1:]:
            thread.start()
        _wait_for(lambda: len(recorder._waiting) == len(threads) - 1, "the others to queue")
        rival.commit()
    for thread in threads:
        thread.join(10)
    return outcomes


def _wait_for(condition: Callable[[], object], what: str) -> None:
    deadline = time.monotonic() + 5
    while not condition():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.01)


def _xmins(postgres_url: str, table: str, streams: list[uuid.UUID]) -> dict[uuid.UUID, str]:
    with psycopg.connect(postgres_url) as connection:
        rows = connection.execute(
            f"SELECT originator_id, xmin::text FROM {table} WHERE originator_id = ANY(%s)",
            [streams],
        ).fetchall()
    return dict(rows)


def test_appends_that_queue_behind_one_are_committed_together(
    postgres_ledger: ReleaseLedger, postgres_url: str
) -> None:
    """Writers arriving while an append waits for the table lock are appended after it in
    one transaction, and each gets back its own events' positions."""
    recorder = _recorder(postgres_ledger)
    streams = [uuid.uuid4() for _ in range(6)]
    batches = [[StoredEvent(stream, 1, "qa.run", stream.bytes)] for stream in streams]
    batches[3].append(StoredEvent(streams[3], 2, "qa.run", b"second"))

    outcomes = _queued_behind_a_held_lock(recorder, postgres_url, batches)

    by_position = {n.id: n for n in recorder.select_notifications(0, 100)}
    for index, stream in enumerate(streams):
        positions = outcomes[index]
        assert isinstance(positions, list), positions
        assert [
            (by_position[p].originator_id, by_position[p].originator_version) for p in positions
        ] == [(stream, event.originator_version) for event in batches[index]]
    table = f"{recorder.datastore.schema}.{recorder.events_table_name}"
    xmins = _xmins(postgres_url, table, streams)
    assert xmins[streams[0]] not in {xmins[stream] for stream in streams[1:]}
    assert len({xmins[stream] for stream in streams[1:]}) == 1, "queued appends split up"


def test_a_conflict_in_a_group_refuses_only_the_conflicting_writers_events(
    postgres_ledger: ReleaseLedger, postgres_url: str
) -> None:
    """A queued writer whose version is taken gets the library's IntegrityError, and the
    writers queued with it are appended all the same."""
    recorder = _recorder(postgres_ledger)
    taken = uuid.uuid4()
    recorder.insert_events([StoredEvent(taken, 1, "qa.run", b"first")])
    streams = [uuid.uuid4() for _ in range(3)]
    batches = [
        [StoredEvent(streams[0], 1, "qa.run", b"leader")],
        [StoredEvent(streams[1], 1, "qa.run", b"before")],
        [StoredEvent(taken, 1, "qa.run", b"rival")],
        [StoredEvent(streams[2], 1, "qa.run", b"after")],
    ]

    outcomes = _queued_behind_a_held_lock(recorder, postgres_url, batches)

    assert isinstance(outcomes[2], IntegrityError)
    assert [event.state for event in recorder.select_events(taken)] == [b"first"]
    for index, stream in ((0, streams[0]), (1, streams[1]), (3, streams[2])):
        assert isinstance(outcomes[index], list), outcomes[index]
        assert [event.state for event in recorder.select_events(stream)] == [
            batches[index][0].state
        ]
