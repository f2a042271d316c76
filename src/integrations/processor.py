"""From the inbox to the ledger: map due deliveries, settle them, and keep QA cycles current.

Jira deliveries are applied one by one, in the order received; each command carries a
``source_ref`` made of the delivery id, so mapping a delivery again replays instead of
recording twice. QTest deliveries are taken in batches: each is enriched through the
QTest REST API, its test run stored at the latest status QTest gives
(``qtest_test_runs``), and every (train, cycle) whose runs changed is recorded once per
batch as a QA run with the cycle's exact totals. A tally's ``source_ref`` names its
revision, so recording it again after a crash replays.

Transient failures (QTest down or slow, a concurrent writer) leave a delivery pending,
due again after a backoff; anything that cannot be mapped is settled ``failed`` with the
reason, to be retried after a configuration change.
"""

from __future__ import annotations

import fcntl
import logging
import random
import threading
import time
from collections import deque
from collections.abc import Callable, Iterable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import Connection, Engine, func, select, text, tuple_, update

from integrations.config import IntegrationsConfig
from integrations.inbox import (
    Delivery,
    DeliveryStatus,
    Inbox,
    Integration,
    Settlement,
    utc_now,
)
from integrations.jira import Unmappable, apply_jira_delivery
from integrations.qtest import (
    QTestClient,
    QTestError,
    QTestPayloadError,
    QTestUnavailable,
    TestRunResult,
    parse_delivery,
)
from ledger.application import CommandContext, ReleaseLedger
from ledger.exceptions import ConcurrencyConflict, InvalidCommand, LedgerError
from ledger.metadata import Source
from projections.tables import insert_into, qtest_cycle_tallies, qtest_test_runs

log = logging.getLogger(__name__)

JIRA_BATCH = 50
QTEST_BATCH = 200
ENRICHING_THREADS = 8
"""QTest calls in flight at once: its answers, not our CPU, bound a batch."""
MAX_BACKOFF = timedelta(minutes=5)
MAPPED_QTEST_EVENTS = frozenset({"testlog_submitted", "testlog_modified"})
JIRA_PRINCIPAL = "jira"
QTEST_PRINCIPAL = "qtest"
QTEST_ACTOR = "QTest"


def backoff(attempts: int) -> timedelta:
    """Exponential, jittered, capped: 1 s, 2 s, 4 s, ... up to five minutes."""
    seconds = min(MAX_BACKOFF.total_seconds(), 2.0 ** max(0, attempts - 1))
    return timedelta(seconds=seconds * random.uniform(0.8, 1.2))


@dataclass(frozen=True)
class Postponed:
    """A delivery to try again later, and why."""

    delivery: Delivery
    reason: str


@dataclass(frozen=True)
class TestRunFact:
    """A QTest test run at its latest status, mapped to a train's cycle."""

    delivery: Delivery
    result: TestRunResult
    train: str
    cycle: str

    @property
    def key(self) -> tuple[int, int]:
        return (self.result.project_id, self.result.test_run_id)


Enriched = TestRunFact | Settlement | Postponed


@dataclass
class Round:
    """What one round of processing did, by outcome."""

    settled: int = 0
    postponed: int = 0
    qa_runs: int = 0

    def __iadd__(self, other: Round) -> Round:
        self.settled += other.settled
        self.postponed += other.postponed
        self.qa_runs += other.qa_runs
        return self

    @property
    def busy(self) -> bool:
        return bool(self.settled or self.postponed or self.qa_runs)


class InboxProcessor:
    """Maps due inbox deliveries to ledger commands; safe to run in several processes."""

    def __init__(
        self,
        ledger: ReleaseLedger,
        engine: Engine,
        config: IntegrationsConfig,
        qtest: QTestClient | None,
        *,
        clock: Callable[[], datetime] = utc_now,
    ) -> None:
        self.ledger = ledger
        self.engine = engine
        self.inbox = Inbox(engine)
        self.config = config
        self.qtest = qtest
        self.clock = clock
        self._enricher = ThreadPoolExecutor(ENRICHING_THREADS, thread_name_prefix="qtest")

    def close(self) -> None:
        self._enricher.shutdown(wait=True, cancel_futures=True)
        if self.qtest is not None:
            self.qtest.close()

    # ----------------------------------------------------------------- rounds

    def process_due(self) -> Round:
        """One round: due Jira deliveries, a batch of QTest ones, then changed tallies."""
        done = Round()
        done += self._jira_round()
        done += self._qtest_round()
        done.qa_runs += self.record_tallies()
        return done

    def drain(self, *, rounds: int = 10_000) -> Round:
        """Process until nothing is due (postponed deliveries wait for their time)."""
        total = Round()
        for _ in range(rounds):
            done = self.process_due()
            total += done
            if not done.settled and not done.qa_runs:
                break
        return total

    # ------------------------------------------------------------------- Jira

    def _jira_round(self) -> Round:
        done = Round()
        with jira_turn(self.engine) as mine:
            if not mine:
                return done  # another process is applying Jira deliveries, in order
            taken = self.inbox.take_due(Integration.JIRA, JIRA_BATCH, in_order=True)
            for position, delivery in enumerate(taken):
                done += self._settle_jira(delivery)
                if done.postponed:
                    # Later deliveries may be about the same issue: they wait for this one.
                    rest = [later.id for later in taken[position + 1 :]]
                    self.inbox.postpone(rest, f"waits for delivery {delivery.id}", timedelta(0))
                    break
        return done

    def _settle_jira(self, delivery: Delivery) -> Round:
        outcome = self._apply_jira(delivery)
        if isinstance(outcome, Postponed):
            self._postpone([outcome])
            return Round(postponed=1)
        self.inbox.settle([outcome])
        return Round(settled=1)

    def _apply_jira(self, delivery: Delivery) -> Settlement | Postponed:
        try:
            outcome = apply_jira_delivery(
                self.ledger,
                self.config.jira,
                delivery.delivery_key,
                delivery.payload(),
                recorded_by=JIRA_PRINCIPAL,
            )
        except ConcurrencyConflict as conflict:
            return Postponed(delivery, conflict.detail)
        except Unmappable as error:
            return Settlement(delivery.id, DeliveryStatus.FAILED, str(error))
        except LedgerError as refusal:
            return Settlement(delivery.id, DeliveryStatus.FAILED, refusal.detail)
        status = DeliveryStatus.APPLIED if outcome.applied else DeliveryStatus.IGNORED
        return Settlement(delivery.id, status, outcome.reason, outcome.positions)

    # ------------------------------------------------------------------ QTest

    def _qtest_round(self) -> Round:
        deliveries = self.inbox.take_due(Integration.QTEST, QTEST_BATCH)
        if not deliveries:
            return Round()
        enriched = list(self._enricher.map(self._enrich, deliveries))
        facts = [item for item in enriched if isinstance(item, TestRunFact)]
        settlements = [item for item in enriched if isinstance(item, Settlement)]
        postponed = [item for item in enriched if isinstance(item, Postponed)]
        facts, unplanned = self._on_planned_trains(facts)
        settlements += unplanned
        settlements += [
            Settlement(
                fact.delivery.id,
                DeliveryStatus.APPLIED,
                f"test run {fact.result.test_run_id} in {fact.train} {fact.cycle}: "
                f"{fact.result.status_name} (log {fact.result.test_log_id})",
            )
            for fact in facts
        ]
        with self.engine.begin() as connection:
            touched = _store_test_runs(connection, facts)
            _mark_changed(connection, touched)
        # Totals first, then the deliveries: an applied delivery's run is in a recorded QA
        # run. A crash in between leaves them leased; mapped again, they change nothing.
        qa_runs = self.record_tallies()
        self.inbox.settle(settlements)
        self._postpone(postponed)
        return Round(settled=len(settlements), postponed=len(postponed), qa_runs=qa_runs)

    def _enrich(self, delivery: Delivery) -> Enriched:
        """The test run a delivery tells of, at its latest status, or why there is none."""
        try:
            told = parse_delivery(delivery.payload())
        except QTestPayloadError as error:
            return Settlement(delivery.id, DeliveryStatus.FAILED, str(error))
        if told.event_type not in MAPPED_QTEST_EVENTS:
            return Settlement(
                delivery.id, DeliveryStatus.IGNORED, f"QTest {told.event_type} is not mapped"
            )
        if self.qtest is None:
            return Settlement(
                delivery.id,
                DeliveryStatus.FAILED,
                "the QTest REST API is not configured (LEDGER_QTEST_BASE_URL, "
                "LEDGER_QTEST_TOKEN); retry once it is",
            )
        try:
            result = self.qtest.test_run_result(told.project_id, told.test_run_id)
        except QTestUnavailable as error:
            return Postponed(delivery, f"QTest unavailable: {error}")
        except QTestError as error:
            return Settlement(delivery.id, DeliveryStatus.FAILED, str(error))
        mapping = self.config.qtest
        train = mapping.train_for(result.release_name) if result.release_name else None
        if train is None:
            return Settlement(
                delivery.id,
                DeliveryStatus.FAILED,
                f"QTest release {result.release_name!r} names no train "
                "(set [qtest] releases in LEDGER_INTEGRATIONS_FILE)",
            )
        cycle = mapping.cycle_for_any(result.cycle_names)
        if cycle is None:
            return Settlement(
                delivery.id,
                DeliveryStatus.FAILED,
                f"QTest test cycle {result.cycle_name!r} matches no phase1/phase2/golden "
                "pattern (set [qtest] cycles in LEDGER_INTEGRATIONS_FILE)",
            )
        return TestRunFact(delivery, result, train, cycle)

    def _on_planned_trains(
        self, facts: list[TestRunFact]
    ) -> tuple[list[TestRunFact], list[Settlement]]:
        planned = {train: self._is_planned(train) for train in {fact.train for fact in facts}}
        kept = [fact for fact in facts if planned[fact.train]]
        refused = [
            Settlement(
                fact.delivery.id,
                DeliveryStatus.FAILED,
                f"train {fact.train} (QTest release {fact.result.release_name!r}) is not planned",
            )
            for fact in facts
            if not planned[fact.train]
        ]
        return kept, refused

    def _is_planned(self, train: str) -> bool:
        try:
            return self.ledger.is_planned(train)
        except InvalidCommand:
            return False

    def _postpone(self, postponed: Sequence[Postponed]) -> None:
        for item in postponed:
            self.inbox.postpone([item.delivery.id], item.reason, backoff(item.delivery.attempts))

    # ---------------------------------------------------------------- tallies

    def record_tallies(self) -> int:
        """Record each changed (train, cycle) as a QA run of its exact totals; how many."""
        with self.engine.connect() as connection:
            changed = connection.execute(
                select(qtest_cycle_tallies).where(
                    qtest_cycle_tallies.c.revision > qtest_cycle_tallies.c.recorded_revision
                )
            ).all()
        recorded = 0
        for tally in changed:
            recorded += self._record_tally(tally.train, tally.cycle, tally.revision)
        return recorded

    def _record_tally(self, train: str, cycle: str, revision: int) -> int:
        with self.engine.connect() as connection:
            counts = cycle_totals(connection, train, cycle)
            latest = connection.execute(
                select(qtest_test_runs.c.build, qtest_test_runs.c.executed_at)
                .where(qtest_test_runs.c.train == train, qtest_test_runs.c.cycle == cycle)
                .order_by(qtest_test_runs.c.executed_at.desc().nulls_last())
                .limit(1)
            ).one_or_none()
        reason = None
        recorded = 0
        if counts["total"]:
            now = self.clock()
            executed_at = latest.executed_at if latest is not None else None
            try:
                self.ledger.record_qa_run(
                    train,
                    cycle,
                    (latest.build if latest is not None else None) or f"QTest {cycle}",
                    counts["total"],
                    counts["passed"],
                    counts["failed"],
                    QTEST_ACTOR,
                    blocked=counts["blocked"],
                    context=CommandContext(
                        recorded_by=QTEST_PRINCIPAL,
                        source=Source.QTEST,
                        source_ref=f"qtest:{train}:{cycle}:{revision}",
                        occurred_at=min(executed_at, now) if executed_at else now,
                    ),
                )
                recorded = 1
            except ConcurrencyConflict:
                return 0  # still changed: the next round records it
            except LedgerError as refusal:
                reason = refusal.detail
                log.warning("QA totals of %s %s not recorded: %s", train, cycle, reason)
        with self.engine.begin() as connection:
            connection.execute(
                update(qtest_cycle_tallies)
                .where(
                    qtest_cycle_tallies.c.train == train,
                    qtest_cycle_tallies.c.cycle == cycle,
                    qtest_cycle_tallies.c.recorded_revision < revision,
                )
                .values(recorded_revision=revision, reason=reason)
            )
        return recorded


def cycle_totals(connection: Connection, train: str, cycle: str) -> dict[str, int]:
    """The cycle's test runs counted once each, at their latest status."""
    rows = connection.execute(
        select(qtest_test_runs.c.status, func.count())
        .where(qtest_test_runs.c.train == train, qtest_test_runs.c.cycle == cycle)
        .group_by(qtest_test_runs.c.status)
    ).all()
    by_status: dict[str, int] = {row[0]: row[1] for row in rows}
    return {
        "total": sum(by_status.values()),
        "passed": by_status.get("passed", 0),
        "failed": by_status.get("failed", 0),
        "blocked": by_status.get("blocked", 0),
    }


def _store_test_runs(connection: Connection, facts: Iterable[TestRunFact]) -> set[tuple[str, str]]:
    """Keep each test run at its newest log; the (train, cycle) pairs whose runs changed."""
    newest: dict[tuple[int, int], TestRunFact] = {}
    for fact in facts:
        known = newest.get(fact.key)
        if known is None or fact.result.test_log_id >= known.result.test_log_id:
            newest[fact.key] = fact
    if not newest:
        return set()
    table = qtest_test_runs
    existing = {
        (row.project_id, row.test_run_id): row
        for row in connection.execute(
            select(table)
            .where(tuple_(table.c.project_id, table.c.test_run_id).in_(list(newest)))
            .with_for_update()
        )
    }
    insert = insert_into(table, connection)
    touched: set[tuple[str, str]] = set()
    for key, fact in newest.items():
        old = existing.get(key)
        same_place = old is not None and (old.train, old.cycle) == (fact.train, fact.cycle)
        if old is not None and same_place and old.test_log_id >= fact.result.test_log_id:
            continue  # an older or repeated log: the run is already at a newer status
        result = fact.result
        values = {
            "project_id": result.project_id,
            "test_run_id": result.test_run_id,
            "train": fact.train,
            "cycle": fact.cycle,
            "test_log_id": result.test_log_id,
            "status": result.status,
            "status_name": result.status_name[:64],
            "executed_at": result.executed_at,
            "build": result.build,
            "delivery_id": fact.delivery.id,
        }
        statement = insert.values(values)
        connection.execute(
            statement.on_conflict_do_update(
                index_elements=[table.c.project_id, table.c.test_run_id],
                set_={name: statement.excluded[name] for name in values},
                where=(statement.excluded.test_log_id >= table.c.test_log_id)
                | (statement.excluded.train != table.c.train)
                | (statement.excluded.cycle != table.c.cycle),
            )
        )
        touched.add((fact.train, fact.cycle))
        if old is not None and not same_place:
            touched.add((old.train, old.cycle))
    return touched


def _mark_changed(connection: Connection, touched: Iterable[tuple[str, str]]) -> None:
    table = qtest_cycle_tallies
    insert = insert_into(table, connection)
    for train, cycle in sorted(touched):  # one order everywhere, so rival batches never deadlock
        statement = insert.values(train=train, cycle=cycle, revision=1, recorded_revision=0)
        connection.execute(
            statement.on_conflict_do_update(
                index_elements=[table.c.train, table.c.cycle],
                set_={"revision": table.c.revision + 1},
            )
        )


JIRA_TURN_LOCK = "release-ledger-jira-inbox"


@contextmanager
def jira_turn(engine: Engine) -> Iterator[bool]:
    """Whether this process may apply Jira deliveries now: one process at a time does.

    Two moves of one issue must be applied in the order Jira sent them, so server
    processes take turns (a PostgreSQL advisory lock, or a lock file beside the SQLite
    file) rather than each taking a batch of its own.
    """
    if engine.dialect.name == "postgresql":
        with engine.connect() as connection:
            mine = bool(
                connection.execute(
                    text("SELECT pg_try_advisory_lock(hashtext(:name))"), {"name": JIRA_TURN_LOCK}
                ).scalar()
            )
            connection.commit()
            try:
                yield mine
            finally:
                if mine:
                    connection.execute(
                        text("SELECT pg_advisory_unlock(hashtext(:name))"), {"name": JIRA_TURN_LOCK}
                    )
                    connection.commit()
        return
    database = engine.url.database
    if engine.dialect.name != "sqlite" or not database or database == ":memory:":
        yield True  # an in-memory database has one process
        return
    with open(f"{database}.jira-turn", "a+b") as lock_file:
        try:
            fcntl.flock(lock_file, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            yield False
            return
        try:
            yield True
        finally:
            fcntl.flock(lock_file, fcntl.LOCK_UN)


class InboxWorker:
    """A thread that keeps the inbox drained: woken by each new delivery, else polling.

    Storing deliveries comes before mapping them. While a burst arrives (at least
    ``BURST_PER_SECOND`` new deliveries in the last second), the worker waits for it to
    pass, so the server's one interpreter lock goes to acknowledging deliveries rather than
    to mapping earlier ones (a Jira move costs twenty times its intake). A steady stream
    below that rate is mapped as it comes, and during an endless burst a round still runs
    at least every ``MAX_YIELD_SECONDS``.
    """

    POLL_SECONDS = 1.0
    ERROR_PAUSE_SECONDS = 2.0
    BURST_PER_SECOND = 100
    MAX_YIELD_SECONDS = 5.0

    def __init__(self, processor: InboxProcessor) -> None:
        self.processor = processor
        self._wake = threading.Event()
        self._stopping = threading.Event()
        self._thread = threading.Thread(target=self._run, name="inbox-worker", daemon=True)
        self._stored: deque[tuple[float, int]] = deque()  # (when, how many), last second
        self._stored_lock = threading.Lock()

    def start(self) -> None:
        self._thread.start()

    def wake(self, new: int = 0) -> None:
        """Look for work now: ``new`` deliveries were stored."""
        if new:
            with self._stored_lock:
                self._stored.append((time.monotonic(), new))
        self._wake.set()

    def _bursting(self, now: float) -> bool:
        with self._stored_lock:
            while self._stored and self._stored[0][0] < now - 1.0:
                self._stored.popleft()
            return sum(count for _, count in self._stored) >= self.BURST_PER_SECOND

    def stop(self, timeout: float = 30.0) -> None:
        self._stopping.set()
        self._wake.set()
        self._thread.join(timeout)
        self.processor.close()

    def _yield_to_intake(self) -> None:
        """Return once no burst is arriving, or after ``MAX_YIELD_SECONDS``."""
        give_up = time.monotonic() + self.MAX_YIELD_SECONDS
        while not self._stopping.is_set():
            now = time.monotonic()
            if now >= give_up or not self._bursting(now):
                return
            self._stopping.wait(0.05)

    def _run(self) -> None:
        while not self._stopping.is_set():
            self._wake.clear()
            self._yield_to_intake()
            try:
                done = self.processor.process_due()
            except Exception:
                # The database is down or a bug: say so, wait, and try again; leased
                # deliveries fall due again when their lease ends.
                log.exception("the inbox worker failed a round; trying again")
                self._stopping.wait(self.ERROR_PAUSE_SECONDS)
                continue
            if not done.settled and not done.qa_runs:
                self._wake.wait(self.POLL_SECONDS)
