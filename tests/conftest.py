"""Fixtures shared by every test: the three event stores and a fresh ledger on each.

PostgreSQL comes from ``LEDGER_TEST_DATABASE_URL``, else the server on 127.0.0.1:5432,
else a ``testcontainers`` container when Docker is available; otherwise the run fails
with one line saying how to provide one. Each test gets a database of its own.
"""

from __future__ import annotations

import os
import shutil
import uuid
from collections.abc import Generator, Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

import psycopg
import pytest

from ledger.application import CommandContext, ReleaseLedger
from ledger.config import Settings
from tests.projection_fixtures import Projected, projected

LOCAL_SERVER = "postgresql://postgres@127.0.0.1:5432/postgres"
BACKENDS = ("memory", "sqlite", "postgres")
SERVER_LOG = pytest.StashKey[Path]()
"""Where a module's ``ledger serve`` writes (``tests/served.py``), for failing tests' reports."""
LOG_TAIL_LINES = 200


def _reachable(url: str) -> bool:
    try:
        with psycopg.connect(url, connect_timeout=3):
            return True
    except psycopg.Error:
        return False


def _docker_available() -> bool:
    return shutil.which("docker") is not None and Path("/var/run/docker.sock").exists()


@pytest.fixture(scope="session")
def postgres_server() -> Iterator[str]:
    """A URL of a PostgreSQL server where tests may create and drop databases."""
    configured = os.environ.get("LEDGER_TEST_DATABASE_URL")
    if configured:
        if not _reachable(configured):
            pytest.fail(f"LEDGER_TEST_DATABASE_URL={configured} is not reachable", pytrace=False)
        yield configured
        return
    if _reachable(LOCAL_SERVER):
        yield LOCAL_SERVER
        return
    if _docker_available():
        from testcontainers.postgres import PostgresContainer

        with PostgresContainer("postgres:15", driver=None) as container:
            yield container.get_connection_url()
        return
    pytest.fail(
        "no PostgreSQL for the tests: set LEDGER_TEST_DATABASE_URL, run a server on "
        "127.0.0.1:5432 (user postgres), or make Docker available",
        pytrace=False,
    )


@contextmanager
def fresh_database(server: str) -> Iterator[str]:
    """The URL of a new, empty database on ``server``, dropped on leaving."""
    name = f"ledger_test_{uuid.uuid4().hex[:12]}"
    with psycopg.connect(server, autocommit=True) as admin:
        admin.execute(f'CREATE DATABASE "{name}"')
    parts = urlsplit(server)
    try:
        yield urlunsplit(parts._replace(path=f"/{name}"))
    finally:
        with psycopg.connect(server, autocommit=True) as admin:
            admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@pytest.fixture
def postgres_url(postgres_server: str) -> Iterator[str]:
    """The URL of a new, empty PostgreSQL database, dropped after the test."""
    with fresh_database(postgres_server) as url:
        yield url


@pytest.fixture(params=BACKENDS)
def database_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """One URL for each event store the ledger supports."""
    if request.param == "memory":
        return "memory://"
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'ledger.sqlite3'}"
    url: str = request.getfixturevalue("postgres_url")
    return url


def open_ledger(url: str) -> ReleaseLedger:
    return ReleaseLedger.from_settings(Settings(database_url=url))


@pytest.fixture
def ledger(database_url: str) -> Iterator[ReleaseLedger]:
    """A fresh ledger on each backend."""
    app = open_ledger(database_url)
    yield app
    app.close()


@pytest.fixture
def postgres_ledger(postgres_url: str) -> Iterator[ReleaseLedger]:
    """A fresh ledger on PostgreSQL alone, for what only PostgreSQL can show."""
    app = open_ledger(postgres_url)
    yield app
    app.close()


def days_ago(days: float) -> datetime:
    return datetime.now(UTC) - timedelta(days=days)


def at(days: float) -> CommandContext:
    """A command context whose event occurred ``days`` days ago."""
    return CommandContext(recorded_by="test-token", occurred_at=days_ago(days))


def event_count(ledger: ReleaseLedger) -> int:
    return sum(1 for _ in ledger.event_log.read())


@pytest.fixture
def projected_ledger(ledger: ReleaseLedger, database_url: str) -> Iterator[Projected]:
    """A fresh ledger and its projections, on each backend."""
    result = projected(ledger, database_url)
    yield result
    result.engine.dispose()


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(
    item: pytest.Item, call: pytest.CallInfo[None]
) -> Generator[None, pytest.TestReport, pytest.TestReport]:
    """Show the tail of the module's server log beneath a failing test."""
    report: pytest.TestReport = yield
    module = item.getparent(pytest.Module)
    log_path = module.stash.get(SERVER_LOG, None) if module is not None else None
    if report.failed and log_path is not None and log_path.exists():
        tail = log_path.read_text(errors="replace").splitlines()[-LOG_TAIL_LINES:]
        report.sections.append((f"ledger serve log ({log_path})", "\n".join(tail)))
    return report
