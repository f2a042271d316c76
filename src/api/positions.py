"""The log's head, each projection's position and the inbox, read with a bound on the wait.

``/readyz`` and ``/metrics`` must answer while the database is down. An unreachable
server can hold a read for tens of seconds (the connection pools wait for a
connection), longer than a probe or a scraper waits, so the read runs on a thread of its
own: at most one is under way, and later callers wait on it rather than pile up more.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from concurrent.futures import Future
from dataclasses import dataclass
from typing import Generic, TypeVar

from sqlalchemy import Engine

from integrations.inbox import Inbox
from ledger.application import ReleaseLedger
from projections.runner import ProjectionStatus, projection_status

T = TypeVar("T")


@dataclass(frozen=True)
class Positions:
    """How far the log and the projections have got."""

    head: int
    projections: list[ProjectionStatus]


class BoundedRead(Generic[T]):
    """A database read that answers within a timeout, one under way at a time."""

    def __init__(self, name: str, read: Callable[[], T]) -> None:
        self.name = name
        self.read_now = read
        self.lock = threading.Lock()
        self.reading: Future[T] | None = None

    def read(self, timeout: float) -> T:
        """The value; ``TimeoutError`` after ``timeout`` seconds, or the database's error."""
        return self._reading().result(timeout=timeout)

    def _reading(self) -> Future[T]:
        with self.lock:
            if self.reading is not None and not self.reading.done():
                return self.reading
            reading: Future[T] = Future()

            def read() -> None:
                try:
                    reading.set_result(self.read_now())
                except BaseException as error:
                    reading.set_exception(error)

            # A daemon: a read stuck on a dead server never holds up the process's exit.
            threading.Thread(target=read, name=self.name, daemon=True).start()
            self.reading = reading
            return reading


def position_reader(ledger: ReleaseLedger, engine: Engine) -> BoundedRead[Positions]:
    """The log's head and each projection's status (``/readyz``, ``/metrics``)."""
    return BoundedRead(
        "projection-positions",
        lambda: Positions(ledger.event_log.last_position(), projection_status(engine, ledger)),
    )


def inbox_reader(engine: Engine) -> BoundedRead[dict[str, int]]:
    """Webhook deliveries per status (``/metrics``)."""
    return BoundedRead("inbox-counts", Inbox(engine).counts)
