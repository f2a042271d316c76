"""The API's tokens and the command line around it: ``ledger token create|list|revoke``,
tokens that expire, and ``ledger serve``."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
import uvicorn
from typer.testing import CliRunner

from api.tokens import (
    Authenticator,
    Principal,
    Role,
    create_token,
    list_tokens,
    revoke_token,
    token_hash,
)
from ledger.config import Database
from ledger.exceptions import InvalidCommand
from projections.schema import engine_for
from release_ledger.cli import app
from tests.integration.test_api import Api, api_url, assert_problem, open_api
from tests.integration.test_change_watch import eventually

__all__ = ["api_url"]  # a fixture, imported for its PostgreSQL upgrade


@pytest.fixture
def runner() -> CliRunner:
    return CliRunner()


@pytest.fixture
def sqlite_url(tmp_path: Path) -> str:
    return f"sqlite:///{tmp_path / 'ledger.sqlite3'}"


@pytest.fixture
def api(api_url: str, monkeypatch: pytest.MonkeyPatch) -> Iterator[Api]:
    """The API on each backend, with a token per role that never expires."""
    with open_api(api_url, monkeypatch) as opened:
        yield opened


def principal_of(url: str, token: str) -> Principal | None:
    engine = engine_for(Database.from_url(url))
    try:
        return Authenticator(engine, watch=None).authenticate(token)
    finally:
        engine.dispose()


def table_rows(output: str) -> dict[str, list[str]]:
    """The body rows of a rich table on ``output``, by their first cell."""
    rows = [
        [cell.strip() for cell in line.split("│")[1:-1]]
        for line in output.splitlines()
        if line.startswith("│")
    ]
    return {row[0]: row[1:] for row in rows}


# ======================================================================= expiry


def test_an_expired_token_is_refused_like_an_unknown_one(api: Api) -> None:
    """Past its expiry a token is a 401 whose answer is the same as an unknown token's."""
    lapsed = create_token(
        api.engine, "lapsed", "admin", expires_at=datetime.now(UTC) - timedelta(seconds=1)
    )
    unknown = "rlt_" + "x" * 43

    refused = api.client.get("/v1/trains", headers={"Authorization": f"Bearer {lapsed}"})
    stranger = api.client.get("/v1/trains", headers={"Authorization": f"Bearer {unknown}"})

    assert assert_problem(refused, 401, "unauthorized") == assert_problem(stranger, 401)
    assert refused.headers["www-authenticate"] == stranger.headers["www-authenticate"]
    assert "lapsed" not in refused.text


def test_a_token_before_its_expiry_is_accepted(api: Api) -> None:
    """A token whose expiry is still ahead reads and writes as its role allows."""
    token = create_token(
        api.engine, "temporary", "writer", expires_at=datetime.now(UTC) + timedelta(hours=1)
    )
    headers = {"Authorization": f"Bearer {token}"}

    read = api.client.get("/v1/trains", headers=headers)
    written = api.client.post(
        "/v1/trains", json={"train": "5.5", "kind": "major", "actor": "Ada"}, headers=headers
    )

    assert (read.status_code, written.status_code) == (200, 201), written.text
    feed = api.client.get("/v1/events", headers=headers).json()
    assert [item["recorded_by"] for item in feed["items"]] == ["temporary"]


def test_a_revoked_token_is_refused_before_its_expiry(api: Api) -> None:
    """Revoking ends a token, whatever expiry it was given (on PostgreSQL a server that
    remembered it hears of the revocation within a second: test_change_watch.py)."""
    token = create_token(
        api.engine, "short-lived", "reader", expires_at=datetime.now(UTC) + timedelta(days=1)
    )
    headers = {"Authorization": f"Bearer {token}"}
    assert api.client.get("/v1/trains", headers=headers).status_code == 200

    assert revoke_token(api.engine, "short-lived") is True

    eventually(lambda: api.client.get("/v1/trains", headers=headers).status_code == 401)
    assert_problem(api.client.get("/v1/trains", headers=headers), 401, "unauthorized")


def test_an_expiry_without_an_offset_is_refused(api: Api) -> None:
    """A naive expiry would mean a different moment on each server, so none is stored."""
    with pytest.raises(InvalidCommand, match="expires_at needs a UTC offset"):
        create_token(api.engine, "naive", "reader", expires_at=datetime(2030, 1, 1))

    assert "naive" not in {token.name for token in list_tokens(api.engine)}


# ================================================================== the commands


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


def test_token_create_with_expires_in_makes_a_token_that_expires_then(
    runner: CliRunner, sqlite_url: str
) -> None:
    """--expires-in 90d stores an expiry 90 days after creation and says when it is."""
    env = {"LEDGER_DATABASE_URL": sqlite_url}
    before = datetime.now(UTC)

    result = runner.invoke(
        app,
        ["token", "create", "--name", "ci", "--role", "reader", "--expires-in", "90d"],
        env=env,
    )

    after = datetime.now(UTC)
    assert result.exit_code == 0, result.output
    token = result.stdout.strip()
    assert principal_of(sqlite_url, token) == Principal("ci", Role.READER)
    engine = engine_for(Database.from_url(sqlite_url))
    try:
        (stored,) = list_tokens(engine)
    finally:
        engine.dispose()
    assert stored.expires_at is not None
    assert before + timedelta(days=90) <= stored.expires_at <= after + timedelta(days=90)
    assert f"expires {stored.expires_at:%Y-%m-%d %H:%M} UTC" in result.stderr


def test_token_create_without_expires_in_never_expires(runner: CliRunner, sqlite_url: str) -> None:
    """Left out, as make run and the end-to-end tests do, the token has no expiry."""
    env = {"LEDGER_DATABASE_URL": sqlite_url}

    result = runner.invoke(app, ["token", "create", "--name", "ops", "--role", "admin"], env=env)

    assert result.exit_code == 0, result.output
    assert "never expires" in result.stderr
    engine = engine_for(Database.from_url(sqlite_url))
    try:
        assert [token.expires_at for token in list_tokens(engine)] == [None]
    finally:
        engine.dispose()


@pytest.mark.parametrize(
    ("duration", "message"),
    [
        ("5x", "--expires-in must be a whole number of minutes, hours or days"),
        ("90", "--expires-in must be a whole number of minutes, hours or days"),
        ("-3d", "--expires-in must be a whole number of minutes, hours or days"),
        ("0d", "--expires-in must be more than zero, not '0d'"),
        ("0m", "--expires-in must be more than zero, not '0m'"),
        ("99999d", "--expires-in must be at most 3650d"),
    ],
)
def test_token_create_refuses_a_bad_duration_and_makes_no_token(
    runner: CliRunner, sqlite_url: str, duration: str, message: str
) -> None:
    """A bad --expires-in is one error line naming the option, exit 1, and nothing stored."""
    env = {"LEDGER_DATABASE_URL": sqlite_url}

    result = runner.invoke(
        app,
        ["token", "create", "--name", "ci", "--role", "reader", "--expires-in", duration],
        env=env,
    )

    assert result.exit_code == 1
    assert result.stdout == ""
    assert message in " ".join(result.stderr.split())
    assert result.stderr.count("error:") == 1
    listed = runner.invoke(app, ["token", "list"], env=env)
    assert listed.exit_code == 0, listed.output
    assert table_rows(listed.stdout) == {}


def test_token_list_shows_each_tokens_life_and_never_a_secret(
    runner: CliRunner, api_url: str
) -> None:
    """Name, role, created, expires and revoked per token; no token and no hash anywhere."""
    env = {"LEDGER_DATABASE_URL": api_url, "COLUMNS": "200"}  # one table line per row
    made = [
        runner.invoke(app, ["token", "create", "--name", name, "--role", role, *more], env=env)
        for name, role, more in [
            ("ada", "admin", []),
            ("ci", "writer", ["--expires-in", "12h"]),
            ("old", "reader", []),
        ]
    ]
    assert [result.exit_code for result in made] == [0, 0, 0]
    tokens = [result.stdout.strip() for result in made]
    engine = engine_for(Database.from_url(api_url))
    try:
        lapsed = create_token(
            engine, "lapsed", "reader", expires_at=datetime.now(UTC) - timedelta(minutes=5)
        )
        revoke_token(engine, "old")
        stored = {token.name: token for token in list_tokens(engine)}
    finally:
        engine.dispose()

    result = runner.invoke(app, ["token", "list"], env=env)

    assert result.exit_code == 0, result.output
    rows = table_rows(result.stdout)

    def minute(moment: datetime | None) -> str:
        assert moment is not None
        return f"{moment:%Y-%m-%d %H:%M}"

    assert rows == {
        "ada": ["admin", minute(stored["ada"].created_at), "never", ""],
        "ci": ["writer", minute(stored["ci"].created_at), minute(stored["ci"].expires_at), ""],
        "old": [
            "reader",
            minute(stored["old"].created_at),
            "never",
            minute(stored["old"].revoked_at),
        ],
        "lapsed": [
            "reader",
            minute(stored["lapsed"].created_at),
            f"{minute(stored['lapsed'].expires_at)} (expired)",
            "",
        ],
    }
    for secret in [*tokens, lapsed]:
        assert secret not in result.output
        assert token_hash(secret) not in result.output


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
            {
                "factory": True,
                "host": "0.0.0.0",
                "port": 8123,
                "workers": 2,
                "root_path": "",
                "proxy_headers": False,
                "forwarded_allow_ips": None,
            },
        )
    ]


def test_serve_behind_a_proxy_takes_its_prefix_and_believes_only_the_named_proxies(
    runner: CliRunner, sqlite_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """--root-path (trailing slash dropped) and LEDGER_TRUSTED_PROXIES reach uvicorn."""
    calls: list[dict[str, Any]] = []
    monkeypatch.setattr(uvicorn, "run", lambda *args, **kwargs: calls.append(kwargs))

    result = runner.invoke(
        app,
        ["serve", "--root-path", "/ledger/", "--no-login-link"],
        env={"LEDGER_DATABASE_URL": sqlite_url, "LEDGER_TRUSTED_PROXIES": "10.0.0.7, 10.1.0.0/16"},
    )

    assert result.exit_code == 0, result.output
    (call,) = calls
    assert call["root_path"] == "/ledger"
    assert call["proxy_headers"] is True
    assert call["forwarded_allow_ips"] == ["10.0.0.7", "10.1.0.0/16"]
    assert "forwarded headers believed from 10.0.0.7, 10.1.0.0/16" in result.output


@pytest.mark.parametrize(
    ("arguments", "env", "message"),
    [
        (["--root-path", "ledger"], {}, "--root-path: 'ledger' is not a path prefix"),
        ([], {"LEDGER_ROOT_PATH": "/a?b"}, "invalid setting: root_path"),
        ([], {"LEDGER_TRUSTED_PROXIES": "proxy.internal"}, "'proxy.internal' is not an IP"),
        ([], {"LEDGER_TRUSTED_PROXIES": "*,10.0.0.1"}, "'*' trusts every client"),
    ],
)
def test_serve_refuses_a_malformed_proxy_setting_in_one_line(
    runner: CliRunner,
    sqlite_url: str,
    monkeypatch: pytest.MonkeyPatch,
    arguments: list[str],
    env: dict[str, str],
    message: str,
) -> None:
    """A prefix that is not a path, or a proxy that is not an address, stops serve at once."""
    monkeypatch.setattr(uvicorn, "run", lambda *args, **kwargs: pytest.fail("must not serve"))

    result = runner.invoke(
        app, ["serve", *arguments], env={"LEDGER_DATABASE_URL": sqlite_url, **env}
    )

    assert result.exit_code == 1
    assert message in " ".join(result.output.split())
    assert result.output.count("error:") == 1
    assert "Traceback" not in result.output


def test_serve_refuses_an_out_of_date_postgres_schema_in_one_line(
    runner: CliRunner, postgres_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Before any worker starts, serve says to run ledger db upgrade, and exits 1."""
    monkeypatch.setattr(uvicorn, "run", lambda *args, **kwargs: pytest.fail("must not serve"))

    result = runner.invoke(app, ["serve"], env={"LEDGER_DATABASE_URL": postgres_url})

    assert result.exit_code == 1
    assert "run 'ledger db upgrade'" in " ".join(result.output.split())
    assert "Traceback" not in result.output
