"""What changed in the database, heard as it happens.

Triggers (migration 0008, PostgreSQL only) NOTIFY ``ledger_projection_state`` when a
projection's generation or position moves, and ``ledger_api_tokens`` when a token is made,
revoked or changed in any way, by this server, another one or an operator's SQL.

A server process keeps one ``ChangeWatch``. It LISTENs on a connection of its own, then
reads the projections' state, and from then on reads it again after each notification and
at least every second. While it listens, reads may be answered from what it holds: the
state of a moment ago, as any read of projections that trail the log is. While it does
not (not started yet, connection lost, SQLite), ``listening`` is False and callers ask the
database, as they would without it.
"""

from __future__ import annotations

import logging
import threading
import time

import psycopg
from sqlalchemy import Engine, select

from projections import tables

log = logging.getLogger(__name__)

PROJECTION_CHANNEL = "ledger_projection_state"
TOKENS_CHANNEL = "ledger_api_tokens"
REFRESH_SECONDS = 1.0
"""The state is read again at least this often, notified or not."""
TOKENS_TRUSTED_SECONDS = 10.0
"""Remembered tokens are forgotten at least this often: a lost notification costs no more."""
RECONNECT_SECONDS = 1.0
# A peer that vanished without closing the connection is noticed within about 10 s.
KEEPALIVES = {"keepalives": 1, "keepalives_idle": 5, "keepalives_interval": 2}


class ChangeWatch:
    """Listens for changes of projection state and tokens on a thread of its own."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine
        self.conninfo = engine.url.set(drivername="postgresql").render_as_string(
            hide_password=False
        )
        self.states: dict[str, tuple[int, int]] = {}
        """Each projection's live (generation, position), as last read."""
        self.token_epoch = 0
        """Moves on whenever tokens may have changed; remembered principals older are void."""
        self._listening = False
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="change-watch", daemon=True)

    @property
    def listening(self) -> bool:
        return self._listening

    def start(self) -> None:
        self._thread.start()

    def stop(self, timeout: float = 5.0) -> None:
        self._stop.set()
        self._thread.join(timeout)
        self._listening = False

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                self._listen()
            except Exception as error:  # logged, then listened again: until then, ask the database
                self._listening = False
                self.token_epoch += 1
                log.warning(
                    "not listening for changes (%s); retrying in %g s", error, RECONNECT_SECONDS
                )
                self._stop.wait(RECONNECT_SECONDS)

    def _listen(self) -> None:
        conninfo = psycopg.conninfo.make_conninfo(self.conninfo, **KEEPALIVES)
        with psycopg.connect(conninfo, autocommit=True) as connection:
            connection.execute(f"LISTEN {PROJECTION_CHANNEL}")
            connection.execute(f"LISTEN {TOKENS_CHANNEL}")
            # Anything committed from here on is notified; what came before, this read sees.
            self._refresh()
            self.token_epoch += 1
            self._listening = True
            tokens_forgotten = time.monotonic()
            while not self._stop.is_set():
                changed = {
                    notice.channel
                    for notice in connection.notifies(timeout=REFRESH_SECONDS, stop_after=1)
                }
                now = time.monotonic()
                if TOKENS_CHANNEL in changed or now - tokens_forgotten >= TOKENS_TRUSTED_SECONDS:
                    self.token_epoch += 1
                    tokens_forgotten = now
                self._refresh()
        self._listening = False

    def _refresh(self) -> None:
        state = tables.projection_state
        with self.engine.connect() as connection:
            rows = connection.execute(select(state.c.name, state.c.generation, state.c.position))
            self.states = {row.name: (int(row.generation), int(row.position)) for row in rows}
