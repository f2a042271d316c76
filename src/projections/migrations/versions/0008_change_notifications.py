"""NOTIFY on changes of projection state and of tokens, for servers that listen.

A server answers reads from memory only while it hears these (``projections.watch``);
SQLite has no NOTIFY, and its servers ask the database every time.

Revision ID: 0008
Revises: 0007
Create Date: 2026-11-27
"""

from __future__ import annotations

from collections.abc import Sequence

from alembic import op

revision: str = "0008"
down_revision: str | Sequence[str] | None = "0007"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

# Identical notifications within one transaction are delivered once, at its commit.
UPGRADE = """
CREATE FUNCTION ledger_notify_projection_state() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    PERFORM pg_notify('ledger_projection_state', '');
    RETURN NULL;
END $$;

CREATE TRIGGER projection_state_changed
    AFTER INSERT OR UPDATE OF generation, position OR DELETE ON projection_state
    FOR EACH STATEMENT EXECUTE FUNCTION ledger_notify_projection_state();

CREATE FUNCTION ledger_notify_api_tokens() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    PERFORM pg_notify('ledger_api_tokens', '');
    RETURN NULL;
END $$;

CREATE TRIGGER api_tokens_changed
    AFTER INSERT OR UPDATE OR DELETE OR TRUNCATE ON api_tokens
    FOR EACH STATEMENT EXECUTE FUNCTION ledger_notify_api_tokens();
"""

DOWNGRADE = """
DROP TRIGGER api_tokens_changed ON api_tokens;
DROP FUNCTION ledger_notify_api_tokens();
DROP TRIGGER projection_state_changed ON projection_state;
DROP FUNCTION ledger_notify_projection_state();
"""


def upgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":
        op.execute(UPGRADE)


def downgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":
        op.execute(DOWNGRADE)
