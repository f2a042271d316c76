"""Alembic's environment for the projection tables (``projections.tables.metadata``).

Three ways in: the application passes its own connection (``config.attributes
["connection"]``, see ``projections.schema.upgrade``); a caller sets ``sqlalchemy.url``;
or, from the ``alembic`` command line, the database is ``LEDGER_DATABASE_URL`` like every
other ledger command.
"""

from __future__ import annotations

from logging.config import fileConfig

from alembic import context
from sqlalchemy import Connection, Engine, engine_from_config, pool

from ledger.config import Database, Settings
from projections.schema import engine_for, include_name, lock_for_migration
from projections.tables import metadata

config = context.config
target_metadata = metadata

# Only the alembic command line reads alembic.ini's logging; an application that hands
# over its connection keeps its own logging setup.
if config.config_file_name is not None and "connection" not in config.attributes:
    fileConfig(config.config_file_name, disable_existing_loggers=False)


def _engine() -> Engine:
    if config.get_main_option("sqlalchemy.url"):
        return engine_from_config(
            config.get_section(config.config_ini_section, {}),
            prefix="sqlalchemy.",
            poolclass=pool.NullPool,
        )
    return engine_for(Database.from_url(Settings().database_url))


def _configure(connection: Connection) -> None:
    context.configure(
        connection=connection,
        target_metadata=target_metadata,
        # SQLite cannot ALTER most things: batch mode copies the table instead.
        render_as_batch=connection.dialect.name == "sqlite",
        compare_type=True,
        include_name=include_name,
    )


def run_migrations_offline() -> None:
    """Write the SQL for the DBA instead of running it (``alembic upgrade head --sql``)."""
    url = _engine().url
    context.configure(
        url=url,
        target_metadata=target_metadata,
        literal_binds=True,
        dialect_opts={"paramstyle": "named"},
        render_as_batch=url.get_backend_name() == "sqlite",
        compare_type=True,
        include_name=include_name,
    )
    with context.begin_transaction():
        context.run_migrations()


def run_migrations_online() -> None:
    """Run the migrations on the caller's connection, or on one of our own."""
    given: Connection | None = config.attributes.get("connection")
    if given is not None:
        # The caller owns the transaction (and the schema lock); Alembic sees it is
        # already in one and leaves the commit to the caller.
        _configure(given)
        with context.begin_transaction():
            context.run_migrations()
        return

    engine = _engine()
    try:
        with engine.connect() as connection:
            lock_for_migration(connection)
            _configure(connection)
            with context.begin_transaction():
                context.run_migrations()
            connection.commit()
    finally:
        engine.dispose()


if context.is_offline_mode():
    run_migrations_offline()
else:
    run_migrations_online()
