"""The ``ledger`` command line (Typer and rich)."""

from __future__ import annotations

import secrets
import signal
import sys
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Annotated, Literal, NoReturn

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
from rich.table import Column, Table
from sqlalchemy import Engine
from sqlalchemy.exc import DBAPIError

from api.tokens import create_token, list_tokens, parse_duration, revoke_token
from integrations.config import IntegrationsConfig, qtest_client
from integrations.inbox import DeliveryStatus, Inbox, Integration
from integrations.processor import InboxProcessor, InboxWorker, Round
from ledger.application import ReleaseLedger
from ledger.config import Database, Settings, normalise_root_path
from ledger.exceptions import LedgerError
from ledger.integrity import verify_events
from ledger.transfer import import_lines, write_export
from projections.board import print_board
from projections.projectors import PROJECTION_NAMES
from projections.queries import ProjectionQueries, TimePoint
from projections.runner import ProjectionRunner, projection_status, rebuild
from projections.schema import current_revision, engine_for, prepare, upgrade
from release_ledger.demo import demo_steps, load_demo

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
console = Console(stderr=True, soft_wrap=True)


def fail(message: str) -> NoReturn:
    """One clear line on standard error and a non-zero exit, never a traceback."""
    console.print(f"[bold red]error:[/] {message}", highlight=False)
    raise typer.Exit(code=1)


def configured() -> tuple[Settings, Database]:
    """The settings and the database they name, announced on standard error."""
    try:
        settings = Settings()
        database = Database.from_url(settings.database_url)
    except ValidationError as error:
        fail(f"invalid setting: {error.errors()[0]['loc'][0]}: {error.errors()[0]['msg']}")
    except LedgerError as error:
        fail(error.detail)
    console.print(f"[dim]{database.describe()}[/]", highlight=False)
    return settings, database


@contextmanager
def opened_ledger() -> Iterator[ReleaseLedger]:
    """The ledger on ``LEDGER_DATABASE_URL``, announced on standard error, closed after."""
    settings, _ = configured()
    with _ledger(settings) as ledger:
        yield ledger


@contextmanager
def opened_projections() -> Iterator[tuple[ReleaseLedger, Engine]]:
    """The ledger and its projection tables, with a usable schema (see ``prepare``)."""
    settings, database = configured()
    with _ledger(settings) as ledger:
        engine = engine_for(database)
        try:
            prepare(engine, database)
            yield ledger, engine
        except LedgerError as error:
            fail(error.detail)
        finally:
            engine.dispose()


@contextmanager
def _ledger(settings: Settings) -> Iterator[ReleaseLedger]:
    try:
        ledger = ReleaseLedger.from_settings(settings)
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
    _, database = configured()
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


projections_app = typer.Typer(
    name="projections", help="The read models: status, worker, rebuilds.", no_args_is_help=True
)
app.add_typer(projections_app, name="projections")


@projections_app.command("status")
def projections_status() -> None:
    """Each projection's generation, position and lag behind the log."""
    with opened_projections() as (ledger, engine):
        statuses = projection_status(engine, ledger)
    table = Table("projection", "generation", "position", "lag", "rebuilding")
    for status in statuses:
        rebuilding = (
            f"generation {status.rebuilding_generation} at {status.rebuild_position:,}"
            if status.rebuilding_generation is not None
            else "-"
        )
        table.add_row(
            status.name,
            str(status.generation),
            f"{status.position:,}",
            f"{status.lag:,}",
            rebuilding,
        )
    Console().print(table)


@projections_app.command("run")
def projections_run(
    once: Annotated[bool, typer.Option(help="catch up, then stop instead of following")] = False,
) -> None:
    """Keep the projections current as a separate worker (Ctrl-C stops it)."""
    with opened_projections() as (ledger, engine):
        runner = ProjectionRunner(ledger, engine)
        applied = runner.catch_up()
        console.print(f"caught up: {applied:,} events applied, at position {runner.position():,}")
        if once:
            return
        stop = threading.Event()
        signal.signal(signal.SIGTERM, lambda *_: stop.set())
        console.print("following the log (Ctrl-C stops)")
        try:
            runner.run_forever(stop)
        except KeyboardInterrupt:
            stop.set()


@projections_app.command("rebuild")
def projections_rebuild(
    name: Annotated[str | None, typer.Argument(help="one projection (default: all)")] = None,
) -> None:
    """Rebuild from position 0 beside the live rows, then swap; readers stay online."""
    if name is not None and name not in PROJECTION_NAMES:
        fail(f"no projection {name!r}; the projections are {', '.join(PROJECTION_NAMES)}")
    names = [name] if name else list(PROJECTION_NAMES)
    with opened_projections() as (ledger, engine), _progress() as progress:
        task = progress.add_task(
            f"rebuilding {', '.join(names)}", total=ledger.event_log.last_position()
        )
        rebuild(ledger, engine, names, lambda position: progress.update(task, completed=position))
    console.print(f"rebuilt {', '.join(names)}")


@app.command()
def replay(
    train: Annotated[str, typer.Option(help="the train, e.g. 5.5")],
    as_of: Annotated[
        datetime, typer.Option("--as-of", help="valid time (ISO 8601; UTC if no offset)")
    ],
    known_at: Annotated[
        datetime | None,
        typer.Option("--known-at", help="transaction time: only what was recorded by then"),
    ] = None,
) -> None:
    """Print a train's board as it was at a moment, as known then or now."""
    at = TimePoint(_aware(as_of), _aware(known_at) if known_at else None)
    with opened_projections() as (ledger, engine):
        document = ProjectionQueries(engine, ledger).train(train, at)
    print_board(Console(), document, at)


REPORT_FORMATS = {
    "md": "the weekly report of train {train}",
    "pptx": "the weekly deck of train {train}",
    "xlsx": "the timeline of every train",
}


@app.command()
def report(
    train: Annotated[str, typer.Option(help="the train, e.g. 5.5")],
    as_of: Annotated[
        str | None,
        typer.Option(
            "--as-of",
            help="a day (its end, UTC) or an ISO 8601 moment; the report covers the 7 days "
            "before (default: now)",
        ),
    ] = None,
    form: Annotated[
        str,
        typer.Option(
            "--format",
            help="md (the report, printed), pptx (the weekly deck) or xlsx (the timeline)",
        ),
    ] = "md",
    output: Annotated[
        Path | None,
        typer.Option("--output", "-o", help="file to write; pptx and xlsx need one"),
    ] = None,
) -> None:
    """Print the weekly status report of a train as Markdown, or write its deck or timeline."""
    if form not in REPORT_FORMATS:
        fail(f"--format must be md, pptx or xlsx, not {form!r}")
    if form != "md" and output is None:
        fail(f"--format {form} writes a file: name it with -o FILE")
    moment = _report_moment(as_of) if as_of else None
    with opened_projections() as (ledger, engine):
        # The report reads the projections, which only a server or `ledger projections run`
        # keeps current: bring them up to the log first, so a report never misses a write.
        ProjectionRunner(ledger, engine).catch_up()
        queries = ProjectionQueries(engine, ledger)
        if form == "md":
            content = _markdown_report(queries, train, moment).encode()
        else:
            from api.exports import office_file  # python-pptx and openpyxl load only here

            office: Literal["pptx", "xlsx"] = "pptx" if form == "pptx" else "xlsx"
            content = office_file(queries, train, office, moment).content
    if output is None:
        sys.stdout.write(content.decode())
        sys.stdout.flush()
        return
    try:
        output.write_bytes(content)
    except OSError as error:
        fail(f"cannot write {output}: {error.strerror or error}")
    what = REPORT_FORMATS[form].format(train=train)
    console.print(f"wrote {output}: {what}", highlight=False)


def _markdown_report(queries: ProjectionQueries, train: str, moment: datetime | None) -> str:
    from api.templating import render_text  # Jinja2 loads only for this command
    from projections.report import weekly_report

    return render_text("report.md", report=weekly_report(queries, train, moment))


def _report_moment(value: str) -> datetime:
    from projections.report import end_of_day

    try:
        if len(value) == 10:
            return end_of_day(date.fromisoformat(value))
        return _aware(datetime.fromisoformat(value))
    except ValueError:
        fail(f"--as-of must be a day like 2026-11-20 or an ISO 8601 moment, not {value!r}")


def _aware(moment: datetime) -> datetime:
    return moment if moment.utcoffset() is not None else moment.replace(tzinfo=UTC)


token_app = typer.Typer(
    name="token",
    help="Bearer tokens for the HTTP API: create, list and revoke.",
    no_args_is_help=True,
)
app.add_typer(token_app, name="token")


@contextmanager
def opened_token_store() -> Iterator[Engine]:
    """The database that keeps the API's tokens (beside the projections), schema checked."""
    _, database = configured()
    if database.backend == "memory":
        fail("an in-memory ledger keeps no tokens: set LEDGER_DATABASE_URL to a database")
    engine = engine_for(database)
    try:
        prepare(engine, database)
        yield engine
    except LedgerError as error:
        fail(error.detail)
    except DBAPIError as error:  # the driver's own message, without SQLAlchemy's wrapping
        fail(f"cannot reach the token store: {_first_line(error.orig or error)}")
    finally:
        engine.dispose()


def _utc_minute(moment: datetime) -> str:
    return f"{moment.astimezone(UTC):%Y-%m-%d %H:%M}"


@token_app.command("create")
def token_create(
    name: Annotated[str, typer.Option(help="who the token is for; recorded_by on its events")],
    role: Annotated[str, typer.Option(help="reader, writer or admin")],
    expires_in: Annotated[
        str | None,
        typer.Option(help="refuse the token after this long: 30m, 12h, 90d; default: never"),
    ] = None,
) -> None:
    """Create a token and print it, alone, on standard output: it is never shown again."""
    expires_at = None
    if expires_in is not None:
        # Checked before the database is opened, so a typo costs no connection.
        try:
            expires_at = datetime.now(UTC) + parse_duration(expires_in, field="--expires-in")
        except LedgerError as error:
            fail(error.detail)
    with opened_token_store() as engine:
        token = create_token(engine, name, role, expires_at=expires_at)
    # The token goes to stdout alone so that $(ledger token create ...) captures just it.
    sys.stdout.write(token + "\n")
    sys.stdout.flush()
    lifetime = f"expires {_utc_minute(expires_at)} UTC" if expires_at else "never expires"
    console.print(
        f"created token {name} with role {role} ({lifetime}); store it now, it is shown only once",
        highlight=False,
    )


@token_app.command("list")
def token_list() -> None:
    """Every token's name, role, and when it was created, expires and was revoked."""
    with opened_token_store() as engine:
        tokens = list_tokens(engine)
    now = datetime.now(UTC)
    # A name folds over lines rather than losing its end: a cut name names another token.
    name = Column("name", overflow="fold")
    table = Table(name, "role", "created (UTC)", "expires (UTC)", "revoked (UTC)")
    for token in tokens:
        expires = "never"
        if token.expires_at is not None:
            expires = _utc_minute(token.expires_at)
            if token.expired(now):
                expires += " (expired)"
        revoked = _utc_minute(token.revoked_at) if token.revoked_at else ""
        table.add_row(token.name, token.role, _utc_minute(token.created_at), expires, revoked)
    Console().print(table)


@token_app.command("revoke")
def token_revoke(
    name: Annotated[str, typer.Option(help="the name the token was created with")],
) -> None:
    """Revoke a token: requests carrying it are refused from now on."""
    with opened_token_store() as engine:
        changed = revoke_token(engine, name)
    console.print(f"revoked token {name}" if changed else f"token {name} was already revoked")


inbox_app = typer.Typer(
    name="inbox",
    help="The webhook inbox: what deliveries became; map them again.",
    no_args_is_help=True,
)
app.add_typer(inbox_app, name="inbox")


@inbox_app.command("status")
def inbox_status() -> None:
    """Deliveries per status."""
    with opened_projections() as (_, engine):
        counts = Inbox(engine).counts()
    table = Table("status", "deliveries")
    for status, count in counts.items():
        table.add_row(status, f"{count:,}")
    Console().print(table)


@contextmanager
def opened_inbox_processor() -> Iterator[InboxProcessor]:
    """A processor of the webhook inbox with the configured mapping and QTest client."""
    settings, _ = configured()
    try:
        config = IntegrationsConfig.load(settings.integrations_file)
    except LedgerError as error:
        fail(error.detail)
    with opened_projections() as (ledger, engine):
        processor = InboxProcessor(ledger, engine, config, qtest_client(settings))
        try:
            yield processor
        finally:
            processor.close()


def _summary(done: Round) -> str:
    return (
        f"{done.settled:,} settled, {done.postponed:,} waiting to retry, "
        f"{done.qa_runs:,} QA runs recorded"
    )


@inbox_app.command("run")
def inbox_run(
    once: Annotated[
        bool, typer.Option(help="map what is due, then stop instead of following")
    ] = False,
) -> None:
    """Map webhook deliveries as a worker of its own (with LEDGER_INBOX_WORKER=false on the
    servers); Ctrl-C stops it."""
    with opened_inbox_processor() as processor:
        if once:
            console.print(f"mapped: {_summary(processor.drain())}", highlight=False)
            return
        worker = InboxWorker(processor)
        stop = threading.Event()
        signal.signal(signal.SIGTERM, lambda *_: stop.set())
        worker.start()
        console.print("mapping webhook deliveries (Ctrl-C stops)")
        try:
            stop.wait()
        except KeyboardInterrupt:
            pass
        finally:
            worker.stop()


@inbox_app.command("reprocess")
def inbox_reprocess(
    status: Annotated[
        list[str] | None,
        typer.Option(help="which deliveries to map again (repeatable; default: failed)"),
    ] = None,
    integration: Annotated[str | None, typer.Option(help="jira or qtest (default: both)")] = None,
    delivery: Annotated[list[int] | None, typer.Option(help="one inbox id (repeatable)")] = None,
) -> None:
    """Map deliveries again after a configuration change; nothing is recorded twice."""
    try:
        statuses = [DeliveryStatus(name) for name in status or ["failed"]]
        which = Integration(integration) if integration else None
    except ValueError as error:
        fail(str(error))
    with opened_inbox_processor() as processor:
        reopened = processor.inbox.reopen(
            delivery_ids=delivery or None, statuses=statuses, integration=which
        )
        done = processor.drain()
        counts = processor.inbox.counts()
    console.print(
        f"mapped {reopened:,} deliveries again: {_summary(done)}; "
        + ", ".join(f"{name} {count:,}" for name, count in counts.items()),
        highlight=False,
    )


@app.command()
def serve(
    host: Annotated[str, typer.Option(help="address to listen on")] = "127.0.0.1",
    port: Annotated[int, typer.Option(min=1, max=65535, help="port to listen on")] = 8000,
    workers: Annotated[int, typer.Option(min=1, help="server processes")] = 1,
    login_link: Annotated[
        bool,
        typer.Option(help="make a reader token and print the dashboard's login link with it"),
    ] = True,
    root_path: Annotated[
        str | None,
        typer.Option(
            help="the path prefix a reverse proxy serves the ledger under, e.g. /ledger "
            "(the proxy strips it); default LEDGER_ROOT_PATH",
            show_default=False,
        ),
    ] = None,
) -> None:
    """Serve the HTTP API and the dashboard with uvicorn; each worker keeps the projections
    current too. Forwarded headers are believed only from LEDGER_TRUSTED_PROXIES."""
    import uvicorn  # only the server needs it; other commands start faster without

    settings, database = configured()
    try:
        prefix = settings.root_path if root_path is None else normalise_root_path(root_path)
    except ValueError as error:
        fail(f"--root-path: {error}")
    if database.backend == "memory" and workers > 1:
        fail("an in-memory ledger cannot be shared by several workers: use --workers 1")
    # Open everything once here, so a bad URL or an out-of-date schema is one clear
    # line rather than a traceback from inside each worker.
    with _ledger(settings):
        engine = engine_for(database)
        login = None
        try:
            IntegrationsConfig.load(settings.integrations_file)
            prepare(engine, database)
            # Like Jupyter: a fresh reader token in the link's fragment, which browsers
            # never send, so it stays out of access logs; an in-memory ledger keeps none.
            if login_link and database.backend != "memory":
                stamp = f"{datetime.now(UTC):%Y%m%d-%H%M%S}-{secrets.token_hex(2)}"
                login = create_token(engine, f"dashboard-{stamp}", "reader")
        except LedgerError as error:
            fail(error.detail)
        except DBAPIError as error:
            fail(f"cannot prepare the projection schema: {_first_line(error.orig or error)}")
        finally:
            engine.dispose()
    console.print(f"serving the API on http://{host}:{port} (Ctrl-C stops)", highlight=False)
    if prefix:
        console.print(f"behind a proxy that serves it under {prefix}", highlight=False)
    if settings.trusted_proxies:
        trusted = ", ".join(settings.trusted_proxies)
        console.print(f"forwarded headers believed from {trusted}", highlight=False)
    if login is not None:
        shown = "127.0.0.1" if host in ("0.0.0.0", "::", "") else host
        # Behind a proxy the public address is the proxy's, which only the proxy knows.
        where = f"through your proxy, at {prefix}" if prefix else f"http://{shown}:{port}"
        console.print(
            f"open the dashboard (a reader session): {where}/login#token={login}",
            highlight=False,
            soft_wrap=True,
        )
    uvicorn.run(
        "api.main:create_app",
        factory=True,
        host=host,
        port=port,
        workers=workers,
        root_path=prefix,
        # uvicorn would otherwise believe X-Forwarded-* from any local client.
        proxy_headers=bool(settings.trusted_proxies),
        forwarded_allow_ips=settings.trusted_proxies or None,
    )


def main() -> None:  # pragma: no cover - the console script's entry point
    app()
