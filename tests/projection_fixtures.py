"""Projections over a ledger, for tests: the engine, the runner and the queries."""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import Engine

from ledger.application import ReleaseLedger
from ledger.config import Database
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
