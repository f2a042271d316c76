"""The command line: one clear line per error, the backend named, export and import round-trip."""

from __future__ import annotations

import asyncio
import json
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from typer.testing import CliRunner

from integrations.inbox import Inbox
from integrations.receiving import Webhooks, WebhookSecrets
from ledger.config import Database
from projections.schema import engine_for, prepare
from release_ledger.cli import app
from tests.conftest import at, open_ledger
from tests.scenarios import plan_scoped_train, tamper


@pytest.fixture
def runner() -> CliRunner:
    return CliRunner()


@pytest.fixture
def sqlite_url(tmp_path: Path) -> str:
    url = f"sqlite:///{tmp_path / 'ledger.sqlite3'}"
    ledger = open_ledger(url)
    plan_scoped_train(ledger)
    ledger.close()
    return url


def test_verify_names_the_backend_and_reports_an_intact_log(
    runner: CliRunner, sqlite_url: str
) -> None:
    """verify prints which event store it read and that every chain holds."""
    result = runner.invoke(app, ["verify"], env={"LEDGER_DATABASE_URL": sqlite_url})

    assert result.exit_code == 0, result.output
    assert "SQLite event store at" in result.output
    assert "ok: 9 events in 3 streams, every chain intact" in result.output


def test_export_and_import_move_a_ledger_between_backends(
    runner: CliRunner, sqlite_url: str, postgres_url: str, tmp_path: Path
) -> None:
    """ledger export to a file and ledger import from it give PostgreSQL the same log."""
    dump = tmp_path / "ledger.jsonl"
    exported = runner.invoke(
        app, ["export", "--output", str(dump)], env={"LEDGER_DATABASE_URL": sqlite_url}
    )
    imported = runner.invoke(app, ["import", str(dump)], env={"LEDGER_DATABASE_URL": postgres_url})
    verified = runner.invoke(app, ["verify"], env={"LEDGER_DATABASE_URL": postgres_url})

    assert exported.exit_code == 0, exported.output
    assert "exported 9 events" in exported.output
    assert imported.exit_code == 0, imported.output
    assert "imported 9 events" in imported.output
    assert "PostgreSQL event store at" in imported.output
    assert verified.exit_code == 0
    assert len(dump.read_bytes().splitlines()) == 9


def test_export_writes_json_lines_to_standard_output(runner: CliRunner, sqlite_url: str) -> None:
    """Without --output the JSON lines go to standard output, one event per line."""
    result = runner.invoke(app, ["export"], env={"LEDGER_DATABASE_URL": sqlite_url})

    lines = [line for line in result.stdout.splitlines() if line.startswith("{")]
    assert result.exit_code == 0
    assert len(lines) == 9


def test_verify_fails_in_one_line_naming_the_broken_event(
    runner: CliRunner, postgres_url: str
) -> None:
    """A tampered row makes verify exit non-zero with one line that names the event."""
    ledger = open_ledger(postgres_url)
    plan_scoped_train(ledger)
    ledger.close()
    tamper(
        postgres_url,
        "UPDATE ledger_events SET state = convert_to(replace(convert_from(state, 'UTF8'), "
        "'Grace Director', 'Mallory'), 'UTF8') WHERE notification_id = 9",
    )

    result = runner.invoke(app, ["verify"], env={"LEDGER_DATABASE_URL": postgres_url})

    assert result.exit_code == 1
    assert "error: the log is broken at the event at position 9" in result.output
    assert "GateDecided" in result.output
    assert "Traceback" not in result.output


@pytest.mark.parametrize(
    ("arguments", "url", "message"),
    [
        (["verify"], "mysql://root@localhost/ledger", "must start with postgresql://"),
        (["verify"], "postgresql://nobody@127.0.0.1:1/none", "cannot open the event store"),
        (["import", "/no/such/file.jsonl"], None, "no such file"),
    ],
)
def test_errors_are_one_line_and_a_non_zero_exit(
    runner: CliRunner,
    sqlite_url: str,
    arguments: list[str],
    url: str | None,
    message: str,
) -> None:
    """Bad configuration or arguments end in one clear line, never a traceback."""
    result = runner.invoke(app, arguments, env={"LEDGER_DATABASE_URL": url or sqlite_url})

    assert result.exit_code == 1
    assert message in result.output
    assert "Traceback" not in result.output
    assert result.output.count("error:") == 1


def test_import_into_a_ledger_with_history_is_refused(
    runner: CliRunner, sqlite_url: str, tmp_path: Path
) -> None:
    """Importing over existing events would mix two logs, so the CLI refuses in one line."""
    dump = tmp_path / "ledger.jsonl"
    runner.invoke(app, ["export", "-o", str(dump)], env={"LEDGER_DATABASE_URL": sqlite_url})

    result = runner.invoke(app, ["import", str(dump)], env={"LEDGER_DATABASE_URL": sqlite_url})

    assert result.exit_code == 1
    assert "import needs an empty event store" in result.output


def test_projection_commands_show_status_catch_up_rebuild_and_replay(
    runner: CliRunner, sqlite_url: str
) -> None:
    """status shows the lag, run --once clears it, rebuild swaps, replay prints a past board."""
    env = {"LEDGER_DATABASE_URL": sqlite_url, "COLUMNS": "120"}

    before = runner.invoke(app, ["projections", "status"], env=env)
    caught_up = runner.invoke(app, ["projections", "run", "--once"], env=env)
    after = runner.invoke(app, ["projections", "status"], env=env)
    rebuilt = runner.invoke(app, ["projections", "rebuild", "trains"], env=env)
    as_of = (datetime.now(UTC) - timedelta(days=55)).isoformat()
    board = runner.invoke(app, ["replay", "--train", "5.5", "--as-of", as_of], env=env)
    unknown = runner.invoke(app, ["projections", "rebuild", "nope"], env=env)

    assert before.exit_code == 0, before.output
    assert "│ trains     │ 1          │ 0        │ 9   │" in before.output
    assert "caught up: 9 events applied, at position 9" in caught_up.output
    assert "│ trains     │ 1          │ 9        │ 0   │" in after.output
    assert rebuilt.exit_code == 0
    assert "rebuilt trains" in rebuilt.output
    assert board.exit_code == 0, board.output
    assert "5.5 major — planning" in board.output
    assert "DEDUP-7 (anchor)" in board.output
    assert unknown.exit_code == 1
    assert "no projection 'nope'" in unknown.output


def test_inbox_reprocess_maps_deliveries_again_after_a_mapping_change(
    runner: CliRunner, sqlite_url: str, tmp_path: Path
) -> None:
    """A move between "Objects" versions maps to no train until the file names them; then moves."""
    ledger = open_ledger(sqlite_url)
    ledger.plan_train("5.6", "major", "Ada Planner", context=at(40))
    ledger.close()
    engine = engine_for(Database.from_url(sqlite_url))
    prepare(engine, Database.from_url(sqlite_url))
    move = {
        "timestamp": int(datetime.now(UTC).timestamp() * 1000) - 60_000,
        "webhookEvent": "jira:issue_updated",
        "user": {"displayName": "Maria Lopez"},
        "issue": {"key": "DEDUP-7", "fields": {"summary": "Inline deduplication"}},
        "changelog": {
            "id": "20001",
            "items": [
                {"fieldId": "fixVersions", "fromString": "Objects 5.5", "toString": None},
                {"fieldId": "fixVersions", "fromString": None, "toString": "Objects 5.6"},
            ],
        },
    }
    webhooks = Webhooks(Inbox(engine), WebhookSecrets())
    headers = {"x-atlassian-webhook-identifier": "hook-20001"}
    asyncio.run(webhooks.stored(webhooks.jira(json.dumps(move).encode(), headers)))
    webhooks.close()
    engine.dispose()
    mapping = tmp_path / "integrations.toml"
    mapping.write_text('[jira]\nversions = { "Objects 5.5" = "5.5", "Objects 5.6" = "5.6" }\n')
    env = {"LEDGER_DATABASE_URL": sqlite_url}

    first = runner.invoke(app, ["inbox", "reprocess"], env=env)
    again = runner.invoke(
        app,
        ["inbox", "reprocess", "--status", "ignored", "--status", "failed"],
        env=env | {"LEDGER_INTEGRATIONS_FILE": str(mapping)},
    )
    status = runner.invoke(app, ["inbox", "status"], env=env)

    assert first.exit_code == 0, first.output
    assert "ignored 1" in first.output
    assert again.exit_code == 0, again.output
    assert "mapped 1 deliveries again" in again.output
    assert "applied 1" in again.output
    assert "applied" in status.output
    reopened = open_ledger(sqlite_url)
    assert reopened.feature("DEDUP-7")["train"] == "5.6"
    reopened.close()


def test_inbox_reprocess_refuses_an_unknown_status(runner: CliRunner, sqlite_url: str) -> None:
    """A status that is not pending, applied, ignored or failed is one clear line."""
    result = runner.invoke(
        app, ["inbox", "reprocess", "--status", "lost"], env={"LEDGER_DATABASE_URL": sqlite_url}
    )

    assert result.exit_code == 1
    assert "'lost' is not a valid DeliveryStatus" in result.output


def test_inbox_run_once_maps_what_servers_left_to_it(runner: CliRunner, sqlite_url: str) -> None:
    """With the servers' own worker off, ``ledger inbox run --once`` maps what is pending."""
    engine = engine_for(Database.from_url(sqlite_url))
    prepare(engine, Database.from_url(sqlite_url))
    webhooks = Webhooks(Inbox(engine), WebhookSecrets())
    asyncio.run(webhooks.stored(webhooks.jira(b'{"webhookEvent": "comment_created"}', {})))
    webhooks.close()
    pending = Inbox(engine).counts()["pending"]
    engine.dispose()

    result = runner.invoke(app, ["inbox", "run", "--once"], env={"LEDGER_DATABASE_URL": sqlite_url})

    assert pending == 1
    assert result.exit_code == 0, result.output
    assert "mapped: 1 settled, 0 waiting to retry, 0 QA runs recorded" in result.output
