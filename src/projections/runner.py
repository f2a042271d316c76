"""The projection runner: reads the log from each projection's position and applies it.

Each batch runs in one transaction that first takes the projections' state rows (so two
runners never apply the same events), then writes the projections' rows and their new
positions together: a crash applies a batch entirely or not at all. Positions are
notification ids, which can have gaps; the runner only ever asks for "after N".
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from itertools import islice
from typing import Any
from uuid import UUID

import psycopg
from eventsourcing.persistence import StoredEvent
from eventsourcing.postgres import PostgresApplicationRecorder
from sqlalchemy import Connection, Engine, Table, Update, bindparam, delete, insert, select, update

from ledger.aggregate import LedgerAggregate
from ledger.application import ReleaseLedger
from ledger.event_log import RawEvent
from projections import tables
from projections.projectors import Context, Projection, StreamKeys, all_projections

BATCH_SIZE = 1000
# Rebuilds have the log to themselves and no reader waiting on them: bigger batches
# rewrite each touched train once per batch instead of once per thousand events.
REBUILD_BATCH_SIZE = 10_000
POLL_INTERVAL = 0.5
STANDBY_SECONDS = 1.0
"""How often a runner that does not lead asks whether it may."""
LEADER_LOCK = "ledger projections: live runner"


@dataclass(frozen=True)
class ProjectionStatus:
    name: str
    generation: int
    position: int
    lag: int
    rebuilding_generation: int | None
    rebuild_position: int | None


@dataclass(frozen=True)
class _StateStatements:
    """What every batch runs on its projections' state rows, built once per runner:
    SQLAlchemy takes longer to build a statement than a small batch takes to run it."""

    take: Update
    advance: Update

    @classmethod
    def of(cls, names: list[str], rebuild: bool) -> _StateStatements:
        state = tables.projection_state
        position = state.c.rebuild_position if rebuild else state.c.position
        return cls(
            # Takes the row locks (and SQLite's write lock) and reads them in one go.
            take=update(state)
            .where(state.c.name.in_(names))
            .values(updated_at=bindparam("now"))
            .returning(*state.c),
            advance=update(state)
            .where(state.c.name.in_(names))
            .values({position: bindparam("advanced_to")}),
        )


class ProjectionRunner:
    """Keeps projections current from the ledger's event log.

    ``rebuild`` makes the runner fill the next generation of its projections from
    position 0 instead; ``finish_rebuild`` swaps it in once it has caught up.
    """

    def __init__(
        self,
        ledger: ReleaseLedger,
        engine: Engine,
        projections: Sequence[Projection] | None = None,
        *,
        rebuild: bool = False,
        batch_size: int = BATCH_SIZE,
    ) -> None:
        self.ledger = ledger
        self.engine = engine
        self.projections = list(projections or all_projections())
        self.rebuild = rebuild
        self.batch_size = batch_size
        self.keys = StreamKeys()
        self.known: dict[str, tuple[int, int]] = {}
        self.routes: dict[type[LedgerAggregate.Event], list[Projection]] = {}
        self.statements = _StateStatements.of(
            [projection.name for projection in self.projections], rebuild
        )

    # ------------------------------------------------------------------ batches

    def run_batch(self) -> int:
        """Apply at most one batch of new events; the number of events read."""
        try:
            return self._run_batch()
        except BaseException:
            # The transaction rolled back: so must everything held in memory.
            self._forget()
            raise

    def _forget(self) -> None:
        for projection in self.projections:
            projection.forget()
        self.known = {}
        self.keys = StreamKeys()

    def _run_batch(self) -> int:
        with self.engine.begin() as connection:
            states = self._lock(connection)
            if states != self.known:
                self._forget()  # someone else wrote since we last looked, or we never did
                self.keys.load(connection)
            self.keys.connection = connection
            start = min(position for _, position in states.values())
            raws = list(islice(self.ledger.event_log.read(start, self.batch_size), self.batch_size))
            if not raws:
                self.known = states
                return 0
            context = Context(self.keys, self._loader(connection, states))
            applied = {projection: states[projection.name][1] for projection in self.projections}
            # Usually every projection stands at ``start``, and each event goes to all that
            # handle it; after a crash between projections' batches some are further on.
            level = all(position == start for position in applied.values())
            routes = self.routes
            for raw in raws:
                event = self._decode(raw)
                if event is None:
                    continue
                if raw.originator_version == 1:  # trains and features are named at creation
                    self.keys.remember(event)
                route = routes.get(type(event)) or self._route(type(event))
                for projection in route:
                    if level or raw.position > applied[projection]:
                        projection.apply(raw.position, event, context)
            last = raws[-1].position
            self.keys.flush(connection)
            for projection in self.projections:
                projection.flush(connection, states[projection.name][0])
            self._advance(connection, last)
        self.known = {name: (generation, last) for name, (generation, _) in states.items()}
        return len(raws)

    def catch_up(self, progress: Callable[[int], None] | None = None) -> int:
        """Apply batches until the log has nothing new; the number of events read."""
        total = 0
        while count := self.run_batch():
            total += count
            if progress is not None:
                progress(self.position())
        return total

    def position(self) -> int:
        return min((position for _, position in self.known.values()), default=0)

    def run_forever(self, stop: threading.Event) -> None:
        """Catch up, then wait for new events (LISTEN/NOTIFY on PostgreSQL, polling on SQLite).

        On PostgreSQL one runner at a time leads (``_Waiter.leading``): each server worker
        and ``ledger projections run`` has one, and runners taking turns on the state rows
        would each find the other's batches and reload what they hold in memory. The others
        stand by and take over within ``STANDBY_SECONDS`` when the leader's connection ends.
        """
        waiter = _Waiter(self.ledger)
        try:
            while not stop.is_set():
                if not waiter.leading():
                    stop.wait(STANDBY_SECONDS)
                elif self.run_batch() == 0:
                    waiter.wait(POLL_INTERVAL, stop)
        finally:
            waiter.close()

    # ----------------------------------------------------------------- internals

    def _lock(self, connection: Connection) -> dict[str, tuple[int, int]]:
        """Take the state rows of this runner's projections; their (generation, position)."""
        now = {"now": datetime.now(UTC)}
        rows = connection.execute(self.statements.take, now).all()
        if len(rows) < len(self.projections):  # a new database, or a new projection: made at 0
            _ensure_state_rows(connection, self.projections)
            rows = connection.execute(self.statements.take, now).all()
        result = {}
        for row in rows:
            if self.rebuild:
                if row.rebuild_generation is None:
                    raise RuntimeError(f"projection {row.name} is not being rebuilt")
                result[row.name] = (row.rebuild_generation, row.rebuild_position)
            else:
                result[row.name] = (row.generation, row.position)
        return result

    def _advance(self, connection: Connection, position: int) -> None:
        connection.execute(self.statements.advance, {"advanced_to": position})

    def _route(self, event_type: type[LedgerAggregate.Event]) -> list[Projection]:
        """The projections events of this type change (most events change one or two)."""
        route = self.routes.get(event_type)
        if route is None:
            route = self.routes[event_type] = [
                projection for projection in self.projections if projection.handles(event_type)
            ]
        return route

    def _decode(self, raw: RawEvent) -> LedgerAggregate.Event | None:
        stored = StoredEvent(raw.originator_id, raw.originator_version, raw.topic, raw.state)
        event = self.ledger.mapper.to_domain_event(stored)
        return event if isinstance(event, LedgerAggregate.Event) else None

    def _loader(
        self, connection: Connection, states: dict[str, tuple[int, int]]
    ) -> Callable[[Table, UUID], LedgerAggregate]:
        generations = {
            table: generation
            for name, (generation, _) in states.items()
            for table in _owned_tables(self.projections, name)
        }

        def load(table: Table, stream: UUID) -> LedgerAggregate:
            version = connection.execute(
                select(table.c.version).where(
                    table.c.generation == generations[table], table.c.stream == str(stream)
                )
            ).scalar_one()
            aggregate: LedgerAggregate = self.ledger.repository.get(stream, version=version)
            return aggregate

        return load


def _owned_tables(projections: Sequence[Projection], name: str) -> tuple[Table, ...]:
    return next(p.tables for p in projections if p.name == name)


def _ensure_state_rows(connection: Connection, projections: Sequence[Projection]) -> None:
    """A state row for each projection that has none: generation 1, at position 0."""
    state = tables.projection_state
    names = [projection.name for projection in projections]
    existing = set(
        connection.execute(select(state.c.name).where(state.c.name.in_(names))).scalars()
    )
    missing = [projection for projection in projections if projection.name not in existing]
    if missing:
        now = datetime.now(UTC)
        connection.execute(
            insert(state),
            [
                {"name": projection.name, "generation": 1, "position": 0, "updated_at": now}
                for projection in missing
            ],
        )
        for projection in missing:
            for index in projection.generation_indexes:
                index.create(connection, 1)


# ------------------------------------------------------------------ rebuilds


def start_rebuild(engine: Engine, names: Sequence[str]) -> None:
    """Open the next generation of the named projections, empty, at position 0."""
    projections = [p for p in all_projections() if p.name in names]
    state = tables.projection_state
    with engine.begin() as connection:
        _ensure_state_rows(connection, projections)
        for projection in projections:
            row = connection.execute(select(state).where(state.c.name == projection.name)).one()
            if row.rebuild_generation is not None:
                continue  # an interrupted rebuild resumes where it stopped
            target = row.generation + 1
            for index in projection.generation_indexes:
                index.drop(connection, target)  # built at the swap, in one pass
            for table in projection.tables:
                connection.execute(delete(table).where(table.c.generation == target))
            connection.execute(
                update(state)
                .where(state.c.name == projection.name)
                .values(rebuild_generation=target, rebuild_position=0)
            )


def finish_rebuild(runner: ProjectionRunner) -> None:
    """Catch the rebuilt generation up to the log's head and make it the live one.

    The last batch and the swap run under the state rows' lock, so the live runner
    cannot move the old generation on in between; readers switch in one commit.
    """
    runner.catch_up()
    state = tables.projection_state
    with runner.engine.begin() as connection:
        names = [projection.name for projection in runner.projections]
        connection.execute(
            update(state).where(state.c.name.in_(names)).values(updated_at=datetime.now(UTC))
        )
        rows = connection.execute(select(state).where(state.c.name.in_(names))).all()
        for row in rows:
            projection = next(p for p in runner.projections if p.name == row.name)
            connection.execute(
                update(state)
                .where(state.c.name == row.name)
                .values(
                    generation=row.rebuild_generation,
                    position=row.rebuild_position,
                    rebuild_generation=None,
                    rebuild_position=None,
                )
            )
            for table in projection.tables:
                connection.execute(delete(table).where(table.c.generation == row.generation))
            for index in projection.generation_indexes:
                index.create(connection, row.rebuild_generation)
                index.drop(connection, row.generation)
    # Events recorded between the last catch-up and the swap are applied by the live
    # runner, which now starts from the rebuilt position.


def projection_status(engine: Engine, ledger: ReleaseLedger) -> list[ProjectionStatus]:
    """Each projection's generation, position and lag behind the log's head."""
    head = ledger.event_log.last_position()
    with engine.connect() as connection:
        rows = connection.execute(select(tables.projection_state)).all()
    known = {row.name: row for row in rows}
    statuses = []
    for projection in all_projections():
        row = known.get(projection.name)
        position = row.position if row else 0
        statuses.append(
            ProjectionStatus(
                projection.name,
                row.generation if row else 1,
                position,
                max(head - position, 0),
                row.rebuild_generation if row else None,
                row.rebuild_position if row else None,
            )
        )
    return statuses


class _Waiter:
    """Sleeps until new events may exist: NOTIFY on PostgreSQL, a timer elsewhere."""

    def __init__(self, ledger: ReleaseLedger) -> None:
        self.connection: psycopg.Connection[Any] | None = None
        self._leading = False
        recorder = ledger.recorder
        if isinstance(recorder, PostgresApplicationRecorder):
            env = ledger.env
            self.connection = psycopg.connect(
                dbname=env.get("POSTGRES_DBNAME"),
                host=env.get("POSTGRES_HOST"),
                port=env.get("POSTGRES_PORT"),
                user=env.get("POSTGRES_USER"),
                password=env.get("POSTGRES_PASSWORD") or None,
                autocommit=True,
            )
            self.connection.execute(f'LISTEN "{recorder.channel_name}"')

    def leading(self) -> bool:
        """Whether this runner may apply batches: it holds the leader's session lock on
        its connection (PostgreSQL), which ends with the connection; always elsewhere."""
        if self.connection is None:
            return True
        if not self._leading:
            row = self.connection.execute(
                "SELECT pg_try_advisory_lock(hashtext(%s))", (LEADER_LOCK,)
            ).fetchone()
            self._leading = bool(row and row[0])
        return self._leading

    def wait(self, timeout: float, stop: threading.Event) -> None:
        if self.connection is None:
            stop.wait(timeout)
            return
        for _ in self.connection.notifies(timeout=timeout, stop_after=1):
            pass

    def close(self) -> None:
        if self.connection is not None:
            self.connection.close()


def wait_for_position(engine: Engine, names: Sequence[str], position: int, timeout: float) -> bool:
    """Whether every named projection reached ``position`` within ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    state = tables.projection_state
    while True:
        with engine.connect() as connection:
            positions = (
                connection.execute(select(state.c.position).where(state.c.name.in_(names)))
                .scalars()
                .all()
            )
        if len(positions) == len(names) and min(positions) >= position:
            return True
        if time.monotonic() >= deadline:
            return False
        time.sleep(0.02)


def rebuild(
    ledger: ReleaseLedger,
    engine: Engine,
    names: Sequence[str],
    progress: Callable[[int], None] | None = None,
    *,
    batch_size: int = REBUILD_BATCH_SIZE,
) -> None:
    """Rebuild the named projections from position 0 beside the live rows, then swap.

    Interrupted rebuilds resume from where their last batch committed.
    """
    start_rebuild(engine, names)
    projections = [p for p in all_projections() if p.name in names]
    runner = ProjectionRunner(ledger, engine, projections, rebuild=True, batch_size=batch_size)
    runner.catch_up(progress)
    finish_rebuild(runner)
    _vacuum(engine, [table for projection in projections for table in projection.tables])


def _vacuum(engine: Engine, rebuilt: Sequence[Table]) -> None:
    """Mark the rebuilt rows visible to index-only scans and refresh the planner's counts.

    Autovacuum would get there in time; until then the first queries after a rebuild
    read the table for every index entry (as-of QA counts) and plan on empty statistics.
    """
    if engine.dialect.name != "postgresql":
        return
    names = ", ".join(engine.dialect.identifier_preparer.quote(table.name) for table in rebuilt)
    with engine.connect().execution_options(isolation_level="AUTOCOMMIT") as connection:
        connection.exec_driver_sql(f"VACUUM (ANALYZE) {names}")
