"""The projection tables (SQLAlchemy Core); Alembic owns their schema (``projections/migrations``).

Every read-model row carries a ``generation``: a rebuild writes the next generation beside
the live one and then flips ``projection_state.generation``, so readers never go offline.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from typing import ClassVar

from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    Column,
    Connection,
    Date,
    DateTime,
    Float,
    Index,
    Integer,
    LargeBinary,
    MetaData,
    String,
    Table,
    Text,
    TypeDecorator,
)
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.engine import Dialect


class UTCDateTime(TypeDecorator[datetime]):
    """A timestamp stored in UTC and read back as UTC on every backend.

    SQLite keeps no offset: without this, 12:00+02:00 would come back as 12:00 and
    compare as text against other offsets.
    """

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if value.utcoffset() is None:
            raise ValueError(f"timestamp without a UTC offset: {value.isoformat()}")
        return value.astimezone(UTC)

    def process_result_value(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


def insert_into(table: Table, connection: Connection) -> postgresql.Insert | sqlite.Insert:
    """An INSERT in the connection's dialect, which takes ``ON CONFLICT`` clauses."""
    if connection.dialect.name == "postgresql":
        return postgresql.insert(table)
    return sqlite.insert(table)


metadata = MetaData()

projection_state = Table(
    "projection_state",
    metadata,
    Column("name", String(64), primary_key=True),
    Column("generation", Integer, nullable=False),
    Column("position", BigInteger, nullable=False),
    Column("rebuild_generation", Integer, nullable=True),
    Column("rebuild_position", BigInteger, nullable=True),
    Column("updated_at", UTCDateTime(), nullable=False),
)

trains = Table(
    "trains",
    metadata,
    Column("generation", Integer, primary_key=True),
    Column("train", String(64), primary_key=True),
    Column("stream", String(36), nullable=False),
    Column("kind", String(16), nullable=False),
    Column("parent", String(64)),
    Column("title", Text),
    Column("status", String(16), nullable=False),
    Column("support", String(16)),
    Column("eol_date", Date),
    Column("planned_at", UTCDateTime(), nullable=False),
    Column("version", Integer, nullable=False),
    Index("ix_trains_status", "generation", "status"),
    Index("ix_trains_stream", "generation", "stream"),
)

train_gates = Table(
    "train_gates",
    metadata,
    Column("generation", Integer, primary_key=True),
    Column("train", String(64), primary_key=True),
    Column("gate", Integer, primary_key=True),
    Column("scheduled_for", Date),
    Column("slips", JSON, nullable=False),
    Column("outcome", String(16)),
    Column("conditions", Text),
    Column("notes", Text),
    Column("decided_at", UTCDateTime()),
    Column("evidence", JSON, nullable=False),
)

train_scope = Table(
    "train_scope",
    metadata,
    Column("generation", Integer, primary_key=True),
    Column("train", String(64), primary_key=True),
    Column("feature", String(64), primary_key=True),
    Column("classification", String(16), nullable=False),
    Column("status", String(16), nullable=False),
    Column("moved_to", String(64)),
)

train_qa = Table(
    "train_qa",
    metadata,
    Column("generation", Integer, primary_key=True),
    Column("train", String(64), primary_key=True),
    Column("cycle", String(16), primary_key=True),
    Column("build", Text, nullable=False),
    Column("total", Integer, nullable=False),
    Column("passed", Integer, nullable=False),
    Column("failed", Integer, nullable=False),
    Column("blocked", Integer, nullable=False),
    Column("occurred_at", UTCDateTime(), nullable=False),
)

# Every QA run, so as-of queries find a cycle's latest run by index instead of replaying
# a stream that is mostly QA activity.
train_qa_runs = Table(
    "train_qa_runs",
    metadata,
    Column("generation", Integer, primary_key=True),
    Column("position", BigInteger, primary_key=True),
    Column("train", String(64), nullable=False),
    Column("cycle", String(16), nullable=False),
    Column("build", Text, nullable=False),
    Column("total", Integer, nullable=False),
    Column("passed", Integer, nullable=False),
    Column("failed", Integer, nullable=False),
    Column("blocked", Integer, nullable=False),
    Column("occurred_at", UTCDateTime(), nullable=False),
    Column("recorded_at", UTCDateTime(), nullable=False),
)


@dataclass(frozen=True)
class GenerationIndex:
    """An index over one generation's rows only (``WHERE generation = N``).

    A rebuild appends a row per QA run; maintaining an index as it goes cost more than
    the rows themselves. Such an index is built in one pass when its generation goes
    live, and dropped with it. Queries must name the generation as a literal for the
    planner to use it. Alembic leaves these indexes alone (``schema.include_name``).
    """

    table: Table
    columns: tuple[str, ...]
    include: tuple[str, ...] = ()

    PREFIX: ClassVar[str] = "gx_"

    def name(self, generation: int) -> str:
        return f"{self.PREFIX}{self.table.name}_g{generation}"

    def create(self, connection: Connection, generation: int) -> None:
        preparer = connection.dialect.identifier_preparer
        columns = ", ".join(preparer.quote(column) for column in self.columns)
        include = ""
        if self.include and connection.dialect.name == "postgresql":
            include = f" INCLUDE ({', '.join(preparer.quote(c) for c in self.include)})"
        connection.exec_driver_sql(
            f"CREATE INDEX IF NOT EXISTS {preparer.quote(self.name(generation))} "
            f"ON {preparer.quote(self.table.name)} ({columns}){include} "
            f"WHERE generation = {int(generation)}"
        )

    def drop(self, connection: Connection, generation: int) -> None:
        preparer = connection.dialect.identifier_preparer
        connection.exec_driver_sql(f"DROP INDEX IF EXISTS {preparer.quote(self.name(generation))}")


qa_runs_latest = GenerationIndex(
    train_qa_runs,
    ("train", "cycle", "occurred_at", "position"),
    include=("recorded_at",),
)
"""Serves both as-of look-ups: the latest run of a cycle (the key ends in position, the
tie-break, so LIMIT 1 reads one entry) and how many runs had occurred by then."""

train_beta_drops = Table(
    "train_beta_drops",
    metadata,
    Column("generation", Integer, primary_key=True),
    Column("train", String(64), primary_key=True),
    Column("seq", Integer, primary_key=True),
    Column("build", Text, nullable=False),
    Column("customers", JSON, nullable=False),
    Column("features", JSON, nullable=False),
    Column("occurred_at", UTCDateTime(), nullable=False),
)

features = Table(
    "features",
    metadata,
    Column("generation", Integer, primary_key=True),
    Column("feature", String(64), primary_key=True),
    Column("stream", String(36), nullable=False),
    Column("title", Text, nullable=False),
    Column("owner", Text),
    Column("architect", Text),
    Column("train", String(64)),
    Column("classification", String(16)),
    Column("status", String(16)),
    Column("customer_weight", Float, nullable=False),
    Column("version", Integer, nullable=False),
    Index("ix_features_stream", "generation", "stream"),
)

feature_customers = Table(
    "feature_customers",
    metadata,
    Column("generation", Integer, primary_key=True),
    Column("feature", String(64), primary_key=True),
    Column("customer", String(200), primary_key=True),
    Column("weight", Float, nullable=False),
    Column("note", Text),
)

feature_milestones = Table(
    "feature_milestones",
    metadata,
    Column("generation", Integer, primary_key=True),
    Column("feature", String(64), primary_key=True),
    Column("seq", Integer, primary_key=True),
    Column("train", String(64), nullable=False),
    Column("milestone", Text, nullable=False),
    Column("note", Text),
    Column("occurred_at", UTCDateTime(), nullable=False),
)


def _event_columns() -> list[Column[object]]:
    """Who, how and when: the provenance columns shared by the journey and the audit log."""
    return [
        Column("actor", Text, nullable=False),
        Column("recorded_by", Text, nullable=False),
        Column("source", String(16), nullable=False),
        Column("source_ref", Text),
        Column("correlation_id", Text, nullable=False),
        Column("reason", Text),
        Column("requested_by", Text),
        Column("occurred_at", UTCDateTime(), nullable=False),
        Column("recorded_at", UTCDateTime(), nullable=False),
        Column("lateness_seconds", Float, nullable=False),
    ]


journey = Table(
    "journey",
    metadata,
    Column("generation", Integer, primary_key=True),
    Column("position", BigInteger, primary_key=True),
    Column("feature", String(64), primary_key=True),
    Column("train", String(64)),
    Column("action", String(32), nullable=False),
    Column("event_type", String(64), nullable=False),
    Column("details", JSON, nullable=False),
    *_event_columns(),
    Index("ix_journey_feature", "generation", "feature", "occurred_at"),
)

audit = Table(
    "audit",
    metadata,
    Column("generation", Integer, primary_key=True),
    Column("position", BigInteger, primary_key=True),
    Column("train", String(64), nullable=False),
    Column("to_train", String(64)),
    Column("feature", String(64), nullable=False),
    Column("action", String(16), nullable=False),
    Column("exception", Boolean, nullable=False),
    *_event_columns(),
    Index("ix_audit_train", "generation", "train", "position"),
    Index("ix_audit_feature", "generation", "feature", "position"),
)

# Which train or feature each event stream belongs to: stream ids are one-way hashes.
stream_keys = Table(
    "stream_keys",
    metadata,
    Column("stream", String(36), primary_key=True),
    Column("kind", String(16), nullable=False),
    Column("key", String(64), nullable=False),
)

# Not a projection: the API's bearer tokens live beside the read models so that one
# database URL is all a server needs. Only a SHA-256 of each token is kept; the token
# itself is shown once, when it is made. A token without ``expires_at`` never expires.
api_tokens = Table(
    "api_tokens",
    metadata,
    Column("name", String(64), primary_key=True),
    Column("role", String(16), nullable=False),
    Column("token_hash", String(64), nullable=False),
    Column("created_at", UTCDateTime(), nullable=False),
    Column("revoked_at", UTCDateTime(), nullable=True),
    Column("expires_at", UTCDateTime(), nullable=True),
    Index("ix_api_tokens_token_hash", "token_hash", unique=True),
)

# Not a projection either: the API's Idempotency-Key claims and the answers they gave.
# A rebuild never touches them, and a retry after a rebuild still finds its first answer.
idempotency_keys = Table(
    "idempotency_keys",
    metadata,
    Column("principal", String(64), primary_key=True),
    Column("key", String(200), primary_key=True),
    Column("fingerprint", String(64), nullable=False),
    Column("status", String(16), nullable=False),
    Column("response_status", Integer, nullable=True),
    Column("response_headers", JSON, nullable=True),
    Column("response_body", Text, nullable=True),
    Column("created_at", UTCDateTime(), nullable=False),
    Column("claimed_at", UTCDateTime(), nullable=False),
    Column("completed_at", UTCDateTime(), nullable=True),
)

# Not projections: the webhook inbox and what QTest told us. Every verified delivery is
# stored here first, raw, and mapped to ledger commands from here (``integrations``).
# A delivery's identity is unique per integration, so a retried delivery is stored once.
DeliveryId = BigInteger().with_variant(Integer(), "sqlite")  # SQLite numbers only INTEGER keys

webhook_deliveries = Table(
    "webhook_deliveries",
    metadata,
    Column("id", DeliveryId, primary_key=True, autoincrement=True),
    Column("integration", String(16), nullable=False),
    Column("delivery_key", String(200), nullable=False),
    Column("event_type", String(100), nullable=False),
    Column("headers", JSON, nullable=False),
    Column("body", LargeBinary, nullable=False),
    Column("received_at", UTCDateTime(), nullable=False),
    Column("status", String(16), nullable=False),
    Column("reason", Text, nullable=True),
    Column("attempts", Integer, nullable=False),
    Column("next_attempt_at", UTCDateTime(), nullable=False),
    Column("processed_at", UTCDateTime(), nullable=True),
    Column("positions", JSON, nullable=True),
    Index("ux_webhook_deliveries_key", "integration", "delivery_key", unique=True),
    Index("ix_webhook_deliveries_due", "status", "next_attempt_at", "id"),
)

# Each QTest test run once, at the latest status QTest gave us: the cycle's totals are
# counted from here, so a test run logged many times counts once.
qtest_test_runs = Table(
    "qtest_test_runs",
    metadata,
    Column("project_id", BigInteger, primary_key=True),
    Column("test_run_id", BigInteger, primary_key=True),
    Column("train", String(64), nullable=False),
    Column("cycle", String(16), nullable=False),
    Column("test_log_id", BigInteger, nullable=False),
    Column("status", String(16), nullable=False),
    Column("status_name", String(64), nullable=False),
    Column("executed_at", UTCDateTime(), nullable=True),
    Column("build", Text, nullable=True),
    Column("delivery_id", DeliveryId, nullable=False),
    Index("ix_qtest_test_runs_cycle", "train", "cycle", "status"),
)

# A (train, cycle) whose test runs changed (``revision``) since its totals were last
# recorded as a QA run (``recorded_revision``): the inbox worker records it again.
qtest_cycle_tallies = Table(
    "qtest_cycle_tallies",
    metadata,
    Column("train", String(64), primary_key=True),
    Column("cycle", String(16), primary_key=True),
    Column("revision", Integer, nullable=False),
    Column("recorded_revision", Integer, nullable=False),
    Column("reason", Text, nullable=True),
)
