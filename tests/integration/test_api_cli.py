"""The command line around the API: ``ledger token create|revoke`` and ``ledger serve``."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import uvicorn
from typer.testing import CliRunner

from api.tokens import Principal, Role, authenticate
from ledger.cli import app
from ledger.config import Database
from projections.schema import engine_for


@pytest.fixture
def runner() -> CliRunner:
    return CliRunner()


@pytest.fixture
def sqlite_url(tmp_path: Path) -> str:
    return f"sqlite:///{tmp_path / 'ledger.sqlite3'}"


def principal_of(url: str, token: str) -> Principal | None:
    engine = engine_for(Database.from_url(url))
    try:
        return authenticate(engine, token)
    finally:
        engine.dispose()


def test_token_create_prints_the_token_alone_on_standard_output(
    runner: CliRunner, sqlite_url: str
) -> None:
    """Standard output is the token and a newline; everything else goes to standard error."""
    result = runner.invoke(
        app,
        ["token", "create", "--name", "jira-bot", "--role", "writer"],
        env={"LEDGER_DATABASE_URL": sqlite_url},
    )

    assert result.exit_code == 0, result.output
    token = result.stdout.strip()
    assert result.stdout == f"{token}\n"
    assert token.startswith("rlt_")
    assert len(token) > 40
    assert token not in result.stderr
    assert "shown only once" in result.stderr
    assert principal_of(sqlite_url, token) == Principal("jira-bot", Role.WRITER)


def test_token_revoke_makes_the_token_useless(runner: CliRunner, sqlite_url: str) -> None:
    """After ledger token revoke the token no longer authenticates."""
    env = {"LEDGER_DATABASE_URL": sqlite_url}
    created = runner.invoke(app, ["token", "create", "--name", "ada", "--role", "reader"], env=env)
    token = created.stdout.strip()

    revoked = runner.invoke(app, ["token", "revoke", "--name", "ada"], env=env)

    assert revoked.exit_code == 0, revoked.output
    assert "revoked token ada" in revoked.stderr
    assert revoked.stdout == ""
    assert principal_of(sqlite_url, token) is None


@pytest.mark.parametrize(
    ("arguments", "message"),
    [
        (["create", "--name", "ada", "--role", "root"], "role must be one of reader, writer"),
        (["create", "--name", "ada", "--role", "reader"], "a token named ada already exists"),
        (["create", "--name", "no spaces", "--role", "reader"], "token name 'no spaces'"),
        (["revoke", "--name", "nobody"], "no token named nobody"),
    ],
)
def test_token_errors_are_one_line_and_print_no_token(
    runner: CliRunner, sqlite_url: str, arguments: list[str], message: str
) -> None:
    """A bad role or name, a reused name or an unknown token is one error line, exit 1."""
    env = {"LEDGER_DATABASE_URL": sqlite_url}
    runner.invoke(app, ["token", "create", "--name", "ada", "--role", "reader"], env=env)

    result = runner.invoke(app, ["token", *arguments], env=env)

    assert result.exit_code == 1
    assert result.stdout == ""
    assert message in " ".join(result.stderr.split())
    assert result.stderr.count("error:") == 1
    assert "Traceback" not in result.output


def test_serve_runs_uvicorn_with_the_app_factory(
    runner: CliRunner, sqlite_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """ledger serve hands uvicorn the factory import string with host, port and workers."""
    calls: list[tuple[tuple[Any, ...], dict[str, Any]]] = []
    monkeypatch.setattr(uvicorn, "run", lambda *args, **kwargs: calls.append((args, kwargs)))

    result = runner.invoke(
        app,
        ["serve", "--host", "0.0.0.0", "--port", "8123", "--workers", "2"],
        env={"LEDGER_DATABASE_URL": sqlite_url},
    )

    assert result.exit_code == 0, result.output
    assert calls == [
        (
            ("api.main:create_app",),
            {"factory": True, "host": "0.0.0.0", "port": 8123, "workers": 2},
        )
    ]


def test_serve_refuses_an_out_of_date_postgres_schema_in_one_line(
    runner: CliRunner, postgres_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Before any worker starts, serve says to run ledger db upgrade, and exits 1."""
    monkeypatch.setattr(uvicorn, "run", lambda *args, **kwargs: pytest.fail("must not serve"))

    result = runner.invoke(app, ["serve"], env={"LEDGER_DATABASE_URL": postgres_url})

    assert result.exit_code == 1
    assert "run 'ledger db upgrade'" in " ".join(result.output.split())
    assert "Traceback" not in result.output
