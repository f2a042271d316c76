"""Projections over a ledger, for tests: the engine, the runner and the queries."""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import Engine, select

from ledger.application import ReleaseLedger
from ledger.config import Database
from projections import tables
from projections.projectors import all_projections
from projections.queries import ProjectionQueries
from projections.runner import ProjectionRunner
from projections.schema import engine_for, upgrade


@dataclass
class Projected:
    """A ledger with its projections, caught up on demand."""

    ledger: ReleaseLedger
    engine: Engine
    runner: ProjectionRunner
    queries: ProjectionQueries

    def catch_up(self) -> int:
        return self.runner.catch_up()


def projected(ledger: ReleaseLedger, url: str) -> Projected:
    engine = engine_for(Database.from_url(url))
    upgrade(engine)
    return Projected(
        ledger, engine, ProjectionRunner(ledger, engine), ProjectionQueries(engine, ledger)
    )


def owners() -> dict[str, str]:
    """Which projection owns each table (the stream keys belong to none)."""
    return {table.name: p.name for p in all_projections() for table in p.tables}


def live_rows(engine: Engine) -> dict[str, list[str]]:
    """Every projection table's rows of the live generation, without the generation column."""
    owner = owners()
    with engine.connect() as connection:
        generations = dict(
            connection.execute(
                select(tables.projection_state.c.name, tables.projection_state.c.generation)
            ).all()
        )
        snapshot = {}
        for table in tables.metadata.sorted_tables:
            if table is tables.projection_state:
                continue
            query = select(table)
            if table.name in owner:
                query = query.where(table.c.generation == generations.get(owner[table.name], 1))
            rows = [
                repr(sorted((k, v) for k, v in row._asdict().items() if k != "generation"))
                for row in connection.execute(query)
            ]
            snapshot[table.name] = sorted(rows)
    return snapshot
