"""The projection tables' database: an engine per backend, and Alembic to keep its schema current.

SQLite (the embedded default) and the in-memory backend upgrade themselves on start;
PostgreSQL is shared, so changing its schema is an operator's decision (``ledger db
upgrade``) and the application only refuses to run against an out-of-date schema.
"""

from __future__ import annotations

import sqlite3
import threading
import time
from pathlib import Path
from typing import Any

import psycopg
import sqlalchemy.exc
from alembic import command
from alembic.config import Config
from alembic.runtime.environment import NameFilterParentNames, NameFilterType
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from eventsourcing.persistence import InterfaceError as StoreInterfaceError
from eventsourcing.persistence import OperationalError as StoreOperationalError
from sqlalchemy import URL, Connection, Engine, create_engine, event, text
from sqlalchemy.pool import StaticPool

from ledger.config import Database
from ledger.exceptions import ConfigurationError
from projections.tables import GenerationIndex, metadata

SQLITE_TIMEOUT_SECONDS = 30
"""How long a SQLite writer waits for the file's lock before giving up.

Projections share the file with the event store, whose writers hold the lock briefly;
an import holds it longer, and waiting beats failing a projection batch.
"""

MIGRATION_LOCK = "release-ledger-projection-schema"

_alembic_in_use = threading.Lock()
"""Alembic's ``context`` and ``op`` are module globals: one migration per process at a time."""

UNAVAILABLE_ERRORS: tuple[type[Exception], ...] = (
    StoreOperationalError,
    StoreInterfaceError,
    sqlalchemy.exc.OperationalError,
    sqlalchemy.exc.InterfaceError,
    sqlalchemy.exc.TimeoutError,
    psycopg.OperationalError,
    psycopg.InterfaceError,
)
"""The database is down, locked or out of connections: worth a retry, not a client's fault."""


def engine_for(database: Database) -> Engine:
    """An engine on the database the event store uses, so projections live beside it."""
    if database.backend == "postgresql":
        return _postgres_engine(database.env)
    if database.backend == "sqlite":
        return _sqlite_engine(database.location)
    if database.backend == "memory":
        # Every connection to "sqlite://" is a new, empty database: share one connection.
        return create_engine(
            "sqlite://", poolclass=StaticPool, connect_args={"check_same_thread": False}
        )
    raise ConfigurationError(f"no projection database for the {database.backend} backend")


def _postgres_engine(env: dict[str, str]) -> Engine:
    # Database.url masks the password; the event store's settings carry the real one.
    host = env["POSTGRES_HOST"]
    socket_directory = host.startswith("/")
    url = URL.create(
        "postgresql+psycopg",
        username=env["POSTGRES_USER"],
        password=env["POSTGRES_PASSWORD"] or None,
        host=None if socket_directory else host,
        port=int(env["POSTGRES_PORT"]),
        database=env["POSTGRES_DBNAME"],
        # A URL cannot hold a socket directory as its host; libpq takes it as a parameter.
        query={"host": host} if socket_directory else {},
    )
    connect_timeout = int(env.get("POSTGRES_CONNECT_TIMEOUT", "5"))
    return create_engine(url, pool_pre_ping=True, connect_args={"connect_timeout": connect_timeout})


def _sqlite_engine(file: str) -> Engine:
    engine = create_engine(
        URL.create("sqlite", database=file),
        connect_args={"timeout": SQLITE_TIMEOUT_SECONDS},
    )

    @event.listens_for(engine, "connect")
    def _use_wal(dbapi_connection: Any, _record: Any) -> None:
        # WAL lets the API read projections while the event store or a projection writes.
        # The event store switches the file to WAL too; whichever connects first wins.
        cursor = dbapi_connection.cursor()
        try:
            _switch_to_wal(cursor)
        finally:
            cursor.close()

    return engine


def _switch_to_wal(cursor: Any) -> None:
    """Put the file in WAL mode, which it keeps; wait while another process holds a lock.

    Switching needs the file to itself, and SQLite answers "database is locked" at once
    rather than through the busy timeout: two servers starting together on a new file,
    one of them already migrating, would otherwise fail.
    """
    deadline = time.monotonic() + SQLITE_TIMEOUT_SECONDS
    while True:
        try:
            cursor.execute("PRAGMA journal_mode=WAL")
            return
        except sqlite3.OperationalError as error:
            if "locked" not in str(error) or time.monotonic() >= deadline:
                raise
        try:
            if cursor.execute("PRAGMA journal_mode").fetchone()[0] == "wal":
                return  # the process holding the lock switched it first
        except sqlite3.OperationalError as error:
            if "locked" not in str(error):
                raise  # locked: the next turn of the loop asks again
        time.sleep(0.05)


def migrations_directory() -> Path:
    """Where the Alembic scripts are: ``projections/migrations``, shipped inside the package.

    A wheel, an editable install and the image all carry them, so ``ledger db upgrade``
    works however the ledger was installed. A copy that lost them (a hand-trimmed
    install) is told so here rather than failing inside Alembic.
    """
    directory = Path(__file__).resolve().parent / "migrations"
    if not (directory / "env.py").is_file():
        raise ConfigurationError(
            f"the projection migrations are missing (no {directory / 'env.py'}): "
            "reinstall the release-ledger package"
        )
    return directory


def alembic_config(connection: Connection | None = None) -> Config:
    """Alembic's configuration without ``alembic.ini``: the application keeps its logging."""
    config = Config()
    config.set_main_option("script_location", str(migrations_directory()))
    if connection is not None:
        config.attributes["connection"] = connection
    return config


def include_name(name: str | None, type_: NameFilterType, _parents: NameFilterParentNames) -> bool:
    """Only the projection tables are Alembic's: the event store's share the database.

    Indexes of one generation come and go with rebuilds (``GenerationIndex``), not
    with migrations.
    """
    if type_ == "table":
        return name in metadata.tables
    if type_ == "index":
        return not (name or "").startswith(GenerationIndex.PREFIX)
    return True


def lock_for_migration(connection: Connection) -> None:
    """Begin the migration's transaction holding the database's schema lock.

    Two processes upgrading at once (two servers starting on one SQLite file, two
    ``ledger db upgrade``) then run one after the other, and the second finds the
    schema current. On SQLite, ``BEGIN IMMEDIATE`` also makes the DDL transactional:
    Python's sqlite3 would otherwise run it outside any transaction.
    """
    if connection.dialect.name == "sqlite":
        connection.exec_driver_sql("BEGIN IMMEDIATE")
    elif connection.dialect.name == "postgresql":
        connection.execute(
            text("SELECT pg_advisory_xact_lock(hashtext(:name))"), {"name": MIGRATION_LOCK}
        )


def upgrade(engine: Engine) -> None:
    """Bring the projection tables to the newest revision (``alembic upgrade head``)."""
    with _alembic_in_use, engine.connect() as connection:
        lock_for_migration(connection)
        # A connection already in a transaction tells env.py and Alembic to leave the
        # commit to us, so the lock covers reading the version as well as the DDL.
        command.upgrade(alembic_config(connection), "head")
        connection.commit()


def current_revision(engine: Engine) -> str | None:
    """The revision the database is at; None before the first upgrade."""
    with engine.connect() as connection:
        return MigrationContext.configure(connection).get_current_revision()


def head_revision() -> str:
    """The newest revision of the packaged migrations."""
    head = ScriptDirectory.from_config(alembic_config()).get_current_head()
    if head is None:
        raise ConfigurationError("the projection migrations have no revisions")
    return head


def check_current(engine: Engine) -> None:
    """Refuse a database whose projection tables are not at the newest revision."""
    current = current_revision(engine)
    head = head_revision()
    if current != head:
        raise ConfigurationError(
            f"projection schema is out of date (at {current or 'none'}, needs {head}): "
            "run 'ledger db upgrade'"
        )


def prepare(engine: Engine, database: Database) -> None:
    """Make the projection schema usable: upgrade the embedded backends, check PostgreSQL."""
    if database.backend in ("sqlite", "memory"):
        upgrade(engine)
    else:
        check_current(engine)
