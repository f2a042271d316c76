"""HTTP API throughput of the Release Ledger, as ratios to a trivial endpoint and the raw library.

One run, in one process tree, against 127.0.0.1 only, on a fresh database:

0. setup     -- ``ledger db upgrade``, a writer token (``ledger token create``), and a
                realistic train 9.1 (gates, 150 features with customer asks, decisions,
                beta drops, QA runs) plus one small train per connection for the writes,
                all recorded through ``ReleaseLedger``; the reads wait for the projections.
1. trivial   -- a FastAPI app with one ``async def`` GET returning a small JSON dict with
                the API's ``ORJSONResponse``, served by uvicorn exactly as ``ledger serve``
                serves the real app (same ``uvicorn.run`` call, workers, loop and parser):
                the reads' baseline. The same app's ``def`` GET (the threadpool) for context.
2. healthz   -- ``GET /healthz`` on ``ledger serve``: the real app's middlewares and a
                threadpool route, no database (context).
3. reads     -- ``GET /v1/trains/9.1`` on ``ledger serve`` with the token (a writer reads).
4. writes    -- ``POST /v1/trains/{train}/qa-runs`` (one ``QARunRecorded`` each), each
                connection on a train of its own, so no two writers share a stream.
5. library   -- ``bench/append.py``'s baseline, the raw library's single-event append
                (``Counter.tick`` + ``Application.save``) in this process on the same
                PostgreSQL, in blocks between the rounds of writes: the writes' baseline.

Every HTTP phase runs 64 keep-alive HTTP/1.1 connections from this process (asyncio on
uvloop; ``--client httpx`` for httpx instead): a warm-up, then a measured window, both
bounded in time. The window is split into rounds in which phases 1-3 take turns, and 4
with 5, so load from elsewhere on a shared host falls on the baselines and the measured
lines alike. The client shares the machine's cores with the servers and PostgreSQL, so the
ratios matter more than the absolute rates. Servers run as child processes that die with
this one; the database is dropped at the end, even on failure, Ctrl-C or SIGTERM.
Usage: ``.venv/bin/python bench/api.py [--seconds S] [--workers N]`` (``make bench-api``).
"""

from __future__ import annotations

import sys
from pathlib import Path

# Run as a script, this file's directory comes first on sys.path, and this file would
# shadow the ``api`` package it measures: look in that directory last (where ``append`` and
# ``harness``, whose helpers this benchmark shares, are still found).
sys.path.sort(key=lambda entry: Path(entry or ".").resolve() == Path(__file__).resolve().parent)

import argparse
import asyncio
import contextlib
import json
import os
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from fastapi import FastAPI
from rich.table import Table

from api.main import NO_OPENTELEMETRY
from api.responses import ORJSONResponse
from append import (
    Bench,
    LibraryBench,
    Measurement,
    fresh_databases,
    on_loopback_server,
    open_ledger,
    run_interleaved,
    warm_up,
)
from harness import (
    HOST,
    BenchDatabase,
    Load,
    RawConnection,
    Request,
    Server,
    Snapshot,
    console,
    http_get,
    isolate_run,
    ledger_command,
    run_context,
    run_ledger,
    running,
    server_env,
    start_profiler,
    top_of_profile,
)
from ledger.application import CustomerAsk, ReleaseLedger

CONNECTIONS = 64
DEFAULT_SECONDS = 10.0
DEFAULT_WARMUP = 2.0
DEFAULT_ROUNDS = 5
ROUND_WARMUP = 0.5  # after the first round, the connections only need to open again
MAX_SECONDS = 20.0
MAX_REQUESTS = 1_000_000  # per phase, so the latencies kept stay bounded in memory
PHASE_GRACE = 30.0  # beyond warm-up + window, a phase whose server stopped answering fails
SEED_TIMEOUT = 60.0
LIBRARY_SAVES = 2000  # the writes' baseline, in blocks between the rounds of writes
LIBRARY_WARMUP = 200
LIBRARY_CAP_SECONDS = 10.0

READ_TRAIN = "9.1"
FEATURES = 150
READ_RATIO_GOAL = 0.6
READ_P99_GOAL_MS = 150.0
WRITE_RATIO_GOAL = 0.6

TOKEN_NAME = "bench-writer"
QA_ACTOR = "Ingrid Solberg"


# ================================================================ the trivial app


def trivial_app() -> FastAPI:
    """The baseline server: FastAPI at its simplest, answering with the API's response class."""
    app = FastAPI(
        title="trivial", default_response_class=ORJSONResponse, telemetry=NO_OPENTELEMETRY
    )

    @app.get("/v1/ping")
    async def ping() -> dict[str, str]:
        return {"status": "ok", "service": "trivial"}

    @app.get("/v1/ping-sync")
    def ping_sync() -> dict[str, str]:
        return {"status": "ok", "service": "trivial"}

    return app


def serve_trivial(host: str, port: int, workers: int) -> int:
    """Serve ``trivial_app`` with the very ``uvicorn.run`` call of ``ledger serve``."""
    import uvicorn

    # ``__main__`` is this file, also in the workers uvicorn spawns for --workers > 1.
    uvicorn.run("__main__:trivial_app", factory=True, host=host, port=port, workers=workers)
    return 0


# ================================================================ the load


class HttpxConnection:
    """One of 64 tasks sharing an ``httpx.AsyncClient`` limited to 64 connections."""

    def __init__(self, client: Any) -> None:
        self.client = client

    async def send(self, request: Request) -> tuple[int, bytes]:
        response = await self.client.request(request.method, request.path, content=request.body)
        return response.status_code, response.content

    def close(self) -> None:
        pass


@dataclass(frozen=True)
class Target:
    """One measured kind of request; ``request(connection, n)`` makes the n-th of a connection."""

    label: str
    server: Server
    request: Callable[[int, int], Request]
    check: Callable[[bytes], None]
    body: bool = False


@dataclass(frozen=True)
class Phase:
    target: Target
    measurement: Measurement
    errors: int
    warm_ok: int  # 2xx answers in the warm-up, which count for the writes' check
    failures: tuple[str, ...]
    cpu_seconds: dict[str, float]  # over the measured window: client, server, PostgreSQL

    @property
    def ok(self) -> int:
        return self.measurement.operations - self.errors

    def cpu_ms(self, part: str) -> float:
        return self.cpu_seconds[part] / max(self.measurement.operations, 1) * 1000


def merged(parts: list[Phase]) -> Phase:
    """The rounds of one phase as one: summed requests, windows and CPU; all latencies."""
    first = parts[0]
    measurements = [part.measurement for part in parts]
    operations = sum(m.operations for m in measurements)
    latencies = tuple(latency for m in measurements for latency in m.latencies)
    return Phase(
        first.target,
        Measurement(
            first.measurement.label,
            operations,
            1,
            operations,
            sum(m.seconds for m in measurements),
            latencies,
        ),
        sum(part.errors for part in parts),
        sum(part.warm_ok for part in parts),
        tuple(failure for part in parts for failure in part.failures)[:3],
        {key: sum(part.cpu_seconds[key] for part in parts) for key in first.cpu_seconds},
    )


async def drive(
    target: Target,
    db: BenchDatabase,
    *,
    connections: int,
    warmup: float,
    seconds: float,
    client: str,
    token: str,
) -> Phase:
    """Warm up, then measure, ``connections`` clients each sending one request at a time."""
    headers = {"Authorization": f"Bearer {token}"}
    if target.body:
        headers["Content-Type"] = "application/json"
    warm, measured = Load(), Load()
    start = time.perf_counter()
    measure_from = start + warmup
    stop_at = measure_from + seconds
    snapshots: list[Snapshot] = []
    broken: list[BaseException] = []

    async def one(index: int, connection: RawConnection | HttpxConnection) -> None:
        clock = time.perf_counter
        n = 0
        try:
            while (began := clock()) < stop_at and len(measured.latencies) < MAX_REQUESTS:
                request = target.request(index, n)
                try:
                    status, body = await connection.send(request)
                except (OSError, asyncio.IncompleteReadError, asyncio.LimitOverrunError) as error:
                    connection.close()
                    status, body = 0, repr(error).encode()
                    if len(broken) > 100:
                        raise RuntimeError(f"{target.label}: connections keep failing") from error
                    broken.append(error)
                finished = clock()
                (warm if began < measure_from else measured).record(
                    finished - began, status, body, finished
                )
                n += 1
        finally:
            connection.close()

    async def snapshot_at_window() -> None:
        await asyncio.sleep(max(0.0, measure_from - time.perf_counter()))
        snapshots.append(Snapshot(target.server, db))

    async def everything() -> None:
        if client == "httpx":
            import httpx

            limits = httpx.Limits(
                max_connections=connections, max_keepalive_connections=connections
            )
            async with httpx.AsyncClient(
                base_url=f"http://{HOST}:{target.server.port}",
                headers=headers,
                limits=limits,
                timeout=PHASE_GRACE,
            ) as shared:
                await asyncio.gather(
                    snapshot_at_window(),
                    *(one(i, HttpxConnection(shared)) for i in range(connections)),
                )
        else:
            await asyncio.gather(
                snapshot_at_window(),
                *(one(i, RawConnection(target.server.port, headers)) for i in range(connections)),
            )

    try:
        await asyncio.wait_for(everything(), warmup + seconds + PHASE_GRACE)
    except TimeoutError:
        raise RuntimeError(
            f"{target.label}: no end after {warmup + seconds + PHASE_GRACE:.0f} s; server log:\n"
            + target.server.tail()
        ) from None
    used = Snapshot(target.server, db).used_since(snapshots[0])
    window = max(measured.finished - measure_from, 1e-9)
    count = len(measured.latencies)
    if measured.first_body is not None:
        target.check(measured.first_body)
    return Phase(
        target,
        Measurement(target.label, count, 1, count, window, tuple(measured.latencies)),
        measured.errors,
        len(warm.latencies) - warm.errors,
        tuple(measured.failures or warm.failures),
        used,
    )


def measure(
    target: Target,
    db: BenchDatabase,
    args: argparse.Namespace,
    token: str,
    *,
    warmup: float,
    seconds: float,
) -> Phase:
    run = drive(
        target,
        db,
        connections=args.connections,
        warmup=warmup,
        seconds=seconds,
        client=args.client,
        token=token,
    )
    try:
        import uvloop
    except ImportError:  # pragma: no cover - uvicorn[standard] brings it
        phase = asyncio.run(run)
    else:
        with asyncio.Runner(loop_factory=uvloop.new_event_loop) as runner:
            phase = runner.run(run)
    if phase.errors:
        console.print(f"[red]  {phase.errors} non-2xx answers, e.g. {phase.failures[:1]}")
    return phase


# ================================================================== the data


def seed(ledger: ReleaseLedger, write_trains: list[str]) -> int:
    """Train 9.1 as a busy major looks before code freeze; one empty train per writer."""
    today = datetime.now(UTC).date()
    planner, manager, director = "Priya Raman", "Marta Okafor", "Hiroshi Tanaka"
    ledger.plan_train(READ_TRAIN, "major", planner, title="Basalt")
    for gate, days in ((1, -40), (2, -10), (3, 30), (4, 80)):
        ledger.schedule_gate(READ_TRAIN, gate, today + timedelta(days=days), planner)
    customers = ["Helios Bank", "Orion Telecom", "Bluefin Health", "Kestrel Media", "Lumen Labs"]
    areas = ["STOR", "REPL", "SEC", "NAS", "OBJ", "MGMT"]
    keys = [f"{areas[i % len(areas)]}-{900 + i}" for i in range(FEATURES)]
    for i, key in enumerate(keys):
        classification = ("anchor", "committed", "committed", "stretch")[i % 4]
        asks = [CustomerAsk(customers[(i + k) % len(customers)], 1 + (i + k) % 9) for k in range(2)]
        ledger.propose_scope(
            READ_TRAIN, key, classification, manager, title=f"Feature {key}", customers=asks
        )
    ledger.decide_gate(READ_TRAIN, 1, "passed", planner)
    for i, key in enumerate(keys):
        if i % 10 < 7:
            ledger.decide(READ_TRAIN, key, "commit", director)
        elif i % 10 < 9:
            ledger.decide(READ_TRAIN, key, "stretch", director, reason="staffed after anchors")
        else:
            ledger.decide(READ_TRAIN, key, "drop", director, reason="no customer has a date")
    ledger.decide_gate(READ_TRAIN, 2, "passed", planner)
    committed = [key for i, key in enumerate(keys) if i % 10 < 7]
    for n in range(1, 4):
        ledger.ship_beta_drop(
            READ_TRAIN, f"9.1.0-b{n}", customers[: n + 1], committed[: 10 * n], "Leo Fontaine"
        )
    for n in range(12):
        cycle = "phase1" if n < 8 else "phase2"
        ledger.record_qa_run(
            READ_TRAIN, cycle, f"9.1.0-b{n + 4}", 21_000, 19_000 + 100 * n, 1_800 - 100 * n,
            QA_ACTOR, blocked=200,
        )  # fmt: skip
    for train in write_trains:
        ledger.plan_train(train, "major", planner, title="benchmark writes")
    return int(ledger.event_log.last_position())


def wait_for_projections(server: Server, token: str, position: int) -> None:
    """Read train 9.1 at ``position``, as a writer reads its own write (``min_position``)."""
    deadline = time.monotonic() + SEED_TIMEOUT
    while time.monotonic() < deadline:
        status, body = http_get(
            server.port, f"/v1/trains/{READ_TRAIN}?min_position={position}", token
        )
        if status == 200:
            return
        if status != 503:
            raise RuntimeError(f"GET /v1/trains/{READ_TRAIN}: {status} {body[:300]!r}")
    raise RuntimeError(f"the projections did not reach position {position} in {SEED_TIMEOUT:.0f} s")


def check_train(body: bytes) -> None:
    document = json.loads(body)
    if document.get("train") != READ_TRAIN or len(document.get("scope", ())) < FEATURES - 10:
        raise RuntimeError(f"GET /v1/trains/{READ_TRAIN} answered {body[:200]!r}")


def check_recorded(body: bytes) -> None:
    types = [event.get("type") for event in json.loads(body).get("events", ())]
    if types != ["QARunRecorded"]:
        raise RuntimeError(f"POST qa-runs recorded {types}, expected one QARunRecorded")


def check_ok(body: bytes) -> None:
    if json.loads(body).get("status") != "ok":
        raise RuntimeError(f"expected status ok, got {body[:200]!r}")


def qa_run_request(write_trains: list[str]) -> Callable[[int, int], Request]:
    def request(connection: int, n: int) -> Request:
        train = write_trains[connection % len(write_trains)]
        body = {
            "cycle": "phase1",
            "build": f"{train}.0-b{n}",
            "total": 21_000,
            "passed": 19_950,
            "failed": 900,
            "blocked": 150,
            "actor": QA_ACTOR,
        }
        return Request("POST", f"/v1/trains/{train}/qa-runs", json.dumps(body).encode())

    return request


def fixed(path: str) -> Callable[[int, int], Request]:
    request = Request("GET", path)
    return lambda _connection, _n: request


# ==================================================================== the baseline


def library_appends(library: LibraryBench, saves: int, cap_seconds: float) -> Measurement:
    bench = Bench("library: save(), 1 event", library.append, saves, cap_seconds)
    (measurement,) = run_interleaved([bench], 100)
    return measurement


def combined(label: str, parts: list[Measurement]) -> Measurement:
    latencies = tuple(latency for part in parts for latency in part.latencies)
    operations = sum(part.operations for part in parts)
    wanted = sum(part.wanted for part in parts)
    return Measurement(label, operations, 1, wanted, sum(p.seconds for p in parts), latencies)


# ====================================================================== report


def report(
    phases: dict[str, Phase],
    library: Measurement,
    library_rounds: list[Measurement],
    context: dict[str, str],
    seconds: float,
) -> None:
    table = Table(title="Release Ledger HTTP API on 127.0.0.1, ratios to in-process baselines")
    for column in ("line", "requests", "non-2xx", "req/s", "p50 ms", "p99 ms"):
        table.add_column(column, justify="left" if column == "line" else "right")
    for column in ("client", "server", "PG"):
        table.add_column(f"cpu {column}", justify="right")
    table.add_column("x baseline", justify="right")

    def number(value: float | None, digits: int = 2) -> str:
        return "-" if value is None else f"{value:,.{digits}f}"

    trivial = phases["trivial"].measurement.ops_per_second
    for key, phase in phases.items():
        m = phase.measurement
        baseline = library.events_per_second if key == "write" else trivial
        table.add_row(
            m.label,
            f"{m.operations:,}",
            str(phase.errors),
            number(m.ops_per_second, 0),
            number(m.percentile_ms(50)),
            number(m.percentile_ms(99)),
            *(number(phase.cpu_ms(part)) for part in ("client", "server", "PostgreSQL")),
            "1.00" if key == "trivial" else f"{m.ops_per_second / baseline:.2f}",
        )
    table.add_row(
        library.label,
        f"{library.operations:,}" + ("*" if library.truncated else ""),
        "-",
        number(library.ops_per_second, 0),
        number(library.percentile_ms(50)),
        number(library.percentile_ms(99)),
        "-", "-", "-",
        "1.00",
    )  # fmt: skip
    console.print(" · ".join(f"{key} {value}" for key, value in context.items()))
    console.print(table)
    rates = sorted(part.ops_per_second for part in library_rounds)
    spread = f"{rates[0]:,.0f} to {rates[-1]:,.0f}" if len(rates) > 1 else f"{rates[0]:,.0f}"
    console.print(
        "[dim]req/s: measured requests over the measured window; p50/p99: per request, from "
        "write to the last byte of the answer. cpu: CPU ms per request of this process (the "
        "client), of the server's processes and of the database's backends over the window. "
        "x baseline: reads and context lines over the trivial async GET; writes "
        "over the library's single-event save() rate in this process, measured between the "
        f"rounds of writes (events/s, by round: {spread}). * stopped at its time cap.[/dim]"
    )
    read = phases.get("read")
    if read is not None:
        ratio = read.measurement.ops_per_second / trivial
        p99 = read.measurement.percentile_ms(99) or 0.0
        good = ratio >= READ_RATIO_GOAL and p99 <= READ_P99_GOAL_MS and read.errors == 0
        console.print(
            f"goal reads >= {READ_RATIO_GOAL} x trivial with p99 <= {READ_P99_GOAL_MS:.0f} ms: "
            f"{'[green]MET' if good else '[red]NOT MET'}[/] ({ratio:.3f}, p99 {p99:.1f} ms)"
        )
    write = phases.get("write")
    if write is not None:
        ratio = write.measurement.ops_per_second / library.events_per_second
        good = ratio >= WRITE_RATIO_GOAL and write.errors == 0
        console.print(
            f"goal writes >= {WRITE_RATIO_GOAL} x library append: "
            f"{'[green]MET' if good else '[red]NOT MET'}[/] ({ratio:.3f})"
        )
    errors = sum(phase.errors for phase in phases.values())
    if errors:
        console.print(f"[red]{errors} non-2xx answers in the measured windows[/red]")
    console.print(f"[dim]total wall time {seconds:.0f} s[/dim]")


# ======================================================================== main


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n\n", 1)[0])
    parser.add_argument(
        "--seconds",
        type=float,
        default=DEFAULT_SECONDS,
        help=f"measured window of each HTTP phase in seconds (default {DEFAULT_SECONDS:g}, "
        f"1 to {MAX_SECONDS:g})",
    )
    parser.add_argument(
        "--warmup",
        type=float,
        default=DEFAULT_WARMUP,
        help=f"unmeasured seconds before each window (default {DEFAULT_WARMUP:g}, 0 to 10)",
    )
    parser.add_argument(
        "--rounds",
        type=int,
        default=DEFAULT_ROUNDS,
        help=f"rounds the window is split into, the phases taking turns (default "
        f"{DEFAULT_ROUNDS}, 1 to 10; 1 with --profile)",
    )
    parser.add_argument(
        "--workers",
        type=int,
        default=1,
        help="uvicorn workers of both servers (default 1, as ledger serve; 1 to 4)",
    )
    parser.add_argument(
        "--connections",
        type=int,
        default=CONNECTIONS,
        help=f"concurrent keep-alive connections (default {CONNECTIONS}, 1 to 256)",
    )
    parser.add_argument(
        "--client",
        choices=("raw", "httpx"),
        default="raw",
        help="raw: HTTP/1.1 over asyncio streams (default, the cheapest); httpx.AsyncClient",
    )
    parser.add_argument(
        "--profile",
        metavar="DIR",
        help="record each server phase with py-spy (on PATH, or PY_SPY) into DIR and print "
        "the heaviest frames; the timings are then not for the record",
    )
    parser.add_argument("--serve-trivial", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--host", default=HOST, help=argparse.SUPPRESS)
    parser.add_argument("--port", type=int, default=0, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.serve_trivial:
        return args
    if not 1 <= args.seconds <= MAX_SECONDS:
        parser.error(f"--seconds must be from 1 to {MAX_SECONDS:g}")
    if not 0 <= args.warmup <= 10:
        parser.error("--warmup must be from 0 to 10")
    if not 1 <= args.rounds <= 10:
        parser.error("--rounds must be from 1 to 10")
    if not 1 <= args.workers <= 4:
        parser.error("--workers must be from 1 to 4")
    if not 1 <= args.connections <= 256:
        parser.error("--connections must be from 1 to 256")
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    if args.serve_trivial:
        return serve_trivial(args.host, args.port, args.workers)
    return on_loopback_server(lambda admin_url: run(args, admin_url))


def run(args: argparse.Namespace, admin_url: str) -> int:
    py_spy = isolate_run(args.profile)
    started = time.perf_counter()
    context = {
        **run_context(admin_url),
        "cores": str(os.cpu_count()),
        "workers": str(args.workers),
        "client": f"{args.client} x {args.connections}",
        # The host is shared: what else ran shows in the absolute rates, less in the ratios.
        "load": " ".join(f"{value:.1f}" for value in os.getloadavg()),
    }
    console.print(
        f"[bold]bench/api.py[/bold]: {args.connections} connections, {args.warmup:g} s warm-up "
        f"+ {args.seconds:g} s per phase, {args.workers} worker(s), {args.client} client"
    )
    write_trains = [f"{60 + i}.0" for i in range(args.connections)]
    phases: dict[str, Phase] = {}
    profiles: list[tuple[str, Path]] = []
    with (
        fresh_databases(admin_url, ("api",)) as urls,
        tempfile.TemporaryDirectory(prefix="ledger_bench_api_") as scratch,
        contextlib.ExitStack() as stack,
    ):
        url = urls["api"]
        db = BenchDatabase(admin_url, url)
        work = Path(scratch)
        env = server_env(url)

        console.print("[dim]0/4 setup: schema, token, train 9.1 and the writers' trains...[/dim]")
        run_ledger(env, work, "db", "upgrade")
        token = run_ledger(env, work, "token", "create", "--name", TOKEN_NAME, "--role", "writer")
        token = token.strip().splitlines()[0]
        ledger = stack.enter_context(open_ledger(url))
        head = seed(ledger, write_trains)
        console.print(f"[dim]  {head:,} events recorded; starting the servers...[/dim]")
        trivial = stack.enter_context(
            running(
                Server(
                    "trivial",
                    [sys.executable, __file__, "--serve-trivial"],
                    args.workers,
                    env,
                    work,
                ),
                "/v1/ping",
            )
        )
        served = stack.enter_context(
            running(
                Server("ledger serve", ledger_command("serve"), args.workers, env, work), "/healthz"
            )
        )
        wait_for_projections(served, token, head)
        library = LibraryBench(url)
        stack.callback(library.close)

        targets = {
            "trivial": Target("trivial: async GET", trivial, fixed("/v1/ping"), check_ok),
            "trivial_sync": Target("trivial: def GET", trivial, fixed("/v1/ping-sync"), check_ok),
            "healthz": Target("ledger: GET /healthz", served, fixed("/healthz"), check_ok),
            "read": Target(
                f"reads: GET /v1/trains/{READ_TRAIN}",
                served,
                fixed(f"/v1/trains/{READ_TRAIN}"),
                check_train,
            ),
            "write": Target(
                "writes: POST …/qa-runs",
                served,
                qa_run_request(write_trains),
                check_recorded,
                body=True,
            ),
        }

        rounds = 1 if args.profile else args.rounds
        window = args.seconds / rounds

        def phase(key: str, round_number: int) -> Phase:
            target = targets[key]
            warmup = args.warmup if round_number == 0 else min(args.warmup, ROUND_WARMUP)
            profiler = None
            if py_spy is not None and args.profile:
                profiler, output = start_profiler(
                    py_spy, target.server, key, Path(args.profile), warmup + window
                )
                profiles.append((target.label, output))
            try:
                return measure(target, db, args, token, warmup=warmup, seconds=window)
            finally:
                if profiler is not None:
                    profiler.wait(30)

        def show(round_number: int, rates: dict[str, float]) -> None:
            line = " · ".join(f"{key} {rate:,.0f}" for key, rate in rates.items())
            console.print(f"[dim]  round {round_number + 1}/{rounds}: {line}[/dim]")

        # Rounds interleave what is compared, so load from elsewhere on this shared host
        # falls on the baseline and the measured lines alike.
        read_keys = ("trivial", "trivial_sync", "healthz", "read")
        console.print(
            f"[dim]1/2 reads, {rounds} round(s) of {window:g} s each: {', '.join(read_keys)}, "
            f"{args.connections} connections...[/dim]"
        )
        read_parts: dict[str, list[Phase]] = {key: [] for key in read_keys}
        for number in range(rounds):
            for key in read_keys:
                read_parts[key].append(phase(key, number))
            show(
                number, {k: parts[-1].measurement.ops_per_second for k, parts in read_parts.items()}
            )
        phases.update({key: merged(parts) for key, parts in read_parts.items()})

        console.print(
            f"[dim]2/2 writes, {rounds} round(s) of {window:g} s, each after "
            f"{LIBRARY_SAVES // rounds} library saves...[/dim]"
        )
        warm_up(library.append_warm, LIBRARY_WARMUP)
        before = ledger.event_log.last_position()
        write_parts: list[Phase] = []
        library_rounds: list[Measurement] = []
        for number in range(rounds):
            library_rounds.append(
                library_appends(library, LIBRARY_SAVES // rounds, LIBRARY_CAP_SECONDS / rounds)
            )
            write_parts.append(phase("write", number))
            # The projector catches up after each round, before the library runs again.
            wait_for_projections(served, token, ledger.event_log.last_position())
            show(
                number,
                {
                    "library": library_rounds[-1].ops_per_second,
                    "write": write_parts[-1].measurement.ops_per_second,
                },
            )
        library.check()
        write = phases["write"] = merged(write_parts)
        # Counted, not subtracted: a write that lost a race and was retried leaves a gap.
        recorded = sum(1 for _ in ledger.event_log.read(before))
        answered = write.ok + write.warm_ok
        style = "dim" if recorded == answered else "red"
        console.print(f"[{style}]  {answered:,} writes answered 2xx, {recorded:,} events recorded")
    baseline = combined("library: save(), 1 event", library_rounds)
    report(phases, baseline, library_rounds, context, time.perf_counter() - started)
    for label, output in profiles:
        if output.exists():
            console.print(f"[bold]profile: {label}[/bold] ({output})")
            console.print(top_of_profile(output), markup=False)
    return 0


if __name__ == "__main__":
    sys.exit(main())
