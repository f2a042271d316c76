"""The projections follow the log: current state, journeys, audit, readiness, as of any time."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import orjson
import pytest
from sqlalchemy import update

from ledger.transfer import export_lines, import_lines
from projections import tables
from projections.background import BackgroundProjector
from projections.projectors import PROJECTION_NAMES
from projections.queries import TimePoint
from projections.runner import projection_status, rebuild, wait_for_position
from release_ledger.demo import load_demo
from tests.conftest import open_ledger
from tests.projection_fixtures import Projected, projected
from tests.scenarios import plan_scoped_train


def test_projected_trains_equal_the_trains_replayed_as_of_now(projected_ledger: Projected) -> None:
    """Every train and feature read from the projections equals its replay as of now."""
    load_demo(projected_ledger.ledger)
    projected_ledger.catch_up()
    queries = projected_ledger.queries
    now = TimePoint(as_of=datetime.now(UTC))

    trains = queries.trains()
    assert len(trains) == 13
    for train in trains:
        assert queries.train(train["train"], now) == train
    for key in ("SNAP-430", "NAS-504", "OBJ-405"):
        assert queries.feature(key, now) == queries.feature(key)


def test_readiness_on_the_projections_matches_the_ledgers_own(projected_ledger: Projected) -> None:
    """The gate criteria evaluated on projection rows equal those the ledger decides on."""
    load_demo(projected_ledger.ledger)
    projected_ledger.catch_up()

    for train, gate in (("5.5", 3), ("5.6", 1), ("5.4.2", 4), ("5.5", 4)):
        on_rows = projected_ledger.queries.readiness(train, gate)
        assert on_rows == projected_ledger.ledger.readiness(train, gate)


def test_the_calendar_lists_every_train_with_its_gate_dates(projected_ledger: Projected) -> None:
    """The timeline's data: every train, its gates with dates, outcomes and slips."""
    load_demo(projected_ledger.ledger)
    projected_ledger.catch_up()

    calendar = {entry["train"]: entry for entry in projected_ledger.queries.calendar()}

    assert set(calendar) >= {"5.1", "5.2", "5.3", "5.4", "5.5", "5.6", "5.4.1"}
    gate_3 = next(g for g in calendar["5.5"]["gates"] if g["gate"] == 3)
    assert gate_3["slipped"]
    assert gate_3["scheduled_for"] > gate_3["original_date"]
    assert [g["gate"] for g in calendar["5.4.1"]["gates"]] == [4]


def test_status_shows_each_projections_position_and_lag(projected_ledger: Projected) -> None:
    """Before catching up every projection lags by the whole log; after, by nothing."""
    ledger = projected_ledger.ledger
    ledger.plan_train("5.5", "major", "Ada Planner")
    head = ledger.event_log.last_position()

    before = projection_status(projected_ledger.engine, ledger)
    projected_ledger.catch_up()
    after = projection_status(projected_ledger.engine, ledger)

    assert [status.name for status in before] == list(PROJECTION_NAMES)
    assert all(status.lag == head for status in before)
    assert all(status.position == head and status.lag == 0 for status in after)


@pytest.fixture(params=["sqlite", "postgres"])
def shared_projected(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Projected]:
    """A ledger whose projections live in a database several threads can open.

    The in-memory backend keeps its projections on one connection, fit for one thread.
    """
    if request.param == "sqlite":
        url = f"sqlite:///{tmp_path / 'shared.sqlite3'}"
    else:
        url = request.getfixturevalue("postgres_url")
    ledger = open_ledger(url)
    result = projected(ledger, url)
    yield result
    result.engine.dispose()
    ledger.close()


def test_a_background_projector_follows_new_events_until_stopped(
    shared_projected: Projected,
) -> None:
    """Running beside the writers, the projector applies new events within moments."""
    projected_ledger = shared_projected
    projector = BackgroundProjector(projected_ledger.ledger, projected_ledger.engine)
    projector.start()
    try:
        result = projected_ledger.ledger.plan_train("5.5", "major", "Ada Planner")
        reached = wait_for_position(
            projected_ledger.engine, PROJECTION_NAMES, result.last_position, timeout=5
        )
        assert reached
        assert projected_ledger.queries.train("5.5")["status"] == "planning"
    finally:
        projector.stop()
    assert not projector.thread.is_alive()


def test_a_rebuild_swaps_in_an_equal_generation(projected_ledger: Projected) -> None:
    """Rebuilding from zero gives the same documents under the next generation."""
    load_demo(projected_ledger.ledger)
    projected_ledger.catch_up()
    queries = projected_ledger.queries
    before = (queries.trains(), queries.journey("SNAP-430"), queries.audit(limit=1000))

    rebuild(projected_ledger.ledger, projected_ledger.engine, PROJECTION_NAMES)

    assert (queries.trains(), queries.journey("SNAP-430"), queries.audit(limit=1000)) == before
    statuses = projection_status(projected_ledger.engine, projected_ledger.ledger)
    assert {status.generation for status in statuses} == {2}
    assert all(status.rebuilding_generation is None for status in statuses)


def test_a_caller_changing_its_train_document_leaves_the_next_read_intact(
    projected_ledger: Projected,
) -> None:
    """The document a read returns is the caller's own: changing it changes no later read."""
    load_demo(projected_ledger.ledger)
    projected_ledger.catch_up()
    queries = projected_ledger.queries
    first = queries.train("5.5")
    pristine = orjson.loads(orjson.dumps(first))

    first["title"] = "Scribbled"
    first["gates"][0]["outcome"] = "failed"
    first["scope"].clear()
    first["qa"]["cycles"].clear()

    assert orjson.loads(orjson.dumps(queries.train("5.5"))) == pristine


def test_a_rebuild_repairs_a_train_document_that_was_read_before(
    projected_ledger: Projected,
) -> None:
    """A document read from damaged rows is not served again once a rebuild swapped them out."""
    load_demo(projected_ledger.ledger)
    projected_ledger.catch_up()
    queries = projected_ledger.queries
    with projected_ledger.engine.begin() as connection:
        connection.execute(
            update(tables.trains).where(tables.trains.c.train == "5.5").values(title="Damaged")
        )
    assert queries.train("5.5")["title"] == "Damaged"

    rebuild(projected_ledger.ledger, projected_ledger.engine, ["trains"])

    assert queries.train("5.5") == queries.train("5.5", TimePoint(as_of=datetime.now(UTC)))
    assert queries.train("5.5")["title"] != "Damaged"


def test_the_runner_steps_over_gaps_in_positions(postgres_url: str, tmp_path: Path) -> None:
    """A log whose positions skip numbers (burnt sequence values) is projected whole."""
    source = open_ledger(f"sqlite:///{tmp_path / 'gappy.sqlite3'}")
    plan_scoped_train(source)
    lines = [orjson.loads(line) for line in export_lines(source.event_log)]
    source.close()
    for record in lines:
        record["position"] = record["position"] * 10  # every position leaves a gap
    ledger = open_ledger(postgres_url)
    import_lines(ledger.event_log, ledger.mapper, [orjson.dumps(record) for record in lines])
    result = projected(ledger, postgres_url)

    result.runner.batch_size = 4
    applied = result.catch_up()

    assert applied == 9
    assert {s.position for s in projection_status(result.engine, ledger)} == {90}
    assert [entry["feature"] for entry in result.queries.train("5.5")["scope"]] == [
        "DEDUP-7",
        "SNAP-3",
    ]
    result.engine.dispose()
    ledger.close()
