"""The log's head, each projection's position and the inbox, read with a bound on the wait.

``/readyz`` and ``/metrics`` must answer while the database is down. An unreachable
server can hold a read for tens of seconds (the connection pools wait for a
connection), longer than a probe or a scraper waits, so the read runs on a thread of its
own: at most one is under way, and later callers wait on it rather than pile up more.
"""

from __future__ import annotations

import threading
from concurrent.futures import Future
from dataclasses import dataclass

from sqlalchemy import Engine

from integrations.inbox import Inbox
from ledger.application import ReleaseLedger
from projections.runner import ProjectionStatus, projection_status


@dataclass(frozen=True)
class Positions:
    """How far the log, the projections and the webhook inbox have got."""

    head: int
    projections: list[ProjectionStatus]
    inbox: dict[str, int]


class PositionReader:
    def __init__(self, ledger: ReleaseLedger, engine: Engine) -> None:
        self.ledger = ledger
        self.engine = engine
        self.lock = threading.Lock()
        self.reading: Future[Positions] | None = None

    def read(self, timeout: float) -> Positions:
        """The positions; ``TimeoutError`` after ``timeout`` seconds, or the database's error."""
        return self._reading().result(timeout=timeout)

    def _reading(self) -> Future[Positions]:
        with self.lock:
            if self.reading is not None and not self.reading.done():
                return self.reading
            reading: Future[Positions] = Future()

            def read() -> None:
                try:
                    head = self.ledger.event_log.last_position()
                    statuses = projection_status(self.engine, self.ledger)
                    reading.set_result(Positions(head, statuses, Inbox(self.engine).counts()))
                except BaseException as error:
                    reading.set_exception(error)

            # A daemon: a read stuck on a dead server never holds up the process's exit.
            threading.Thread(target=read, name="projection-positions", daemon=True).start()
            self.reading = reading
            return reading
