"""The projection runner inside another process (the server's lifespan owns one)."""

from __future__ import annotations

import logging
import threading

from sqlalchemy import Engine

from ledger.application import ReleaseLedger
from projections.runner import ProjectionRunner

log = logging.getLogger(__name__)
RESTART_DELAY = 1.0


class BackgroundProjector:
    """Runs a ``ProjectionRunner`` on a daemon thread until stopped.

    A failing batch (the database went away, say) is logged and retried after a pause:
    nothing was applied, because a batch commits whole or not at all.
    """

    def __init__(self, ledger: ReleaseLedger, engine: Engine) -> None:
        self.runner = ProjectionRunner(ledger, engine)
        self.stop_event = threading.Event()
        self.thread = threading.Thread(target=self._run, name="projections", daemon=True)

    def start(self) -> None:
        self.thread.start()

    def stop(self, timeout: float = 10.0) -> None:
        self.stop_event.set()
        self.thread.join(timeout)

    def _run(self) -> None:
        while not self.stop_event.is_set():
            try:
                self.runner.run_forever(self.stop_event)
            except Exception:  # logged, then retried: the next batch starts from committed state
                log.exception("projection runner failed; retrying in %.1f s", RESTART_DELAY)
                self.runner = ProjectionRunner(self.runner.ledger, self.runner.engine)
                self.stop_event.wait(RESTART_DELAY)
