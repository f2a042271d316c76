"""QA runs: the as-of index covers one generation and is built when it goes live.

``ix_train_qa_runs_cycle`` over every generation was maintained row by row as a rebuild
appended QA runs, which cost more than the rows themselves. It gives way to
``gx_train_qa_runs_g<N>`` on (train, cycle, occurred_at, position) ``WHERE generation =
N``: the runner creates it for a new projection's first generation and for a rebuilt
generation when it is swapped in (``projections.tables.GenerationIndex``). Here it is
made for the live generation of an existing database.

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


def _generations() -> list[int]:
    rows = op.get_bind().execute(
        sa.text(
            "SELECT generation, rebuild_generation FROM projection_state WHERE name = 'qa_runs'"
        )
    )
    return [int(generation) for row in rows for generation in row if generation is not None]


def upgrade() -> None:
    op.drop_index("ix_train_qa_runs_cycle", table_name="train_qa_runs")
    for generation in _generations()[:1]:  # a rebuilding generation gets its own at the swap
        op.create_index(
            f"gx_train_qa_runs_g{generation}",
            "train_qa_runs",
            ["train", "cycle", "occurred_at", "position"],
            postgresql_include=["recorded_at"],
            postgresql_where=sa.text(f"generation = {generation}"),
            sqlite_where=sa.text(f"generation = {generation}"),
        )


def downgrade() -> None:
    for generation in _generations():
        op.execute(f"DROP INDEX IF EXISTS gx_train_qa_runs_g{generation}")
    op.create_index(
        "ix_train_qa_runs_cycle",
        "train_qa_runs",
        ["generation", "train", "cycle", "occurred_at"],
    )
