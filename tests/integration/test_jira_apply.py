"""Jira deliveries applied to a real ledger, on every event store: what they record, and how.

The history: major 5.5 planned on 2 June 2025 with anchor OBJ-603 (asked for by Globex), its
scope review passed on 1 July; major 5.6 planned on 1 September, still in planning. The
Jira fixtures (tests/fixtures/jira, shapes from real captures and Atlassian's documented
examples: see tests/unit/test_jira_mapping.py) happen in late November and early December.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from eventsourcing.persistence import StoredEvent

from integrations.jira import JiraMapping, JiraOutcome, Unmappable, apply_jira_delivery
from ledger.application import CommandContext, CustomerAsk, ReleaseLedger
from ledger.exceptions import LedgerError, NotFound
from ledger.source_reference import SourceReference
from tests.conftest import event_count

FIXTURES = Path(__file__).parent.parent / "fixtures" / "jira"
DEFAULTS = JiraMapping()
PM = "Ada Planner"
DIRECTOR = "Grace Director"
NOV_26_10H = datetime(2025, 11, 26, 10, 0, tzinfo=UTC)


def fixture(name: str) -> Any:
    return json.loads((FIXTURES / f"{name}.json").read_text(encoding="utf-8"))


def on(month: int, day: int) -> CommandContext:
    """A command that happened at 09:00 UTC on that day of 2025, recorded through the API."""
    return CommandContext(
        recorded_by="test-token", occurred_at=datetime(2025, month, day, 9, tzinfo=UTC)
    )


def objects_trains(ledger: ReleaseLedger) -> None:
    """5.5 with anchor OBJ-603 (Globex), scope review passed; 5.6 planned, in planning."""
    ledger.plan_train("5.5", "major", PM, title="Objects 5.5", context=on(6, 2))
    ledger.propose_scope(
        "5.5",
        "OBJ-603",
        "anchor",
        PM,
        title="Inline deduplication for object buckets",
        customers=[CustomerAsk("Globex", 8.0)],
        context=on(6, 3),
    )
    ledger.decide_gate("5.5", 1, "passed", DIRECTOR, context=on(7, 1))
    ledger.plan_train("5.6", "major", PM, title="Objects 5.6", context=on(9, 1))


def frozen_5_5(ledger: ReleaseLedger) -> None:
    """5.5 with OBJ-603 committed, gate 2 passed, and gate 3 passed on conditions."""
    objects_trains(ledger)
    ledger.decide("5.5", "OBJ-603", "commit", DIRECTOR, context=on(8, 1))
    ledger.decide_gate("5.5", 2, "passed", DIRECTOR, context=on(8, 2))
    ledger.decide_gate(
        "5.5", 3, "conditional", DIRECTOR, conditions="beta at Globex", context=on(10, 1)
    )


def jira_events(ledger: ReleaseLedger) -> list[tuple[int, Any]]:
    """Every domain event recorded through Jira, with its position, in log order."""
    found = []
    for raw in ledger.event_log.read():
        stored = StoredEvent(raw.originator_id, raw.originator_version, raw.topic, raw.state)
        event = ledger.mapper.to_domain_event(stored)
        if event.meta.source == "jira" and not isinstance(event, SourceReference.Event):
            found.append((raw.position, event))
    return found


def apply(ledger: ReleaseLedger, delivery: str, payload: Any) -> JiraOutcome:
    return apply_jira_delivery(ledger, DEFAULTS, delivery, payload)


# ================================================================ issue updated


def test_a_fix_version_move_moves_the_feature_with_jiras_who_when_and_why(
    ledger: ReleaseLedger,
) -> None:
    """5.5 → 5.6 in Jira: OBJ-603 moves, by Maria Lopez, at the webhook's time, with a reason."""
    # Shape: Jira Cloud issue_updated with fieldId items (zulip/zulip jira fixtures).
    objects_trains(ledger)

    outcome = apply(ledger, "delivery-move", fixture("issue_updated_fix_version_move"))

    recorded = jira_events(ledger)
    assert outcome == JiraOutcome(
        True, "moved OBJ-603 from 5.5 to 5.6", tuple(position for position, _ in recorded)
    )
    assert [type(event).__name__ for _, event in recorded] == [
        "FeatureMovedOut",
        "FeatureMovedIn",
        "MovedBetweenTrains",
    ]
    for _, event in recorded:
        assert event.meta.actor == "Maria Lopez"
        assert event.meta.recorded_by == "jira"
        assert event.meta.occurred_at == NOV_26_10H
        assert event.meta.source_ref == "jira:delivery-move:10105:1"
        assert event.reason == "Jira OBJ-603 fixVersions 5.5 → 5.6 (changelog 10105)"
    assert ledger.feature("OBJ-603")["train"] == "5.6"


def test_the_same_delivery_applied_again_records_nothing_new(ledger: ReleaseLedger) -> None:
    """A re-run replays: the same positions, no new event, and the reason says so."""
    objects_trains(ledger)
    first = apply(ledger, "delivery-move", fixture("issue_updated_fix_version_move"))
    events_after_first = event_count(ledger)

    again = apply(ledger, "delivery-move", fixture("issue_updated_fix_version_move"))

    assert event_count(ledger) == events_after_first
    assert again.applied
    assert again.positions == first.positions
    assert again.reason == "moved OBJ-603 from 5.5 to 5.6 (recorded before: replayed)"


def test_an_addition_to_a_train_in_planning_is_a_scope_proposal(ledger: ReleaseLedger) -> None:
    """5.6 has not passed its scope review: OBJ-611 is proposed there, as its label says."""
    # Shape: Jira Cloud issue_updated, one fixVersions addition item (zulip/zulip fixtures).
    objects_trains(ledger)

    outcome = apply(ledger, "delivery-add", fixture("issue_updated_fix_version_added"))

    assert outcome.reason == "proposed OBJ-611 for 5.6 (stretch)"
    entry = {e["feature"]: e for e in ledger.train("5.6")["scope"]}["OBJ-611"]
    assert (entry["classification"], entry["status"]) == ("stretch", "proposed")
    assert ledger.feature("OBJ-611")["title"] == "Object lock in governance mode"
    assert {event.meta.actor for _, event in jira_events(ledger)} == {"Sam Okafor"}


def test_an_addition_after_the_scope_review_is_an_add_decision(ledger: ReleaseLedger) -> None:
    """5.5 passed gate 1: OBJ-611 comes in through ``add``, with the generated reason."""
    objects_trains(ledger)
    payload = fixture("issue_updated_fix_version_added")
    payload["changelog"]["items"][0]["toString"] = "5.5"

    outcome = apply(ledger, "delivery-late-add", payload)

    assert outcome.reason == "added OBJ-611 to 5.5 (stretch)"
    (added,) = [event for _, event in jira_events(ledger) if type(event).__name__ == "FeatureAdded"]
    assert (added.reason, added.exception) == (
        "Jira OBJ-611 fixVersions added 5.5 (changelog 10131)",
        False,
    )


def test_an_addition_after_code_freeze_is_recorded_as_an_exception(ledger: ReleaseLedger) -> None:
    """Jira says OBJ-611 went into frozen 5.5: the ledger records it, flagged and explained."""
    frozen_5_5(ledger)
    payload = fixture("issue_updated_fix_version_added")
    payload["changelog"]["items"][0]["toString"] = "5.5"

    outcome = apply(ledger, "delivery-frozen-add", payload)

    assert outcome.reason == "added OBJ-611 to 5.5 as an exception (stretch)"
    (added,) = [event for _, event in jira_events(ledger) if type(event).__name__ == "FeatureAdded"]
    assert added.exception is True
    assert added.reason == (
        "Jira OBJ-611 fixVersions added 5.5 (changelog 10131); "
        "5.5 is past code freeze (gate 3 passed), recorded as an exception"
    )


def test_a_removal_alone_drops_the_feature(ledger: ReleaseLedger) -> None:
    """Fix version 5.5 taken off OBJ-603: dropped from 5.5, with Jira's change as the reason."""
    objects_trains(ledger)

    outcome = apply(ledger, "delivery-drop", fixture("issue_updated_fix_version_removed"))

    assert outcome.reason == "dropped OBJ-603 from 5.5"
    (dropped,) = [e for _, e in jira_events(ledger) if type(e).__name__ == "FeatureDropped"]
    assert dropped.reason == "Jira OBJ-603 fixVersions removed 5.5 (changelog 10140)"
    assert dropped.meta.source_ref == "jira:delivery-drop:10140:1"


def test_a_numeric_changelog_id_and_no_user_still_record_as_jira(ledger: ReleaseLedger) -> None:
    """Atlassian's documented example shape: actor "jira", the number in the source_ref."""
    # Shape: Atlassian's documented issue webhook (numeric changelog id, no user), as in
    # mia-platform/integration-connector-agent's Jira source docs.
    objects_trains(ledger)

    apply(ledger, "delivery-numeric", fixture("issue_updated_numeric_changelog_without_user"))

    metas = {(e.meta.actor, e.meta.source_ref) for _, e in jira_events(ledger)}
    assert metas == {("jira", "jira:delivery-numeric:10124:1")}


def test_a_fix_version_item_without_field_id_records_nothing(ledger: ReleaseLedger) -> None:
    """The display name "Fix Version" alone is not trusted: ignored, with the reason."""
    # Shape: Jira Server item with ``field`` and no ``fieldId`` (Atlassian's documented example).
    objects_trains(ledger)
    before = event_count(ledger)

    outcome = apply(ledger, "delivery-field", fixture("issue_updated_field_without_field_id"))

    assert outcome == JiraOutcome(
        False, "jira:issue_updated of OBJ-603 changes no fixVersions (by fieldId)", ()
    )
    assert event_count(ledger) == before


def test_unknown_versions_are_ignored_with_a_reason(ledger: ReleaseLedger) -> None:
    """Backlog → Someday names no train: nothing is recorded, and the inbox learns why."""
    objects_trains(ledger)
    payload = fixture("issue_updated_fix_version_move")
    payload["changelog"]["items"][0]["fromString"] = "Backlog"
    payload["changelog"]["items"][1]["toString"] = "Someday"
    before = event_count(ledger)

    outcome = apply(ledger, "delivery-unknown", payload)

    assert outcome == JiraOutcome(
        False, "Jira OBJ-603 fixVersions Backlog → Someday (changelog 10105): names no train", ()
    )
    assert event_count(ledger) == before


def test_a_move_to_an_unplanned_train_is_refused_then_applies_once_planned(
    ledger: ReleaseLedger,
) -> None:
    """5.7 is not planned yet: the ledger's NotFound reaches the caller; once planned, it moves."""
    objects_trains(ledger)
    payload = fixture("issue_updated_fix_version_move")
    payload["changelog"]["items"][1]["toString"] = "5.7"
    before = event_count(ledger)

    with pytest.raises(NotFound, match=r"train 5\.7 is not planned"):
        apply(ledger, "delivery-early", payload)
    assert event_count(ledger) == before
    ledger.plan_train("5.7", "major", PM, context=on(10, 1))
    outcome = apply(ledger, "delivery-early", payload)

    assert outcome.reason == "moved OBJ-603 from 5.5 to 5.7"
    assert ledger.feature("OBJ-603")["train"] == "5.7"


def test_a_move_the_ledger_already_shows_is_ignored(ledger: ReleaseLedger) -> None:
    """OBJ-603 was moved to 5.6 through the API first: Jira's move is no news, not a failure."""
    objects_trains(ledger)
    ledger.decide(
        "5.5", "OBJ-603", "move", PM, to_train="5.6", reason="scope call", context=on(11, 1)
    )
    before = event_count(ledger)

    outcome = apply(ledger, "delivery-move", fixture("issue_updated_fix_version_move"))

    assert outcome == JiraOutcome(False, "OBJ-603 is already in scope of 5.6", ())
    assert event_count(ledger) == before


# ================================================================ issue created


def test_a_created_issue_with_a_fix_version_is_proposed_for_its_train(
    ledger: ReleaseLedger,
) -> None:
    """OBJ-630 created in Jira with fix version 5.6 and label anchor: proposed as an anchor."""
    # Shape: Jira Cloud issue_created with fields.fixVersions (zulip/zulip created_v1_with_
    # project_and_version.json).
    objects_trains(ledger)

    outcome = apply(ledger, "delivery-created", fixture("issue_created_with_fix_versions"))

    assert outcome.reason == "proposed OBJ-630 for 5.6 (anchor)"
    feature = ledger.feature("OBJ-630")
    assert (feature["train"], feature["title"]) == ("5.6", "Erasure coding 12+4 profile")
    assert {(e.meta.actor, e.meta.source_ref) for _, e in jira_events(ledger)} == {
        ("Priya Raman", "jira:delivery-created:10160:1")
    }


# ===================================================================== versions


def test_a_created_version_plans_its_train(ledger: ReleaseLedger) -> None:
    """Version 5.7 created in Jira: major 5.7 is planned, titled by the version's description."""
    # Shape: Atlassian's documented "Project Version Event" payload.
    outcome = apply(ledger, "delivery-version", fixture("version_created"))

    train = ledger.train("5.7")
    assert outcome.reason == "planned major train 5.7"
    assert (train["kind"], train["title"], train["planned_at"]) == (
        "major",
        "Objects 5.7: multi-site replication",
        datetime(2025, 12, 1, 10, 0, tzinfo=UTC),
    )


def test_created_minor_and_hotfix_versions_plan_trains_under_their_major(
    ledger: ReleaseLedger,
) -> None:
    """5.5.1 is a minor of 5.5 and 5.5-hf1 a hotfix of 5.5; a version planned already is ignored."""
    objects_trains(ledger)
    outcomes = []
    for number, name in enumerate(["5.5.1", "5.5-hf1", "5.6"]):
        payload = fixture("version_created")
        payload["version"].update(id=str(10580 + number), name=name, description="")
        outcomes.append(apply(ledger, f"delivery-version-{name}", payload))

    assert [outcome.reason for outcome in outcomes] == [
        "planned minor train 5.5.1 of 5.5",
        "planned hotfix train 5.5-hf1 of 5.5",
        "train 5.6 is already planned",
    ]
    assert outcomes[2].applied is False
    assert (ledger.train("5.5-hf1")["kind"], ledger.train("5.5-hf1")["parent"]) == (
        "hotfix",
        "5.5",
    )


def test_a_released_version_with_unmet_criteria_is_a_conditional_release(
    ledger: ReleaseLedger,
) -> None:
    """No golden run yet: gate 4 of 5.5 is conditional, with the unmet criterion as condition."""
    # Shape: a real Jira Cloud version_released capture (putit Jira plugin README).
    frozen_5_5(ledger)

    outcome = apply(ledger, "delivery-release", fixture("version_released"))

    gate = ledger.train("5.5")["gates"][3]
    assert outcome.reason == "released 5.5: gate 4 conditional"
    assert ledger.train("5.5")["status"] == "released"
    assert (gate["outcome"], gate["conditions"], gate["notes"]) == (
        "conditional",
        "Released in Jira with unmet criteria: golden run recorded with a success rate of "
        "at least 96 %",
        "Jira version 5.5 released",
    )
    assert gate["decided_at"] == datetime(2025, 12, 2, 10, 0, tzinfo=UTC)


def test_a_released_version_meeting_its_criteria_passes_gate_4(ledger: ReleaseLedger) -> None:
    """A golden run at 97.6 %: the release is a plain pass; a second release is no news."""
    frozen_5_5(ledger)
    ledger.record_qa_run(
        "5.5", "golden", "5.5.0-rc3", 21_000, 20_496, 504, "Quinn Tester", context=on(11, 20)
    )

    outcome = apply(ledger, "delivery-release", fixture("version_released"))
    again = apply(ledger, "delivery-release-resent", fixture("version_released"))

    assert outcome.reason == "released 5.5: gate 4 passed"
    assert ledger.train("5.5")["gates"][3]["outcome"] == "passed"
    assert again == JiraOutcome(False, "train 5.5 is already released", ())


# =========================================================== not mapped, garbage


def test_an_event_that_is_not_mapped_records_nothing(ledger: ReleaseLedger) -> None:
    """A comment is stored by the caller and ignored here, with its reason."""
    # Shape: zulip/zulip jira fixture comment_created.json.
    objects_trains(ledger)
    before = event_count(ledger)

    outcome = apply(ledger, "delivery-comment", fixture("comment_created"))

    assert outcome == JiraOutcome(False, "Jira comment_created is not mapped", ())
    assert event_count(ledger) == before


def garbled(name: str, *path: Any, value: Any) -> Any:
    """The fixture with the value at ``path`` replaced."""
    payload = fixture(name)
    parent = payload
    for step in path[:-1]:
        parent = parent[step]
    parent[path[-1]] = value
    return payload


def test_garbage_is_unmappable_or_a_ledger_refusal_and_never_anything_else(
    ledger: ReleaseLedger,
) -> None:
    """Broken bodies raise Unmappable, bodies the ledger refuses raise LedgerError; none crash."""
    objects_trains(ledger)
    move = "issue_updated_fix_version_move"
    unmappable = [
        ["not", "an", "object"],
        {"webhookEvent": None},
        garbled(move, "changelog", value="10105"),
        garbled(move, "changelog", "items", value={"0": {}}),
        garbled(move, "changelog", "items", 1, "toString", value=5.6),
        garbled(move, "issue", "key", value="OBJ 603"),
        garbled(move, "timestamp", value="26 Nov"),
        garbled("version_released", "version", value=None),
    ]
    refused = [
        garbled(move, "timestamp", value=4102444800000),  # 2100: too far in the future
        garbled(move, "timestamp", value=0),  # 1970: before 5.5 was planned
        garbled("issue_updated_fix_version_removed", "issue", "key", value="OBJ-999"),
    ]
    before = event_count(ledger)

    for number, payload in enumerate(unmappable):
        with pytest.raises(Unmappable):
            apply(ledger, f"delivery-garbage-{number}", payload)
    for number, payload in enumerate(refused):
        with pytest.raises(LedgerError):
            apply(ledger, f"delivery-refused-{number}", payload)
    assert event_count(ledger) == before
