"""The projection tables, as in src/projections/tables.py when projections began.

Revision ID: 0001
Revises:
Create Date: 2026-11-26
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0001"
down_revision: str | Sequence[str] | None = None
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def _event_columns() -> list[sa.Column[object]]:
    # A copy, not an import of tables.py: a revision must keep creating what it created
    # then, whatever the tables module says later.
    return [
        sa.Column("actor", sa.Text(), nullable=False),
        sa.Column("recorded_by", sa.Text(), nullable=False),
        sa.Column("source", sa.String(length=16), nullable=False),
        sa.Column("source_ref", sa.Text(), nullable=True),
        sa.Column("correlation_id", sa.Text(), nullable=False),
        sa.Column("reason", sa.Text(), nullable=True),
        sa.Column("requested_by", sa.Text(), nullable=True),
        sa.Column("occurred_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("recorded_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("lateness_seconds", sa.Float(), nullable=False),
    ]


def upgrade() -> None:
    op.create_table(
        "projection_state",
        sa.Column("name", sa.String(length=64), nullable=False),
        sa.Column("generation", sa.Integer(), nullable=False),
        sa.Column("position", sa.BigInteger(), nullable=False),
        sa.Column("rebuild_generation", sa.Integer(), nullable=True),
        sa.Column("rebuild_position", sa.BigInteger(), nullable=True),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("name"),
    )
    op.create_table(
        "trains",
        sa.Column("generation", sa.Integer(), nullable=False),
        sa.Column("train", sa.String(length=64), nullable=False),
        sa.Column("stream", sa.String(length=36), nullable=False),
        sa.Column("kind", sa.String(length=16), nullable=False),
        sa.Column("parent", sa.String(length=64), nullable=True),
        sa.Column("title", sa.Text(), nullable=True),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("support", sa.String(length=16), nullable=True),
        sa.Column("eol_date", sa.Date(), nullable=True),
        sa.Column("planned_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("version", sa.Integer(), nullable=False),
        sa.PrimaryKeyConstraint("generation", "train"),
    )
    op.create_index("ix_trains_status", "trains", ["generation", "status"])
    op.create_index("ix_trains_stream", "trains", ["generation", "stream"])
    op.create_table(
        "train_gates",
        sa.Column("generation", sa.Integer(), nullable=False),
        sa.Column("train", sa.String(length=64), nullable=False),
        sa.Column("gate", sa.Integer(), nullable=False),
        sa.Column("scheduled_for", sa.Date(), nullable=True),
        sa.Column("slips", sa.JSON(), nullable=False),
        sa.Column("outcome", sa.String(length=16), nullable=True),
        sa.Column("conditions", sa.Text(), nullable=True),
        sa.Column("notes", sa.Text(), nullable=True),
        sa.Column("decided_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("evidence", sa.JSON(), nullable=False),
        sa.PrimaryKeyConstraint("generation", "train", "gate"),
    )
    op.create_table(
        "train_scope",
        sa.Column("generation", sa.Integer(), nullable=False),
        sa.Column("train", sa.String(length=64), nullable=False),
        sa.Column("feature", sa.String(length=64), nullable=False),
        sa.Column("classification", sa.String(length=16), nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("moved_to", sa.String(length=64), nullable=True),
        sa.PrimaryKeyConstraint("generation", "train", "feature"),
    )
    op.create_table(
        "train_qa",
        sa.Column("generation", sa.Integer(), nullable=False),
        sa.Column("train", sa.String(length=64), nullable=False),
        sa.Column("cycle", sa.String(length=16), nullable=False),
        sa.Column("build", sa.Text(), nullable=False),
        sa.Column("total", sa.Integer(), nullable=False),
        sa.Column("passed", sa.Integer(), nullable=False),
        sa.Column("failed", sa.Integer(), nullable=False),
        sa.Column("blocked", sa.Integer(), nullable=False),
        sa.Column("occurred_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("generation", "train", "cycle"),
    )
    op.create_table(
        "train_beta_drops",
        sa.Column("generation", sa.Integer(), nullable=False),
        sa.Column("train", sa.String(length=64), nullable=False),
        sa.Column("seq", sa.Integer(), nullable=False),
        sa.Column("build", sa.Text(), nullable=False),
        sa.Column("customers", sa.JSON(), nullable=False),
        sa.Column("features", sa.JSON(), nullable=False),
        sa.Column("occurred_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("generation", "train", "seq"),
    )
    op.create_table(
        "features",
        sa.Column("generation", sa.Integer(), nullable=False),
        sa.Column("feature", sa.String(length=64), nullable=False),
        sa.Column("stream", sa.String(length=36), nullable=False),
        sa.Column("title", sa.Text(), nullable=False),
        sa.Column("owner", sa.Text(), nullable=True),
        sa.Column("architect", sa.Text(), nullable=True),
        sa.Column("train", sa.String(length=64), nullable=True),
        sa.Column("classification", sa.String(length=16), nullable=True),
        sa.Column("status", sa.String(length=16), nullable=True),
        sa.Column("customer_weight", sa.Float(), nullable=False),
        sa.Column("version", sa.Integer(), nullable=False),
        sa.PrimaryKeyConstraint("generation", "feature"),
    )
    op.create_index("ix_features_stream", "features", ["generation", "stream"])
    op.create_table(
        "feature_customers",
        sa.Column("generation", sa.Integer(), nullable=False),
        sa.Column("feature", sa.String(length=64), nullable=False),
        sa.Column("customer", sa.String(length=200), nullable=False),
        sa.Column("weight", sa.Float(), nullable=False),
        sa.Column("note", sa.Text(), nullable=True),
        sa.PrimaryKeyConstraint("generation", "feature", "customer"),
    )
    op.create_table(
        "feature_milestones",
        sa.Column("generation", sa.Integer(), nullable=False),
        sa.Column("feature", sa.String(length=64), nullable=False),
        sa.Column("seq", sa.Integer(), nullable=False),
        sa.Column("train", sa.String(length=64), nullable=False),
        sa.Column("milestone", sa.Text(), nullable=False),
        sa.Column("note", sa.Text(), nullable=True),
        sa.Column("occurred_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("generation", "feature", "seq"),
    )
    op.create_table(
        "journey",
        sa.Column("generation", sa.Integer(), nullable=False),
        sa.Column("position", sa.BigInteger(), nullable=False),
        sa.Column("feature", sa.String(length=64), nullable=False),
        sa.Column("train", sa.String(length=64), nullable=True),
        sa.Column("action", sa.String(length=32), nullable=False),
        sa.Column("event_type", sa.String(length=64), nullable=False),
        sa.Column("details", sa.JSON(), nullable=False),
        *_event_columns(),
        sa.PrimaryKeyConstraint("generation", "position", "feature"),
    )
    op.create_index("ix_journey_feature", "journey", ["generation", "feature", "occurred_at"])
    op.create_table(
        "audit",
        sa.Column("generation", sa.Integer(), nullable=False),
        sa.Column("position", sa.BigInteger(), nullable=False),
        sa.Column("train", sa.String(length=64), nullable=False),
        sa.Column("to_train", sa.String(length=64), nullable=True),
        sa.Column("feature", sa.String(length=64), nullable=False),
        sa.Column("action", sa.String(length=16), nullable=False),
        sa.Column("exception", sa.Boolean(), nullable=False),
        *_event_columns(),
        sa.PrimaryKeyConstraint("generation", "position"),
    )
    op.create_index("ix_audit_train", "audit", ["generation", "train", "position"])
    op.create_index("ix_audit_feature", "audit", ["generation", "feature", "position"])
    op.create_table(
        "stream_keys",
        sa.Column("stream", sa.String(length=36), nullable=False),
        sa.Column("kind", sa.String(length=16), nullable=False),
        sa.Column("key", sa.String(length=64), nullable=False),
        sa.PrimaryKeyConstraint("stream"),
    )


def downgrade() -> None:
    # Dropping a table drops its indexes with it.
    for table in (
        "stream_keys",
        "audit",
        "journey",
        "feature_milestones",
        "feature_customers",
        "features",
        "train_beta_drops",
        "train_qa",
        "train_scope",
        "train_gates",
        "trains",
        "projection_state",
    ):
        op.drop_table(table)
