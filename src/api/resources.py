"""The long-lived resources of one server process, owned by the app's lifespan.

Opening them prepares the projection schema (SQLite upgrades itself; an out-of-date
PostgreSQL schema is refused, naming ``ledger db upgrade``) and starts the projector
thread; closing stops the projector before the connections it uses go away.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass

from anyio import to_thread
from fastapi import FastAPI
from sqlalchemy import Engine
from starlette.concurrency import run_in_threadpool

from api.metrics import ApiMetrics, MeteredLedger
from api.positions import BoundedRead, Positions, inbox_reader, position_reader
from api.tokens import Authenticator
from integrations.config import IntegrationsConfig, qtest_client, webhook_secrets
from integrations.inbox import Inbox
from integrations.processor import InboxProcessor, InboxWorker
from integrations.receiving import Webhooks
from ledger.application import ReleaseLedger
from ledger.config import Database, Settings
from projections.background import BackgroundProjector
from projections.queries import ProjectionQueries
from projections.schema import engine_for, prepare
from projections.watch import ChangeWatch

THREADPOOL_TOKENS = 64
"""anyio's threads for blocking calls (40 by default). Measured with 64 connections
(bench/api.py): writes on 8 threads, 0.38-0.43x the library's save; on 64, 0.64x."""


@dataclass
class Resources:
    settings: Settings
    database: Database
    ledger: ReleaseLedger
    engine: Engine
    queries: ProjectionQueries
    projector: BackgroundProjector
    positions: BoundedRead[Positions]
    inbox_counts: BoundedRead[dict[str, int]]
    inbox: Inbox
    webhooks: Webhooks
    worker: InboxWorker | None
    watch: ChangeWatch | None
    authenticator: Authenticator

    @classmethod
    def open(cls, settings: Settings, metrics: ApiMetrics | None = None) -> Resources:
        database = Database.from_url(settings.database_url)
        # A wrong mapping file is refused before anything starts.
        integrations = IntegrationsConfig.load(settings.integrations_file)
        ledger = (
            ReleaseLedger.from_settings(settings)
            if metrics is None
            else MeteredLedger.from_settings(settings, metrics=metrics)
        )
        try:
            engine = engine_for(database)
            try:
                prepare(engine, database)
                projector = BackgroundProjector(ledger, engine)
                projector.start()
            except BaseException:
                engine.dispose()
                raise
        except BaseException:
            ledger.close()
            raise
        # PostgreSQL tells listeners what changed, so reads may be answered from memory.
        watch = ChangeWatch(engine) if database.backend == "postgresql" else None
        if watch is not None:
            watch.start()
        queries = ProjectionQueries(engine, ledger, watch=watch)
        positions = position_reader(ledger, engine)
        inbox = Inbox(engine)
        worker = None
        if settings.inbox_worker:
            processor = InboxProcessor(ledger, engine, integrations, qtest_client(settings))
            worker = InboxWorker(processor)
            worker.start()
        webhooks = Webhooks(
            inbox, webhook_secrets(settings), on_stored=worker.wake if worker else lambda new: None
        )
        return cls(
            settings,
            database,
            ledger,
            engine,
            queries,
            projector,
            positions,
            inbox_reader(engine),
            inbox,
            webhooks,
            worker,
            watch,
            Authenticator(engine, watch),
        )

    def close(self) -> None:
        try:
            self.webhooks.close()
            if self.worker is not None:
                self.worker.stop()
            self.projector.stop()
            if self.watch is not None:
                self.watch.stop()
        finally:
            self.engine.dispose()
            self.ledger.close()


@asynccontextmanager
async def lifespan(app: FastAPI) -> AsyncIterator[None]:
    """Open the resources before the first request and close them after the last."""
    settings: Settings = app.state.settings
    # Commands and token lookups block on the database, on anyio's threads; with as
    # many as there are busy connections, concurrent writes share group commits.
    to_thread.current_default_thread_limiter().total_tokens = THREADPOOL_TOKENS
    # Opening and closing block on the database (and on the projector's thread).
    metrics: ApiMetrics | None = getattr(app.state, "metrics", None)
    resources = await run_in_threadpool(Resources.open, settings, metrics)
    app.state.resources = resources
    try:
        yield
    finally:
        del app.state.resources
        await run_in_threadpool(resources.close)
