"""Every rule of SPEC §3 and the command validation of §5, on every event store.

Each refusal is checked twice: the command fails with the domain error the HTTP layer maps
to the right status (``InvalidCommand`` 422, ``NotFound`` 404, ``RuleViolation`` 409,
``GateCriteriaUnmet`` 409 with the unmet criteria), and the log holds exactly as many events
afterwards as before. A few positive behaviours the rules imply close each section.

The scenarios: major 5.5 (anchor DEDUP-7, asked for by Globex), major 5.6 (anchor SNAP-3),
minor 5.4.1 of major 5.4. Trains are planned 30 days ago (``at(30)``) and every later step is
backdated a little less, so nothing precedes its train's planning.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import UTC, date, datetime, timedelta, timezone
from typing import Any

import pytest

from ledger.application import CommandContext, CustomerAsk, ReleaseLedger
from ledger.exceptions import (
    GateCriteriaUnmet,
    InvalidCommand,
    LedgerError,
    NotFound,
    RuleViolation,
)
from ledger.values import feature_stream_id, train_stream_id
from tests.conftest import at, event_count
from tests.scenarios import plan_scoped_train

PM = "Priya Planner"
DIRECTOR = "Grace Director"
QA = "Quinn Tester"

GLOBEX = CustomerAsk("Globex", 5.0, "renewal hinges on inline dedup")
INITECH = CustomerAsk("Initech", 2.0)


# ================================================================== helpers


@contextmanager
def refused(
    ledger: ReleaseLedger, error: type[LedgerError], match: str
) -> Iterator[pytest.ExceptionInfo[Any]]:
    """Expect ``error`` with a message matching ``match``, and no new event in the log."""
    before = event_count(ledger)
    with pytest.raises(error, match=match) as caught:
        yield caught
    assert event_count(ledger) == before, "a refused command wrote events"


def at_moment(moment: datetime) -> CommandContext:
    return CommandContext(recorded_by="test-token", occurred_at=moment)


def scope_entry(ledger: ReleaseLedger, train: str, feature: str) -> dict[str, Any]:
    (entry,) = [e for e in ledger.train(train)["scope"] if e["feature"] == feature]
    return entry


def plan(ledger: ReleaseLedger, train: str = "5.5", days: float = 30) -> None:
    """Plan a major train ``days`` ago."""
    ledger.plan_train(train, "major", PM, context=at(days))


def with_anchor(ledger: ReleaseLedger, train: str = "5.5", feature: str = "DEDUP-7") -> None:
    """A major planned 30 days ago with one anchor feature that Globex asks for."""
    plan(ledger, train)
    ledger.propose_scope(train, feature, "anchor", PM, customers=[GLOBEX], context=at(29))


def scoped(ledger: ReleaseLedger, train: str = "5.5", feature: str = "DEDUP-7") -> None:
    """``with_anchor``, then gate 1 passed: the anchor is still only proposed."""
    with_anchor(ledger, train, feature)
    ledger.decide_gate(train, 1, "passed", DIRECTOR, context=at(28))


def committed(ledger: ReleaseLedger, train: str = "5.5", feature: str = "DEDUP-7") -> None:
    """``scoped``, the anchor committed, then gate 2 passed."""
    scoped(ledger, train, feature)
    ledger.decide(train, feature, "commit", DIRECTOR, context=at(27))
    ledger.decide_gate(train, 2, "passed", DIRECTOR, context=at(26))


def freeze(ledger: ReleaseLedger, train: str = "5.5", feature: str = "DEDUP-7") -> None:
    """Beta drop of the anchor to Globex, QA phases 1 and 2, then gate 3 passed."""
    ledger.ship_beta_drop(train, f"{train}.0-b1", ["Globex"], [feature], PM, context=at(25))
    ledger.record_qa_run(
        train, "phase1", f"{train}.0-rc1", 21_000, 19_950, 1_050, QA, context=at(25)
    )
    ledger.record_qa_run(train, "phase2", f"{train}.0-rc1", 1_050, 900, 150, QA, context=at(24))
    ledger.decide_gate(train, 3, "passed", DIRECTOR, context=at(24))


def release(ledger: ReleaseLedger, train: str = "5.5") -> Any:
    """A golden run above target, then gate 4 passed; returns the gate 4 result."""
    ledger.record_qa_run(train, "golden", f"{train}.0", 21_000, 20_500, 500, QA, context=at(23))
    return ledger.decide_gate(train, 4, "passed", DIRECTOR, context=at(22))


def frozen(ledger: ReleaseLedger, train: str = "5.5", feature: str = "DEDUP-7") -> None:
    """A major past gate 3 (code freeze) with its anchor committed and in beta."""
    committed(ledger, train, feature)
    freeze(ledger, train, feature)


def released(ledger: ReleaseLedger, train: str = "5.5", feature: str = "DEDUP-7") -> None:
    """A major through all four gates: its anchor delivered."""
    frozen(ledger, train, feature)
    release(ledger, train)


def minor(ledger: ReleaseLedger, feature: str = "DEDUP-7") -> None:
    """Minor 5.4.1 of major 5.4, planned 30 days ago, with one committed feature proposed."""
    plan(ledger, "5.4", days=60)
    ledger.plan_train("5.4.1", "minor", PM, parent="5.4", context=at(30))
    ledger.propose_scope("5.4.1", feature, "committed", PM, context=at(29))


def released_minor(ledger: ReleaseLedger, feature: str = "DEDUP-7") -> None:
    """``minor``, released through gate 4 after a golden run at target."""
    minor(ledger, feature)
    release(ledger, "5.4.1")


# ========================================================= ids and formats


def test_a_train_id_is_a_version_string(ledger: ReleaseLedger) -> None:
    """A train id that is not a version like 5.5, 5.4.1 or 5.1.7-hf2 is refused as malformed."""
    for bad in ("5", "v5.5", "5.5.5.5.5", "5.1.7-HF2", "5.5-", "5.5.", "", " 5.5", "5.5\n"):
        with refused(ledger, InvalidCommand, "is not a train id") as caught:
            ledger.plan_train(bad, "major", PM)
        assert caught.value.field == "train"


def test_a_train_id_uses_ascii_digits(ledger: ReleaseLedger) -> None:
    """A version written in fullwidth or Arabic-Indic digits instead of 0-9 is not a train id."""
    for bad in ("\uff15.\uff15", "\u0665.\u0665", "5.\u0665"):
        with refused(ledger, InvalidCommand, "is not a train id"):
            ledger.plan_train(bad, "major", PM)


def test_version_strings_of_every_shape_are_train_ids(ledger: ReleaseLedger) -> None:
    """Majors, minors, four-part versions and suffixed hotfixes are all accepted as train ids."""
    plan(ledger, "5.1", days=400)
    plan(ledger, "5.4", days=100)
    ledger.plan_train("5.4.1", "minor", PM, parent="5.4", context=at(30))
    ledger.plan_train("5.4.1.2", "minor", PM, parent="5.4", context=at(20))
    ledger.plan_train("5.1.7-hf2", "hotfix", PM, parent="5.1", context=at(10))

    assert ledger.train("5.1.7-hf2")["kind"] == "hotfix"
    assert ledger.train("5.1.7-hf2")["parent"] == "5.1"
    assert event_count(ledger) == 5


def test_a_feature_key_is_a_jira_key_or_a_slug(ledger: ReleaseLedger) -> None:
    """A feature key not starting with a letter, too long, or with other characters is refused."""
    plan(ledger)
    too_long = "D" + "x" * 64
    for bad in ("7-DEDUP", "", "DEDUP 7", "DEDUP/7", "-dedup", "_dedup", "DÉDUP-7", too_long):
        with refused(ledger, InvalidCommand, "is not a feature key") as caught:
            ledger.propose_scope("5.5", bad, "anchor", PM)
        assert caught.value.field == "feature"

    longest = "D" + "x" * 63
    for good in ("DEDUP-7", "dedup_7.v2-beta", longest):
        ledger.propose_scope("5.5", good, "committed", PM)
    assert {e["feature"] for e in ledger.train("5.5")["scope"]} == {
        "DEDUP-7",
        "dedup_7.v2-beta",
        longest,
    }


def test_every_command_naming_a_feature_checks_its_key(ledger: ReleaseLedger) -> None:
    """Decisions, beta drops, customer demand and milestones refuse a malformed feature key."""
    committed(ledger)
    with refused(ledger, InvalidCommand, "is not a feature key"):
        ledger.decide("5.5", "DEDUP 7", "drop", DIRECTOR, reason="capacity")
    with refused(ledger, InvalidCommand, "is not a feature key") as caught:
        ledger.ship_beta_drop("5.5", "5.5.0-b1", ["Globex"], ["DEDUP 7"], PM)
    assert caught.value.field == "features"
    with refused(ledger, InvalidCommand, "is not a feature key"):
        ledger.record_customer_demand("DEDUP 7", "Globex", 3, PM)
    with refused(ledger, InvalidCommand, "is not a feature key"):
        ledger.deliver_milestone("DEDUP 7", "5.5", "M1", PM)


def test_every_command_names_its_actor(ledger: ReleaseLedger) -> None:
    """A command without an actor (empty or blank) is refused as malformed."""
    with_anchor(ledger)
    for actor in ("", "   "):
        with refused(ledger, InvalidCommand, "actor is required"):
            ledger.plan_train("5.6", "major", actor)
        with refused(ledger, InvalidCommand, "actor is required"):
            ledger.propose_scope("5.5", "SNAP-3", "stretch", actor)
        with refused(ledger, InvalidCommand, "actor is required"):
            ledger.decide("5.5", "DEDUP-7", "commit", actor)
        with refused(ledger, InvalidCommand, "actor is required"):
            ledger.decide_gate("5.5", 1, "passed", actor)


def test_a_name_is_one_line_without_control_characters(ledger: ReleaseLedger) -> None:
    """An actor with DEL, a C1 control or a line break is refused: it could be neither seen
    nor searched for; a reason, which is prose, keeps its line breaks."""
    with_anchor(ledger)
    for actor in ("Mallory\x7f", "\x9b31mMallory", "Mallory\nApproved-by: Grace", "Mal\tlory"):
        with refused(ledger, InvalidCommand, "actor contains control characters or line breaks"):
            ledger.plan_train("5.6", "major", actor)
    with refused(ledger, InvalidCommand, "reason contains control characters"):
        ledger.decide("5.5", "DEDUP-7", "stretch", DIRECTOR, reason="capacity\x7f")

    result = ledger.decide("5.5", "DEDUP-7", "stretch", DIRECTOR, reason="capacity:\n\t- QA")

    recorded = result.events[0]
    (stored,) = ledger.events.get(recorded.stream, gt=recorded.version - 1, lte=recorded.version)
    assert stored.reason == "capacity:\n\t- QA"


# ================================================================= planning


def test_a_train_kind_is_major_minor_or_hotfix(ledger: ReleaseLedger) -> None:
    """A train of any other kind than major, minor or hotfix is refused as malformed."""
    with refused(ledger, InvalidCommand, "kind must be one of major, minor, hotfix"):
        ledger.plan_train("5.5", "patch", PM)


def test_a_minor_or_hotfix_names_its_parent_major(ledger: ReleaseLedger) -> None:
    """Planning a minor or a hotfix without a parent is refused as malformed."""
    plan(ledger, "5.4")
    for kind, train in (("minor", "5.4.1"), ("hotfix", "5.4.0-hf1")):
        with refused(ledger, InvalidCommand, "names its parent major") as caught:
            ledger.plan_train(train, kind, PM)
        assert caught.value.field == "parent"


def test_a_major_has_no_parent(ledger: ReleaseLedger) -> None:
    """Planning a major that names a parent is refused as malformed."""
    plan(ledger, "5.4")
    with refused(ledger, InvalidCommand, "a major train has no parent"):
        ledger.plan_train("5.5", "major", PM, parent="5.4")


def test_a_parent_is_a_planned_major(ledger: ReleaseLedger) -> None:
    """A minor's parent must be a well-formed id of a planned train, and that train a major."""
    with refused(ledger, InvalidCommand, "parent 'five' is not a train id"):
        ledger.plan_train("5.4.1", "minor", PM, parent="five")
    with refused(ledger, NotFound, r"train 5\.4 is not planned"):
        ledger.plan_train("5.4.1", "minor", PM, parent="5.4")

    plan(ledger, "5.4")
    ledger.plan_train("5.4.1", "minor", PM, parent="5.4", context=at(20))
    with refused(ledger, RuleViolation, r"parent 5\.4\.1 is a minor, not a major"):
        ledger.plan_train("5.4.1-hf1", "hotfix", PM, parent="5.4.1")


def test_a_train_is_planned_only_once(ledger: ReleaseLedger) -> None:
    """Planning a train id that is already planned is refused, whatever the kind."""
    plan(ledger, "5.4")
    plan(ledger, "5.5")
    with refused(ledger, RuleViolation, r"train 5\.5 is already planned"):
        ledger.plan_train("5.5", "major", PM)
    with refused(ledger, RuleViolation, r"train 5\.5 is already planned"):
        ledger.plan_train("5.5", "minor", PM, parent="5.4")
    assert ledger.train("5.5")["kind"] == "major"


# ==================================================================== gates


def test_a_gate_passes_only_after_the_gate_before_it_passed(ledger: ReleaseLedger) -> None:
    """Gate N cannot pass, even conditionally or with its own criteria met, before gate N-1."""
    plan(ledger)
    # Gate 2's own criterion (nothing left proposed) holds on an empty train.
    with refused(ledger, RuleViolation, "gate 2 of 5.5 cannot pass before gate 1 passed"):
        ledger.decide_gate("5.5", 2, "passed", DIRECTOR)
    with refused(ledger, RuleViolation, "cannot pass before gate 1 passed"):
        ledger.decide_gate("5.5", 2, "conditional", DIRECTOR, conditions="finish the plan")

    ledger.propose_scope("5.5", "DEDUP-7", "anchor", PM, customers=[GLOBEX], context=at(29))
    ledger.decide_gate("5.5", 1, "passed", DIRECTOR, context=at(28))
    with refused(ledger, RuleViolation, "gate 3 of 5.5 cannot pass before gate 2 passed"):
        ledger.decide_gate("5.5", 3, "conditional", DIRECTOR, conditions="beta next week")
    with refused(ledger, RuleViolation, "gate 4 of 5.5 cannot pass before gate 3 passed"):
        ledger.decide_gate("5.5", 4, "conditional", DIRECTOR, conditions="ship anyway")
    assert ledger.train("5.5")["status"] == "scoped"


def test_a_minor_has_only_the_release_gate(ledger: ReleaseLedger) -> None:
    """Gates 1 to 3 of a minor do not exist: deciding, scheduling or reading them is not found."""
    minor(ledger)
    for gate in (1, 2, 3):
        with refused(ledger, NotFound, rf"5\.4\.1 \(minor\) has no gate {gate}"):
            ledger.decide_gate("5.4.1", gate, "conditional", DIRECTOR, conditions="none")
        with refused(ledger, NotFound, f"has no gate {gate}"):
            ledger.schedule_gate("5.4.1", gate, date(2025, 11, 4), PM)
        with pytest.raises(NotFound, match=f"has no gate {gate}"):
            ledger.readiness("5.4.1", gate)
    assert [g["gate"] for g in ledger.train("5.4.1")["gates"]] == [4]


def test_a_major_has_gates_one_to_four(ledger: ReleaseLedger) -> None:
    """A gate number outside 1 to 4 is not found on a major."""
    with_anchor(ledger)
    for gate in (0, 5):
        with refused(ledger, NotFound, f"has no gate {gate}"):
            ledger.decide_gate("5.5", gate, "failed", DIRECTOR)
        with refused(ledger, NotFound, f"has no gate {gate}"):
            ledger.schedule_gate("5.5", gate, date(2025, 11, 4), PM)


def test_a_gate_outcome_is_passed_conditional_failed_or_postponed(ledger: ReleaseLedger) -> None:
    """Any other gate outcome is refused as malformed."""
    with_anchor(ledger)
    with refused(ledger, InvalidCommand, "outcome must be one of") as caught:
        ledger.decide_gate("5.5", 1, "approved", DIRECTOR)
    assert caught.value.field == "outcome"


def test_a_passed_gate_is_not_decided_again(ledger: ReleaseLedger) -> None:
    """Once a gate passed, no later outcome (passed, conditional, failed, postponed) is taken."""
    scoped(ledger)
    for outcome, conditions in (
        ("passed", None),
        ("conditional", "again"),
        ("failed", None),
        ("postponed", None),
    ):
        with refused(ledger, RuleViolation, r"gate 1 of 5\.5 already passed \(passed\)") as caught:
            ledger.decide_gate("5.5", 1, outcome, DIRECTOR, conditions=conditions)
        assert not isinstance(caught.value, GateCriteriaUnmet)


def test_a_conditionally_passed_gate_is_not_decided_again(ledger: ReleaseLedger) -> None:
    """A gate passed 'conditional' is closed too: a later 'passed' is refused as already passed."""
    plan(ledger)
    ledger.propose_scope("5.5", "DEDUP-7", "anchor", PM, context=at(29))
    ledger.decide_gate(
        "5.5", 1, "conditional", DIRECTOR, conditions="find a customer", context=at(28)
    )
    # Its criteria are still unmet, but the gate is closed: the refusal must say so.
    with refused(ledger, RuleViolation, r"gate 1 of 5\.5 already passed \(conditional\)") as caught:
        ledger.decide_gate("5.5", 1, "passed", DIRECTOR)
    assert not isinstance(caught.value, GateCriteriaUnmet)


def test_a_passed_gate_is_not_rescheduled(ledger: ReleaseLedger) -> None:
    """Scheduling a gate that already passed is refused."""
    plan(ledger)
    ledger.schedule_gate("5.5", 1, date(2025, 11, 4), PM, context=at(29))
    ledger.propose_scope("5.5", "DEDUP-7", "anchor", PM, customers=[GLOBEX], context=at(29))
    ledger.decide_gate("5.5", 1, "conditional", DIRECTOR, conditions="ok", context=at(28))
    with refused(ledger, RuleViolation, r"gate 1 of 5\.5 already passed \(conditional\)"):
        ledger.schedule_gate("5.5", 1, date(2025, 11, 18), PM, reason="too late")


def test_a_slip_is_recorded_and_a_reschedule_to_the_same_day_is_refused(
    ledger: ReleaseLedger,
) -> None:
    """Moving a gate's date records a slip; 'moving' it to the date it already has is refused."""
    plan(ledger)
    ledger.schedule_gate("5.5", 1, date(2025, 11, 4), PM, context=at(29))
    result = ledger.schedule_gate(
        "5.5", 1, date(2025, 11, 18), PM, reason="Globex review moved", context=at(20)
    )
    assert [e.type for e in result.events] == ["GateRescheduled"]
    gate = result.state["gates"][0]
    assert gate["scheduled_for"] == date(2025, 11, 18)
    assert gate["slips"] == [
        {"from": date(2025, 11, 4), "to": date(2025, 11, 18), "reason": "Globex review moved"}
    ]
    with refused(ledger, RuleViolation, "already scheduled for 2025-11-18"):
        ledger.schedule_gate("5.5", 1, date(2025, 11, 18), PM)


def test_a_gate_date_is_a_calendar_date(ledger: ReleaseLedger) -> None:
    """A gate target that is a timestamp or text instead of a date is refused as malformed."""
    plan(ledger)
    for bad in (datetime(2025, 11, 4, 9, 0, tzinfo=UTC), "2025-11-04"):
        with refused(ledger, InvalidCommand, "date must be a calendar date"):
            ledger.schedule_gate("5.5", 1, bad, PM)  # type: ignore[arg-type]


def test_a_gate_date_lies_between_1900_and_2199(ledger: ReleaseLedger) -> None:
    """A gate planned for year 9999 or 1 is refused: no plan is that far, and charts of it
    would have no room around their ends."""
    plan(ledger)
    for bad in (date(9999, 12, 31), date(2200, 1, 1), date(1, 1, 1), date(1899, 12, 31)):
        with refused(ledger, InvalidCommand, "date must lie between 1900-01-01 and 2199-12-31"):
            ledger.schedule_gate("5.5", 1, bad, PM)
    ledger.schedule_gate("5.5", 1, date(2199, 12, 31), PM)


def test_a_failed_gate_can_be_decided_again(ledger: ReleaseLedger) -> None:
    """A gate that failed is not closed: a later review may pass it."""
    with_anchor(ledger)
    ledger.decide_gate("5.5", 1, "failed", DIRECTOR, notes="anchor unclear", context=at(28))
    ledger.decide_gate("5.5", 1, "postponed", DIRECTOR, context=at(27))
    result = ledger.decide_gate("5.5", 1, "passed", DIRECTOR, context=at(26))
    assert result.state["gates"][0]["outcome"] == "passed"
    assert result.state["status"] == "scoped"


# ================================================================ readiness


def unmet_keys(caught: pytest.ExceptionInfo[Any]) -> list[str]:
    error = caught.value
    assert isinstance(error, RuleViolation)
    assert all(criterion["met"] is False for criterion in error.unmet)
    return [criterion["key"] for criterion in error.unmet]


def test_passing_gate_1_with_unmet_criteria_is_refused_with_them(ledger: ReleaseLedger) -> None:
    """Gate 1 'passed' without an anchor, or with an anchor nobody asks for, names what is unmet."""
    plan(ledger)
    with refused(ledger, GateCriteriaUnmet, "cannot pass with unmet criteria") as caught:
        ledger.decide_gate("5.5", 1, "passed", DIRECTOR)
    assert unmet_keys(caught) == ["anchor-feature", "anchors-have-customers"]

    ledger.propose_scope("5.5", "DEDUP-7", "anchor", PM, context=at(29))
    ledger.propose_scope("5.5", "SNAP-3", "stretch", PM, context=at(29))
    with refused(ledger, GateCriteriaUnmet, r"gate 1 of 5\.5 cannot pass") as caught:
        ledger.decide_gate("5.5", 1, "passed", DIRECTOR)
    assert unmet_keys(caught) == ["anchors-have-customers"]
    assert caught.value.unmet[0]["evidence"] == {"anchors_without_customers": ["DEDUP-7"]}
    assert ledger.train("5.5")["gates"][0]["outcome"] is None


def test_passing_gate_2_with_features_left_proposed_is_refused(ledger: ReleaseLedger) -> None:
    """Gate 2 'passed' while a feature is still only proposed names it in the unmet criteria."""
    scoped(ledger)
    with refused(ledger, GateCriteriaUnmet, "gate 2") as caught:
        ledger.decide_gate("5.5", 2, "passed", DIRECTOR)
    assert unmet_keys(caught) == ["no-feature-proposed"]
    assert caught.value.unmet[0]["evidence"] == {"still_proposed": ["DEDUP-7"]}


def test_passing_gate_3_without_qa_and_beta_is_refused(ledger: ReleaseLedger) -> None:
    """Gate 3 'passed' with no QA phases and no beta customer for the anchor lists all four."""
    committed(ledger)
    with refused(ledger, GateCriteriaUnmet, "gate 3") as caught:
        ledger.decide_gate("5.5", 3, "passed", DIRECTOR)
    assert unmet_keys(caught) == [
        "phase1-recorded",
        "phase2-recorded",
        "effective-rate-reported",
        "anchors-have-beta-customers",
    ]


def test_passing_gate_4_below_the_qa_target_is_refused(ledger: ReleaseLedger) -> None:
    """Gate 4 'passed' with a golden run below 96 % is refused, as is a major's before gate 3."""
    minor(ledger, "SNAP-3")
    ledger.record_qa_run("5.4.1", "golden", "5.4.1.0", 21_000, 19_000, 2_000, QA, context=at(5))
    with refused(ledger, GateCriteriaUnmet, "gate 4") as caught:
        ledger.decide_gate("5.4.1", 4, "passed", DIRECTOR)
    assert unmet_keys(caught) == ["golden-run-at-target"]
    evidence = caught.value.unmet[0]["evidence"]
    assert evidence["success_rate"] == 90.48
    assert evidence["target"] == 96.0

    committed(ledger)
    with refused(ledger, RuleViolation, "gate 4 of 5.5 cannot pass before gate 3 passed"):
        ledger.decide_gate("5.5", 4, "passed", DIRECTOR)
    criteria = {c.key: c.met for c in ledger.readiness("5.5", 4)}
    assert criteria == {"golden-run-at-target": False, "gate-3-passed": False}
    assert ledger.train("5.4.1")["status"] == "planning"


def test_a_conditional_pass_records_its_conditions_despite_unmet_criteria(
    ledger: ReleaseLedger,
) -> None:
    """'conditional' with conditions passes the gate and stores the unmet criteria as evidence."""
    plan(ledger)
    ledger.propose_scope("5.5", "DEDUP-7", "anchor", PM, context=at(29))
    result = ledger.decide_gate(
        "5.5", 1, "conditional", DIRECTOR, conditions="Globex to confirm by Nov 20"
    )
    gate = result.state["gates"][0]
    assert gate["outcome"] == "conditional"
    assert gate["conditions"] == "Globex to confirm by Nov 20"
    assert result.state["status"] == "scoped"

    (recorded,) = result.events
    (stored,) = ledger.events.get(recorded.stream, gt=recorded.version - 1, lte=recorded.version)
    assert [c["key"] for c in stored.evidence if not c["met"]] == ["anchors-have-customers"]


def test_a_conditional_pass_needs_its_conditions(ledger: ReleaseLedger) -> None:
    """'conditional' without conditions (absent or blank) is refused as malformed."""
    with_anchor(ledger)
    for conditions in (None, "", "   "):
        with refused(ledger, InvalidCommand, "a conditional pass needs its conditions") as caught:
            ledger.decide_gate("5.5", 1, "conditional", DIRECTOR, conditions=conditions)
        assert caught.value.field == "conditions"


# =================================================== one open train at a time


def test_a_feature_is_in_scope_of_at_most_one_open_train(ledger: ReleaseLedger) -> None:
    """Proposing a feature that an open train holds to another train is refused."""
    with_anchor(ledger, "5.5")
    plan(ledger, "5.6")
    with refused(ledger, RuleViolation, r"DEDUP-7 is already in scope of open train 5\.5"):
        ledger.propose_scope("5.6", "DEDUP-7", "anchor", PM)
    assert ledger.feature("DEDUP-7")["train"] == "5.5"
    assert ledger.train("5.6")["scope"] == []


def test_adding_a_feature_another_open_train_holds_is_refused(ledger: ReleaseLedger) -> None:
    """An 'add' cannot take a feature out of another open train: that is a 'move'."""
    with_anchor(ledger, "5.5")
    scoped(ledger, "5.6", "SNAP-3")
    with refused(ledger, RuleViolation, r"already in scope of open train 5\.5"):
        ledger.decide("5.6", "DEDUP-7", "add", DIRECTOR, reason="Globex deal")


def test_a_feature_is_proposed_to_a_train_only_once(ledger: ReleaseLedger) -> None:
    """Proposing a feature to the train whose scope already holds it is refused."""
    with_anchor(ledger)
    with refused(ledger, RuleViolation, r"DEDUP-7 is already in scope of 5\.5 \(proposed\)"):
        ledger.propose_scope("5.5", "DEDUP-7", "stretch", PM)


def test_a_dropped_feature_can_join_another_train(ledger: ReleaseLedger) -> None:
    """After a drop the feature is free: another train may take it."""
    with_anchor(ledger, "5.5")
    plan(ledger, "5.6")
    ledger.decide("5.5", "DEDUP-7", "drop", DIRECTOR, reason="no capacity", context=at(20))
    ledger.propose_scope("5.6", "DEDUP-7", "anchor", PM, context=at(19))

    assert scope_entry(ledger, "5.5", "DEDUP-7")["status"] == "dropped"
    assert scope_entry(ledger, "5.6", "DEDUP-7")["status"] == "proposed"
    feature = ledger.feature("DEDUP-7")
    assert (feature["train"], feature["status"]) == ("5.6", "proposed")


def test_a_feature_of_a_released_train_can_join_another_train(ledger: ReleaseLedger) -> None:
    """Once its train is released the feature is in no open train: the next milestone may start."""
    released_minor(ledger)
    plan(ledger, "5.5", days=10)
    ledger.propose_scope("5.5", "DEDUP-7", "anchor", PM, customers=[GLOBEX], context=at(9))
    feature = ledger.feature("DEDUP-7")
    assert (feature["train"], feature["status"]) == ("5.5", "proposed")
    assert scope_entry(ledger, "5.4.1", "DEDUP-7")["status"] == "delivered"


# =================================================== scope after gates 1 and 3


def test_after_gate_1_new_scope_comes_only_through_add(ledger: ReleaseLedger) -> None:
    """Once gate 1 passed a proposal is refused, and an 'add' brings the feature in committed."""
    scoped(ledger)
    with refused(ledger, RuleViolation, "new scope comes only through an 'add' decision"):
        ledger.propose_scope("5.5", "SNAP-3", "committed", PM)

    ledger.decide(
        "5.5",
        "SNAP-3",
        "add",
        DIRECTOR,
        reason="Initech deal",
        requested_by="Initech",
        customers=[INITECH],
    )
    assert scope_entry(ledger, "5.5", "SNAP-3")["status"] == "committed"
    feature = ledger.feature("SNAP-3")
    assert (feature["train"], feature["status"]) == ("5.5", "committed")
    assert [c["customer"] for c in feature["customers"]] == ["Initech"]


def test_an_add_before_gate_1_is_refused(ledger: ReleaseLedger) -> None:
    """Before gate 1 passed, scope is proposed, not added."""
    with_anchor(ledger)
    with refused(ledger, RuleViolation, "has not passed; propose scope instead"):
        ledger.decide("5.5", "SNAP-3", "add", DIRECTOR, reason="Initech deal")
    with pytest.raises(NotFound):
        ledger.feature("SNAP-3")


def test_after_gate_3_an_add_needs_an_exception(ledger: ReleaseLedger) -> None:
    """After code freeze an 'add' is refused unless it is flagged as an exception."""
    frozen(ledger)
    with refused(
        ledger, RuleViolation, r'gate 3 of 5\.5 passed \(code freeze\).*"exception": true'
    ):
        ledger.decide("5.5", "SNAP-3", "add", DIRECTOR, reason="Globex mega-deal")

    ledger.decide("5.5", "SNAP-3", "add", DIRECTOR, reason="Globex mega-deal", exception=True)
    assert scope_entry(ledger, "5.5", "SNAP-3")["status"] == "committed"


def test_after_gate_3_a_move_in_needs_an_exception(ledger: ReleaseLedger) -> None:
    """Moving a feature into a frozen train is refused unless flagged as an exception."""
    frozen(ledger, "5.5", "DEDUP-7")
    with_anchor(ledger, "5.6", "SNAP-3")
    with refused(ledger, RuleViolation, '"exception": true'):
        ledger.decide("5.6", "SNAP-3", "move", DIRECTOR, to_train="5.5", reason="Globex deal")
    assert scope_entry(ledger, "5.6", "SNAP-3")["status"] == "proposed"

    ledger.decide(
        "5.6", "SNAP-3", "move", DIRECTOR, to_train="5.5", reason="Globex deal", exception=True
    )
    assert scope_entry(ledger, "5.5", "SNAP-3")["status"] == "committed"
    assert ledger.feature("SNAP-3")["train"] == "5.5"


def test_the_exception_flag_is_true_or_false(ledger: ReleaseLedger) -> None:
    """An exception flag that is not a boolean is refused as malformed."""
    frozen(ledger)
    with refused(ledger, InvalidCommand, "exception is true or false"):
        ledger.decide(
            "5.5",
            "SNAP-3",
            "add",
            DIRECTOR,
            reason="deal",
            exception="yes",  # type: ignore[arg-type]
        )


# ============================================================ closed scope


def test_a_released_train_refuses_new_scope(ledger: ReleaseLedger) -> None:
    """Neither a proposal nor an 'add' (even as an exception) enters a released train."""
    released(ledger)
    with refused(ledger, RuleViolation, r"train 5\.5 is released; its scope is closed"):
        ledger.propose_scope("5.5", "SNAP-3", "committed", PM)
    with refused(ledger, RuleViolation, "its scope is closed"):
        ledger.decide("5.5", "SNAP-3", "add", DIRECTOR, reason="too late", exception=True)


def test_a_released_train_refuses_decisions(ledger: ReleaseLedger) -> None:
    """Commit, stretch, drop and move on a released train's features are refused."""
    released(ledger)
    plan(ledger, "5.6")
    for action, reason, to_train in (
        ("commit", None, None),
        ("stretch", "slipping", None),
        ("drop", "cancelled", None),
        ("move", "rework", "5.6"),
    ):
        with refused(ledger, RuleViolation, "its scope is closed"):
            ledger.decide("5.5", "DEDUP-7", action, DIRECTOR, reason=reason, to_train=to_train)
    assert ledger.feature("DEDUP-7")["status"] == "delivered"


def test_a_released_train_refuses_a_move_in(ledger: ReleaseLedger) -> None:
    """Moving a feature into a released train is refused and leaves the source train untouched."""
    released(ledger, "5.5")
    with_anchor(ledger, "5.6", "SNAP-3")
    with refused(ledger, RuleViolation, r"train 5\.5 is released; its scope is closed"):
        ledger.decide(
            "5.6", "SNAP-3", "move", DIRECTOR, to_train="5.5", reason="ship it", exception=True
        )
    assert scope_entry(ledger, "5.6", "SNAP-3")["status"] == "proposed"
    assert ledger.feature("SNAP-3")["train"] == "5.6"


def test_a_released_train_refuses_beta_drops_and_qa_runs(ledger: ReleaseLedger) -> None:
    """Beta drops and QA runs end with the release."""
    released(ledger)
    with refused(ledger, RuleViolation, r"5\.5 is released; beta drops are over"):
        ledger.ship_beta_drop("5.5", "5.5.0-b9", ["Globex"], ["DEDUP-7"], PM)
    with refused(ledger, RuleViolation, r"5\.5 is released; record QA on a minor or hotfix"):
        ledger.record_qa_run("5.5", "golden", "5.5.0", 100, 100, 0, QA)


# =================================================== change management


def test_a_decision_about_a_feature_outside_the_trains_scope_is_refused(
    ledger: ReleaseLedger,
) -> None:
    """Commit, stretch, drop or move of a feature that another train holds is refused."""
    with_anchor(ledger, "5.5")
    scoped(ledger, "5.6", "SNAP-3")
    for action, reason, to_train in (
        ("commit", None, None),
        ("stretch", "slipping", None),
        ("drop", "cancelled", None),
        ("move", "rework", "5.5"),
    ):
        with refused(ledger, RuleViolation, r"DEDUP-7 is not in the scope of 5\.6"):
            ledger.decide("5.6", "DEDUP-7", action, DIRECTOR, reason=reason, to_train=to_train)


def test_a_decision_about_an_unknown_feature_is_not_found(ledger: ReleaseLedger) -> None:
    """A decision naming a feature the ledger has never seen is 404, like any unknown feature."""
    with_anchor(ledger)
    with refused(ledger, NotFound, "GHOST-1"):
        ledger.decide("5.5", "GHOST-1", "commit", DIRECTOR)
    with refused(ledger, NotFound, "GHOST-1"):
        ledger.decide("5.5", "GHOST-1", "drop", DIRECTOR, reason="never existed")


def test_a_command_about_an_unknown_train_or_feature_is_not_found(ledger: ReleaseLedger) -> None:
    """Every command naming a train or feature that does not exist is not found."""
    with_anchor(ledger)
    on_unknown_train: list[Callable[[], Any]] = [
        lambda: ledger.propose_scope("5.9", "SNAP-3", "anchor", PM),
        lambda: ledger.decide("5.9", "DEDUP-7", "commit", DIRECTOR),
        lambda: ledger.decide("5.9", "SNAP-3", "add", DIRECTOR, reason="deal"),
        lambda: ledger.schedule_gate("5.9", 1, date(2025, 11, 4), PM),
        lambda: ledger.decide_gate("5.9", 1, "failed", DIRECTOR),
        lambda: ledger.ship_beta_drop("5.9", "b1", ["Globex"], ["DEDUP-7"], PM),
        lambda: ledger.record_qa_run("5.9", "phase1", "rc1", 10, 9, 1, QA),
        lambda: ledger.change_support("5.9", "eol", PM, "old", eol_date=date(2026, 1, 1)),
        lambda: ledger.train("5.9"),
    ]
    for command in on_unknown_train:
        with refused(ledger, NotFound, r"train 5\.9 is not planned"):
            command()
    with refused(ledger, NotFound, "feature GHOST-1 is unknown"):
        ledger.record_customer_demand("GHOST-1", "Globex", 3, PM)
    with refused(ledger, NotFound, "feature GHOST-1 is unknown"):
        ledger.deliver_milestone("GHOST-1", "5.5", "M1", PM)


def test_committing_an_already_committed_feature_is_refused(ledger: ReleaseLedger) -> None:
    """A second 'commit' of the same feature is refused."""
    with_anchor(ledger)
    ledger.decide("5.5", "DEDUP-7", "commit", DIRECTOR, context=at(20))
    with refused(ledger, RuleViolation, r"DEDUP-7 is already committed in 5\.5"):
        ledger.decide("5.5", "DEDUP-7", "commit", DIRECTOR)


def test_stretching_an_already_stretched_feature_is_refused(ledger: ReleaseLedger) -> None:
    """A second 'stretch' of the same feature is refused."""
    with_anchor(ledger)
    ledger.decide("5.5", "DEDUP-7", "stretch", DIRECTOR, reason="risky", context=at(20))
    with refused(ledger, RuleViolation, r"DEDUP-7 is already stretched in 5\.5"):
        ledger.decide("5.5", "DEDUP-7", "stretch", DIRECTOR, reason="still risky")


def test_a_dropped_feature_takes_no_further_decision_in_that_train(ledger: ReleaseLedger) -> None:
    """After a drop, commit, stretch, drop and move of the feature in that train are refused."""
    with_anchor(ledger)
    plan(ledger, "5.6")
    ledger.decide("5.5", "DEDUP-7", "drop", DIRECTOR, reason="no capacity", context=at(20))
    for action, reason, to_train in (
        ("commit", None, None),
        ("stretch", "slipping", None),
        ("drop", "again", None),
        ("move", "rework", "5.6"),
    ):
        with refused(ledger, RuleViolation, r"DEDUP-7 is dropped from the scope of 5\.5"):
            ledger.decide("5.5", "DEDUP-7", action, DIRECTOR, reason=reason, to_train=to_train)


def test_a_feature_moves_between_committed_and_stretched(ledger: ReleaseLedger) -> None:
    """A committed feature may be stretched and a stretched one committed again."""
    with_anchor(ledger)
    ledger.decide("5.5", "DEDUP-7", "commit", DIRECTOR, context=at(25))
    ledger.decide("5.5", "DEDUP-7", "stretch", DIRECTOR, reason="risky", context=at(24))
    assert ledger.feature("DEDUP-7")["status"] == "stretched"
    ledger.decide("5.5", "DEDUP-7", "commit", DIRECTOR, reason="de-risked", context=at(23))
    assert scope_entry(ledger, "5.5", "DEDUP-7")["status"] == "committed"
    assert ledger.feature("DEDUP-7")["status"] == "committed"


def test_drop_stretch_move_and_add_need_a_reason(ledger: ReleaseLedger) -> None:
    """Those four decisions without a reason (absent or blank) are refused as malformed."""
    scoped(ledger)
    plan(ledger, "5.6")
    for action, feature, to_train in (
        ("drop", "DEDUP-7", None),
        ("stretch", "DEDUP-7", None),
        ("move", "DEDUP-7", "5.6"),
        ("add", "SNAP-3", None),
    ):
        for reason in (None, "", "  \t"):
            with refused(ledger, InvalidCommand, f"a '{action}' decision needs a reason") as caught:
                ledger.decide("5.5", feature, action, DIRECTOR, reason=reason, to_train=to_train)
            assert caught.value.field == "reason"


def test_a_commit_needs_no_reason(ledger: ReleaseLedger) -> None:
    """A 'commit' is recorded without a reason."""
    with_anchor(ledger)
    result = ledger.decide("5.5", "DEDUP-7", "commit", DIRECTOR)
    assert [e.type for e in result.events] == ["FeatureCommitted", "CommittedToTrain"]


def test_a_decision_is_commit_stretch_drop_move_or_add(ledger: ReleaseLedger) -> None:
    """Any other action, or an unknown classification, is refused as malformed."""
    scoped(ledger)
    with refused(ledger, InvalidCommand, "action must be one of") as caught:
        ledger.decide("5.5", "DEDUP-7", "defer", DIRECTOR, reason="later")
    assert caught.value.field == "action"
    with refused(ledger, InvalidCommand, "classification must be one of"):
        ledger.decide("5.5", "SNAP-3", "add", DIRECTOR, reason="deal", classification="must")
    plan(ledger, "5.6")
    with refused(ledger, InvalidCommand, "classification must be one of"):
        ledger.propose_scope("5.6", "SNAP-3", "nice-to-have", PM)


# ==================================================================== moves


def test_a_move_names_its_destination(ledger: ReleaseLedger) -> None:
    """A 'move' without a to_train, or with a malformed one, is refused as malformed."""
    with_anchor(ledger)
    with refused(ledger, InvalidCommand, "a 'move' decision names its to_train") as caught:
        ledger.decide("5.5", "DEDUP-7", "move", DIRECTOR, reason="rework")
    assert caught.value.field == "to_train"
    with refused(ledger, InvalidCommand, "to_train 'five-six' is not a train id"):
        ledger.decide("5.5", "DEDUP-7", "move", DIRECTOR, reason="rework", to_train="five-six")


def test_only_a_move_names_a_destination(ledger: ReleaseLedger) -> None:
    """A to_train on any other decision is refused as malformed."""
    with_anchor(ledger)
    plan(ledger, "5.6")
    with refused(ledger, InvalidCommand, "only a 'move' names a to_train, not 'drop'"):
        ledger.decide("5.5", "DEDUP-7", "drop", DIRECTOR, reason="gone", to_train="5.6")


def test_a_move_goes_to_a_planned_train(ledger: ReleaseLedger) -> None:
    """A move to a train that is not planned is not found and leaves the feature where it was."""
    with_anchor(ledger)
    with refused(ledger, NotFound, r"train 5\.9 is not planned"):
        ledger.decide("5.5", "DEDUP-7", "move", DIRECTOR, reason="rework", to_train="5.9")
    assert scope_entry(ledger, "5.5", "DEDUP-7")["status"] == "proposed"
    assert ledger.feature("DEDUP-7")["train"] == "5.5"


def test_a_move_goes_to_another_train(ledger: ReleaseLedger) -> None:
    """A move to the train the feature is already in is refused."""
    with_anchor(ledger)
    with refused(ledger, InvalidCommand, r"DEDUP-7 is already in 5\.5") as caught:
        ledger.decide("5.5", "DEDUP-7", "move", DIRECTOR, reason="rework", to_train="5.5")
    assert caught.value.field == "to_train"


def test_a_move_is_one_atomic_decision_touching_both_trains_and_the_feature(
    ledger: ReleaseLedger,
) -> None:
    """A move records, in one write with one correlation id, both trains' and the feature's side."""
    scoped(ledger, "5.5", "DEDUP-7")
    ledger.decide("5.5", "DEDUP-7", "commit", DIRECTOR, context=at(27))
    scoped(ledger, "5.6", "SNAP-3")
    before = event_count(ledger)

    result = ledger.decide(
        "5.5",
        "DEDUP-7",
        "move",
        DIRECTOR,
        to_train="5.6",
        reason="storage team is on 5.6",
        requested_by="Globex",
    )

    assert event_count(ledger) == before + 3
    assert [(e.type, e.stream) for e in result.events] == [
        ("FeatureMovedOut", train_stream_id("5.5")),
        ("FeatureMovedIn", train_stream_id("5.6")),
        ("MovedBetweenTrains", feature_stream_id("DEDUP-7")),
    ]
    stored = [
        event
        for e in result.events
        for event in ledger.events.get(e.stream, gt=e.version - 1, lte=e.version)
    ]
    assert len({event.meta.correlation_id for event in stored}) == 1

    old_side = scope_entry(ledger, "5.5", "DEDUP-7")
    assert (old_side["status"], old_side["moved_to"]) == ("moved_out", "5.6")
    new_side = scope_entry(ledger, "5.6", "DEDUP-7")
    assert (new_side["status"], new_side["classification"]) == ("committed", "anchor")
    feature = ledger.feature("DEDUP-7")
    assert (feature["train"], feature["status"], feature["classification"]) == (
        "5.6",
        "committed",
        "anchor",
    )
    with refused(ledger, RuleViolation, r"DEDUP-7 is moved_out from the scope of 5\.5"):
        ledger.decide("5.5", "DEDUP-7", "commit", DIRECTOR)


# =============================================================== beta drops


def test_beta_drops_start_after_gate_2(ledger: ReleaseLedger) -> None:
    """A beta drop before gate 2 passed is refused."""
    scoped(ledger)
    with refused(ledger, RuleViolation, r"beta drops of 5\.5 start after gate 2 passed"):
        ledger.ship_beta_drop("5.5", "5.5.0-b1", ["Globex"], ["DEDUP-7"], PM)


def test_a_beta_drop_ships_only_features_in_scope(ledger: ReleaseLedger) -> None:
    """A beta drop naming a feature outside the train's scope (or dropped from it) is refused."""
    committed(ledger)
    with refused(ledger, RuleViolation, r"SNAP-3 is not in the scope of 5\.5"):
        ledger.ship_beta_drop("5.5", "5.5.0-b1", ["Globex"], ["DEDUP-7", "SNAP-3"], PM)

    ledger.decide("5.5", "SNAP-3", "add", DIRECTOR, reason="Initech deal", context=at(20))
    ledger.decide("5.5", "SNAP-3", "drop", DIRECTOR, reason="Initech walked", context=at(19))
    with refused(ledger, RuleViolation, r"SNAP-3 is dropped from the scope of 5\.5"):
        ledger.ship_beta_drop("5.5", "5.5.0-b1", ["Initech"], ["SNAP-3"], PM)
    assert ledger.train("5.5")["beta_drops"] == []


def test_a_beta_drop_names_its_build_customers_and_features(ledger: ReleaseLedger) -> None:
    """A beta drop without a build, a customer or a feature is refused as malformed."""
    committed(ledger)
    cases: list[tuple[str, list[str], list[str], str]] = [
        ("", ["Globex"], ["DEDUP-7"], "build is required"),
        ("5.5.0-b1", [], ["DEDUP-7"], "customers names at least one"),
        ("5.5.0-b1", [" "], ["DEDUP-7"], "customers is required"),
        ("5.5.0-b1", ["Globex"], [], "features names at least one"),
    ]
    for build, customers, features, message in cases:
        with refused(ledger, InvalidCommand, message):
            ledger.ship_beta_drop("5.5", build, customers, features, PM)


def test_a_beta_drop_between_gate_2_and_release_is_recorded(ledger: ReleaseLedger) -> None:
    """Between gate 2 and release a beta drop of in-scope features to named customers is kept."""
    committed(ledger)
    result = ledger.ship_beta_drop("5.5", "5.5.0-b1", ["Globex", "Initech"], ["DEDUP-7"], PM)
    (drop,) = result.state["beta_drops"]
    assert (drop["build"], drop["customers"], drop["features"]) == (
        "5.5.0-b1",
        ["Globex", "Initech"],
        ["DEDUP-7"],
    )


# ================================================================== QA runs


def test_qa_counts_are_non_negative_whole_numbers(ledger: ReleaseLedger) -> None:
    """Negative, fractional, boolean, textual or missing counts are refused as malformed."""
    plan(ledger)
    good = {"total": 21_000, "passed": 20_000, "failed": 900, "blocked": 100}
    bad_counts: list[tuple[str, Any]] = [
        ("total", -1),
        ("passed", -5),
        ("failed", 1.5),
        ("failed", 900.0),
        ("blocked", True),
        ("passed", False),
        ("total", "21000"),
        ("failed", None),
    ]
    for name, value in bad_counts:
        counts = {**good, name: value}
        with refused(ledger, InvalidCommand, f"{name} must be a whole number") as caught:
            ledger.record_qa_run("5.5", "phase1", "5.5.0-rc1", actor=QA, **counts)
        assert caught.value.field == name


def test_qa_counts_do_not_exceed_the_total(ledger: ReleaseLedger) -> None:
    """passed + failed + blocked above total is refused; exactly total is accepted."""
    plan(ledger)
    with refused(ledger, InvalidCommand, r"passed \+ failed \+ blocked \(101\) exceeds total"):
        ledger.record_qa_run("5.5", "phase1", "5.5.0-rc1", 100, 90, 8, QA, blocked=3)
    result = ledger.record_qa_run("5.5", "phase1", "5.5.0-rc1", 100, 90, 8, QA, blocked=2)
    assert result.state["qa"]["phase1"]["blocked"] == 2


def test_a_qa_run_has_at_least_one_test(ledger: ReleaseLedger) -> None:
    """A QA run with a total of zero is refused as malformed."""
    plan(ledger)
    with refused(ledger, InvalidCommand, "a QA run has at least one test"):
        ledger.record_qa_run("5.5", "phase1", "5.5.0-rc1", 0, 0, 0, QA)


def test_a_qa_cycle_is_phase1_phase2_or_golden(ledger: ReleaseLedger) -> None:
    """A QA run of an unknown cycle, or without a build, is refused as malformed."""
    plan(ledger)
    with refused(ledger, InvalidCommand, "cycle must be one of phase1, phase2, golden"):
        ledger.record_qa_run("5.5", "phase3", "5.5.0-rc1", 100, 90, 10, QA)
    with refused(ledger, InvalidCommand, "build is required"):
        ledger.record_qa_run("5.5", "phase1", " ", 100, 90, 10, QA)


def test_phase_2_is_recorded_only_after_phase_1(ledger: ReleaseLedger) -> None:
    """Phase 2 re-runs phase 1's failures: without a phase 1 it is refused."""
    plan(ledger)
    with refused(ledger, RuleViolation, r"phase 2 of 5\.5 .* record phase 1 first"):
        ledger.record_qa_run("5.5", "phase2", "5.5.0-rc1", 1_050, 900, 150, QA)
    ledger.record_qa_run("5.5", "phase1", "5.5.0-rc1", 21_000, 19_950, 1_050, QA, context=at(2))
    result = ledger.record_qa_run("5.5", "phase2", "5.5.0-rc1", 1_050, 900, 150, QA)
    assert set(result.state["qa"]) == {"phase1", "phase2"}


# ================================================================== support


def test_support_status_comes_only_after_release(ledger: ReleaseLedger) -> None:
    """An unreleased train has no support status to change."""
    frozen(ledger)
    with refused(ledger, RuleViolation, r"train 5\.5 is not released"):
        ledger.change_support("5.5", "hotfix_only", PM, "5.7 is out")
    assert ledger.train("5.5")["support"] is None


def test_support_only_moves_forward(ledger: ReleaseLedger) -> None:
    """Support goes supported → hotfix_only → eol; staying or going back is refused."""
    released_minor(ledger)
    assert ledger.train("5.4.1")["support"] == "supported"
    with refused(ledger, RuleViolation, "only moves forward"):
        ledger.change_support("5.4.1", "supported", PM, "still here")

    ledger.change_support("5.4.1", "hotfix_only", PM, "5.4.2 is out", context=at(10))
    for status in ("supported", "hotfix_only"):
        with refused(ledger, RuleViolation, r"support of 5\.4\.1 is hotfix_only"):
            ledger.change_support("5.4.1", status, PM, "change of heart")

    result = ledger.change_support(
        "5.4.1", "eol", PM, "major minus two", eol_date=date(2026, 6, 30), context=at(5)
    )
    assert (result.state["support"], result.state["eol_date"]) == ("eol", date(2026, 6, 30))
    for status in ("supported", "hotfix_only"):
        with refused(ledger, RuleViolation, "only moves forward"):
            ledger.change_support("5.4.1", status, PM, "Globex escalation")
    with refused(ledger, RuleViolation, "only moves forward"):
        ledger.change_support("5.4.1", "eol", PM, "again", eol_date=date(2026, 7, 31))


def test_end_of_life_needs_its_date(ledger: ReleaseLedger) -> None:
    """'eol' without an eol_date, or with a timestamp instead of a date, is refused as malformed."""
    released_minor(ledger)
    with refused(ledger, InvalidCommand, "end of life needs its eol_date") as caught:
        ledger.change_support("5.4.1", "eol", PM, "major minus two")
    assert caught.value.field == "eol_date"
    with refused(ledger, InvalidCommand, "eol_date must be a calendar date"):
        ledger.change_support(
            "5.4.1",
            "eol",
            PM,
            "major minus two",
            eol_date=datetime(2026, 6, 30, tzinfo=UTC),
        )


def test_a_support_change_needs_a_reason_and_a_known_status(ledger: ReleaseLedger) -> None:
    """A support change without a reason, or to an unknown status, is refused as malformed."""
    released_minor(ledger)
    for reason in (None, "", "   "):
        with refused(ledger, InvalidCommand, "reason is required"):
            ledger.change_support("5.4.1", "hotfix_only", PM, reason)  # type: ignore[arg-type]
    with refused(ledger, InvalidCommand, "status must be one of supported, hotfix_only, eol"):
        ledger.change_support("5.4.1", "extended", PM, "Globex pays")


# ================================================================ customers


def test_a_customer_weight_is_a_positive_finite_number(ledger: ReleaseLedger) -> None:
    """Zero, negative, infinite, NaN, boolean or textual weights are refused as malformed."""
    plan(ledger)
    bad_weights: list[Any] = [0, -1, -0.5, math.nan, math.inf, -math.inf, True, "3", None]
    for weight in bad_weights:
        with refused(ledger, InvalidCommand, "weight is a positive number") as caught:
            ledger.propose_scope(
                "5.5", "DEDUP-7", "anchor", PM, customers=[CustomerAsk("Globex", weight)]
            )
        assert caught.value.field == "customers.weight"

    ledger.propose_scope("5.5", "DEDUP-7", "anchor", PM, customers=[GLOBEX], context=at(20))
    for weight in bad_weights:
        with refused(ledger, InvalidCommand, "weight is a positive number"):
            ledger.record_customer_demand("DEDUP-7", "Initech", weight, PM)
    ledger.record_customer_demand("DEDUP-7", "Initech", 0.25, PM)
    assert ledger.feature("DEDUP-7")["customer_weight"] == 5.25


def test_a_customer_weight_is_at_most_a_million(ledger: ReleaseLedger) -> None:
    """Weights of 1e308 are refused: two of them would sum to infinity."""
    plan(ledger)
    with refused(ledger, InvalidCommand, "positive number up to 1,000,000"):
        ledger.propose_scope(
            "5.5", "DEDUP-7", "anchor", PM, customers=[CustomerAsk("Globex", 1e308)]
        )
    ledger.propose_scope(
        "5.5", "DEDUP-7", "anchor", PM, customers=[CustomerAsk("Globex", 1_000_000)]
    )


def test_a_customer_has_a_name(ledger: ReleaseLedger) -> None:
    """A customer ask without a name is refused as malformed."""
    plan(ledger)
    for name in ("", "  "):
        with refused(ledger, InvalidCommand, "customers.name is required"):
            ledger.propose_scope("5.5", "DEDUP-7", "anchor", PM, customers=[CustomerAsk(name, 3.0)])


# ===================================================================== time


def test_an_event_cannot_occur_more_than_five_minutes_in_the_future(
    ledger: ReleaseLedger,
) -> None:
    """occurred_at beyond now + 5 minutes is refused as malformed; within 5 minutes is fine."""
    for ahead in (timedelta(minutes=6), timedelta(days=1)):
        future = CommandContext(occurred_at=datetime.now(UTC) + ahead)
        with refused(ledger, InvalidCommand, "more than 5 minutes in the future") as caught:
            ledger.plan_train("5.5", "major", PM, context=future)
        assert caught.value.field == "occurred_at"

    plan(ledger)
    with refused(ledger, InvalidCommand, "more than 5 minutes in the future"):
        ledger.propose_scope("5.5", "DEDUP-7", "anchor", PM, context=at(-1))
    soon = CommandContext(occurred_at=datetime.now(UTC) + timedelta(minutes=4))
    result = ledger.propose_scope("5.5", "DEDUP-7", "anchor", PM, context=soon)
    assert result.events[0].occurred_at == soon.occurred_at


def test_occurred_at_carries_a_utc_offset(ledger: ReleaseLedger) -> None:
    """A naive occurred_at is refused as malformed; any explicit offset is accepted."""
    naive = CommandContext(occurred_at=datetime.now() - timedelta(days=30))
    with refused(ledger, InvalidCommand, "occurred_at needs a UTC offset") as caught:
        ledger.plan_train("5.5", "major", PM, context=naive)
    assert caught.value.field == "occurred_at"

    berlin = timezone(timedelta(hours=2))
    planned_at = datetime.now(berlin) - timedelta(days=30)
    result = ledger.plan_train("5.5", "major", PM, context=CommandContext(occurred_at=planned_at))
    assert result.events[0].occurred_at == planned_at
    assert ledger.train("5.5")["planned_at"] == planned_at


def test_no_event_occurs_before_its_train_was_planned(ledger: ReleaseLedger) -> None:
    """Scope, decisions, gates and QA dated before the train's planning are refused."""
    ledger.plan_train("5.5", "major", PM, context=at(10))
    ledger.propose_scope("5.5", "DEDUP-7", "anchor", PM, customers=[GLOBEX], context=at(9))
    too_early = at(20)
    commands: list[Callable[[], Any]] = [
        lambda: ledger.propose_scope("5.5", "SNAP-3", "stretch", PM, context=too_early),
        lambda: ledger.decide("5.5", "DEDUP-7", "commit", DIRECTOR, context=too_early),
        lambda: ledger.decide(
            "5.5", "DEDUP-7", "drop", DIRECTOR, reason="backfill", context=too_early
        ),
        lambda: ledger.schedule_gate("5.5", 1, date(2025, 11, 4), PM, context=too_early),
        lambda: ledger.decide_gate("5.5", 1, "passed", DIRECTOR, context=too_early),
        lambda: ledger.decide_gate("5.5", 1, "failed", DIRECTOR, context=too_early),
        lambda: ledger.record_qa_run("5.5", "phase1", "rc1", 100, 99, 1, QA, context=too_early),
    ]
    for command in commands:
        with refused(ledger, RuleViolation, r"5\.5 cannot occur .* before the train was planned"):
            command()


def test_no_beta_drop_or_support_change_occurs_before_its_train_was_planned(
    ledger: ReleaseLedger,
) -> None:
    """A beta drop or a support change dated before the train's planning is refused."""
    minor(ledger)  # 5.4.1 planned 30 days ago; a minor has no gate 2 to wait for
    with refused(ledger, RuleViolation, "before the train was planned"):
        ledger.ship_beta_drop("5.4.1", "5.4.1-b1", ["Globex"], ["DEDUP-7"], PM, context=at(40))
    release(ledger, "5.4.1")
    with refused(ledger, RuleViolation, "before the train was planned"):
        ledger.change_support("5.4.1", "hotfix_only", PM, "5.4.2 is out", context=at(40))


def test_a_move_cannot_occur_before_its_destination_was_planned(ledger: ReleaseLedger) -> None:
    """A move dated before the destination train was planned is refused, and nothing moves."""
    with_anchor(ledger, "5.5")
    plan(ledger, "5.6", days=5)
    with refused(ledger, RuleViolation, r"event of 5\.6 cannot occur .* before the train"):
        ledger.decide(
            "5.5", "DEDUP-7", "move", DIRECTOR, to_train="5.6", reason="rework", context=at(10)
        )
    assert scope_entry(ledger, "5.5", "DEDUP-7")["status"] == "proposed"
    assert ledger.train("5.6")["scope"] == []
    assert ledger.feature("DEDUP-7")["train"] == "5.5"


def test_a_milestone_cannot_occur_before_its_train_was_planned(ledger: ReleaseLedger) -> None:
    """A feature milestone delivered in a train, dated before that train was planned, is refused."""
    with_anchor(ledger)
    with refused(ledger, RuleViolation, "before the train was planned"):
        ledger.deliver_milestone("DEDUP-7", "5.5", "M1 inline dedup", PM, context=at(40))
    assert ledger.feature("DEDUP-7")["milestones"] == []


def test_a_late_event_is_accepted_when_valid(ledger: ReleaseLedger) -> None:
    """A decision recorded today that occurred days ago is kept with both of its times."""
    with_anchor(ledger)
    occurred = at(3)
    result = ledger.decide("5.5", "DEDUP-7", "commit", DIRECTOR, context=occurred)
    assert len(result.events) == 2
    for recorded in result.events:
        assert recorded.occurred_at == occurred.occurred_at
        assert recorded.recorded_at - recorded.occurred_at > timedelta(days=2, hours=23)
    assert ledger.feature("DEDUP-7")["status"] == "committed"


def test_a_late_move_cannot_precede_a_later_decision_in_its_train(ledger: ReleaseLedger) -> None:
    """A move backdated before the feature's last decision in its train is refused: the
    train would keep the feature that the other train gains."""
    scoped(ledger, "5.5", "DEDUP-7")
    plan(ledger, "5.6")
    ledger.decide("5.5", "DEDUP-7", "stretch", DIRECTOR, reason="capacity", context=at(5))
    with refused(ledger, RuleViolation, r"DEDUP-7 was last decided in 5\.5 at .* before that"):
        ledger.decide(
            "5.5", "DEDUP-7", "move", DIRECTOR, to_train="5.6", reason="rework", context=at(6)
        )
    assert scope_entry(ledger, "5.5", "DEDUP-7")["status"] == "stretched"
    assert ledger.feature("DEDUP-7")["train"] == "5.5"


def test_an_undated_decision_that_lost_a_race_occurs_after_its_rival(
    ledger: ReleaseLedger,
) -> None:
    """A decision without occurred_at whose clock was read before a rival's recorded
    decision is redone with a later time, so the rival does not override it."""
    now = datetime.now(UTC)
    rival, stale, fresh = now - timedelta(minutes=2), now - timedelta(minutes=3), now
    scoped(ledger, "5.5", "DEDUP-7")
    ledger.decide("5.5", "DEDUP-7", "commit", DIRECTOR, context=at_moment(rival))
    # The clock was read (stale) before the rival's commit was recorded, then again.
    readings = iter([stale, now])
    ledger.clock = lambda: next(readings, fresh)

    result = ledger.decide("5.5", "DEDUP-7", "stretch", DIRECTOR, reason="capacity")

    assert {e.occurred_at for e in result.events} == {fresh}
    assert scope_entry(ledger, "5.5", "DEDUP-7")["status"] == "stretched"


# ================================================================== release


def test_passing_gate_4_releases_the_train_and_delivers_its_scope(ledger: ReleaseLedger) -> None:
    """Gate 4 passed makes the train released and supported, and its in-scope features delivered."""
    committed(ledger)
    ledger.decide("5.5", "SNAP-3", "add", DIRECTOR, reason="Initech deal", context=at(25.9))
    ledger.decide("5.5", "QUOTA-2", "add", DIRECTOR, reason="Globex ask", context=at(25.9))
    ledger.decide("5.5", "QUOTA-2", "drop", DIRECTOR, reason="Globex churned", context=at(25.8))
    freeze(ledger)

    result = release(ledger)

    assert result.state["status"] == "released"
    assert result.state["support"] == "supported"
    assert [e.type for e in result.events].count("DeliveredInTrain") == 2
    statuses = {e["feature"]: e["status"] for e in result.state["scope"]}
    assert statuses == {"DEDUP-7": "delivered", "SNAP-3": "delivered", "QUOTA-2": "dropped"}
    for key, status in statuses.items():
        feature = ledger.feature(key)
        assert (feature["train"], feature["status"]) == ("5.5", status)
    with refused(ledger, RuleViolation, r"gate 4 of 5\.5 already passed"):
        ledger.decide_gate("5.5", 4, "passed", DIRECTOR)


def test_a_decision_cannot_occur_before_its_feature_joined_the_train(
    ledger: ReleaseLedger,
) -> None:
    """A backdated commit that would precede the proposal it commits is refused."""
    plan_scoped_train(ledger)  # SNAP-3 was proposed 59 days ago
    count = event_count(ledger)

    with pytest.raises(RuleViolation, match=r"SNAP-3 joined 5\.5 at .* cannot occur before"):
        ledger.decide("5.5", "SNAP-3", "commit", "Grace Director", context=at(59.5))

    assert event_count(ledger) == count


def test_a_feature_event_cannot_occur_before_the_feature_was_registered(
    ledger: ReleaseLedger,
) -> None:
    """Customer demand dated before the feature existed in the ledger is refused."""
    plan_scoped_train(ledger)
    count = event_count(ledger)

    with pytest.raises(RuleViolation, match="before the feature was registered"):
        ledger.record_customer_demand("SNAP-3", "Initech", 2.0, "Ada Planner", context=at(70))

    assert event_count(ledger) == count
