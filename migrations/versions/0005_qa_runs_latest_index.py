"""QA runs keyed for "the latest run of a cycle" and "how many runs", with one index.

The primary key ends in ``position`` so that ``ORDER BY occurred_at DESC, position DESC
LIMIT 1`` reads one entry instead of sorting the cycle's runs, and a count is a range
of the same index. The old key (generation, position) and the second index cost the
rebuild two index insertions per QA run. A primary key cannot be changed in place on
SQLite, so the table is made anew and the ``qa_runs`` projection starts again from
position 0: the runner re-applies the log to it alone.

Revision ID: 0005
Revises: 0004
Create Date: 2026-11-26
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0005"
down_revision: str | Sequence[str] | None = "0004"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def _create(*key: str) -> None:
    op.create_table(
        "train_qa_runs",
        sa.Column("generation", sa.Integer(), nullable=False),
        sa.Column("position", sa.BigInteger(), nullable=False),
        sa.Column("train", sa.String(length=64), nullable=False),
        sa.Column("cycle", sa.String(length=16), nullable=False),
        sa.Column("build", sa.Text(), nullable=False),
        sa.Column("total", sa.Integer(), nullable=False),
        sa.Column("passed", sa.Integer(), nullable=False),
        sa.Column("failed", sa.Integer(), nullable=False),
        sa.Column("blocked", sa.Integer(), nullable=False),
        sa.Column("occurred_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("recorded_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint(*key),
    )


def _start_over() -> None:
    op.drop_table("train_qa_runs")
    op.execute("DELETE FROM projection_state WHERE name = 'qa_runs'")


def upgrade() -> None:
    _start_over()
    _create("generation", "train", "cycle", "occurred_at", "position")


def downgrade() -> None:
    _start_over()
    _create("generation", "position")
    op.create_index(
        "ix_train_qa_runs_cycle",
        "train_qa_runs",
        ["generation", "train", "cycle", "occurred_at"],
    )
