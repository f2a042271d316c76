"""Append throughput of the Release Ledger on PostgreSQL, as ratios to the raw library.

One run measures, in one process and against fresh databases on one server:

1. baseline    -- a trivial ``eventsourcing`` aggregate with one ``@event`` method, saved
                  by a plain ``Application`` one event per ``save()`` (the library's own
                  floor: its default ``LOCK TABLE ... IN EXCLUSIVE MODE`` insert);
2. reference   -- the same aggregate, but each save preceded by ``repository.get`` (the
                  load -> act -> save shape every ledger command has), for context;
3. ledger      -- ``ReleaseLedger.record_qa_run`` (cycle phase1: exactly one event) on a
                  train planned beforehand, then the same with a ``source_ref`` on every
                  command (which adds a claim event);
4. import      -- ``ledger.transfer.export_lines`` of the ledger's events, then
                  ``import_lines`` into a fresh empty database.

Rates are ratios to the baseline's events/s. Every database is created here with a
unique name and dropped at the end, even on failure or SIGTERM. Only loopback servers
are accepted. Usage: ``.venv/bin/python bench/append.py [--events N]`` (``make bench``).
"""

from __future__ import annotations

import argparse
import gc
import ipaddress
import os
import platform
import re
import signal
import statistics
import sys
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass, field
from datetime import date
from functools import partial
from importlib.metadata import version
from typing import Any
from urllib.parse import parse_qs, urlsplit, urlunsplit
from uuid import UUID

import psycopg
from eventsourcing.application import Application
from eventsourcing.domain import Aggregate, event
from eventsourcing.postgres import PostgresApplicationRecorder
from psycopg import sql
from rich.console import Console
from rich.table import Table

from ledger.application import CommandContext, ReleaseLedger
from ledger.config import Database, Settings
from ledger.metadata import Source
from ledger.transfer import export_lines, import_lines

DEFAULT_ADMIN_URL = "postgresql://postgres@127.0.0.1:5432/postgres"
ADMIN_URL_VARIABLE = "LEDGER_BENCH_DATABASE_URL"
CACHE_SIZE = 1000  # the ledger's default Settings.aggregate_cache_size
RATIO_GOAL = 0.7
MAX_EVENTS = 10_000
MAX_WARMUP = 500
MAX_SECONDS = 20.0  # four capped loops, so the whole run stays well under two minutes
BLOCK = 100  # operations per turn when the append benchmarks take turns
ACTOR = "bench"

# Library settings read from the process environment (optionally prefixed with an
# application's name) that would change what is measured; removed before the run.
LIBRARY_OVERRIDES = re.compile(
    r"^(?:LEDGER_|BENCHBASELINE_)?(?:PERSISTENCE_MODULE|POSTGRES_\w+|AGGREGATE_CACHE_\w+|"
    r"DEEPCOPY_FROM_AGGREGATE_CACHE|IS_SNAPSHOTTING_ENABLED|CREATE_TABLE|COMPRESSOR_TOPIC|"
    r"CIPHER_\w+)$"
)

console = Console(width=None if sys.stdout.isatty() else 120)


# ============================================================== the baseline app


class Counter(Aggregate):
    """The smallest useful aggregate: one ``@event`` method."""

    def __init__(self) -> None:
        self.count = 0

    @event("Ticked")
    def tick(self, by: int) -> None:
        self.count += by


class BenchBaseline(Application[UUID]):
    """A plain library application; its events go to ``benchbaseline_events``."""

    name = "BenchBaseline"


# ================================================================== measurement


@dataclass(frozen=True)
class Measurement:
    label: str
    operations: int
    events_per_operation: int
    wanted: int
    seconds: float
    latencies: tuple[float, ...] = ()

    @property
    def events(self) -> int:
        return self.operations * self.events_per_operation

    @property
    def ops_per_second(self) -> float:
        return self.operations / self.seconds

    @property
    def events_per_second(self) -> float:
        return self.events / self.seconds

    def percentile_ms(self, percent: int) -> float | None:
        if len(self.latencies) < 2:
            return None
        cuts = statistics.quantiles(self.latencies, n=100, method="inclusive")
        return cuts[percent - 1] * 1000

    @property
    def drift(self) -> float | None:
        """Median latency of the last tenth of the run over that of the first tenth."""
        tenth = len(self.latencies) // 10
        if tenth < 5:
            return None
        first = statistics.median(self.latencies[:tenth])
        last = statistics.median(self.latencies[-tenth:])
        return last / first

    @property
    def truncated(self) -> bool:
        return self.operations < self.wanted


@dataclass
class Bench:
    """One measured operation, run in blocks until it has done ``wanted`` or hit its cap."""

    label: str
    operation: Callable[[int], Any]
    wanted: int
    cap_seconds: float
    events_per_operation: int = 1
    latencies: list[float] = field(default_factory=list)
    spent: float = 0.0

    @property
    def finished(self) -> bool:
        return len(self.latencies) >= self.wanted or self.spent >= self.cap_seconds

    def run_block(self, size: int) -> None:
        clock = time.perf_counter
        operation = self.operation
        first = len(self.latencies)
        for i in range(first, min(first + size, self.wanted)):
            started = clock()
            operation(i)
            latency = clock() - started
            self.latencies.append(latency)
            self.spent += latency
            if self.spent >= self.cap_seconds:
                return

    def measurement(self) -> Measurement:
        return Measurement(
            self.label,
            len(self.latencies),
            self.events_per_operation,
            self.wanted,
            self.spent,
            tuple(self.latencies),
        )


def run_interleaved(benches: list[Bench], block: int) -> list[Measurement]:
    """Round-robin blocks of every benchmark, so load from elsewhere hits them all alike."""
    gc.collect()
    while not all(bench.finished for bench in benches):
        for bench in benches:
            if not bench.finished:
                bench.run_block(block)
    return [bench.measurement() for bench in benches]


def warm_up(operation: Callable[[int], Any], count: int) -> None:
    for i in range(count):
        operation(i)


# ==================================================================== databases


def loopback_only(url: str) -> None:
    """Refuse any server but this machine's: the benchmark sends traffic to loopback only."""
    parts = urlsplit(url)
    if parts.scheme.split("+", 1)[0] not in ("postgresql", "postgres"):
        raise SystemExit(f"{ADMIN_URL_VARIABLE} must be a postgresql:// URL")
    query = {key: values[-1] for key, values in parse_qs(parts.query).items()}
    host = query.get("host") or parts.hostname
    if host is None:
        raise SystemExit(f"{ADMIN_URL_VARIABLE} must name its host (127.0.0.1)")
    try:
        loopback = ipaddress.ip_address(host).is_loopback
    except ValueError:
        loopback = host == "localhost"
    if not loopback:
        raise SystemExit(f"refusing non-loopback PostgreSQL host {host!r}: use 127.0.0.1")


def database_url(admin_url: str, name: str) -> str:
    return urlunsplit(urlsplit(admin_url)._replace(path=f"/{name}"))


@contextmanager
def fresh_databases(admin_url: str, roles: tuple[str, ...]) -> Iterator[dict[str, str]]:
    """Create one empty database per role; drop every one of them on the way out."""
    tag = f"{os.getpid()}_{uuid.uuid4().hex[:8]}"
    created: dict[str, str] = {}
    try:
        with psycopg.connect(admin_url, autocommit=True, connect_timeout=5) as admin:
            for role in roles:
                name = f"ledger_bench_{tag}_{role}"
                admin.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
                created[role] = name
        yield {role: database_url(admin_url, name) for role, name in created.items()}
    finally:
        if created:
            drop_databases(admin_url, list(created.values()))


def drop_databases(admin_url: str, names: list[str], attempts: int = 5) -> None:
    """Drop ``names``, retrying a busy server (it may be out of connection slots)."""
    for attempt in range(1, attempts + 1):
        try:
            with psycopg.connect(admin_url, autocommit=True, connect_timeout=5) as admin:
                for name in names:
                    admin.execute(
                        sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(
                            sql.Identifier(name)
                        )
                    )
        except psycopg.OperationalError:
            if attempt == attempts:
                console.print(f"[red]could not drop the benchmark databases {names}[/red]")
                raise
            time.sleep(2 * attempt)
        else:
            console.print(f"[dim]dropped {len(names)} benchmark databases[/dim]")
            return


def open_ledger(url: str) -> ReleaseLedger:
    """The ledger exactly as ``ledger`` commands and the server open it."""
    ledger = ReleaseLedger.from_settings(
        Settings(database_url=url, aggregate_cache_size=CACHE_SIZE)
    )
    if ledger.env.get("PERSISTENCE_MODULE") != "eventsourcing.postgres":
        raise RuntimeError(f"not a PostgreSQL environment: {ledger.env.get('PERSISTENCE_MODULE')}")
    return ledger


def baseline_env(url: str) -> dict[str, str]:
    """The ledger's connection settings and cache size for the plain application."""
    env = dict(Database.from_url(url).env)
    env["AGGREGATE_CACHE_MAXSIZE"] = str(CACHE_SIZE)
    env["CREATE_TABLE"] = "y"
    return env


def check_table_lock(app: Application[UUID]) -> None:
    """Both sides must use the library's default insert: a table lock, no DB functions."""
    recorder = app.recorder
    if not isinstance(recorder, PostgresApplicationRecorder):
        raise RuntimeError(f"{app.name} is not on PostgreSQL: {type(recorder).__name__}")
    if recorder.datastore.enable_db_functions:
        raise RuntimeError(f"{app.name} has POSTGRES_ENABLE_DB_FUNCTIONS on")


def scrub_library_overrides() -> list[str]:
    removed = sorted(key for key in os.environ if LIBRARY_OVERRIDES.match(key))
    for key in removed:
        del os.environ[key]
    return removed


def server_version(admin_url: str) -> str:
    with psycopg.connect(admin_url, connect_timeout=5) as admin:
        row = admin.execute("SHOW server_version").fetchone()
    return str(row[0]) if row else "?"


# =================================================================== benchmarks


class LibraryBench:
    """The plain library application and its two operations, on one cached aggregate each."""

    def __init__(self, url: str) -> None:
        self.app = BenchBaseline(baseline_env(url))
        self.warm, self.measured, self.loaded = Counter(), Counter(), Counter()
        check_table_lock(self.app)
        self.app.save(self.warm, self.measured, self.loaded)
        self.saves = 1

    def append_warm(self, _: int) -> None:
        self.warm.tick(1)
        self.app.save(self.warm)
        self.saves += 1

    def append(self, _: int) -> None:
        """The baseline: one event, one save(), the aggregate already in hand."""
        self.measured.tick(1)
        self.app.save(self.measured)
        self.saves += 1

    def load_act_save(self, _: int, *, warm: bool = False) -> None:
        """The reference: what a ledger command does, minus the ledger."""
        counter: Counter = self.app.repository.get((self.warm if warm else self.loaded).id)
        counter.tick(1)
        self.app.save(counter)
        self.saves += 1

    def check(self) -> None:
        stored = self.app.recorder.max_notification_id() or 0
        if stored != self.saves + 2:
            raise RuntimeError(f"baseline stored {stored} events, expected {self.saves + 2}")

    def close(self) -> None:
        self.app.close()


class LedgerBench:
    """One-event ledger commands on planned trains, without and with ``source_ref``."""

    def __init__(self, ledger: ReleaseLedger) -> None:
        self.ledger = ledger
        check_table_lock(ledger)
        self.tag = uuid.uuid4().hex[:8]
        for train in ("90.0", "90.1", "91.0", "91.1"):
            ledger.plan_train(train, "major", ACTOR, title="benchmark train")
        # One command records exactly one event; with a source_ref, one more (the claim).
        probe = self.qa_run("90.0", "probe", with_ref=False)(0)
        if len(probe.events) != 1 or probe.events[0].type != "QARunRecorded":
            raise RuntimeError(f"record_qa_run recorded {probe.events!r}, expected one event")
        before = ledger.event_log.last_position()
        self.qa_run("91.0", "probe", with_ref=True)(0)
        if ledger.event_log.last_position() - before != 2:
            raise RuntimeError("record_qa_run with a source_ref did not record two events")

    def qa_run(self, train: str, prefix: str, *, with_ref: bool) -> Callable[[int], Any]:
        ledger = self.ledger
        plain = CommandContext(recorded_by="bench", source=Source.QTEST)

        def command(i: int) -> Any:
            context = plain
            if with_ref:
                context = CommandContext(
                    recorded_by="bench", source=Source.QTEST, source_ref=f"{self.tag}-{prefix}-{i}"
                )
            return ledger.record_qa_run(
                train, "phase1", f"build-{i}", 200, 194, 6, ACTOR, context=context
            )

        return command


def bench_import(
    ledger: ReleaseLedger, warm_url: str, import_url: str, warmup: int
) -> tuple[Measurement, Measurement]:
    """Export the ledger's log, then import it whole into an empty database."""
    gc.collect()
    started = time.perf_counter()
    lines = list(export_lines(ledger.event_log))
    export_seconds = time.perf_counter() - started
    exported = Measurement("export: export_lines", len(lines), 1, len(lines), export_seconds)

    with open_ledger(warm_url) as warm:
        import_lines(warm.event_log, warm.mapper, lines[: max(warmup, 1)])
    with open_ledger(import_url) as target:
        gc.collect()
        started = time.perf_counter()
        count = import_lines(target.event_log, target.mapper, lines)
        import_seconds = time.perf_counter() - started
        if count != len(lines) or (
            target.event_log.last_position() != ledger.event_log.last_position()
        ):
            raise RuntimeError(f"imported {count} of {len(lines)} events")
    imported = Measurement("import: import_lines", count, 1, count, import_seconds)
    return exported, imported


# ======================================================================= report


def report(
    rows: list[Measurement], baseline: Measurement, context: dict[str, str], seconds: float
) -> None:
    table = Table(title="Release Ledger appends on PostgreSQL, ratios to the raw library")
    table.add_column("benchmark")
    table.add_column("ops", justify="right")
    table.add_column("events", justify="right")
    table.add_column("ops/s", justify="right")
    table.add_column("events/s", justify="right")
    table.add_column("p50 ms", justify="right")
    table.add_column("p99 ms", justify="right")
    table.add_column("drift", justify="right")
    table.add_column("x baseline", justify="right")

    def number(value: float | None, digits: int = 2) -> str:
        return "-" if value is None else f"{value:,.{digits}f}"

    for row in rows:
        ops = f"{row.operations:,}" + (f" of {row.wanted:,}*" if row.truncated else "")
        ratio = row.ops_per_second / baseline.events_per_second
        if row.label.startswith(("export", "import")):
            ratio = row.events_per_second / baseline.events_per_second
        table.add_row(
            row.label,
            ops,
            f"{row.events:,}",
            number(row.ops_per_second, 0),
            number(row.events_per_second, 0),
            number(row.percentile_ms(50)),
            number(row.percentile_ms(99)),
            number(row.drift),
            "1.00" if row is baseline else f"{ratio:.2f}",
        )
    console.print(" · ".join(f"{key} {value}" for key, value in context.items()))
    console.print(table)
    console.print(
        "[dim]baseline: Counter.tick() + Application.save(), 1 event per save. "
        "reference: repository.get() + tick() + save(), the load-act-save shape. "
        "record_qa_run: 1 event per command; +source_ref: 1 event + 1 claim event, one save.\n"
        "x baseline: ops/s over baseline events/s (one command vs one save); export and "
        "import: events/s over baseline events/s. drift: median latency of the last 10% of "
        "the run over the first 10% (1.0 = flat as the stream grows). "
        "* stopped at the time cap.[/dim]"
    )
    for row in rows:
        # The goal is for one-event commands; the source_ref line shows what the claim costs.
        if row.label == "ledger: record_qa_run":
            ratio = row.ops_per_second / baseline.events_per_second
            verdict = "[green]MET[/green]" if ratio >= RATIO_GOAL else "[red]NOT MET[/red]"
            console.print(
                f"goal {row.label!r} >= {RATIO_GOAL:.2f} x baseline: {verdict} ({ratio:.2f})"
            )
    console.print(f"[dim]total wall time {seconds:.1f} s[/dim]")


# ========================================================================= main


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n\n", 1)[0])
    parser.add_argument(
        "--events",
        type=int,
        default=2000,
        help=f"measured saves/commands per benchmark (default 2000, at most {MAX_EVENTS})",
    )
    parser.add_argument(
        "--warmup",
        type=int,
        default=200,
        help=f"unmeasured saves/commands before each benchmark (default 200, at most {MAX_WARMUP})",
    )
    parser.add_argument(
        "--seconds",
        type=float,
        default=MAX_SECONDS,
        help=f"time cap of each measured loop, in seconds (default and most {MAX_SECONDS:.0f})",
    )
    args = parser.parse_args(argv)
    if not 10 <= args.events <= MAX_EVENTS:
        parser.error(f"--events must be from 10 to {MAX_EVENTS}")
    if not 0 <= args.warmup <= MAX_WARMUP:
        parser.error(f"--warmup must be from 0 to {MAX_WARMUP}")
    if not 1 <= args.seconds <= MAX_SECONDS:
        parser.error(f"--seconds must be from 1 to {MAX_SECONDS:.0f}")
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    return on_loopback_server(lambda admin_url: run(args, admin_url))


def on_loopback_server(benchmark: Callable[[str], int]) -> int:
    """Run a benchmark against the admin URL, which must be loopback; one line if it is down."""
    admin_url = os.environ.get(ADMIN_URL_VARIABLE) or DEFAULT_ADMIN_URL
    loopback_only(admin_url)
    try:
        return benchmark(admin_url)
    except psycopg.OperationalError as error:
        parts = urlsplit(admin_url)
        console.print(f"[red]PostgreSQL at {parts.hostname}:{parts.port or 5432}: {error}")
        return 1


def run(args: argparse.Namespace, admin_url: str) -> int:
    # A SIGTERM unwinds like Ctrl-C, so the databases are still dropped.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    removed = scrub_library_overrides()
    if removed:
        console.print(f"[yellow]ignoring library settings from the environment: {removed}")

    started = time.perf_counter()
    context = {
        "date": date.today().isoformat(),
        "python": platform.python_version(),
        "eventsourcing": version("eventsourcing"),
        "PostgreSQL": server_version(admin_url),
        "cores": str(os.cpu_count()),
        "events": str(args.events),
        "warm-up": str(args.warmup),
    }
    console.print(
        f"[bold]bench/append.py[/bold]: {args.events} measured operations per benchmark, "
        f"{args.warmup} warm-up, cap {args.seconds:.0f} s each"
    )
    with (
        fresh_databases(admin_url, ("main", "importwarm", "import")) as urls,
        ExitStack() as apps,
    ):
        console.print("[dim]1/3 warm-up...[/dim]")
        library = LibraryBench(urls["main"])
        apps.callback(library.close)
        ledger = apps.enter_context(open_ledger(urls["main"]))
        commands = LedgerBench(ledger)
        warm_up(library.append_warm, args.warmup)
        warm_up(partial(library.load_act_save, warm=True), args.warmup)
        warm_up(commands.qa_run("90.0", "warm", with_ref=False), args.warmup)
        warm_up(commands.qa_run("91.0", "warm", with_ref=True), args.warmup)

        console.print("[dim]2/3 appends: baseline, reference and ledger, interleaved...[/dim]")
        n, cap = args.events, args.seconds
        baseline, reference, one_event, with_ref = run_interleaved(
            [
                Bench("baseline: library save()", library.append, n, cap),
                Bench("reference: library get+save", library.load_act_save, n, cap),
                Bench(
                    "ledger: record_qa_run",
                    commands.qa_run("90.1", "run", with_ref=False),
                    n,
                    cap,
                ),
                Bench(
                    "ledger: record_qa_run+source_ref",
                    commands.qa_run("91.1", "run", with_ref=True),
                    n,
                    cap,
                    events_per_operation=2,
                ),
            ],
            BLOCK,
        )
        library.check()

        console.print("[dim]3/3 export and import...[/dim]")
        exported, imported = bench_import(ledger, urls["importwarm"], urls["import"], args.warmup)
        apps.close()
    report(
        [baseline, reference, one_event, with_ref, exported, imported],
        baseline,
        context,
        time.perf_counter() - started,
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
