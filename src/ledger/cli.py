"""The ``ledger`` command line (Typer and rich)."""

from __future__ import annotations

import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Annotated, NoReturn

import typer
from pydantic import ValidationError
from rich.console import Console
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    TextColumn,
    TimeElapsedColumn,
)
from sqlalchemy.exc import DBAPIError

from ledger.application import ReleaseLedger
from ledger.config import Database, Settings
from ledger.demo import demo_steps, load_demo
from ledger.exceptions import LedgerError
from ledger.integrity import verify_events
from ledger.transfer import import_lines, write_export
from projections.schema import current_revision, engine_for, upgrade

app = typer.Typer(
    name="ledger",
    help="Release Ledger: an event-sourced ledger of release trains.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)
db_app = typer.Typer(
    name="db",
    help="The projection tables' schema (Alembic migrations).",
    no_args_is_help=True,
)
app.add_typer(db_app, name="db")
console = Console(stderr=True)


def fail(message: str) -> NoReturn:
    """One clear line on standard error and a non-zero exit, never a traceback."""
    console.print(f"[bold red]error:[/] {message}", highlight=False)
    raise typer.Exit(code=1)


@contextmanager
def opened_ledger() -> Iterator[ReleaseLedger]:
    """The ledger on ``LEDGER_DATABASE_URL``, announced on standard error, closed after."""
    try:
        settings = Settings()
        database = Database.from_url(settings.database_url)
        console.print(f"[dim]{database.describe()}[/]", highlight=False)
        ledger = ReleaseLedger.from_settings(settings)
    except ValidationError as error:
        fail(f"invalid setting: {error.errors()[0]['loc'][0]}: {error.errors()[0]['msg']}")
    except LedgerError as error:
        fail(error.detail)
    except Exception as error:  # the database refused us: say so in one line
        fail(f"cannot open the event store: {_first_line(error)}")
    try:
        yield ledger
    except LedgerError as error:
        fail(error.detail)
    finally:
        ledger.close()


def _first_line(error: BaseException) -> str:
    text = str(error).strip() or type(error).__name__
    return text.splitlines()[0]


def _progress() -> Progress:
    return Progress(
        TextColumn("{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        console=console,
        transient=True,
    )


@app.command()
def verify() -> None:
    """Recompute every stream's hash chain; name the first broken event."""
    with opened_ledger() as ledger, _progress() as progress:
        task = progress.add_task("verifying", total=ledger.event_log.last_position())
        report = verify_events(
            ledger.event_log.read(),
            ledger.mapper,
            progress=lambda position: progress.update(task, completed=position),
        )
    if report.broken is not None:
        fail(f"the log is broken at the {report.broken.describe()}")
    console.print(
        f"[green]ok[/]: {report.events:,} events in {report.streams:,} streams, every chain intact"
    )


@app.command()
def demo() -> None:
    """Load a realistic sample history (trains 5.1 to 5.6); loading it again records nothing."""
    with opened_ledger() as ledger, _progress() as progress:
        task = progress.add_task("loading the demo", total=len(demo_steps()))

        def advance(done: int, total: int) -> None:
            progress.update(task, completed=done, total=total)

        summary = load_demo(ledger, progress=advance)
    console.print(summary.describe(), highlight=False)


@app.command("export")
def export_command(
    output: Annotated[
        Path | None, typer.Option("--output", "-o", help="file to write (default: stdout)")
    ] = None,
) -> None:
    """Write every event as JSON lines (positions, both times, metadata)."""
    with opened_ledger() as ledger:
        if output is None:
            count = write_export(ledger.event_log, sys.stdout.buffer)
            sys.stdout.flush()
        else:
            with output.open("wb") as out:
                count = write_export(ledger.event_log, out)
    console.print(f"exported {count:,} events")


@app.command("import")
def import_command(
    source: Annotated[Path, typer.Argument(help="JSON lines from 'ledger export', or - for stdin")],
) -> None:
    """Load an export into an empty event store, every event at its original position."""
    if str(source) != "-" and not source.is_file():
        fail(f"no such file: {source}")
    with opened_ledger() as ledger, _progress() as progress:
        task = progress.add_task("importing", total=None)

        def advance(count: int) -> None:
            progress.update(task, completed=count)

        if str(source) == "-":
            count = import_lines(ledger.event_log, ledger.mapper, sys.stdin.buffer, advance)
        else:
            with source.open("rb") as lines:
                count = import_lines(ledger.event_log, ledger.mapper, lines, advance)
    console.print(f"imported {count:,} events")


@db_app.command("upgrade")
def db_upgrade() -> None:
    """Bring the projection tables to the newest schema; run it before serving on PostgreSQL."""
    try:
        database = Database.from_url(Settings().database_url)
    except ValidationError as error:
        fail(f"invalid setting: {error.errors()[0]['loc'][0]}: {error.errors()[0]['msg']}")
    except LedgerError as error:
        fail(error.detail)
    console.print(f"[dim]{database.describe()}[/]", highlight=False)
    engine = engine_for(database)
    try:
        upgrade(engine)
        revision = current_revision(engine)
    except LedgerError as error:
        fail(error.detail)
    except DBAPIError as error:  # the driver's own message, without SQLAlchemy's wrapping
        fail(f"cannot upgrade the projection schema: {_first_line(error.orig or error)}")
    except Exception as error:  # the database refused us: say so in one line
        fail(f"cannot upgrade the projection schema: {_first_line(error)}")
    finally:
        engine.dispose()
    console.print(f"projection schema at {revision}", highlight=False)


def main() -> None:  # pragma: no cover - the console script's entry point
    app()
