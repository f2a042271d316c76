"""The log is append-only and hash-chained: the database refuses changes, verify finds them."""

from __future__ import annotations

import itertools
import sqlite3

import psycopg
import pytest

from ledger.application import ReleaseLedger
from ledger.integrity import verify_events
from ledger.values import train_stream_id
from tests.conftest import open_ledger
from tests.scenarios import plan_scoped_train, tamper


def test_an_untouched_log_verifies(ledger: ReleaseLedger) -> None:
    """Every stream's chain of a freshly recorded history is intact."""
    plan_scoped_train(ledger)
    ledger.decide("5.5", "SNAP-3", "drop", "Grace Director", reason="no capacity")

    report = verify_events(ledger.event_log.read(), ledger.mapper)

    assert report.ok
    assert report.events == 11
    assert report.streams == 3


def test_each_event_extends_its_streams_chain(ledger: ReleaseLedger) -> None:
    """An event's prev_hash is the digest of the event before it in the same stream."""
    plan_scoped_train(ledger)
    train_events = list(ledger.events.get(train_stream_id("5.5")))

    for earlier, later in itertools.pairwise(train_events):
        assert later.prev_hash == earlier.digest
    assert len({event.digest for event in train_events}) == len(train_events)


def test_postgres_refuses_update_and_delete_on_the_event_table(postgres_url: str) -> None:
    """UPDATE, DELETE and TRUNCATE on the event table are refused by the database itself."""
    ledger = open_ledger(postgres_url)
    plan_scoped_train(ledger)
    ledger.close()

    with psycopg.connect(postgres_url, autocommit=True) as connection:
        for statement in (
            "UPDATE ledger_events SET topic = 'forged'",
            "DELETE FROM ledger_events WHERE originator_version = 1",
            "TRUNCATE ledger_events",
        ):
            with pytest.raises(psycopg.errors.InsufficientPrivilege, match="append-only"):
                connection.execute(statement)
        (count,) = connection.execute("SELECT count(*) FROM ledger_events").fetchone() or (0,)
    assert count == 9


def test_sqlite_refuses_update_and_delete_on_the_event_table(tmp_path) -> None:
    """The embedded SQLite store carries the same append-only triggers."""
    path = tmp_path / "ledger.sqlite3"
    ledger = open_ledger(f"sqlite:///{path}")
    plan_scoped_train(ledger)
    ledger.close()

    with sqlite3.connect(path) as connection:
        for statement in ("UPDATE stored_events SET topic = 'forged'", "DELETE FROM stored_events"):
            with pytest.raises(sqlite3.IntegrityError, match="append-only"):
                connection.execute(statement)


def test_verify_names_an_event_altered_behind_the_triggers_back(postgres_url: str) -> None:
    """A row changed with the trigger disabled by a superuser is named by verify."""
    ledger = open_ledger(postgres_url)
    plan_scoped_train(ledger)
    ledger.close()
    position = tamper(
        postgres_url,
        "UPDATE ledger_events SET state = convert_to(replace(convert_from(state, 'UTF8'), "
        "'Globex', 'Initech'), 'UTF8') WHERE convert_from(state, 'UTF8') LIKE '%Globex%' "
        "RETURNING notification_id",
    )

    ledger = open_ledger(postgres_url)
    report = verify_events(ledger.event_log.read(), ledger.mapper)
    ledger.close()

    assert report.broken is not None
    assert report.broken.position == position
    assert "CustomerDemandRecorded" in report.broken.topic
    assert "does not match its digest" in report.broken.problem


def test_verify_names_an_event_missing_from_its_stream(postgres_url: str) -> None:
    """A deleted event shows as a gap in its stream's versions."""
    ledger = open_ledger(postgres_url)
    plan_scoped_train(ledger)
    ledger.close()
    tamper(
        postgres_url,
        "DELETE FROM ledger_events "
        "WHERE originator_version = 2 AND topic LIKE '%Train.ScopeProposed'",
    )

    ledger = open_ledger(postgres_url)
    report = verify_events(ledger.event_log.read(), ledger.mapper)
    ledger.close()

    assert report.broken is not None
    assert report.broken.version == 3
    assert "version 2 of its stream is missing" in report.broken.problem
