"""The projections: how each read model folds ledger events into its rows.

A projection applies decoded events in log order, keeps what it changed in memory, and
writes it in ``flush`` inside the runner's transaction, together with its position.
"""

from __future__ import annotations

from collections.abc import Callable, Collection, Iterable
from datetime import datetime
from functools import cache
from typing import Any, ClassVar
from uuid import UUID

import psycopg
from psycopg import sql as psycopg_sql
from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    Connection,
    Date,
    Delete,
    Float,
    Insert,
    Integer,
    String,
    Table,
    bindparam,
    delete,
    insert,
    select,
)
from sqlalchemy.exc import DBAPIError

from ledger.aggregate import LedgerAggregate
from ledger.feature import Feature
from ledger.train import Train
from projections import tables
from projections.documents import feature_document, train_gates, train_qa_runs, train_scope
from projections.tables import GenerationIndex, UTCDateTime, qa_runs_latest

Loader = Callable[[UUID, int], LedgerAggregate]
"""Rebuilds an aggregate of a stream at a version (from the event store)."""


class StreamKeys:
    """Which train or feature each stream belongs to, remembered across batches."""

    def __init__(self) -> None:
        self.keys: dict[str, tuple[str, str]] = {}
        self.new: dict[str, tuple[str, str]] = {}
        self.found: dict[UUID, str] = {}
        self.connection: Connection | None = None

    def load(self, connection: Connection) -> None:
        rows = connection.execute(select(tables.stream_keys))
        self.keys = {row.stream: (row.kind, row.key) for row in rows}
        self.new.clear()
        self.found.clear()
        self.connection = connection

    def remember(self, event: LedgerAggregate.Event) -> None:
        if isinstance(event, Train.Planned):
            entry = ("train", event.train_id)
        elif isinstance(event, Feature.Registered):
            entry = ("feature", event.key)
        else:
            return
        stream = str(event.originator_id)
        if stream not in self.keys:
            self.keys[stream] = entry
            self.new[stream] = entry

    def key(self, stream: UUID) -> str:
        found = self.found.get(stream)
        if found is None:
            found = self.found[stream] = self._look_up(stream)
        return found

    def _look_up(self, stream: UUID) -> str:
        entry = self.keys.get(str(stream))
        if entry is None and self.connection is not None:
            # Another runner (a server beside a worker, a rebuild) may have seen it first.
            row = self.connection.execute(
                select(tables.stream_keys).where(tables.stream_keys.c.stream == str(stream))
            ).first()
            if row is not None:
                entry = self.keys[row.stream] = (row.kind, row.key)
        if entry is None:
            raise LookupError(f"stream {stream} has no known train or feature")
        return entry[1]

    def flush(self, connection: Connection) -> None:
        if self.new:
            rows = [{"stream": s, "kind": kind, "key": key} for s, (kind, key) in self.new.items()]
            # Runners working side by side may each have met the same new stream.
            insert = tables.insert_into(tables.stream_keys, connection)
            connection.execute(insert.on_conflict_do_nothing(), rows)
            self.new.clear()


class Projection:
    """A read model with a name, its tables, and a position in the log."""

    name: ClassVar[str]
    tables: ClassVar[tuple[Table, ...]]
    generation_indexes: ClassVar[tuple[GenerationIndex, ...]] = ()

    def handles(self, event_type: type[LedgerAggregate.Event]) -> bool:
        """Whether events of this type change this projection; the runner routes by it."""
        raise NotImplementedError

    def apply(self, position: int, event: LedgerAggregate.Event, context: Context) -> None:
        """Fold in one event of a type this projection handles."""
        raise NotImplementedError

    def flush(self, connection: Connection, generation: int) -> None:
        raise NotImplementedError

    def forget(self) -> None:
        """Drop what is held in memory: another runner may have moved the rows on."""


class Context:
    """What projections share while applying a batch: stream keys and a loader."""

    def __init__(self, keys: StreamKeys, load: Callable[[Table, UUID], LedgerAggregate]):
        self.keys = keys
        self.load = load


@cache
def _delete_rows(table: Table, key_column: str) -> Delete:
    """Delete a generation's rows of some keys. Built once: building a statement and its
    cache key costs SQLAlchemy more than the rest of a small batch's flush."""
    return delete(table).where(
        table.c.generation == bindparam("generation"),
        table.c[key_column].in_(bindparam("keys", expanding=True)),
    )


@cache
def _insert_rows(table: Table) -> Insert:
    return insert(table)


def _add_rows(
    connection: Connection, table: Table, generation: int, rows: list[dict[str, Any]]
) -> None:
    """Add rows to a generation: by COPY on PostgreSQL where the columns allow it."""
    if connection.dialect.name == "postgresql" and _copyable(table):
        _copy_rows(connection, table, generation, rows)
    else:
        connection.execute(_insert_rows(table), [{"generation": generation, **row} for row in rows])


@cache
def _copyable(table: Table) -> bool:
    """Plain columns only: COPY would need JSON encoded by hand."""
    return not any(isinstance(column.type, JSON) for column in table.columns)


class _AggregateProjection(Projection):
    """A projection whose rows are the current state of one kind of aggregate."""

    kind: ClassVar[type[Any]]
    table: ClassVar[Table]

    def __init__(self) -> None:
        self.aggregates: dict[UUID, LedgerAggregate] = {}
        self.dirty: dict[UUID, set[Table]] = {}
        self.touched_by: dict[type[LedgerAggregate.Event], tuple[Table, ...]] = {}

    def handles(self, event_type: type[LedgerAggregate.Event]) -> bool:
        return issubclass(event_type, self.kind.Event)

    def apply(self, position: int, event: LedgerAggregate.Event, context: Context) -> None:
        stream = event.originator_id
        if isinstance(event, LedgerAggregate.Created):
            self.aggregates[stream] = event.mutate(None)
        else:
            aggregate = self.aggregates.get(stream)
            if aggregate is None:
                aggregate = self.aggregates[stream] = context.load(self.table, stream)
            event.mutate(aggregate)
        event_type = type(event)
        touched = self.touched_by.get(event_type)
        if touched is None:
            touched = self.touched_by[event_type] = self.touched(event_type)
        dirty = self.dirty.get(stream)
        if dirty is None:
            self.dirty[stream] = set(touched)
        else:
            dirty.update(touched)

    def touched(self, event_type: type[LedgerAggregate.Event]) -> tuple[Table, ...]:
        """The tables whose rows an event of this type can change: by default all."""
        return self.tables

    def forget(self) -> None:
        self.aggregates.clear()
        self.dirty.clear()

    def flush(self, connection: Connection, generation: int) -> None:
        if not self.dirty:
            return
        # Only the touched tables are rewritten: a QA run would otherwise rewrite all of
        # a major's ~180 scope and gate rows.
        keys: dict[Table, list[str]] = {table: [] for table in self.tables}
        rows: dict[Table, list[dict[str, Any]]] = {table: [] for table in self.tables}
        for stream, touched in self.dirty.items():
            aggregate = self.aggregates[stream]
            key = self.key_of(aggregate)
            for table in touched:
                keys[table].append(key)
            for table, row in self.rows(aggregate, touched):
                if table in touched:
                    rows[table].append(row)
        for table in self.tables:
            if keys[table]:
                connection.execute(
                    _delete_rows(table, self.key_column),
                    {"generation": generation, "keys": keys[table]},
                )
            if rows[table]:
                _add_rows(connection, table, generation, rows[table])
        self.dirty.clear()
        if len(self.aggregates) > 5000:
            self.aggregates.clear()  # bounded memory on big rebuilds; reloaded when touched

    key_column: ClassVar[str]

    def key_of(self, aggregate: Any) -> str:
        raise NotImplementedError

    def rows(
        self, aggregate: Any, touched: Collection[Table]
    ) -> Iterable[tuple[Table, dict[str, Any]]]:
        """The aggregate's rows; those of tables not in ``touched`` may be left out."""
        raise NotImplementedError


class TrainsProjection(_AggregateProjection):
    """Trains with their gates, scope, QA per cycle and beta drops."""

    name = "trains"
    kind = Train
    table = tables.trains
    key_column = "train"
    tables = (
        tables.trains,
        tables.train_gates,
        tables.train_scope,
        tables.train_qa,
        tables.train_beta_drops,
    )

    def touched(self, event_type: type[LedgerAggregate.Event]) -> tuple[Table, ...]:
        # Every event moves the train's version, so its ``trains`` row is always rewritten.
        if issubclass(event_type, Train.QARunRecorded):
            return (tables.trains, tables.train_qa)
        if issubclass(event_type, Train.BetaDropShipped):
            return (tables.trains, tables.train_beta_drops)
        if issubclass(event_type, Train.SupportStatusChanged):
            return (tables.trains,)
        return self.tables

    def key_of(self, aggregate: Train) -> str:
        return aggregate.train_id

    def rows(
        self, aggregate: Train, touched: Collection[Table]
    ) -> Iterable[tuple[Table, dict[str, Any]]]:
        # Only what the event touched is rendered: a QA run on a major would otherwise
        # render its ~150 scope entries to write one row.
        train = aggregate.train_id
        yield (
            tables.trains,
            {
                "train": train,
                "stream": str(aggregate.id),
                "kind": aggregate.kind,
                "parent": aggregate.parent,
                "title": aggregate.title,
                "status": aggregate.status,
                "support": aggregate.support,
                "eol_date": aggregate.eol_date,
                "planned_at": aggregate.planned_at,
                "version": aggregate.version,
            },
        )
        if tables.train_gates in touched:
            for gate in train_gates(aggregate):
                row = {k: v for k, v in gate.items() if k not in ("name", "original_date")}
                yield tables.train_gates, {"train": train, **_jsonable(row, "slips", "evidence")}
        if tables.train_scope in touched:
            for entry in train_scope(aggregate):
                yield tables.train_scope, {"train": train, **entry}
        if tables.train_qa in touched:
            for cycle, run in train_qa_runs(aggregate).items():
                yield tables.train_qa, {"train": train, "cycle": cycle, **run}
        if tables.train_beta_drops in touched:
            for seq, drop in enumerate(aggregate.beta_drops):
                yield tables.train_beta_drops, {"train": train, "seq": seq, **drop.as_dict()}


class FeaturesProjection(_AggregateProjection):
    """Features with their customers, current train and milestones."""

    name = "features"
    kind = Feature
    table = tables.features
    key_column = "feature"
    tables = (tables.features, tables.feature_customers, tables.feature_milestones)

    def key_of(self, aggregate: Feature) -> str:
        return aggregate.key

    def rows(
        self, aggregate: Feature, touched: Collection[Table]
    ) -> Iterable[tuple[Table, dict[str, Any]]]:
        document = feature_document(aggregate)
        key = document["feature"]
        yield (
            tables.features,
            {
                "stream": str(aggregate.id),
                **{k: v for k, v in document.items() if k not in ("customers", "milestones")},
            },
        )
        for demand in document["customers"]:
            yield tables.feature_customers, {"feature": key, **demand}
        for seq, milestone in enumerate(document["milestones"]):
            yield tables.feature_milestones, {"feature": key, "seq": seq, **milestone}


def _copy_rows(
    connection: Connection, table: Table, generation: int, rows: list[dict[str, Any]]
) -> None:
    """Append rows with PostgreSQL's binary COPY, in the batch's own transaction.

    A rebuild writes one QA-run row per event, and a busy server rewrites a train's row
    per event; COPY streams them in one round trip where an INSERT per row would
    dominate. The binary format skips the text formatting of every timestamp and string:
    it was four times as costly per row.
    """
    names, types = _copy_types(table)
    driver_connection: Any = connection.connection.driver_connection
    statement = _copy_statement(table)
    fields = names[1:]
    try:
        with driver_connection.cursor() as cursor, cursor.copy(statement) as copy:
            copy.set_types(types)
            for row in rows:
                copy.write_row([generation, *[row[name] for name in fields]])
    except psycopg.Error as error:
        # Callers see the same SQLAlchemy errors an INSERT would have raised.
        raise DBAPIError.instance(
            statement.as_string(driver_connection), None, error, psycopg.Error
        ) from error


_COPY_TYPES: tuple[tuple[type[Any], str], ...] = (
    (BigInteger, "int8"),  # before Integer, its base class
    (Integer, "int4"),
    (Float, "float8"),
    (Boolean, "bool"),
    (String, "text"),  # Text too; varchar and text share a binary form
    (UTCDateTime, "timestamptz"),
    (Date, "date"),
)


@cache
def _copy_statement(table: Table) -> psycopg_sql.Composed:
    names, _ = _copy_types(table)
    return psycopg_sql.SQL("COPY {} ({}) FROM STDIN (FORMAT BINARY)").format(
        psycopg_sql.Identifier(table.name),
        psycopg_sql.SQL(", ").join(psycopg_sql.Identifier(name) for name in names),
    )


@cache
def _copy_types(table: Table) -> tuple[list[str], list[str]]:
    """The table's columns, ``generation`` first, and their PostgreSQL binary types."""
    columns = sorted(table.columns, key=lambda column: column.name != "generation")
    types = []
    for column in columns:
        found = next((name for kind, name in _COPY_TYPES if isinstance(column.type, kind)), None)
        if found is None:
            raise TypeError(f"no binary COPY type for {table.name}.{column.name}: {column.type}")
        types.append(found)
    return [column.name for column in columns], types


def _jsonable(row: dict[str, Any], *fields: str) -> dict[str, Any]:
    """Dates inside JSON columns as ISO text, so every backend stores the same thing."""
    return {**row, **{field: _iso(row[field]) for field in fields}}


def _iso(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: _iso(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_iso(v) for v in value]
    if hasattr(value, "isoformat"):
        return value.isoformat()
    return value


# --------------------------------------------------------------- event rows

JOURNEY_ACTIONS: dict[type[LedgerAggregate.Event], str] = {
    Feature.Registered: "registered",
    Feature.CustomerDemandRecorded: "customer_demand",
    Feature.ProposedForTrain: "proposed",
    Feature.CommittedToTrain: "commit",
    Feature.StretchedInTrain: "stretch",
    Feature.DroppedFromTrain: "drop",
    Feature.MovedBetweenTrains: "move",
    Feature.AddedToTrain: "add",
    Feature.DeliveredInTrain: "delivered",
    Feature.MilestoneDelivered: "milestone",
}
AUDITED = {
    Feature.CommittedToTrain,
    Feature.StretchedInTrain,
    Feature.DroppedFromTrain,
    Feature.MovedBetweenTrains,
    Feature.AddedToTrain,
}
# Fields an event carries that are already columns of the journey, or chain bookkeeping.
_NOT_DETAILS = {
    "originator_id",
    "originator_version",
    "originator_topic",
    "timestamp",
    "meta",
    "prev_hash",
    "digest",
    "reason",
    "requested_by",
    "train",
}


def provenance(position: int, event: LedgerAggregate.Event) -> dict[str, Any]:
    """The who, how and when columns of one event."""
    meta = event.meta
    recorded_at: datetime = event.timestamp
    return {
        "position": position,
        "actor": meta.actor,
        "recorded_by": meta.recorded_by,
        "source": meta.source,
        "source_ref": meta.source_ref,
        "correlation_id": meta.correlation_id,
        "reason": getattr(event, "reason", None),
        "requested_by": getattr(event, "requested_by", None),
        "occurred_at": meta.occurred_at,
        "recorded_at": recorded_at,
        "lateness_seconds": (recorded_at - meta.occurred_at).total_seconds(),
    }


class _RowsProjection(Projection):
    """A projection that appends one row per relevant event."""

    table: ClassVar[Table]

    def __init__(self) -> None:
        self.pending: list[dict[str, Any]] = []

    def forget(self) -> None:
        self.pending.clear()

    def flush(self, connection: Connection, generation: int) -> None:
        if self.pending:
            _add_rows(connection, self.table, generation, self.pending)
            self.pending.clear()


class JourneyProjection(_RowsProjection):
    """Every event about a feature, across trains, with actor, reason, times and lateness."""

    name = "journeys"
    table = tables.journey
    tables = (tables.journey,)

    def handles(self, event_type: type[LedgerAggregate.Event]) -> bool:
        return issubclass(event_type, Train.BetaDropShipped) or event_type in JOURNEY_ACTIONS

    def apply(self, position: int, event: LedgerAggregate.Event, context: Context) -> None:
        if isinstance(event, Train.BetaDropShipped):
            train = context.keys.key(event.originator_id)
            for feature in event.features:
                self.pending.append(
                    {
                        **provenance(position, event),
                        "feature": feature,
                        "train": train,
                        "action": "beta_drop",
                        "event_type": "BetaDropShipped",
                        "details": {"build": event.build, "customers": list(event.customers)},
                    }
                )
            return
        action = JOURNEY_ACTIONS[type(event)]
        details = {k: _iso(v) for k, v in vars(event).items() if k not in _NOT_DETAILS}
        self.pending.append(
            {
                **provenance(position, event),
                "feature": context.keys.key(event.originator_id),
                "train": getattr(event, "train", None) or getattr(event, "to_train", None),
                "action": action,
                "event_type": type(event).__name__,
                "details": details,
            }
        )


class QARunsProjection(_RowsProjection):
    """Every QA run of every train, in the order recorded, with both times."""

    name = "qa_runs"
    table = tables.train_qa_runs
    tables = (tables.train_qa_runs,)
    generation_indexes = (qa_runs_latest,)

    def handles(self, event_type: type[LedgerAggregate.Event]) -> bool:
        return issubclass(event_type, Train.QARunRecorded)

    def apply(self, position: int, event: LedgerAggregate.Event, context: Context) -> None:
        assert isinstance(event, Train.QARunRecorded)
        self.pending.append(
            {
                "position": position,
                "train": context.keys.key(event.originator_id),
                "cycle": event.cycle,
                "build": event.build,
                "total": event.total,
                "passed": event.passed,
                "failed": event.failed,
                "blocked": event.blocked,
                "occurred_at": event.meta.occurred_at,
                "recorded_at": event.timestamp,
            }
        )


class AuditProjection(_RowsProjection):
    """The change-management decisions: commit, stretch, drop, move and add."""

    name = "audit"
    table = tables.audit
    tables = (tables.audit,)

    def handles(self, event_type: type[LedgerAggregate.Event]) -> bool:
        return event_type in AUDITED

    def apply(self, position: int, event: LedgerAggregate.Event, context: Context) -> None:
        moved = isinstance(event, Feature.MovedBetweenTrains)
        self.pending.append(
            {
                **provenance(position, event),
                "feature": context.keys.key(event.originator_id),
                "train": event.from_train if moved else event.train,  # type: ignore[attr-defined]
                "to_train": event.to_train if moved else None,  # type: ignore[attr-defined]
                "action": JOURNEY_ACTIONS[type(event)],
                "exception": bool(getattr(event, "exception", False)),
            }
        )


def all_projections() -> list[Projection]:
    """A fresh instance of every projection, in the order the runner applies them."""
    return [
        TrainsProjection(),
        FeaturesProjection(),
        JourneyProjection(),
        AuditProjection(),
        QARunsProjection(),
    ]


PROJECTION_NAMES = tuple(projection.name for projection in all_projections())
