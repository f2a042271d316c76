"""Both time axes on the projections: late events, the board as it was, and the audit trail."""

from __future__ import annotations

import time
from contextlib import suppress
from datetime import UTC, date, datetime, timedelta, timezone
from typing import Any

import pytest

from ledger.application import CommandContext, CustomerAsk, ReleaseLedger
from ledger.exceptions import NotFound, RuleViolation
from projections.queries import AUDIT_PAGE_MAX, TimePoint
from tests.conftest import at, days_ago, open_ledger
from tests.projection_fixtures import Projected, projected
from tests.scenarios import plan_scoped_train

DAY = 86_400.0


def scope_of(document: dict[str, Any]) -> dict[str, str]:
    return {entry["feature"]: entry["status"] for entry in document["scope"]}


def still_proposed(criteria: list[Any]) -> list[str]:
    (criterion,) = criteria
    proposed: list[str] = criterion.evidence["still_proposed"]
    return proposed


# ------------------------------------------------------------------ a late event


def record_late_drop(ledger: ReleaseLedger) -> tuple[datetime, datetime]:
    """5.5 scoped with DEDUP-7 and SNAP-3; on "Tuesday" (now) QA phase 1 runs and DEDUP-7 is
    committed; then the drop of SNAP-3 decided on "Monday" (a day ago) is recorded late.

    Returns Monday (when the drop occurred) and a moment after the Tuesday events were
    recorded but before the late drop was.
    """
    plan_scoped_train(ledger)
    ledger.record_qa_run("5.5", "phase1", "b-100", 1000, 950, 50, "QA Bot")
    ledger.decide("5.5", "DEDUP-7", "commit", "Grace Director")
    time.sleep(0.01)
    before_late = datetime.now(UTC)
    time.sleep(0.01)
    monday = datetime.now(UTC) - timedelta(days=1)
    ledger.decide(
        "5.5",
        "SNAP-3",
        "drop",
        "Grace Director",
        reason="decided in Monday's change board",
        context=CommandContext(recorded_by="test-token", occurred_at=monday),
    )
    return monday, before_late


def test_a_late_decision_shows_as_of_when_it_occurred_but_not_before_it_was_known(
    projected_ledger: Projected,
) -> None:
    """A drop decided Monday and recorded Tuesday is in Monday's board now, not in what we knew."""
    monday, before_late = record_late_drop(projected_ledger.ledger)
    projected_ledger.catch_up()
    queries = projected_ledger.queries
    monday_evening = monday + timedelta(hours=1)

    # What we know now about Monday evening: SNAP-3 was dropped; DEDUP-7 not yet committed.
    as_known_now = queries.train("5.5", TimePoint(as_of=monday_evening))
    assert scope_of(as_known_now) == {"DEDUP-7": "proposed", "SNAP-3": "dropped"}
    assert as_known_now["qa"]["cycles"] == {}
    # What we believed on Tuesday, before the drop was recorded, about Monday evening.
    as_believed = queries.train("5.5", TimePoint(as_of=monday_evening, known_at=before_late))
    assert scope_of(as_believed) == {"DEDUP-7": "proposed", "SNAP-3": "proposed"}
    # What we believed then about then: Tuesday's events, but no drop.
    then = queries.train("5.5", TimePoint(known_at=before_late))
    assert scope_of(then) == {"DEDUP-7": "committed", "SNAP-3": "proposed"}
    assert set(then["qa"]["cycles"]) == {"phase1"}
    # And now, about now.
    current = queries.train("5.5")
    assert scope_of(current) == {"DEDUP-7": "committed", "SNAP-3": "dropped"}
    assert queries.train("5.5", TimePoint(as_of=datetime.now(UTC))) == current

    assert queries.feature("SNAP-3", TimePoint(as_of=monday_evening))["status"] == "dropped"
    assert queries.feature("SNAP-3", TimePoint(known_at=before_late))["status"] == "proposed"
    assert queries.feature("SNAP-3", TimePoint(as_of=monday - timedelta(hours=1)))["status"] == (
        "proposed"
    )

    # Readiness of gate 2 on each view: which features were still only proposed.
    assert still_proposed(queries.readiness("5.5", 2, TimePoint(as_of=monday_evening))) == [
        "DEDUP-7"
    ]
    assert still_proposed(queries.readiness("5.5", 2, TimePoint(known_at=before_late))) == [
        "SNAP-3"
    ]
    assert still_proposed(queries.readiness("5.5", 2)) == []


def test_the_journey_and_the_audit_mark_a_late_event_with_its_delay(
    projected_ledger: Projected,
) -> None:
    """The journey and the audit mark the late drop late by about a day, on-time ones not."""
    monday, before_late = record_late_drop(projected_ledger.ledger)
    projected_ledger.catch_up()
    queries = projected_ledger.queries

    journey = queries.journey("SNAP-3")
    drop = journey[-1]
    assert drop["action"] == "drop"
    assert drop["occurred_at"] == monday
    assert drop["recorded_at"] > before_late
    assert drop["late"] is True
    assert drop["lateness_seconds"] == pytest.approx(DAY, abs=120)
    assert drop["reason"] == "decided in Monday's change board"
    assert drop["actor"] == "Grace Director"
    # Not yet known on Tuesday before it was recorded; not yet occurred before Monday.
    assert "drop" not in [
        row["action"] for row in queries.journey("SNAP-3", TimePoint(known_at=before_late))
    ]
    assert "drop" not in [
        row["action"]
        for row in queries.journey("SNAP-3", TimePoint(as_of=monday - timedelta(hours=1)))
    ]
    assert queries.journey("SNAP-3", TimePoint(as_of=monday)) == journey

    commit = queries.journey("DEDUP-7")[-1]
    assert commit["action"] == "commit"
    assert commit["late"] is False
    assert commit["lateness_seconds"] < 60

    rows, cursor = queries.audit()
    assert cursor is None
    assert [(row["feature"], row["action"], row["late"]) for row in rows] == [
        ("DEDUP-7", "commit", False),
        ("SNAP-3", "drop", True),
    ]
    assert rows[1]["lateness_seconds"] == pytest.approx(DAY, abs=120)
    assert rows[1]["position"] == drop["position"]
    known_then, _ = queries.audit(at=TimePoint(known_at=before_late))
    assert [row["feature"] for row in known_then] == ["DEDUP-7"]
    on_monday, _ = queries.audit(at=TimePoint(as_of=monday + timedelta(hours=1)))
    assert [row["feature"] for row in on_monday] == ["SNAP-3"]


# ------------------------------------------------------------- the board as it was


def test_as_of_before_a_train_was_planned_is_not_found(projected_ledger: Projected) -> None:
    """Before 5.5 was planned (or recorded) there is no 5.5, no feature and no journey."""
    plan_scoped_train(projected_ledger.ledger)
    projected_ledger.catch_up()
    queries = projected_ledger.queries
    before_planning = TimePoint(as_of=days_ago(61))
    before_recording = TimePoint(known_at=days_ago(1))

    for point in (before_planning, before_recording):
        with pytest.raises(NotFound):
            queries.train("5.5", point)
        with pytest.raises(NotFound):
            queries.readiness("5.5", 1, point)
        with pytest.raises(NotFound):
            queries.feature("DEDUP-7", point)
        with pytest.raises(NotFound):
            queries.journey("DEDUP-7", point)
        assert queries.trains(at=point) == []
        assert queries.calendar(point) == []
        assert queries.audit(at=point) == ([], None)
    # Planned 60 days ago: there it is, still planning.
    assert queries.train("5.5", TimePoint(as_of=days_ago(59.5)))["status"] == "planning"


def test_as_of_in_the_past_shows_the_board_as_it_was(projected_ledger: Projected) -> None:
    """Before SNAP-3 was dropped it is in scope; before gate 1 the train was still planning."""
    ledger = projected_ledger.ledger
    plan_scoped_train(ledger)
    ledger.decide("5.5", "DEDUP-7", "commit", "Grace Director", context=at(40))
    ledger.decide("5.5", "SNAP-3", "drop", "Grace Director", reason="no capacity", context=at(30))
    ledger.decide_gate("5.5", 2, "passed", "Grace Director", context=at(20))
    projected_ledger.catch_up()
    queries = projected_ledger.queries

    early = TimePoint(as_of=days_ago(55))
    board = queries.train("5.5", early)
    assert board["status"] == "planning"
    assert scope_of(board) == {"DEDUP-7": "proposed", "SNAP-3": "proposed"}
    assert [gate["outcome"] for gate in board["gates"]] == [None, None, None, None]
    assert [gate["outcome"] for gate in queries.calendar(early)[0]["gates"]] == [None] * 4

    before_drop = TimePoint(as_of=days_ago(35))
    board = queries.train("5.5", before_drop)
    assert board["status"] == "scoped"
    assert scope_of(board) == {"DEDUP-7": "committed", "SNAP-3": "proposed"}
    assert queries.feature("SNAP-3", before_drop)["status"] == "proposed"
    assert queries.feature("SNAP-3", before_drop)["train"] == "5.5"
    assert [t["train"] for t in queries.trains(status="scoped", at=before_drop)] == ["5.5"]
    assert queries.trains(status="committed", at=before_drop) == []
    assert still_proposed(queries.readiness("5.5", 2, before_drop)) == ["SNAP-3"]

    after_drop = TimePoint(as_of=days_ago(25))
    board = queries.train("5.5", after_drop)
    assert scope_of(board) == {"DEDUP-7": "committed", "SNAP-3": "dropped"}
    assert board["status"] == "scoped"
    assert queries.train("5.5", TimePoint(as_of=days_ago(10)))["status"] == "committed"
    assert queries.train("5.5")["status"] == "committed"
    actions = [row["action"] for row in queries.journey("SNAP-3", before_drop)]
    assert actions == ["registered", "proposed"]


def test_both_axes_together_answer_what_we_believed_then_about_earlier(
    projected_ledger: Projected,
) -> None:
    """A gate slip backfilled later is absent from what we knew before it was recorded."""
    ledger = projected_ledger.ledger
    plan_scoped_train(ledger)
    ledger.schedule_gate("5.5", 2, date(2027, 3, 1), "Ada Planner", context=at(45))
    time.sleep(0.01)
    before_backfill = datetime.now(UTC)
    time.sleep(0.01)
    ledger.schedule_gate(
        "5.5", 2, date(2027, 4, 1), "Ada Planner", reason="QA capacity", context=at(40)
    )
    projected_ledger.catch_up()
    queries = projected_ledger.queries

    def gate_2(point: TimePoint) -> dict[str, Any]:
        gate: dict[str, Any] = queries.train("5.5", point)["gates"][1]
        return gate

    about_then = days_ago(35)
    assert gate_2(TimePoint(as_of=about_then))["scheduled_for"] == date(2027, 4, 1)
    believed = gate_2(TimePoint(as_of=about_then, known_at=before_backfill))
    assert believed["scheduled_for"] == date(2027, 3, 1)
    assert believed["slips"] == []
    assert gate_2(TimePoint(as_of=days_ago(42)))["scheduled_for"] == date(2027, 3, 1)
    assert gate_2(TimePoint())["slips"][0]["reason"] == "QA capacity"
    assert gate_2(TimePoint())["original_date"] == date(2027, 3, 1)


def test_occurred_at_with_any_utc_offset_reads_back_as_the_same_instant(
    projected_ledger: Projected,
) -> None:
    """Times given with a non-UTC offset are the same instants in rows, replays and filters."""
    ledger = projected_ledger.ledger
    plus_five = timezone(timedelta(hours=5))
    planned = (datetime.now(UTC) - timedelta(days=10)).astimezone(plus_five)
    dropped = planned + timedelta(hours=2)
    context = CommandContext(recorded_by="test-token", occurred_at=planned)
    ledger.plan_train("5.5", "major", "Ada Planner", context=context)
    ledger.propose_scope(
        "5.5",
        "DEDUP-7",
        "anchor",
        "Ada Planner",
        context=CommandContext(occurred_at=planned + timedelta(hours=1)),
    )
    ledger.decide(
        "5.5",
        "DEDUP-7",
        "drop",
        "Ada Planner",
        reason="no capacity",
        context=CommandContext(occurred_at=dropped),
    )
    projected_ledger.catch_up()
    queries = projected_ledger.queries

    current = queries.train("5.5")
    assert current["planned_at"] == planned
    assert current == queries.train("5.5", TimePoint(as_of=datetime.now(UTC)))
    in_utc = (dropped + timedelta(minutes=1)).astimezone(UTC)
    assert [row["action"] for row in queries.journey("DEDUP-7", TimePoint(as_of=in_utc))] == [
        "registered",
        "proposed",
        "drop",
    ]
    rows, _ = queries.audit(since=dropped.astimezone(UTC), until=dropped.astimezone(UTC))
    assert [row["action"] for row in rows] == ["drop"]
    assert rows[0]["occurred_at"] == dropped


# ------------------------------------------------ late events that reorder history


def test_late_slips_and_beta_drops_leave_as_of_now_equal_to_the_current_board(
    projected_ledger: Projected,
) -> None:
    """A slip and a beta drop recorded after later ones: as of now is still the current board."""
    ledger = projected_ledger.ledger
    plan_scoped_train(ledger)
    ledger.decide("5.5", "DEDUP-7", "commit", "Grace Director", context=at(45))
    ledger.decide("5.5", "SNAP-3", "commit", "Grace Director", context=at(45))
    ledger.decide_gate("5.5", 2, "passed", "Grace Director", context=at(44))
    ledger.schedule_gate("5.5", 3, date(2027, 1, 10), "Ada Planner", context=at(40))
    ledger.schedule_gate("5.5", 3, date(2027, 1, 20), "Ada Planner", reason="QA", context=at(20))
    ledger.ship_beta_drop("5.5", "beta-2", ["Globex"], ["DEDUP-7"], "Ada Planner", context=at(5))
    # Recorded now, occurred before the slip and the drop already recorded.
    ledger.schedule_gate("5.5", 3, date(2027, 1, 15), "Ada Planner", reason="late", context=at(30))
    ledger.ship_beta_drop("5.5", "beta-1", ["Globex"], ["DEDUP-7"], "Ada Planner", context=at(10))
    projected_ledger.catch_up()
    queries = projected_ledger.queries

    current = queries.train("5.5")
    assert current == queries.train("5.5", TimePoint(as_of=datetime.now(UTC)))
    assert current == queries.train("5.5", TimePoint(known_at=datetime.now(UTC)))


def test_a_late_decision_before_later_ones_is_refused_or_keeps_as_of_now_current(
    projected_ledger: Projected,
) -> None:
    """A decision or gate backdated before later ones is refused, or as of now stays the board."""
    ledger = projected_ledger.ledger
    plan_scoped_train(ledger)  # gate 1 passed 50 days ago
    ledger.decide("5.5", "DEDUP-7", "commit", "Grace Director", context=at(40))
    ledger.decide("5.5", "SNAP-3", "commit", "Grace Director", context=at(40))
    ledger.decide("5.5", "SNAP-3", "stretch", "Grace Director", reason="capacity", context=at(30))
    # Occurred before SNAP-3's commit and stretch, recorded after them.
    with suppress(RuleViolation):
        ledger.decide("5.5", "SNAP-3", "drop", "Grace Director", reason="late", context=at(45))
    # Gate 2 "passed" at a time before gate 1 passed.
    with suppress(RuleViolation):
        ledger.decide_gate("5.5", 2, "passed", "Grace Director", context=at(55))
    projected_ledger.catch_up()
    queries = projected_ledger.queries

    now = TimePoint(as_of=datetime.now(UTC))
    assert queries.train("5.5", now) == queries.train("5.5")
    assert queries.feature("SNAP-3", now) == queries.feature("SNAP-3")


# ------------------------------------------------------------------------- audit


def record_decisions(ledger: ReleaseLedger) -> None:
    """Seven change-management decisions over 5.5 and 5.6 by two people, 45 to 30 days ago."""
    for train in ("5.5", "5.6"):
        ledger.plan_train(train, "major", "Ada Planner", context=at(60))
    anchor = [CustomerAsk("Globex", 8.0)]
    ledger.propose_scope("5.5", "A-1", "anchor", "Ada Planner", customers=anchor, context=at(59))
    for key, classification in (("A-2", "stretch"), ("A-3", "committed"), ("A-4", "committed")):
        ledger.propose_scope("5.5", key, classification, "Ada Planner", context=at(59))
    ledger.propose_scope("5.6", "B-1", "committed", "Ada Planner", context=at(58))
    ledger.decide_gate("5.5", 1, "passed", "Grace Director", context=at(50))
    grace, ada = "Grace Director", "Ada Planner"
    ledger.decide("5.5", "A-1", "commit", grace, context=at(45))
    ledger.decide("5.5", "A-2", "stretch", ada, reason="capacity", context=at(44))
    ledger.decide("5.5", "A-3", "drop", grace, reason="no customer", context=at(40))
    ledger.decide(
        "5.5",
        "A-4",
        "move",
        ada,
        reason="needs the new kernel",
        to_train="5.6",
        requested_by="Initech",
        context=at(35),
    )
    ledger.decide("5.6", "B-1", "commit", ada, context=at(33))
    ledger.decide(
        "5.5",
        "A-5",
        "add",
        grace,
        reason="big deal",
        requested_by="Umbrella",
        context=at(30),
    )
    ledger.decide("5.6", "A-4", "stretch", grace, reason="late kernel", context=at(25))


def summary(rows: list[dict[str, Any]]) -> list[tuple[str, str]]:
    return [(row["feature"], row["action"]) for row in rows]


def test_the_audit_filters_by_train_feature_actor_action_and_time(
    projected_ledger: Projected,
) -> None:
    """Each audit filter keeps exactly its decisions; a train matches moves into it too."""
    record_decisions(projected_ledger.ledger)
    projected_ledger.catch_up()
    audit = projected_ledger.queries.audit

    everything, cursor = audit()
    assert cursor is None
    assert summary(everything) == [
        ("A-1", "commit"),
        ("A-2", "stretch"),
        ("A-3", "drop"),
        ("A-4", "move"),
        ("B-1", "commit"),
        ("A-5", "add"),
        ("A-4", "stretch"),
    ]
    positions = [row["position"] for row in everything]
    assert positions == sorted(positions)
    move = everything[3]
    assert (move["train"], move["to_train"], move["requested_by"]) == ("5.5", "5.6", "Initech")
    assert move["reason"] == "needs the new kernel"
    assert everything[5]["exception"] is False
    assert everything[5]["requested_by"] == "Umbrella"

    assert summary(audit(train="5.6")[0]) == [
        ("A-4", "move"),
        ("B-1", "commit"),
        ("A-4", "stretch"),
    ]
    assert summary(audit(train="5.5")[0]) == [
        ("A-1", "commit"),
        ("A-2", "stretch"),
        ("A-3", "drop"),
        ("A-4", "move"),
        ("A-5", "add"),
    ]
    assert summary(audit(feature="A-4")[0]) == [("A-4", "move"), ("A-4", "stretch")]
    assert summary(audit(actor="Grace Director")[0]) == [
        ("A-1", "commit"),
        ("A-3", "drop"),
        ("A-5", "add"),
        ("A-4", "stretch"),
    ]
    assert summary(audit(action="commit")[0]) == [("A-1", "commit"), ("B-1", "commit")]
    assert summary(audit(train="5.6", actor="Ada Planner", action="move")[0]) == [("A-4", "move")]
    assert audit(train="5.4") == ([], None)
    assert audit(feature="NOPE-1") == ([], None)

    # since and until are on when decisions occurred, both ends included.
    drop, commit_b1 = everything[2], everything[4]
    window, _ = audit(since=drop["occurred_at"], until=commit_b1["occurred_at"])
    assert summary(window) == [("A-3", "drop"), ("A-4", "move"), ("B-1", "commit")]
    assert summary(audit(since=days_ago(31))[0]) == [("A-5", "add"), ("A-4", "stretch")]
    assert summary(audit(until=days_ago(43))[0]) == [("A-1", "commit"), ("A-2", "stretch")]
    assert audit(since=days_ago(20)) == ([], None)
    assert summary(audit(train="5.5", since=days_ago(36), until=days_ago(29))[0]) == [
        ("A-4", "move"),
        ("A-5", "add"),
    ]


def test_audit_pages_do_not_overlap_and_cover_everything(projected_ledger: Projected) -> None:
    """Paging with the cursor returns every decision once, even while new ones arrive."""
    ledger = projected_ledger.ledger
    record_decisions(ledger)
    projected_ledger.catch_up()
    audit = projected_ledger.queries.audit
    everything, _ = audit()

    for limit in (1, 2, 3, 7, 8):
        pages, cursor = [], None
        while True:
            page, cursor = audit(after=cursor, limit=limit)
            assert 0 < len(page) <= limit
            pages.append(page)
            if cursor is None:
                break
            assert cursor == page[-1]["position"]
        assert [row for page in pages for row in page] == everything
        assert len(pages) == -(-len(everything) // limit)

    # A decision recorded between two pages shows up on a later page, nothing twice.
    first, cursor = audit(limit=3)
    ledger.decide("5.6", "A-4", "commit", "Ada Planner", context=at(20))
    projected_ledger.catch_up()
    rest: list[dict[str, Any]] = []
    while cursor is not None:
        page, cursor = audit(after=cursor, limit=3)
        rest += page
    seen = [row["position"] for row in first + rest]
    assert len(seen) == len(set(seen)) == len(everything) + 1
    assert summary(rest)[-1] == ("A-4", "commit")

    # Filters and paging together.
    page, cursor = audit(actor="Grace Director", limit=2)
    assert summary(page) == [("A-1", "commit"), ("A-3", "drop")]
    page, cursor = audit(actor="Grace Director", limit=2, after=cursor)
    assert summary(page) == [("A-5", "add"), ("A-4", "stretch")]
    assert cursor is None


def test_audit_limit_is_clamped_to_a_thousand_not_refused() -> None:
    """A limit of 5000 answers the first 1000 decisions and a cursor; the next page the rest."""
    # The clamp is the query's own: one (fast) backend shows it.
    ledger = open_ledger("memory://")
    target = projected(ledger, "memory://")
    plan_scoped_train(ledger)
    start = days_ago(45)
    for n in range(AUDIT_PAGE_MAX + 5):
        ledger.decide(
            "5.5",
            "SNAP-3",
            "commit" if n % 2 == 0 else "stretch",
            "Grace Director",
            reason="capacity" if n % 2 else None,
            context=CommandContext(occurred_at=start + timedelta(minutes=n)),
        )
    target.catch_up()
    audit = target.queries.audit

    page, cursor = audit(limit=5000)
    assert len(page) == AUDIT_PAGE_MAX
    assert cursor == page[-1]["position"]
    rest, last = audit(limit=5000, after=cursor)
    assert len(rest) == 5
    assert last is None
    assert {row["position"] for row in page}.isdisjoint(row["position"] for row in rest)
    assert len(audit(limit=0)[0]) == 1
    assert len(audit(limit=-5)[0]) == 1
    assert len(audit()[0]) == 100
    target.engine.dispose()
    ledger.close()
