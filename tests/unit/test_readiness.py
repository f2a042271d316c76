"""The gate exit criteria of SPEC §3.1, judged on plain facts."""

from __future__ import annotations

from ledger.readiness import (
    QAFact,
    ReadinessPolicy,
    ScopeFact,
    TrainFacts,
    effective_phase2_rate,
    success_rate,
)


def facts(**overrides: object) -> TrainFacts:
    base: dict[str, object] = {
        "train": "5.5",
        "kind": "major",
        "gates_passed": frozenset(),
        "scope": (
            ScopeFact("DEDUP-7", "anchor", "committed", ("Globex",)),
            ScopeFact("SNAP-3", "stretch", "stretched"),
        ),
    }
    base.update(overrides)
    return TrainFacts(**base)  # type: ignore[arg-type]


def met(gate: int, train: TrainFacts, policy: ReadinessPolicy | None = None) -> dict[str, bool]:
    return {c.key: c.met for c in (policy or ReadinessPolicy()).evaluate(gate, train)}


def test_gate_1_needs_an_anchor_and_a_customer_for_every_anchor() -> None:
    """Scope review passes with an anchor that has a customer, and names anchors without one."""
    assert met(1, facts()) == {"anchor-feature": True, "anchors-have-customers": True}

    lonely = facts(scope=(ScopeFact("DEDUP-7", "anchor", "proposed"),))
    criteria = ReadinessPolicy().evaluate(1, lonely)
    assert [c.met for c in criteria] == [True, False]
    assert criteria[1].evidence == {"anchors_without_customers": ["DEDUP-7"]}


def test_gate_1_without_any_anchor_is_unmet() -> None:
    """A train with only stretch features has nothing to anchor its scope review."""
    only_stretch = facts(scope=(ScopeFact("SNAP-3", "stretch", "proposed"),))
    assert met(1, only_stretch) == {"anchor-feature": False, "anchors-have-customers": False}


def test_dropped_anchors_do_not_count() -> None:
    """An anchor that was dropped or moved out no longer anchors the train."""
    dropped = facts(scope=(ScopeFact("DEDUP-7", "anchor", "dropped", ("Globex",)),))
    assert met(1, dropped)["anchor-feature"] is False


def test_gate_2_needs_every_feature_decided() -> None:
    """Plan and change management is unmet while any feature is still only proposed."""
    undecided = facts(scope=(ScopeFact("SNAP-3", "stretch", "proposed"),))
    (criterion,) = ReadinessPolicy().evaluate(2, undecided)
    assert not criterion.met
    assert criterion.evidence == {"still_proposed": ["SNAP-3"]}
    assert met(2, facts()) == {"no-feature-proposed": True}


def test_gate_3_needs_both_phases_the_effective_rate_and_beta_customers_for_anchors() -> None:
    """Code freeze looks at QA phases 1 and 2 and at beta customers of anchors still in scope."""
    ready = facts(
        qa={"phase1": QAFact(21_000, 18_900), "phase2": QAFact(2_100, 1_500)},
        beta_customers={"DEDUP-7": ("Globex",)},
    )
    assert all(met(3, ready).values())
    criteria = {c.key: c for c in ReadinessPolicy().evaluate(3, ready)}
    assert criteria["effective-rate-reported"].evidence["effective_rate"] == 97.14

    not_ready = met(3, facts(qa={"phase1": QAFact(21_000, 18_900)}))
    assert not_ready == {
        "phase1-recorded": True,
        "phase2-recorded": False,
        "effective-rate-reported": False,
        "anchors-have-beta-customers": False,
    }


def test_gate_4_needs_a_golden_run_at_the_target_and_gate_3_for_majors() -> None:
    """Release needs golden ≥ target; a major also needs gate 3 passed, a minor does not."""
    golden = {"golden": QAFact(21_000, 20_200)}
    assert met(4, facts(qa=golden, gates_passed=frozenset({1, 2, 3}))) == {
        "golden-run-at-target": True,
        "gate-3-passed": True,
    }
    assert met(4, facts(kind="minor", qa=golden)) == {"golden-run-at-target": True}
    below = {"golden": QAFact(21_000, 20_000)}
    assert met(4, facts(kind="minor", qa=below)) == {"golden-run-at-target": False}


def test_the_qa_target_is_a_setting() -> None:
    """A stricter target turns the same golden run from met to unmet."""
    golden = facts(kind="minor", qa={"golden": QAFact(21_000, 20_200)})
    assert met(4, golden, ReadinessPolicy(qa_target=96.0))["golden-run-at-target"]
    assert not met(4, golden, ReadinessPolicy(qa_target=97.0))["golden-run-at-target"]


def test_success_rates_are_percentages_and_phase_2_adds_to_phase_1() -> None:
    """Phase 1 and golden rates are passed/total; phase 2 gives (p1 + p2 passed) / p1 total."""
    assert success_rate(19_000, 21_000) == 90.48
    assert success_rate(0, 0) is None
    assert effective_phase2_rate({"phase1": QAFact(21_000, 19_000)}) is None
    assert (
        effective_phase2_rate({"phase1": QAFact(21_000, 19_000), "phase2": QAFact(2_000, 1_500)})
        == 97.62
    )
