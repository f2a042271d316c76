"""Projections survive crashes: a killed runner or rebuild resumes exactly, on PostgreSQL.

The crash tests run the runner in a real process and SIGKILL it mid-way; the restarted
projections must equal a projection of the same log into a fresh database, with each
event's rows written once. The other tests show what a runner must survive in-process:
a failed batch, and a second runner (another server, or a rebuild) on the same tables.
"""

from __future__ import annotations

import os
import random
import signal
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from urllib.parse import urlsplit, urlunsplit

import psycopg
import pytest
from sqlalchemy import Engine, func, select
from sqlalchemy.exc import OperationalError

from ledger.application import CommandContext, CustomerAsk, ReleaseLedger
from ledger.config import Database
from projections import tables
from projections.projectors import PROJECTION_NAMES, all_projections
from projections.queries import ProjectionQueries
from projections.runner import (
    ProjectionRunner,
    finish_rebuild,
    projection_status,
    rebuild,
    start_rebuild,
    wait_for_position,
)
from projections.schema import engine_for, upgrade
from release_ledger.demo import load_demo
from tests.conftest import fresh_database, open_ledger
from tests.integration.test_projection_properties import (
    check_event_rows,
    check_positions_at_head,
)
from tests.projection_fixtures import live_rows

WAIT_SECONDS = 30
WORKER = """
import sys, time
from ledger.application import ReleaseLedger
from ledger.config import Database, Settings
from projections.projectors import PROJECTION_NAMES
from projections.runner import ProjectionRunner, rebuild
from projections.schema import engine_for

url, mode = sys.argv[1], sys.argv[2]
ledger = ReleaseLedger.from_settings(Settings(database_url=url))
engine = engine_for(Database.from_url(url))

def progress(position):
    print(position, flush=True)
    time.sleep(0.05)

if mode == "catch_up":
    ProjectionRunner(ledger, engine, batch_size=50).catch_up(progress)
else:
    # Small batches, so the kill lands between commits of the rebuild.
    rebuild(ledger, engine, PROJECTION_NAMES, progress, batch_size=50)
print("done", flush=True)
"""


def url_of(server: str, name: str) -> str:
    return urlunsplit(urlsplit(server)._replace(path=f"/{name}"))


def record_history(ledger: ReleaseLedger) -> None:
    """The demo, then four trains with hundreds of decisions and QA runs each (~2,500 events)."""
    load_demo(ledger)
    start = datetime.now(UTC) - timedelta(days=100)
    for n, train in enumerate(("7.1", "7.2", "7.3", "7.4")):

        def context(minutes: int, base: datetime = start) -> CommandContext:
            return CommandContext(recorded_by="load", occurred_at=base + timedelta(minutes=minutes))

        ledger.plan_train(train, "major", "Ada Planner", context=context(0))
        ledger.propose_scope(
            train,
            f"K-{n}-0",
            "anchor",
            "Ada Planner",
            customers=[CustomerAsk("Globex", 3.0)],
            context=context(1),
        )
        ledger.propose_scope(train, f"K-{n}-1", "stretch", "Ada Planner", context=context(1))
        for i in range(150):
            action = "commit" if i % 2 == 0 else "stretch"
            ledger.decide(
                train,
                f"K-{n}-1",
                action,
                f"Person {i % 3}",
                reason=None if action == "commit" else "capacity",
                context=context(2 + i),
            )
            passed = 900 + i % 100
            ledger.record_qa_run(
                train,
                "phase1",
                f"b{i}",
                1000,
                passed,
                1000 - passed,
                "QA Bot",
                context=context(2 + i),
            )


@pytest.fixture(scope="module")
def template(postgres_server: str) -> Iterator[str]:
    """A database holding the history and the projection schema, to copy for each test."""
    name = f"ledger_template_{uuid.uuid4().hex[:12]}"
    with psycopg.connect(postgres_server, autocommit=True) as admin:
        admin.execute(f'CREATE DATABASE "{name}"')
    try:
        url = url_of(postgres_server, name)
        ledger = open_ledger(url)
        engine = engine_for(Database.from_url(url))
        upgrade(engine)
        record_history(ledger)
        engine.dispose()
        ledger.close()
        yield name
    finally:
        with psycopg.connect(postgres_server, autocommit=True) as admin:
            admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@pytest.fixture
def copy_url(postgres_server: str, template: str) -> Iterator[str]:
    """A new database copied from the template: the same log, no projected rows."""
    name = f"ledger_test_{uuid.uuid4().hex[:12]}"
    with psycopg.connect(postgres_server, autocommit=True) as admin:
        admin.execute(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = %s",
            (template,),
        )
        admin.execute(f'CREATE DATABASE "{name}" TEMPLATE "{template}"')
    yield url_of(postgres_server, name)
    with psycopg.connect(postgres_server, autocommit=True) as admin:
        admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@pytest.fixture
def opened(copy_url: str) -> Iterator[tuple[ReleaseLedger, Engine]]:
    ledger = open_ledger(copy_url)
    engine = engine_for(Database.from_url(copy_url))
    yield ledger, engine
    engine.dispose()
    ledger.close()


def reference_rows(ledger: ReleaseLedger, server: str) -> dict[str, list[str]]:
    """The rows of the whole log projected in one go into a database of their own."""
    with fresh_database(server) as url:
        engine = engine_for(Database.from_url(url))
        try:
            upgrade(engine)
            ProjectionRunner(ledger, engine).catch_up()
            return live_rows(engine)
        finally:
            engine.dispose()


def start_worker(url: str, mode: str) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-c", WORKER, url, mode],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def stop(worker: subprocess.Popen[str]) -> None:
    if worker.poll() is None:
        worker.kill()
    worker.wait(timeout=10)


def kill_midway(
    worker: subprocess.Popen[str],
    engine: Engine,
    ledger: ReleaseLedger,
    field: str,
    beyond: int = 0,
) -> int:
    """SIGKILL the worker once every projection's ``field`` is past ``beyond`` and short of
    the head; the position it had reached when it died."""
    head = ledger.event_log.last_position()
    deadline = time.monotonic() + WAIT_SECONDS
    while time.monotonic() < deadline:
        if worker.poll() is not None:
            _, errors = worker.communicate(timeout=5)
            pytest.fail(f"the worker ended ({worker.returncode}) before the kill: {errors}")
        reached = [getattr(status, field) for status in projection_status(engine, ledger)]
        if all(position is not None and beyond < position < head for position in reached):
            time.sleep(random.uniform(0, 0.05))  # land anywhere in a batch, not at its edge
            os.kill(worker.pid, signal.SIGKILL)
            worker.wait(timeout=10)
            assert worker.returncode == -signal.SIGKILL
            after = [getattr(status, field) for status in projection_status(engine, ledger)]
            assert all(position is not None and position < head for position in after), after
            return min(after)
        time.sleep(0.005)
    pytest.fail(f"the worker did not get mid-way within {WAIT_SECONDS} s")


def other_generations(engine: Engine) -> int:
    """How many rows lie in a generation other than their projection's live one."""
    owner = {table: p.name for p in all_projections() for table in p.tables}
    with engine.connect() as connection:
        live = dict(
            connection.execute(
                select(tables.projection_state.c.name, tables.projection_state.c.generation)
            ).all()
        )
        return sum(
            connection.execute(
                select(func.count()).select_from(table).where(table.c.generation != live[name])
            ).scalar_one()
            for table, name in owner.items()
        )


# ------------------------------------------------------------------- crashes


def test_a_runner_killed_mid_catch_up_resumes_without_losing_or_doubling_rows(
    opened: tuple[ReleaseLedger, Engine], copy_url: str, postgres_server: str
) -> None:
    """A catch-up SIGKILLed twice mid-way, then resumed, equals a projection made in one go."""
    ledger, engine = opened
    head = ledger.event_log.last_position()
    assert head > 2000
    killed_at = [0]
    for _ in range(2):
        worker = start_worker(copy_url, "catch_up")
        try:
            killed_at.append(kill_midway(worker, engine, ledger, "position", killed_at[-1]))
        finally:
            stop(worker)
    assert 0 < killed_at[1] < killed_at[2] < head

    ProjectionRunner(ledger, engine).catch_up()

    check_positions_at_head(engine, ledger)
    check_event_rows(ledger, engine)
    assert live_rows(engine) == reference_rows(ledger, postgres_server)
    assert len(ProjectionQueries(engine, ledger).trains()) == 17


def test_a_rebuild_killed_mid_way_resumes_where_it_stopped_and_swaps_in(
    opened: tuple[ReleaseLedger, Engine], copy_url: str, postgres_server: str
) -> None:
    """A rebuild SIGKILLed mid-way leaves the live rows served; rerun, it resumes and swaps in."""
    ledger, engine = opened
    ProjectionRunner(ledger, engine).catch_up()
    before = live_rows(engine)
    generation = {status.name: status.generation for status in projection_status(engine, ledger)}

    worker = start_worker(copy_url, "rebuild")
    try:
        stopped_at = kill_midway(worker, engine, ledger, "rebuild_position")
    finally:
        stop(worker)

    # Interrupted: the next generation is half built beside the live one, which still serves.
    for status in projection_status(engine, ledger):
        assert status.generation == generation[status.name]
        assert status.rebuilding_generation == generation[status.name] + 1
    assert live_rows(engine) == before
    assert len(ProjectionQueries(engine, ledger).trains()) == 17

    progress: list[int] = []
    rebuild(ledger, engine, PROJECTION_NAMES, progress.append)

    assert progress
    assert progress[0] > stopped_at  # resumed, not restarted from 0
    for status in projection_status(engine, ledger):
        assert status.generation == generation[status.name] + 1
    check_positions_at_head(engine, ledger)
    check_event_rows(ledger, engine)
    assert other_generations(engine) == 0
    assert live_rows(engine) == before
    assert live_rows(engine) == reference_rows(ledger, postgres_server)


# ------------------------------------------------- what a runner must survive


def test_a_batch_that_fails_is_retried_cleanly_by_the_same_runner(
    opened: tuple[ReleaseLedger, Engine], copy_url: str, postgres_server: str
) -> None:
    """A batch whose transaction fails (a lock timeout) is redone whole on the next try."""
    ledger, engine = opened
    runner = ProjectionRunner(ledger, engine)
    runner.catch_up()
    ledger.decide("7.1", "K-0-1", "drop", "Grace Director", reason="descoped")
    ledger.record_qa_run("7.1", "phase2", "b-late", 100, 90, 10, "QA Bot")
    name = urlsplit(copy_url).path.lstrip("/")
    with psycopg.connect(postgres_server, autocommit=True) as admin:
        admin.execute(f"ALTER DATABASE \"{name}\" SET lock_timeout = '300ms'")
    engine.dispose()  # new sessions take the timeout

    with psycopg.connect(copy_url) as blocker:
        blocker.execute("LOCK TABLE audit IN ACCESS EXCLUSIVE MODE")
        with pytest.raises(OperationalError, match="lock timeout"):
            runner.run_batch()
    # The lock is gone; the same runner (its memory included) tries again.
    runner.catch_up()

    check_positions_at_head(engine, ledger)
    check_event_rows(ledger, engine)
    assert live_rows(engine) == reference_rows(ledger, postgres_server)


def test_two_runners_taking_turns_project_every_event_once(
    opened: tuple[ReleaseLedger, Engine], postgres_server: str
) -> None:
    """Two runners on the same tables (two servers) alternate batches and agree with one runner."""
    ledger, engine = opened
    first = ProjectionRunner(ledger, engine, batch_size=97)
    second = ProjectionRunner(ledger, engine, batch_size=89)
    runners, turn, idle = (first, second), 0, 0
    while idle < 2:  # stop once both find nothing new
        idle = 0 if runners[turn % 2].run_batch() else idle + 1
        turn += 1

    check_positions_at_head(engine, ledger)
    check_event_rows(ledger, engine)
    assert live_rows(engine) == reference_rows(ledger, postgres_server)


def test_a_rebuild_beside_a_live_runner_takes_in_trains_planned_meanwhile(
    opened: tuple[ReleaseLedger, Engine], postgres_server: str
) -> None:
    """Trains and features created while a rebuild runs are in both the live and rebuilt rows."""
    ledger, engine = opened
    live = ProjectionRunner(ledger, engine)
    live.catch_up()
    start_rebuild(engine, PROJECTION_NAMES)
    rebuilding = ProjectionRunner(ledger, engine, rebuild=True, batch_size=500)
    rebuilding.run_batch()
    ledger.plan_train("8.1", "major", "Ada Planner")
    ledger.propose_scope("8.1", "NEW-1", "anchor", "Ada Planner")
    live.catch_up()
    rebuilding.catch_up()
    live.catch_up()
    finish_rebuild(rebuilding)
    live.catch_up()

    check_positions_at_head(engine, ledger)
    check_event_rows(ledger, engine)
    assert live_rows(engine) == reference_rows(ledger, postgres_server)
    assert ProjectionQueries(engine, ledger).feature("NEW-1")["train"] == "8.1"


def test_one_live_runner_leads_and_another_takes_over_when_it_stops(
    opened: tuple[ReleaseLedger, Engine],
) -> None:
    """Of two live runners (two server workers) one applies every batch; when it stops,
    the other takes over and carries on from where it left off."""
    ledger, engine = opened
    leader, standby = ProjectionRunner(ledger, engine), ProjectionRunner(ledger, engine)
    stop_leader, stop_standby = threading.Event(), threading.Event()
    leading = threading.Thread(target=leader.run_forever, args=(stop_leader,), daemon=True)
    leading.start()
    wait_until_projected(engine, ledger)
    standing_by = threading.Thread(target=standby.run_forever, args=(stop_standby,), daemon=True)
    standing_by.start()
    try:
        ledger.plan_train("88.1", "major", "Ada Planner", title="planned while one leads")
        wait_until_projected(engine, ledger)
        led_to = ledger.event_log.last_position()
        assert leader.position() == led_to
        assert standby.position() == 0  # it never applied a batch

        stop_leader.set()
        leading.join(WAIT_SECONDS)
        ledger.plan_train("88.2", "major", "Ada Planner", title="planned after it stopped")
        wait_until_projected(engine, ledger)
    finally:
        stop_leader.set()
        stop_standby.set()
        standing_by.join(WAIT_SECONDS)

    assert standby.position() == ledger.event_log.last_position() > led_to
    check_event_rows(ledger, engine)


def wait_until_projected(engine: Engine, ledger: ReleaseLedger) -> None:
    head = ledger.event_log.last_position()
    assert wait_for_position(engine, PROJECTION_NAMES, head, WAIT_SECONDS), "not projected"
