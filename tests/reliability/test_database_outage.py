"""Database outage: PostgreSQL stops mid-load (``-m immediate``) and starts again.

The server runs on a PostgreSQL cluster of the test's own (``pg_createcluster`` on a free
port), so stopping it takes nothing away from the rest of the suite. While it is down the
API answers 503 with ``Retry-After`` within a bound, never 500, and ``/readyz`` says not
ready; once it is back, the same server process recovers by itself.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import threading
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import psycopg
import pytest

from tests.api_client import at
from tests.conftest import fresh_database
from tests.reliability.audit import audit, record_figures
from tests.reliability.load import (
    PATIENCE_SECONDS,
    Outcome,
    Tally,
    Write,
    keep_writing,
    scaled,
)
from tests.served import Served, free_port, serving_on

pytestmark = [pytest.mark.e2e, pytest.mark.postgres]

CLIENTS = 8
BEFORE_SECONDS = 3.0
OUTAGE_SECONDS = min(scaled(40), 150)
"""Longer than the answer bound, so that requests caught mid-command must give up in time,
and long enough that a connection pool backing off exponentially (1, 2, 4, ... s) would
not try again until well after the database is back."""
AFTER_SECONDS = 5.0
ANSWER_BOUND_SECONDS = 15.0
"""No answer, during the outage included, may take longer than this."""
RECOVERY_BOUND_SECONDS = 15.0
READY_POLL_SECONDS = 0.2


@dataclass(frozen=True)
class Cluster:
    """A PostgreSQL cluster of the test's own, made and dropped with Debian's tools."""

    version: str
    name: str
    port: int

    @property
    def url(self) -> str:
        return f"postgresql://postgres@127.0.0.1:{self.port}/postgres"

    def ctl(self, *arguments: str) -> None:
        subprocess.run(
            ["pg_ctlcluster", self.version, self.name, *arguments],
            check=True,
            capture_output=True,
            timeout=60,
        )

    def stop_immediately(self) -> None:
        """As a crash does: no checkpoint, every connection cut."""
        self.ctl("stop", "-m", "immediate")

    def start(self) -> None:
        self.ctl("start")
        deadline = time.monotonic() + 30
        while True:
            try:
                with psycopg.connect(self.url, connect_timeout=2):
                    return
            except psycopg.OperationalError:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.1)


@pytest.fixture(scope="module")
def cluster() -> Iterator[Cluster]:
    """A new cluster on a free port, trust auth on loopback; dropped afterwards."""
    if shutil.which("pg_createcluster") is None or os.geteuid() != 0:
        pytest.skip("stopping a PostgreSQL of its own needs Debian's pg_createcluster, as root")
    version = sorted(os.listdir("/etc/postgresql"))[-1]
    made = Cluster(version, f"ledger_outage_{uuid.uuid4().hex[:8]}", free_port())
    subprocess.run(
        ["pg_createcluster", version, made.name, "--port", str(made.port), "--", "--auth=trust"],
        check=True,
        capture_output=True,
        timeout=120,
    )
    try:
        made.start()
        yield made
    finally:
        subprocess.run(
            ["pg_dropcluster", "--stop", version, made.name], capture_output=True, timeout=120
        )
        assert not Path(f"/etc/postgresql/{version}/{made.name}").exists()


@pytest.fixture(scope="module")
def served_on_cluster(
    request: pytest.FixtureRequest, cluster: Cluster, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Served]:
    with (
        fresh_database(cluster.url) as database_url,
        serving_on(request, database_url, tmp_path_factory) as served,
    ):
        yield served


class ReadinessWatch:
    """Polls ``/readyz`` on a thread of its own: when it said what."""

    def __init__(self, base_url: str) -> None:
        self.base_url = base_url
        self.seen: list[tuple[float, int]] = []
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self.watch, daemon=True)

    def watch(self) -> None:
        with httpx.Client(base_url=self.base_url, timeout=5, trust_env=False) as client:
            while not self.stop.is_set():
                try:
                    status = client.get("/readyz").status_code
                except httpx.TransportError:
                    status = 0
                self.seen.append((time.monotonic(), status))
                self.stop.wait(READY_POLL_SECONDS)

    def __enter__(self) -> ReadinessWatch:
        self.thread.start()
        return self

    def __exit__(self, *_: object) -> None:
        self.stop.set()
        self.thread.join(timeout=10)


def qa_run(_: object) -> Write:
    body = {"cycle": "phase1", "build": "9.9-b1", "total": 100, "passed": 97, "failed": 3}
    return Write("/v1/trains/9.9/qa-runs", {**body, "actor": "Quinn QA"})


def test_the_api_answers_503_while_the_database_is_down_and_recovers_by_itself(
    served_on_cluster: Served, cluster: Cluster
) -> None:
    """Writes during an outage get 503 with Retry-After, readiness drops, and the same
    server takes every retried write once the database is back; nothing is lost or doubled."""
    served = served_on_cluster
    served.write(
        "/v1/trains", {"train": "9.9", "kind": "major", "actor": "Ada", "occurred_at": at(9)}
    )
    seconds = BEFORE_SECONDS + OUTAGE_SECONDS + AFTER_SECONDS
    outcomes: list[Outcome] = []
    with ReadinessWatch(served.base_url) as readiness:
        load = threading.Thread(
            target=lambda: outcomes.extend(
                keep_writing(
                    served.base_url,
                    served.tokens["writer"],
                    CLIENTS,
                    seconds,
                    qa_run,
                    # A careful client outwaits the outage.
                    patience=OUTAGE_SECONDS + PATIENCE_SECONDS,
                )
            )
        )
        load.start()
        time.sleep(BEFORE_SECONDS)
        cluster.stop_immediately()
        stopped = time.monotonic()
        time.sleep(OUTAGE_SECONDS)
        cluster.start()
        restarted = time.monotonic()
        load.join(timeout=seconds + 120)
        assert not load.is_alive(), "the clients did not stop"
        time.sleep(READY_POLL_SECONDS * 3)

    tally = Tally.of(outcomes)
    answers = [
        (moment, status)
        for outcome in outcomes
        for moment, status in zip(outcome.answered_at, outcome.answers, strict=True)
    ]
    during = {status for moment, status in answers if stopped + 1 < moment < restarted}
    refusals = [(o.answers, o.problem) for o in outcomes if not o.acknowledged]
    assert set(tally.statuses) <= {201, 409, 503}, (tally, refusals)
    assert tally.refused == 0, (tally, refusals)
    assert 503 in during, f"no write was refused during the outage: {tally}"
    assert tally.slowest <= ANSWER_BOUND_SECONDS, tally
    assert tally.unresolved == 0, tally
    not_ready = [moment for moment, status in readiness.seen if status == 503]
    assert any(stopped < moment < restarted for moment in not_ready), readiness.seen
    assert readiness.seen[-1][1] == 200, "not ready after the database came back"
    recovered = min(moment for moment, status in answers if status == 201 and moment > restarted)
    ready_again = min(
        moment for moment, status in readiness.seen if status == 200 and moment > restarted
    )
    assert recovered - restarted <= RECOVERY_BOUND_SECONDS

    report = audit(served.database_url, outcomes)
    record_figures(
        "database outage",
        report,
        tally,
        outage_seconds=round(restarted - stopped, 1),
        first_write_after_restart_seconds=round(recovered - restarted, 2),
        ready_after_restart_seconds=round(ready_again - restarted, 2),
    )
