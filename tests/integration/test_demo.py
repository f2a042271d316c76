"""``ledger demo``: a realistic sample history that loads once, verifies, and tells a story."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import date, timedelta
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from ledger.application import ReleaseLedger
from ledger.integrity import verify_events
from ledger.values import TRAIN_ID_PATTERN, feature_stream_id, train_stream_id
from release_ledger.cli import app
from release_ledger.demo import DemoRefused, demo_steps, load_demo
from tests.conftest import at, event_count, open_ledger

MAJORS = ("5.1", "5.2", "5.3", "5.4", "5.5", "5.6")
RELEASED = ("5.1", "5.2", "5.3", "5.4", "5.3.1", "5.3.2", "5.4.1", "5.1.7-hf1", "5.1.7-hf2")
TARGET = 96.0


@pytest.fixture(scope="module")
def demo() -> Iterator[ReleaseLedger]:
    """One in-memory ledger holding the demo, shared by the tests that only read it."""
    ledger = open_ledger("memory://")
    load_demo(ledger)
    yield ledger
    ledger.close()


def train_events(ledger: ReleaseLedger, train: str, event_type: str) -> list[Any]:
    return [
        event
        for event in ledger.events.get(train_stream_id(train))
        if type(event).__name__ == event_type
    ]


def feature_events(ledger: ReleaseLedger, key: str, event_type: str) -> list[Any]:
    return [
        event
        for event in ledger.events.get(feature_stream_id(key))
        if type(event).__name__ == event_type
    ]


def gate_state(state: dict[str, Any], gate: int) -> dict[str, Any]:
    (found,) = [entry for entry in state["gates"] if entry["gate"] == gate]
    return dict(found)


def scope_status(state: dict[str, Any], feature: str) -> str:
    (entry,) = [entry for entry in state["scope"] if entry["feature"] == feature]
    return str(entry["status"])


def rate(run: dict[str, Any]) -> float:
    return 100.0 * int(run["passed"]) / int(run["total"])


# ================================================================ loading


def test_the_demo_loads_and_every_chain_verifies(ledger: ReleaseLedger) -> None:
    """The demo records its whole history on every backend and every hash chain verifies."""
    summary = load_demo(ledger)

    assert summary.replayed == 0
    assert summary.commands == len(demo_steps())
    assert summary.recorded > summary.commands
    assert event_count(ledger) >= summary.recorded
    assert (summary.majors, summary.minors, summary.hotfixes) == (6, 4, 3)
    assert summary.trains == 13
    assert summary.features >= 40
    assert verify_events(ledger.event_log.read(), ledger.mapper).ok


def test_loading_the_demo_twice_records_nothing_new(ledger: ReleaseLedger) -> None:
    """A second load finds every command's source_ref already recorded and adds no event."""
    first = load_demo(ledger)
    events_after_first = event_count(ledger)

    second = load_demo(ledger)

    assert event_count(ledger) == events_after_first
    assert second.recorded == 0
    assert second.replayed == second.commands == first.commands
    assert second.already_loaded
    assert second.describe() == "demo history already loaded: nothing new recorded"


def test_an_interrupted_load_resumes_where_it_stopped() -> None:
    """A load stopped half-way records only the missing steps when run again."""
    ledger, complete = open_ledger("memory://"), open_ledger("memory://")
    half = len(demo_steps()) // 2

    def stop_half_way(done: int, total: int) -> None:
        if done == half:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        load_demo(ledger, progress=stop_half_way)
    resumed = load_demo(ledger)
    load_demo(complete)

    assert resumed.replayed == half
    assert event_count(ledger) == event_count(complete)
    assert verify_events(ledger.event_log.read(), ledger.mapper).ok


def test_every_demo_event_is_tagged_as_demo_with_a_unique_source_ref(
    demo: ReleaseLedger,
) -> None:
    """Each command carries source 'demo', recorded_by 'demo' and its own 'demo:<n>' reference."""
    refs = set()
    for raw in demo.event_log.read():
        meta = demo.mapper.transcoder.decode(raw.state)["meta"]
        assert (meta.source, meta.recorded_by) == ("demo", "demo")
        assert meta.source_ref is not None
        assert meta.source_ref.startswith("demo:")
        refs.add(meta.source_ref)
    assert refs == {f"demo:{n}" for n in range(1, len(demo_steps()) + 1)}


def test_the_history_is_recorded_in_the_order_it_happened_and_in_the_past(
    demo: ReleaseLedger,
) -> None:
    """Business times never go backwards along the log and never lie in the future."""
    moments = [
        demo.mapper.transcoder.decode(raw.state)["meta"].occurred_at
        for raw in demo.event_log.read()
    ]
    assert moments == sorted(moments)
    assert moments[-1] <= demo.clock()
    assert moments[-1] > demo.clock() - timedelta(days=3)
    assert moments[0] < demo.clock() - timedelta(days=365)


def test_the_history_is_laid_out_relative_to_the_given_day() -> None:
    """Passing ``today`` shifts every date, so the demo looks current on any day."""
    ledger = open_ledger("memory://")
    a_year_ago = ledger.clock().date() - timedelta(days=365)

    load_demo(ledger, today=a_year_ago)

    gate_3 = gate_state(ledger.train("5.5"), 3)
    assert gate_3["scheduled_for"] == a_year_ago + timedelta(days=9)
    assert ledger.train("5.6")["planned_at"].date() == a_year_ago - timedelta(days=14)


def test_a_demo_that_would_end_in_the_future_is_refused_before_recording() -> None:
    """A ``today`` after the real today is refused up front, leaving the ledger empty."""
    ledger = open_ledger("memory://")

    with pytest.raises(DemoRefused, match="in the future"):
        load_demo(ledger, today=date.today() + timedelta(days=30))

    assert event_count(ledger) == 0


def test_a_ledger_holding_other_history_refuses_the_demo_naming_the_step() -> None:
    """When a train of the demo already exists, the refusal names the demo step and why."""
    ledger = open_ledger("memory://")
    ledger.plan_train("5.1", "major", "Someone Else", context=at(500))

    with pytest.raises(DemoRefused, match=r"demo step 1 \(plan major 5\.1\).*already planned"):
        load_demo(ledger)


# ================================================================ content


def test_majors_5_1_to_5_6_are_at_every_stage_of_a_train_s_life(demo: ReleaseLedger) -> None:
    """5.1 gets only hotfixes, 5.2 to 5.4 are released and supported, 5.5 nears freeze,
    5.6 is being planned."""
    states = {train: demo.train(train) for train in MAJORS}

    assert {state["kind"] for state in states.values()} == {"major"}
    assert (states["5.1"]["status"], states["5.1"]["support"]) == ("released", "hotfix_only")
    for train in ("5.2", "5.3", "5.4"):
        assert (states[train]["status"], states[train]["support"]) == ("released", "supported")
    assert states["5.6"]["status"] == "planning"
    assert {entry["status"] for entry in states["5.6"]["scope"]} == {"proposed"}
    assert len(states["5.6"]["scope"]) >= 5


def test_5_5_heads_for_code_freeze_after_a_slip(demo: ReleaseLedger) -> None:
    """Gates 1 and 2 of 5.5 passed; gate 3 lies in the near future and slipped once."""
    state = demo.train("5.5")
    today = demo.clock().date()

    assert state["status"] == "committed"
    assert gate_state(state, 1)["outcome"] == "passed"
    assert gate_state(state, 2)["outcome"] == "conditional"
    gate_3 = gate_state(state, 3)
    assert gate_3["outcome"] is None
    assert today < gate_3["scheduled_for"] <= today + timedelta(days=21)
    (slip,) = gate_3["slips"]
    assert slip["from"] < slip["to"]
    assert "NVMe/TCP" in slip["reason"]


def test_released_majors_passed_all_four_gates_some_after_slips(demo: ReleaseLedger) -> None:
    """Every released major passed gates 1 to 4, and slips were recorded with reasons."""
    slips = []
    for train in ("5.1", "5.2", "5.3", "5.4"):
        gates = demo.train(train)["gates"]
        assert [gate["gate"] for gate in gates] == [1, 2, 3, 4]
        assert all(gate["outcome"] in ("passed", "conditional") for gate in gates)
        slips += [slip for gate in gates for slip in gate["slips"]]
    assert len(slips) >= 3
    assert all(slip["reason"] for slip in slips)


def test_minors_and_hotfixes_release_through_gate_4_alone(demo: ReleaseLedger) -> None:
    """Minors and hotfixes name their parent major, have only gate 4, and ship through it."""
    expected = {
        "5.3.1": ("minor", "5.3"),
        "5.3.2": ("minor", "5.3"),
        "5.4.1": ("minor", "5.4"),
        "5.4.2": ("minor", "5.4"),
        "5.1.7-hf1": ("hotfix", "5.1"),
        "5.1.7-hf2": ("hotfix", "5.1"),
        "5.2.4-hf1": ("hotfix", "5.2"),
    }
    for train, (kind, parent) in expected.items():
        state = demo.train(train)
        assert TRAIN_ID_PATTERN.fullmatch(train)
        assert (state["kind"], state["parent"]) == (kind, parent)
        assert [gate["gate"] for gate in state["gates"]] == [4]
    assert demo.train("5.4.1")["status"] == "released"
    assert demo.train("5.4.2")["status"] == "planning"


def test_support_moves_from_supported_to_hotfix_only_to_end_of_life(demo: ReleaseLedger) -> None:
    """Support changes happen after release, carry reasons, and end of life has its date."""
    assert demo.train("5.3.1")["support"] == "hotfix_only"
    superseded = demo.train("5.1.7-hf1")
    assert superseded["support"] == "eol"
    assert superseded["eol_date"] is not None
    (end_of_life,) = train_events(demo, "5.1.7-hf1", "SupportStatusChanged")
    assert "5.1.7-hf2" in end_of_life.reason
    (hotfix_only,) = train_events(demo, "5.1", "SupportStatusChanged")
    (release,) = [e for e in train_events(demo, "5.1", "GateDecided") if e.gate == 4]
    assert hotfix_only.meta.occurred_at > release.meta.occurred_at
    assert "major minus two" in hotfix_only.reason.lower()


def test_a_feature_moved_between_trains_says_why_and_who_decided(demo: ReleaseLedger) -> None:
    """OBJ-405 left 5.4 for 5.5 with a reason and a decider, and was committed there."""
    assert demo.feature("OBJ-405")["train"] == "5.5"
    assert scope_status(demo.train("5.4"), "OBJ-405") == "moved_out"
    assert scope_status(demo.train("5.5"), "OBJ-405") == "committed"
    (moved,) = feature_events(demo, "OBJ-405", "MovedBetweenTrains")
    assert (moved.from_train, moved.to_train) == ("5.4", "5.5")
    assert "code freeze" in moved.reason
    assert moved.meta.actor == "Hiroshi Tanaka"


def test_a_moved_feature_can_carry_who_asked_for_it(demo: ReleaseLedger) -> None:
    """NAS-204's move from 5.2 to 5.3 names the customer who asked for it."""
    (moved_out,) = train_events(demo, "5.2", "FeatureMovedOut")
    assert (moved_out.feature, moved_out.to_train) == ("NAS-204", "5.3")
    assert moved_out.requested_by == "Ridgeview University"
    assert demo.feature("NAS-204")["status"] == "delivered"


def test_a_dropped_feature_is_dropped_with_a_reason_and_proposed_again_later(
    demo: ReleaseLedger,
) -> None:
    """NAS-504 was dropped from 5.5 with its reason and is proposed again for 5.6."""
    assert scope_status(demo.train("5.5"), "NAS-504") == "dropped"
    (dropped,) = feature_events(demo, "NAS-504", "DroppedFromTrain")
    assert dropped.train == "5.5"
    assert "kernel" in dropped.reason
    assert dropped.meta.actor == "Hiroshi Tanaka"
    feature = demo.feature("NAS-504")
    assert (feature["train"], feature["status"]) == ("5.6", "proposed")


def test_stretched_features_and_a_late_addition_are_on_record(demo: ReleaseLedger) -> None:
    """5.5 stretched MGMT-505 and took SEC-507 by an 'add' after gate 1, at a customer's request."""
    assert scope_status(demo.train("5.5"), "MGMT-505") == "stretched"
    (added,) = train_events(demo, "5.5", "FeatureAdded")
    assert (added.feature, added.requested_by, added.exception) == (
        "SEC-507",
        "Polaris Retail Group",
        False,
    )


def test_a_conditional_gate_records_its_conditions_and_unmet_evidence(demo: ReleaseLedger) -> None:
    """Gate 1 of 5.3 passed conditionally, naming the anchor without a customer."""
    decision = train_events(demo, "5.3", "GateDecided")[0]
    assert (decision.gate, decision.outcome) == (1, "conditional")
    assert "SNAP-302" in decision.conditions
    unmet = [criterion for criterion in decision.evidence if not criterion["met"]]
    assert [criterion["key"] for criterion in unmet] == ["anchors-have-customers"]


def test_a_failed_and_a_postponed_gate_were_later_passed(demo: ReleaseLedger) -> None:
    """Gate 3 of 5.3 failed and gate 4 of 5.2 was postponed before each passed."""
    gate_3 = [(e.gate, e.outcome) for e in train_events(demo, "5.3", "GateDecided") if e.gate == 3]
    assert gate_3 == [(3, "failed"), (3, "passed")]
    gate_4 = [(e.gate, e.outcome) for e in train_events(demo, "5.2", "GateDecided") if e.gate == 4]
    assert gate_4 == [(4, "postponed"), (4, "passed")]


def test_a_big_deal_forces_a_feature_into_a_frozen_train_delivered_in_milestones(
    demo: ReleaseLedger,
) -> None:
    """SNAP-430 joined 5.4 by exception after code freeze and shipped in three milestones."""
    (added,) = feature_events(demo, "SNAP-430", "AddedToTrain")
    freeze = [e for e in train_events(demo, "5.4", "GateDecided") if e.gate == 3]
    assert added.train == "5.4"
    assert added.exception is True
    assert added.requested_by == "Jonas Weber"
    assert added.meta.occurred_at > freeze[-1].meta.occurred_at

    feature = demo.feature("SNAP-430")
    assert [m["milestone"][:2] for m in feature["milestones"]] == ["M1", "M2", "M3"]
    assert {m["train"] for m in feature["milestones"]} == {"5.4"}
    assert (feature["train"], feature["status"]) == ("5.4", "delivered")
    assert feature["customers"][0]["customer"] == "Helios Bank"


def test_qa_cycles_run_about_21000_tests_and_released_trains_hit_the_target(
    demo: ReleaseLedger,
) -> None:
    """Phase 1 runs ~21,000 tests at 88-92 %, phase 2 re-runs its failures, golden ≥ 96 %."""
    for train in RELEASED:
        golden = demo.train(train)["qa"]["golden"]
        assert 20_000 <= golden["total"] <= 22_000
        assert rate(golden) >= TARGET
    for train in ("5.1", "5.2", "5.3", "5.4", "5.5"):
        qa = demo.train(train)["qa"]
        phase1, phase2 = qa["phase1"], qa["phase2"]
        assert 20_000 <= phase1["total"] <= 22_000
        assert 88.0 <= rate(phase1) <= 92.0
        assert phase2["total"] == phase1["failed"] + phase1["blocked"]


def test_beta_drops_reach_customers_of_every_anchor_before_freeze(demo: ReleaseLedger) -> None:
    """Each anchor of 5.5 reached a beta customer; drops started only after gate 2."""
    state = demo.train("5.5")
    anchors = {e["feature"] for e in state["scope"] if e["classification"] == "anchor"}
    in_beta = {feature for drop in state["beta_drops"] for feature in drop["features"]}
    assert anchors <= in_beta
    gate_2 = gate_state(state, 2)["decided_at"]
    assert all(drop["occurred_at"] > gate_2 for drop in state["beta_drops"])


def test_features_have_jira_keys_titles_and_weighted_customers(demo: ReleaseLedger) -> None:
    """Features read like a real backlog: Jira keys, titles, customers with weights and notes."""
    feature = demo.feature("STOR-501")
    assert feature["title"] == "NVMe/TCP host connectivity"
    customers = {c["customer"]: c for c in feature["customers"]}
    assert customers["Orion Telecom"]["weight"] == 8
    assert customers["Orion Telecom"]["note"]
    classifications = {
        entry["classification"] for train in MAJORS for entry in demo.train(train)["scope"]
    }
    assert classifications == {"anchor", "committed", "stretch"}


# ==================================================================== CLI


def test_the_cli_loads_the_demo_once_and_it_verifies(tmp_path: Path) -> None:
    """``ledger demo`` exits 0 twice, recording only once, and ``ledger verify`` then passes."""
    runner = CliRunner()
    env = {"LEDGER_DATABASE_URL": f"sqlite:///{tmp_path / 'x.sqlite3'}"}

    first = runner.invoke(app, ["demo"], env=env)
    second = runner.invoke(app, ["demo"], env=env)
    verified = runner.invoke(app, ["verify"], env=env)

    assert first.exit_code == 0, first.output
    assert "events recorded in 6 majors, 4 minors, 3 hotfixes" in first.output
    assert second.exit_code == 0, second.output
    assert "already loaded: nothing new recorded" in second.output
    assert verified.exit_code == 0, verified.output
    assert "every chain intact" in verified.output
