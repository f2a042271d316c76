"""Bearer tokens may expire: ``api_tokens.expires_at``, NULL for a token that never does.

Revision ID: 0007
Revises: 0006
Create Date: 2026-11-27
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0007"
down_revision: str | Sequence[str] | None = "0006"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    # Nullable, so the tokens already made keep working as they did: until revoked.
    op.add_column("api_tokens", sa.Column("expires_at", sa.DateTime(timezone=True), nullable=True))


def downgrade() -> None:
    # SQLite drops a column by copying the table; batch mode does that and is a plain
    # ALTER TABLE on PostgreSQL.
    with op.batch_alter_table("api_tokens") as batch:
        batch.drop_column("expires_at")
