"""Random histories: incremental projections equal a rebuild, "as of now" equals current."""

from __future__ import annotations

import tempfile
from collections import Counter
from contextlib import suppress
from datetime import UTC, date, datetime, timedelta
from typing import Any

from eventsourcing.persistence import StoredEvent
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy import Engine, select

from ledger.application import CommandContext, CustomerAsk, ReleaseLedger
from ledger.exceptions import LedgerError, NotFound
from ledger.feature import Feature
from ledger.train import Train
from projections import tables
from projections.projectors import AUDITED, JOURNEY_ACTIONS, PROJECTION_NAMES
from projections.queries import TimePoint
from projections.runner import ProjectionRunner, projection_status, rebuild
from tests.conftest import fresh_database, open_ledger
from tests.projection_fixtures import Projected, live_rows, projected

# ------------------------------------------------------------------ shared checks


def decoded_log(ledger: ReleaseLedger) -> list[tuple[int, Any]]:
    """Every event of the log with its position, decoded as the projections see it."""
    events = []
    for raw in ledger.event_log.read():
        stored = StoredEvent(raw.originator_id, raw.originator_version, raw.topic, raw.state)
        events.append((raw.position, ledger.mapper.to_domain_event(stored)))
    return events


def check_event_rows(ledger: ReleaseLedger, engine: Engine) -> None:
    """Journey and audit rows name real positions, once each, and miss no relevant event."""
    log = decoded_log(ledger)
    positions = Counter(position for position, _ in log)
    assert all(count == 1 for count in positions.values())
    keys = {e.originator_id: e.key for _, e in log if isinstance(e, Feature.Registered)}
    expected_journey: list[tuple[int, str]] = []
    expected_audit: list[int] = []
    for position, event in log:
        if isinstance(event, Train.BetaDropShipped):
            expected_journey += [(position, feature) for feature in event.features]
        elif type(event) in JOURNEY_ACTIONS:
            expected_journey.append((position, keys[event.originator_id]))
        if type(event) in AUDITED:
            expected_audit.append(position)
    state = {status.name: status for status in projection_status(engine, ledger)}
    with engine.connect() as connection:
        journey = connection.execute(
            select(tables.journey.c.position, tables.journey.c.feature).where(
                tables.journey.c.generation == state["journeys"].generation
            )
        ).all()
        audit = (
            connection.execute(
                select(tables.audit.c.position).where(
                    tables.audit.c.generation == state["audit"].generation
                )
            )
            .scalars()
            .all()
        )
    assert all(positions[position] == 1 for position, _ in journey)
    assert all(positions[position] == 1 for position in audit)
    assert len(journey) == len(set(journey)) == len(expected_journey)
    assert set(journey) == set(expected_journey)
    assert len(audit) == len(set(audit)) == len(expected_audit)
    assert sorted(audit) == expected_audit


def check_positions_at_head(engine: Engine, ledger: ReleaseLedger) -> None:
    head = ledger.event_log.last_position()
    for status in projection_status(engine, ledger):
        assert status.position == head, status
        assert status.lag == 0
        assert status.rebuilding_generation is None


# ------------------------------------------------------------------ the histories

TRAINS = {"5.5": ("major", None), "5.6": ("major", None), "5.5.1": ("minor", "5.5")}
FEATURES = ("F-1", "F-2", "F-3", "F-4")
CUSTOMERS = ("Globex", "Initech", "Umbrella")
TRAIN = st.sampled_from(sorted(TRAINS))
FEATURE = st.sampled_from(FEATURES)

CURRENT = None
"""In a decision, stands for the train the feature is in now (most decisions are about it)."""

STEPS: dict[str, tuple[int, st.SearchStrategy[tuple[Any, ...]]]] = {
    # kind: (weight, arguments)
    "plan": (2, st.tuples(TRAIN)),
    "schedule": (2, st.tuples(TRAIN, st.integers(1, 4), st.integers(0, 200))),
    "propose": (
        4,
        st.tuples(
            TRAIN, FEATURE, st.sampled_from(("anchor", "committed", "stretch")), st.booleans()
        ),
    ),
    "decide": (
        6,
        st.tuples(
            st.sampled_from((CURRENT, CURRENT, *sorted(TRAINS))),
            FEATURE,
            st.sampled_from(("commit", "stretch", "drop", "move", "add")),
            TRAIN,
            st.booleans(),
        ),
    ),
    "qa": (
        3,
        st.tuples(TRAIN, st.sampled_from(("phase1", "phase2", "golden")), st.integers(90, 100)),
    ),
    "beta": (
        2,
        st.tuples(
            TRAIN,
            st.lists(FEATURE, min_size=1, max_size=2, unique=True),
            st.sampled_from(CUSTOMERS),
        ),
    ),
    # Gate 0 stands for the train's lowest gate that has not passed yet.
    "gate": (
        6,
        st.tuples(
            TRAIN,
            st.sampled_from((0, 0, 0, 0, 1, 2, 3, 4)),
            st.sampled_from(("conditional", "conditional", "passed", "failed", "postponed")),
        ),
    ),
    "support": (1, st.tuples(TRAIN, st.sampled_from(("hotfix_only", "eol")))),
    "demand": (1, st.tuples(FEATURE, st.sampled_from(CUSTOMERS), st.integers(1, 10).map(float))),
    "milestone": (1, st.tuples(FEATURE, TRAIN, st.sampled_from(("m1", "m2")))),
}
KINDS = [kind for kind, (weight, _) in STEPS.items() for _ in range(weight)]


@st.composite
def step(draw: st.DrawFn) -> tuple[Any, ...]:
    """One command: its kind (drawn by weight), then its arguments."""
    kind = draw(st.sampled_from(KINDS))
    return (kind, *draw(STEPS[kind][1]))


# Each step: the command, how many minutes after the previous one it occurred, and
# whether the runner applies one (small) batch right after it.
HISTORY = st.lists(st.tuples(step(), st.integers(1, 600), st.booleans()), min_size=15, max_size=50)


PASSING = ("passed", "conditional")


def run_step(ledger: ReleaseLedger, step: tuple[Any, ...], context: CommandContext) -> None:
    """Execute one generated command; the ledger may refuse it."""
    kind, *args = step
    actor = "Ada Planner"
    if kind == "plan":
        (train,) = args
        train_kind, parent = TRAINS[train]
        ledger.plan_train(train, train_kind, actor, parent=parent, context=context)
    elif kind == "schedule":
        train, gate, day = args
        target = date(2026, 1, 1) + timedelta(days=day)
        ledger.schedule_gate(train, gate, target, actor, reason="replanned", context=context)
    elif kind == "propose":
        train, feature, classification, with_customer = args
        customers = [CustomerAsk("Globex", 5.0)] if with_customer else []
        ledger.propose_scope(
            train, feature, classification, actor, customers=customers, context=context
        )
    elif kind == "decide":
        train, feature, action, to_train, exception = args
        if train is CURRENT:
            train = ledger.feature(feature)["train"] or "5.5"
        ledger.decide(
            train,
            feature,
            action,
            actor,
            reason=None if action == "commit" else f"{action} it",
            to_train=to_train if action == "move" else None,
            requested_by="Globex" if exception else None,
            exception=exception,
            context=context,
        )
    elif kind == "qa":
        train, cycle, passed = args
        ledger.record_qa_run(
            train, cycle, f"b-{passed}", 100, passed, 100 - passed, "QA Bot", context=context
        )
    elif kind == "beta":
        train, features, customer = args
        ledger.ship_beta_drop(train, "beta-1", [customer], features, actor, context=context)
    elif kind == "gate":
        train, gate, outcome = args
        if gate == 0:
            gates = ledger.train(train)["gates"]
            gate = next((g["gate"] for g in gates if g["outcome"] not in PASSING), 4)
        conditions = "follow up" if outcome == "conditional" else None
        ledger.decide_gate(
            train, gate, outcome, "Grace Director", conditions=conditions, context=context
        )
    elif kind == "support":
        train, status = args
        eol = date(2027, 1, 1) if status == "eol" else None
        ledger.change_support(train, status, actor, "policy", eol_date=eol, context=context)
    elif kind == "demand":
        feature, customer, weight = args
        ledger.record_customer_demand(feature, customer, weight, actor, context=context)
    else:
        feature, train, milestone = args
        ledger.deliver_milestone(feature, train, milestone, actor, context=context)


def play(
    ledger: ReleaseLedger, runner: ProjectionRunner, history: list[tuple[Any, int, bool]]
) -> None:
    """Plan two majors, then run the history forward in time, projecting now and then."""
    moment = datetime.now(UTC) - timedelta(days=30)
    for train in ("5.5", "5.6"):
        ledger.plan_train(train, "major", "Ada Planner", context=CommandContext(occurred_at=moment))
    for step, minutes, project in history:
        moment += timedelta(minutes=minutes)
        with suppress(LedgerError):  # a refused command records nothing
            run_step(ledger, step, CommandContext(occurred_at=moment))
        if project:
            runner.run_batch()


def check_history(target: Projected, history: list[tuple[Any, int, bool]]) -> None:
    """Play ``history`` with small incremental batches, then check every property."""
    ledger, engine, queries = target.ledger, target.engine, target.queries
    runner = ProjectionRunner(ledger, engine, batch_size=7)
    play(ledger, runner, history)
    runner.catch_up()
    check_positions_at_head(engine, ledger)

    # (a) the incremental rows are the rows a rebuild from position 0 writes.
    incremental = live_rows(engine)
    rebuild(ledger, engine, PROJECTION_NAMES)
    check_positions_at_head(engine, ledger)
    assert live_rows(engine) == incremental

    # (b) "as of now" (replayed from the log) equals the current rows, field for field.
    now = TimePoint(as_of=datetime.now(UTC))
    known_now = TimePoint(known_at=datetime.now(UTC))
    planned = [train for train in sorted(TRAINS) if _exists(ledger.train, train)]
    assert [t["train"] for t in queries.trains()] == planned
    assert queries.trains(at=now) == queries.trains()
    assert queries.calendar(now) == queries.calendar()
    for train in planned:
        current = queries.train(train)
        assert queries.train(train, now) == current
        assert queries.train(train, known_now) == current
        for gate in (g["gate"] for g in current["gates"]):
            assert queries.readiness(train, gate, now) == queries.readiness(train, gate)
    for key in FEATURES:
        if not _exists(ledger.feature, key):
            continue
        assert queries.feature(key, now) == queries.feature(key)
        assert queries.feature(key, known_now) == queries.feature(key)
        assert queries.journey(key, now) == queries.journey(key)

    # (c) journey and audit rows: real positions, each once, none missing.
    check_event_rows(ledger, engine)


def _exists(read: Any, key: str) -> bool:
    """Whether the ledger knows the train or feature ``key``."""
    try:
        read(key)
    except NotFound:
        return False
    return True


PROPERTY_SETTINGS = settings(
    max_examples=25,
    deadline=None,
    database=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)


@PROPERTY_SETTINGS
@given(history=HISTORY)
def test_random_histories_project_consistently_on_sqlite(history: list[Any]) -> None:
    """On SQLite, random histories projected in small batches equal their rebuild and replay."""
    with tempfile.TemporaryDirectory() as directory:
        url = f"sqlite:///{directory}/ledger.sqlite3"
        ledger = open_ledger(url)
        target = projected(ledger, url)
        try:
            check_history(target, history)
        finally:
            target.engine.dispose()
            ledger.close()


@settings(PROPERTY_SETTINGS, max_examples=10)
@given(history=HISTORY)
def test_random_histories_project_consistently_on_postgres(
    postgres_server: str, history: list[Any]
) -> None:
    """On PostgreSQL, random histories projected in small batches equal their rebuild and replay."""
    with fresh_database(postgres_server) as url:
        ledger = open_ledger(url)
        target = projected(ledger, url)
        try:
            check_history(target, history)
        finally:
            target.engine.dispose()
            ledger.close()
