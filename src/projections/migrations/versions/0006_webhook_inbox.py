"""The webhook inbox, QTest's test runs at their latest status, and the cycles to re-tally.

Revision ID: 0006
Revises: 0005
Create Date: 2026-11-26
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0006"
down_revision: str | Sequence[str] | None = "0005"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

DELIVERY_ID = sa.BigInteger().with_variant(sa.Integer(), "sqlite")


def upgrade() -> None:
    op.create_table(
        "webhook_deliveries",
        sa.Column("id", DELIVERY_ID, autoincrement=True, nullable=False),
        sa.Column("integration", sa.String(length=16), nullable=False),
        sa.Column("delivery_key", sa.String(length=200), nullable=False),
        sa.Column("event_type", sa.String(length=100), nullable=False),
        sa.Column("headers", sa.JSON(), nullable=False),
        sa.Column("body", sa.LargeBinary(), nullable=False),
        sa.Column("received_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("reason", sa.Text(), nullable=True),
        sa.Column("attempts", sa.Integer(), nullable=False),
        sa.Column("next_attempt_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("processed_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("positions", sa.JSON(), nullable=True),
        sa.PrimaryKeyConstraint("id"),
    )
    op.create_index(
        "ux_webhook_deliveries_key",
        "webhook_deliveries",
        ["integration", "delivery_key"],
        unique=True,
    )
    op.create_index(
        "ix_webhook_deliveries_due", "webhook_deliveries", ["status", "next_attempt_at", "id"]
    )
    op.create_table(
        "qtest_test_runs",
        sa.Column("project_id", sa.BigInteger(), nullable=False),
        sa.Column("test_run_id", sa.BigInteger(), nullable=False),
        sa.Column("train", sa.String(length=64), nullable=False),
        sa.Column("cycle", sa.String(length=16), nullable=False),
        sa.Column("test_log_id", sa.BigInteger(), nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("status_name", sa.String(length=64), nullable=False),
        sa.Column("executed_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("build", sa.Text(), nullable=True),
        sa.Column("delivery_id", DELIVERY_ID, nullable=False),
        sa.PrimaryKeyConstraint("project_id", "test_run_id"),
    )
    op.create_index("ix_qtest_test_runs_cycle", "qtest_test_runs", ["train", "cycle", "status"])
    op.create_table(
        "qtest_cycle_tallies",
        sa.Column("train", sa.String(length=64), nullable=False),
        sa.Column("cycle", sa.String(length=16), nullable=False),
        sa.Column("revision", sa.Integer(), nullable=False),
        sa.Column("recorded_revision", sa.Integer(), nullable=False),
        sa.Column("reason", sa.Text(), nullable=True),
        sa.PrimaryKeyConstraint("train", "cycle"),
    )


def downgrade() -> None:
    op.drop_table("qtest_cycle_tallies")
    op.drop_index("ix_qtest_test_runs_cycle", table_name="qtest_test_runs")
    op.drop_table("qtest_test_runs")
    op.drop_index("ix_webhook_deliveries_due", table_name="webhook_deliveries")
    op.drop_index("ux_webhook_deliveries_key", table_name="webhook_deliveries")
    op.drop_table("webhook_deliveries")
