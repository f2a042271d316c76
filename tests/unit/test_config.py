"""One URL selects the event store; bad URLs are refused in one clear sentence."""

from __future__ import annotations

from pathlib import Path

import pytest

from ledger.config import Database, Settings, default_database_url
from ledger.exceptions import ConfigurationError


def test_a_postgres_url_becomes_the_libraries_settings() -> None:
    """User, password, host, port and database are handed to eventsourcing.postgres."""
    database = Database.from_url("postgresql://ledger:s3cret@db.local:5433/trains")

    assert database.backend == "postgresql"
    assert database.env["PERSISTENCE_MODULE"] == "eventsourcing.postgres"
    assert database.env["POSTGRES_USER"] == "ledger"
    assert database.env["POSTGRES_PASSWORD"] == "s3cret"
    assert database.env["POSTGRES_HOST"] == "db.local"
    assert database.env["POSTGRES_PORT"] == "5433"
    assert database.env["POSTGRES_DBNAME"] == "trains"
    assert "POSTGRES_ENABLE_DB_FUNCTIONS" not in database.env


def test_the_password_never_shows_in_what_is_printed() -> None:
    """The description and the kept URL mask the password."""
    database = Database.from_url("postgresql://ledger:s3cret@db.local/trains")

    assert "s3cret" not in database.url
    assert "s3cret" not in database.describe()
    assert database.describe() == "PostgreSQL event store at db.local:5432/trains"


def test_a_sqlite_url_names_a_file_relative_or_absolute(tmp_path: Path) -> None:
    """sqlite:///relative and sqlite:////absolute follow SQLAlchemy's convention."""
    absolute = Database.from_url(f"sqlite:///{tmp_path}/nested/ledger.sqlite3")

    assert absolute.env["SQLITE_DBNAME"] == f"{tmp_path}/nested/ledger.sqlite3"
    assert (tmp_path / "nested").is_dir()
    assert Database.from_url("sqlite:///ledger.sqlite3").location == "ledger.sqlite3"


@pytest.mark.parametrize(
    ("url", "message"),
    [
        ("mysql://root@localhost/ledger", "must start with postgresql://"),
        ("postgresql://localhost", "names no database"),
        ("sqlite://", "names no file"),
    ],
)
def test_an_unusable_url_is_refused_with_a_reason(url: str, message: str) -> None:
    """A URL the ledger cannot use is a ConfigurationError that says why."""
    with pytest.raises(ConfigurationError, match=message):
        Database.from_url(url)


def test_the_default_is_a_sqlite_file_in_the_users_data_directory(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Without LEDGER_DATABASE_URL the ledger is embedded SQLite."""
    monkeypatch.delenv("LEDGER_DATABASE_URL", raising=False)
    monkeypatch.chdir(Path("/"))

    settings = Settings()

    assert settings.database_url == default_database_url()
    assert settings.database_url.startswith("sqlite:///")
    assert settings.database_url.endswith("ledger.sqlite3")


def test_settings_come_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    """LEDGER_* variables set the database and the QA target."""
    monkeypatch.setenv("LEDGER_DATABASE_URL", "memory://")
    monkeypatch.setenv("LEDGER_QA_TARGET", "97.5")

    settings = Settings()

    assert settings.database_url == "memory://"
    assert settings.qa_target == 97.5
