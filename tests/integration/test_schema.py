"""The projection schema: Alembic creates exactly tables.py, beside the event store's tables."""

from __future__ import annotations

import multiprocessing
import sqlite3
import threading
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pytest
from alembic import command
from alembic.autogenerate import compare_metadata
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from sqlalchemy import Engine, inspect, text
from typer.testing import CliRunner

import projections
from ledger.config import Database
from ledger.exceptions import ConfigurationError
from projections.schema import (
    alembic_config,
    check_current,
    current_revision,
    engine_for,
    head_revision,
    include_name,
    lock_for_migration,
    prepare,
    upgrade,
)
from projections.tables import metadata
from release_ledger.cli import app
from tests.conftest import open_ledger

REPOSITORY = Path(__file__).resolve().parents[2]
EVENT_STORE_TABLES = {"sqlite": "stored_events", "postgresql": "ledger_events"}


@pytest.fixture(params=["sqlite", "postgres"])
def url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """A fresh database on each backend that keeps projections."""
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'ledger.sqlite3'}"
    postgres_url: str = request.getfixturevalue("postgres_url")
    return postgres_url


@pytest.fixture
def database(url: str) -> Database:
    return Database.from_url(url)


@pytest.fixture
def engine(database: Database) -> Iterator[Engine]:
    engine = engine_for(database)
    yield engine
    engine.dispose()


@pytest.fixture
def postgres_engine(postgres_url: str) -> Iterator[Engine]:
    engine = engine_for(Database.from_url(postgres_url))
    yield engine
    engine.dispose()


@pytest.fixture
def runner() -> CliRunner:
    return CliRunner()


def expected_schema() -> dict[str, Any]:
    """Each table of tables.py as columns (with nullability), primary key and indexes."""
    return {
        name: {
            "columns": {(column.name, column.nullable) for column in table.columns},
            "primary_key": [column.name for column in table.primary_key.columns],
            "indexes": {
                (index.name, tuple(column.name for column in index.columns))
                for index in table.indexes
            },
        }
        for name, table in metadata.tables.items()
    }


def actual_schema(engine: Engine) -> dict[str, Any]:
    """The same shape as ``expected_schema``, read back from the database."""
    inspector = inspect(engine)
    return {
        name: {
            "columns": {
                (column["name"], column["nullable"]) for column in inspector.get_columns(name)
            },
            "primary_key": inspector.get_pk_constraint(name)["constrained_columns"],
            "indexes": {
                (index["name"], tuple(index["column_names"]))
                for index in inspector.get_indexes(name)
            },
        }
        for name in metadata.tables
    }


def differences(engine: Engine) -> list[Any]:
    """What autogenerate would put in a new revision, with the options env.py uses."""
    with engine.connect() as connection:
        context = MigrationContext.configure(
            connection, opts={"compare_type": True, "include_name": include_name}
        )
        return list(compare_metadata(context, metadata))


def add_event_store(url: str) -> None:
    """Give the database the event store's tables, as a running ledger would have."""
    open_ledger(url).close()


def test_upgrade_creates_every_table_and_index_of_the_metadata(engine: Engine) -> None:
    """After upgrade the database holds each table of tables.py with its columns and indexes."""
    upgrade(engine)

    assert set(metadata.tables) <= set(inspect(engine).get_table_names())
    assert actual_schema(engine) == expected_schema()
    assert current_revision(engine) == head_revision()


def test_migration_leaves_no_difference_against_the_metadata(url: str, engine: Engine) -> None:
    """Autogenerate finds nothing to add once upgraded, even with the event store beside it."""
    add_event_store(url)

    upgrade(engine)

    assert differences(engine) == []


def test_upgrade_keeps_the_event_store_tables(url: str, engine: Engine, database: Database) -> None:
    """The event store's table and its rows survive an upgrade untouched."""
    ledger = open_ledger(url)
    ledger.plan_train("5.1", "major", "Ada Planner")
    ledger.close()

    upgrade(engine)

    table = EVENT_STORE_TABLES[database.backend]
    with engine.connect() as connection:
        count = connection.execute(text(f"SELECT count(*) FROM {table}")).scalar_one()
    assert count > 0


def test_upgrading_twice_is_harmless(engine: Engine) -> None:
    """A second upgrade finds the schema at head, changes nothing and keeps the rows."""
    upgrade(engine)
    with engine.begin() as connection:
        connection.execute(
            text("INSERT INTO stream_keys (stream, kind, key) VALUES ('s-1', 'train', '5.1')")
        )

    upgrade(engine)

    with engine.connect() as connection:
        rows = connection.execute(text("SELECT stream, kind, key FROM stream_keys")).all()
    assert [tuple(row) for row in rows] == [("s-1", "train", "5.1")]
    assert current_revision(engine) == head_revision()
    assert actual_schema(engine) == expected_schema()


def upgrade_in_a_process(url: str, start: Any) -> None:
    """Runs in a process of its own, like a second server starting on the same database."""
    engine = engine_for(Database.from_url(url))
    try:
        start.wait(timeout=60)
        upgrade(engine)
    finally:
        engine.dispose()


def test_concurrent_upgrades_from_two_processes_both_succeed(url: str, engine: Engine) -> None:
    """Two servers starting at once on one database take turns instead of failing."""
    spawn = multiprocessing.get_context("spawn")
    start = spawn.Barrier(2)
    processes = [spawn.Process(target=upgrade_in_a_process, args=(url, start)) for _ in range(2)]
    for process in processes:
        process.start()
    for process in processes:
        process.join(timeout=120)

    assert [process.exitcode for process in processes] == [0, 0]
    assert current_revision(engine) == head_revision()


def test_downgrade_to_base_removes_only_the_projection_tables(
    url: str, engine: Engine, database: Database
) -> None:
    """Downgrading to base drops every projection table and leaves the event store alone."""
    add_event_store(url)
    upgrade(engine)

    with engine.connect() as connection:
        lock_for_migration(connection)
        command.downgrade(alembic_config(connection), "base")
        connection.commit()

    names = set(inspect(engine).get_table_names())
    assert names.isdisjoint(metadata.tables)
    assert EVENT_STORE_TABLES[database.backend] in names
    assert current_revision(engine) is None


def test_check_current_refuses_a_fresh_postgres_database(postgres_engine: Engine) -> None:
    """A database never upgraded is refused with a message that says to run ledger db upgrade."""
    with pytest.raises(ConfigurationError) as raised:
        check_current(postgres_engine)

    assert raised.value.detail == (
        f"projection schema is out of date (at none, needs {head_revision()}): "
        "run 'ledger db upgrade'"
    )


def test_check_current_passes_after_upgrade(postgres_engine: Engine) -> None:
    """Once upgraded, the check lets the application start."""
    upgrade(postgres_engine)

    check_current(postgres_engine)


def test_prepare_upgrades_sqlite_by_itself(tmp_path: Path) -> None:
    """On the embedded SQLite backend prepare brings the schema to head without being asked."""
    database = Database.from_url(f"sqlite:///{tmp_path / 'ledger.sqlite3'}")
    engine = engine_for(database)
    try:
        prepare(engine, database)

        check_current(engine)
        assert actual_schema(engine) == expected_schema()
    finally:
        engine.dispose()


def test_prepare_upgrades_the_in_memory_database_shared_across_threads() -> None:
    """The in-memory backend's one database is upgraded and seen from any thread."""
    database = Database.from_url("memory://")
    engine = engine_for(database)
    try:
        prepare(engine, database)

        with ThreadPoolExecutor(max_workers=1) as pool:
            names = pool.submit(lambda: set(inspect(engine).get_table_names())).result()
        assert set(metadata.tables) <= names
    finally:
        engine.dispose()


def test_prepare_refuses_an_out_of_date_postgres_database(
    postgres_url: str, postgres_engine: Engine
) -> None:
    """On PostgreSQL prepare only checks: it raises and creates no table."""
    with pytest.raises(ConfigurationError, match="run 'ledger db upgrade'"):
        prepare(postgres_engine, Database.from_url(postgres_url))

    assert set(inspect(postgres_engine).get_table_names()).isdisjoint(metadata.tables)


def test_sqlite_engine_uses_write_ahead_logging(tmp_path: Path) -> None:
    """Readers of the SQLite file are not blocked by writers: the journal is WAL."""
    engine = engine_for(Database.from_url(f"sqlite:///{tmp_path / 'ledger.sqlite3'}"))
    try:
        with engine.connect() as connection:
            mode = connection.exec_driver_sql("PRAGMA journal_mode").scalar_one()
    finally:
        engine.dispose()

    assert mode == "wal"


def test_switching_to_wal_waits_for_another_process_holding_the_file(tmp_path: Path) -> None:
    """A connection made while another holds the file's lock waits for WAL, not fails."""
    file = tmp_path / "ledger.sqlite3"
    holder = sqlite3.connect(file, isolation_level=None, check_same_thread=False)
    holder.execute("CREATE TABLE taken (id INTEGER)")
    holder.execute("BEGIN IMMEDIATE")  # as a migrating process does; SQLite then refuses at once
    release = threading.Timer(0.5, lambda: holder.execute("COMMIT"))
    release.start()
    engine = engine_for(Database.from_url(f"sqlite:///{file}"))
    try:
        with engine.connect() as connection:
            mode = connection.exec_driver_sql("PRAGMA journal_mode").scalar_one()
    finally:
        release.join()
        engine.dispose()
        holder.close()

    assert mode == "wal"


def test_ledger_db_upgrade_brings_the_schema_to_head(
    runner: CliRunner, url: str, engine: Engine, database: Database
) -> None:
    """ledger db upgrade names the database, upgrades it and prints the revision it is at."""
    result = runner.invoke(app, ["db", "upgrade"], env={"LEDGER_DATABASE_URL": url})

    assert result.exit_code == 0, result.output
    # Rich wraps long lines to the terminal's width; compare the words.
    assert database.describe() in " ".join(result.output.split())
    assert f"projection schema at {head_revision()}" in result.output
    check_current(engine)


def test_ledger_db_upgrade_fails_in_one_line_when_the_database_is_unreachable(
    runner: CliRunner,
) -> None:
    """An unreachable server ends in one error line and exit 1, never a traceback."""
    result = runner.invoke(
        app, ["db", "upgrade"], env={"LEDGER_DATABASE_URL": "postgresql://nobody@127.0.0.1:1/none"}
    )

    assert result.exit_code == 1
    assert "cannot upgrade the projection schema" in result.output
    assert "Traceback" not in result.output
    assert result.output.count("error:") == 1


def test_migrations_are_found_inside_the_package() -> None:
    """The scripts are the package's own files (projections/migrations) and know the head."""
    config = alembic_config()

    location = Path(config.get_main_option("script_location") or "")
    newest_file = max((location / "versions").glob("[0-9][0-9][0-9][0-9]_*.py"))

    assert location == Path(projections.__file__).resolve().parent / "migrations"
    assert head_revision() == newest_file.name[:4]


def test_the_alembic_command_line_uses_the_packaged_scripts() -> None:
    """alembic.ini at the root points at the packaged scripts: one copy, not two."""
    config = Config(str(REPOSITORY / "alembic.ini"))

    location = Path(config.get_main_option("script_location") or "")

    assert location.resolve() == Path(projections.__file__).resolve().parent / "migrations"
    assert not list((REPOSITORY / "migrations").glob("**/*.py"))
