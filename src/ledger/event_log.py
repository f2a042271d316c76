"""Raw access to the stored event log, beside the library's own API.

The library appends and reads events; the ledger also needs to find an event's
position, to import events at their original positions, and on PostgreSQL to make
the table refuse UPDATE and DELETE. That is backend-specific SQL, kept here.
"""

from __future__ import annotations

import copy
import threading
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from itertools import islice
from typing import Any
from uuid import UUID

from eventsourcing.persistence import (
    ApplicationRecorder,
    InterfaceError,
    Notification,
    OperationalError,
    StoredEvent,
)
from eventsourcing.popo import POPOApplicationRecorder
from eventsourcing.postgres import PostgresApplicationRecorder
from eventsourcing.sqlite import SQLiteApplicationRecorder
from eventsourcing.utils import get_topic, retry
from psycopg import sql

from ledger.exceptions import ConfigurationError
from ledger.train import Train

READ_BATCH = 1000
WRITE_BATCH = 1000
LOCK_NAME = "release-ledger-schema"
BULK_TOPICS = (get_topic(Train.QARunRecorded),)
"""Topics that make up most of a stream: QA runs are ~98 % of a train's events.

A partial index leaves them out, so reading a stream ``excluding=BULK_TOPICS`` (an as-of
query: the QA runs come from their own projection) touches only the other events.
"""


@dataclass(frozen=True)
class RawEvent:
    """One stored event as it lies in the table, with its position in the log."""

    position: int
    originator_id: UUID
    originator_version: int
    topic: str
    state: bytes


class EventLog:
    """Reads the whole log in order; subclasses add what needs their database's SQL."""

    def __init__(self, recorder: ApplicationRecorder) -> None:
        self.recorder = recorder

    @staticmethod
    def for_recorder(recorder: ApplicationRecorder) -> EventLog:
        if isinstance(recorder, PostgresApplicationRecorder):
            return PostgresEventLog(recorder)
        if isinstance(recorder, SQLiteApplicationRecorder):
            return SQLiteEventLog(recorder)
        if isinstance(recorder, POPOApplicationRecorder):
            return EventLog(recorder)
        raise ConfigurationError(f"no event log for {type(recorder).__name__}")

    def read(self, after: int = 0, batch: int = READ_BATCH) -> Iterator[RawEvent]:
        """Every stored event after ``after``, in position order (positions may have gaps)."""
        while True:
            notifications = self.recorder.select_notifications(
                start=after, limit=batch, inclusive_of_start=False
            )
            for notification in notifications:
                yield _raw(notification)
            if len(notifications) < batch:
                return
            after = notifications[-1].id

    def stream(self, stream: UUID, excluding: Sequence[str] = ()) -> list[StoredEvent]:
        """One stream's stored events in version order, leaving out the given topics."""
        return [
            stored
            for stored in self.recorder.select_events(stream)
            if stored.topic not in excluding
        ]

    def last_position(self) -> int:
        return self.recorder.max_notification_id() or 0

    def positions(self, events: Iterable[tuple[UUID, int]]) -> dict[tuple[UUID, int], int]:
        """The positions of the given (stream, version) pairs."""
        wanted = set(events)
        found = {}
        for raw in self.read():
            key = (raw.originator_id, raw.originator_version)
            if key in wanted:
                found[key] = raw.position
        return found

    def append_at_positions(self, events: Iterable[RawEvent]) -> None:
        """Write events at their given positions, all in one transaction."""
        raise ConfigurationError("importing events needs a database: use PostgreSQL or SQLite")

    def prepare(self) -> None:
        """Create what the log needs (the library's tables, the append-only guard)."""


POOL_WAIT_SECONDS = 1.0
"""How long a statement waits for a pooled connection before the library retries it."""
RECONNECT_GIVE_UP_SECONDS = 5.0
"""How long the pool keeps one attempt at reconnecting going before it starts afresh."""


class PostgresLedgerRecorder(PostgresApplicationRecorder):
    """The library's recorder, appending with one statement: a function that takes the
    table lock, notifies and inserts.

    The library sends ``BEGIN``, the table lock, ``NOTIFY`` and the ``INSERT`` one after
    another, waits for their results and only then sends ``COMMIT``. The ``EXCLUSIVE`` lock
    that keeps positions in commit order is held all that time, and in a busy server the
    thread holding it waits for the interpreter between statements while every other
    writer waits for the lock. Here the lock is held only while the database works.
    The library's own ``POSTGRES_ENABLE_DB_FUNCTIONS`` function is one statement too, but
    it takes no table lock, so a reader following positions could pass one that commits
    later. Same lock, same rows, same errors (a conflict is the library's
    ``IntegrityError``); ``create_table`` makes the function.
    """

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        schema = sql.Identifier(self.datastore.schema)
        function = sql.Identifier(f"{self.events_table_name}_append")
        id_type = sql.SQL(self.datastore.originator_id_type)
        self.sql_create_statements.append(
            sql.SQL(
                "CREATE OR REPLACE FUNCTION {schema}.{function}("
                "ids {id_type}[], versions bigint[], topics text[], states bytea[]) "
                "RETURNS SETOF bigint LANGUAGE plpgsql AS $BODY$ "
                "BEGIN "
                "SET LOCAL lock_timeout = '{lock_timeout}s'; "
                "LOCK TABLE {schema}.{table} IN EXCLUSIVE MODE; "
                "NOTIFY {channel}; "
                "RETURN QUERY "
                "INSERT INTO {schema}.{table} (originator_id, originator_version, topic, state) "
                "SELECT * FROM unnest(ids, versions, topics, states) "
                "RETURNING notification_id; "
                "END; $BODY$"
            ).format(
                schema=schema,
                function=function,
                id_type=id_type,
                lock_timeout=self.datastore.lock_timeout,
                table=sql.Identifier(self.events_table_name),
                channel=sql.Identifier(self.channel_name),
            )
        )
        # Four arrays bound in binary: dumping an array of the library's composite type
        # as text costs more than the rest of the append.
        self.append_statement = (
            sql.SQL(
                "SELECT notification_id FROM {schema}.{function}("
                "%b::{id_type}[], %b::bigint[], %b::text[], %b::bytea[]) "
                "AS appended(notification_id)"
            )
            .format(schema=schema, function=function, id_type=id_type)
            .as_string()
        )

        self._group_lock = threading.Lock()
        self._waiting: list[_Append] = []
        self._appending = False

    @retry((InterfaceError, OperationalError), max_attempts=10, wait=0.2)
    def insert_events(
        self, stored_events: Sequence[StoredEvent], **kwargs: Any
    ) -> Sequence[int] | None:
        """Append with whoever else is waiting to (group commit).

        The table lock lets one append run at a time, so writers that arrive while one
        runs wait for it anyway: the first of them then appends for all, in one statement
        and one commit. Each caller still gets back only its own positions, or its own
        error: a group that fails is appended again one caller at a time, so one caller's
        conflict never refuses another's events. While the database is out of reach, every
        caller waiting gets the error at once and retries on its own, as it would alone.
        """
        if not stored_events:
            return []
        mine = _Append(stored_events)
        with self._group_lock:
            self._waiting.append(mine)
            leading = not self._appending
            self._appending = True
        if not leading:
            mine.wait()
            if not mine.leads:
                return mine.result()
        with self._group_lock:
            group, self._waiting = self._waiting, []
        unreachable: Exception | None = None
        try:
            unreachable = self._append_group(group)
        finally:
            with self._group_lock:
                if unreachable is not None:
                    # Those who queued meanwhile would only wait to meet it too: each
                    # caller's retries then take as long as they would alone.
                    late, self._waiting = self._waiting, []
                    _fail(late, unreachable)
                    group += late
                if self._waiting:  # arrived meanwhile: the first appends for them all
                    self._waiting[0].leads = True
                    self._waiting[0].answer()
                else:
                    self._appending = False
            for member in group:
                if member is not mine:
                    member.answer()
        return mine.result()

    def _append_group(self, group: list[_Append]) -> Exception | None:
        """Give every member of ``group`` its positions or its error; the error if the
        database could not be reached."""
        if len(group) > 1:
            try:
                positions = iter(self._append([e for member in group for e in member.events]))
            except (InterfaceError, OperationalError) as error:
                _fail(group, error)
                return error
            except Exception:  # appended one by one below, each with its own outcome
                pass
            except BaseException as error:  # interrupted: each caller hears of it
                _fail(group, error)
                return None
            else:
                for member in group:
                    member.positions = list(islice(positions, len(member.events)))
                return None
        for index, member in enumerate(group):
            try:
                member.positions = self._append(member.events)
            except (InterfaceError, OperationalError) as error:
                _fail(group[index:], error)  # the rest would meet it too
                return error
            except BaseException as error:  # the member's to raise, in its own thread
                member.error = error
        return None

    def _append(self, stored_events: Sequence[StoredEvent]) -> list[int]:
        arrays = (
            [event.originator_id for event in stored_events],
            [event.originator_version for event in stored_events],
            [event.topic for event in stored_events],
            [event.state for event in stored_events],
        )
        with self.datastore.get_connection() as connection, connection.cursor() as cursor:
            cursor.execute(self.append_statement, arrays, prepare=True)
            return [row["notification_id"] for row in cursor.fetchall()]


def _fail(members: list[_Append], error: BaseException) -> None:
    """Give each member ``error`` to raise, a copy each: one exception raised in several
    threads would collect all their tracebacks."""
    for member in members:
        member.error = copy.copy(error)
        member.error.__cause__ = error.__cause__


class _Append:
    """One caller's events, waiting to be appended with others'."""

    def __init__(self, events: Sequence[StoredEvent]) -> None:
        self.events = events
        # A lock held until the caller is answered: cheaper to wait on than an Event.
        self._unanswered = threading.Lock()
        self._unanswered.acquire()
        self.leads = False
        """Woken not with an answer but to append for the callers still waiting."""
        self.positions: list[int] | None = None
        self.error: BaseException | None = None

    def wait(self) -> None:
        self._unanswered.acquire()

    def answer(self) -> None:
        """Wake the caller; each is woken once, to lead or with its result."""
        self._unanswered.release()

    def result(self) -> list[int]:
        if self.error is not None:
            raise self.error
        assert self.positions is not None, "every member of a group is answered"
        return self.positions


class PostgresEventLog(EventLog):
    recorder: PostgresApplicationRecorder

    def __init__(self, recorder: PostgresApplicationRecorder) -> None:
        super().__init__(recorder)
        # The library retries a failed statement ten times, and each try waits for a
        # pooled connection as long as a TCP connect may take (5 s): while the database
        # is down a command would hold its request for most of a minute. Waiting 1 s
        # per try bounds that near 12 s, and a connection is free in milliseconds when
        # the database is up.
        recorder.datastore.pool.timeout = POOL_WAIT_SECONDS
        # The pool reconnects with exponential backoff (1, 2, 4, ... s) for 5 minutes: after
        # a long outage its next try could come a minute or more after the database is
        # back. Giving up after 5 s lets the next request start a new attempt at once.
        recorder.datastore.pool.reconnect_timeout = RECONNECT_GIVE_UP_SECONDS

    @property
    def _table(self) -> sql.Composed:
        return sql.SQL("{}.{}").format(
            sql.Identifier(self.recorder.datastore.schema),
            sql.Identifier(self.recorder.events_table_name),
        )

    def positions(self, events: Iterable[tuple[UUID, int]]) -> dict[tuple[UUID, int], int]:
        found = {}
        with self.recorder.datastore.transaction(commit=False) as cursor:
            for originator_id, version in events:
                cursor.execute(
                    sql.SQL(
                        "SELECT notification_id FROM {} "
                        "WHERE originator_id = %s AND originator_version = %s"
                    ).format(self._table),
                    (originator_id, version),
                )
                row = cursor.fetchone()
                if row is not None:
                    found[(originator_id, version)] = row["notification_id"]
        return found

    def stream(self, stream: UUID, excluding: Sequence[str] = ()) -> list[StoredEvent]:
        # The topics are literals, not parameters: only then can the planner prove that
        # the partial index without BULK_TOPICS covers the query (prepared statements
        # get generic plans).
        exclusions = sql.SQL("").join(
            sql.SQL(" AND topic <> {}").format(sql.Literal(topic)) for topic in excluding
        )
        with self.recorder.datastore.transaction(commit=False) as cursor:
            cursor.execute(
                sql.SQL(
                    "SELECT originator_version, topic, state FROM {} WHERE originator_id = %s"
                    "{} ORDER BY originator_version"
                ).format(self._table, exclusions),
                (stream,),
            )
            return [
                StoredEvent(stream, row["originator_version"], row["topic"], bytes(row["state"]))
                for row in cursor.fetchall()
            ]

    def append_at_positions(self, events: Iterable[RawEvent]) -> None:
        insert = sql.SQL(
            "INSERT INTO {} (originator_id, originator_version, topic, state, "
            "notification_id) VALUES (%s, %s, %s, %s, %s)"
        ).format(self._table)
        with self.recorder.datastore.transaction(commit=True) as cursor:
            cursor.execute(sql.SQL("LOCK TABLE {} IN EXCLUSIVE MODE").format(self._table))
            rows = iter(events)
            while batch := list(islice(rows, WRITE_BATCH)):
                cursor.executemany(
                    insert,
                    [
                        (e.originator_id, e.originator_version, e.topic, e.state, e.position)
                        for e in batch
                    ],
                )
            cursor.execute(
                sql.SQL(
                    "SELECT setval(pg_get_serial_sequence(%s, 'notification_id'), "
                    "GREATEST((SELECT MAX(notification_id) FROM {}), 1))"
                ).format(self._table),
                (f"{self.recorder.datastore.schema}.{self.recorder.events_table_name}",),
            )

    def prepare(self) -> None:
        """Create the tables and the append-only triggers, one server at a time.

        The library's own CREATE OR REPLACE statements fail with "tuple concurrently
        updated" when servers start side by side, so the whole setup runs under an
        advisory lock held on a connection of its own.
        """
        datastore = self.recorder.datastore
        with datastore.get_connection() as lock_connection:
            lock_connection.execute("SELECT pg_advisory_lock(hashtext(%s))", (LOCK_NAME,))
            try:
                self.recorder.create_table()
                self._install_append_only_triggers()
                self._index_streams_without_bulk_topics()
            finally:
                lock_connection.execute("SELECT pg_advisory_unlock(hashtext(%s))", (LOCK_NAME,))

    def _install_append_only_triggers(self) -> None:
        table = self.recorder.events_table_name
        function = sql.Identifier(self.recorder.datastore.schema, f"{table}_append_only")
        with self.recorder.datastore.transaction(commit=True) as cursor:
            cursor.execute(
                "SELECT count(*) AS n FROM pg_trigger WHERE tgrelid = %s::regclass "
                "AND tgname IN (%s, %s)",
                (
                    f"{self.recorder.datastore.schema}.{table}",
                    f"{table}_append_only",
                    f"{table}_no_truncate",
                ),
            )
            row = cursor.fetchone()
            if row is not None and row["n"] == 2:
                return
            cursor.execute(
                sql.SQL(
                    "CREATE OR REPLACE FUNCTION {}() RETURNS trigger LANGUAGE plpgsql AS $$ "
                    "BEGIN RAISE EXCEPTION 'the event log is append-only: % on % refused', "
                    "TG_OP, TG_TABLE_NAME USING ERRCODE = 'insufficient_privilege'; END $$"
                ).format(function)
            )
            cursor.execute(
                sql.SQL(
                    "CREATE OR REPLACE TRIGGER {} BEFORE UPDATE OR DELETE ON {} "
                    "FOR EACH ROW EXECUTE FUNCTION {}()"
                ).format(sql.Identifier(f"{table}_append_only"), self._table, function)
            )
            cursor.execute(
                sql.SQL(
                    "CREATE OR REPLACE TRIGGER {} BEFORE TRUNCATE ON {} "
                    "FOR EACH STATEMENT EXECUTE FUNCTION {}()"
                ).format(sql.Identifier(f"{table}_no_truncate"), self._table, function)
            )

    def _index_streams_without_bulk_topics(self) -> None:
        table = self.recorder.events_table_name
        exclusions = sql.SQL(" AND ").join(
            sql.SQL("topic <> {}").format(sql.Literal(topic)) for topic in BULK_TOPICS
        )
        with self.recorder.datastore.transaction(commit=True) as cursor:
            cursor.execute(
                sql.SQL(
                    "CREATE INDEX IF NOT EXISTS {} ON {} (originator_id, originator_version) "
                    "WHERE {}"
                ).format(sql.Identifier(f"{table}_without_bulk"), self._table, exclusions)
            )


class SQLiteEventLog(EventLog):
    recorder: SQLiteApplicationRecorder

    def positions(self, events: Iterable[tuple[UUID, int]]) -> dict[tuple[UUID, int], int]:
        found = {}
        with self.recorder.datastore.transaction(commit=False) as cursor:
            for originator_id, version in events:
                cursor.execute(
                    f"SELECT rowid FROM {self.recorder.events_table_name} "
                    "WHERE originator_id = ? AND originator_version = ?",
                    (originator_id.hex, version),
                )
                row: Any = cursor.fetchone()
                if row is not None:
                    found[(originator_id, version)] = row[0]
        return found

    def prepare(self) -> None:
        table = self.recorder.events_table_name
        with self.recorder.datastore.transaction(commit=True) as cursor:
            for operation in ("UPDATE", "DELETE"):
                cursor.execute(
                    f"CREATE TRIGGER IF NOT EXISTS {table}_no_{operation.lower()} "
                    f"BEFORE {operation} ON {table} BEGIN "
                    f"SELECT RAISE(ABORT, 'the event log is append-only: {operation} refused'); "
                    "END"
                )
            exclusions = " AND ".join(f"topic <> {_sqlite_literal(t)}" for t in BULK_TOPICS)
            cursor.execute(
                f"CREATE INDEX IF NOT EXISTS {table}_without_bulk "
                f"ON {table} (originator_id, originator_version) WHERE {exclusions}"
            )

    def stream(self, stream: UUID, excluding: Sequence[str] = ()) -> list[StoredEvent]:
        # Literals, as on PostgreSQL: SQLite matches a partial index's WHERE term by term.
        exclusions = "".join(f" AND topic <> {_sqlite_literal(topic)}" for topic in excluding)
        with self.recorder.datastore.transaction(commit=False) as cursor:
            cursor.execute(
                f"SELECT originator_version, topic, state FROM {self.recorder.events_table_name} "
                f"WHERE originator_id = ?{exclusions} ORDER BY originator_version",
                (stream.hex,),
            )
            rows: list[Any] = cursor.fetchall()
        return [StoredEvent(stream, row[0], row[1], bytes(row[2])) for row in rows]

    def append_at_positions(self, events: Iterable[RawEvent]) -> None:
        insert = (
            f"INSERT INTO {self.recorder.events_table_name} "
            "(rowid, originator_id, originator_version, topic, state) VALUES (?, ?, ?, ?, ?)"
        )
        with self.recorder.datastore.transaction(commit=True) as cursor:
            cursor.executemany(
                insert,
                (
                    (e.position, e.originator_id.hex, e.originator_version, e.topic, e.state)
                    for e in events
                ),
            )


def _raw(notification: Notification) -> RawEvent:
    originator_id = notification.originator_id
    return RawEvent(
        position=notification.id,
        originator_id=originator_id if isinstance(originator_id, UUID) else UUID(originator_id),
        originator_version=notification.originator_version,
        topic=notification.topic,
        state=bytes(notification.state),
    )


def _sqlite_literal(text: str) -> str:
    return "'" + text.replace("'", "''") + "'"
