"""Gate exit criteria (SPEC §3.1): the policy, in one place, over plain facts.

The policy reads ``TrainFacts`` rather than aggregates so the application (deciding a
gate) and the projections (serving ``/readiness``) evaluate exactly the same rules.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import asdict, dataclass, field
from typing import Any

from ledger.values import IN_SCOPE_STATUSES, Classification, QACycle, ScopeStatus, TrainKind

DEFAULT_QA_TARGET = 96.0


@dataclass(frozen=True)
class ScopeFact:
    feature: str
    classification: str
    status: str
    customers: tuple[str, ...] = ()


@dataclass(frozen=True)
class QAFact:
    total: int
    passed: int


@dataclass(frozen=True)
class TrainFacts:
    """What the policy needs to know about one train, as of one moment."""

    train: str
    kind: str
    gates_passed: frozenset[int]
    scope: tuple[ScopeFact, ...]
    qa: Mapping[str, QAFact] = field(default_factory=dict)
    beta_customers: Mapping[str, tuple[str, ...]] = field(default_factory=dict)

    def anchors_in_scope(self) -> list[str]:
        return sorted(
            fact.feature
            for fact in self.scope
            if fact.classification == Classification.ANCHOR and fact.status in IN_SCOPE_STATUSES
        )


@dataclass(frozen=True)
class Criterion:
    """One exit criterion, whether it is met, and the evidence it was judged on."""

    key: str
    description: str
    met: bool
    evidence: dict[str, Any]

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def success_rate(passed: int, total: int) -> float | None:
    """Percent of tests passed, rounded to hundredths; ``None`` when nothing ran."""
    return round(100.0 * passed / total, 2) if total > 0 else None


def effective_phase2_rate(qa: Mapping[str, QAFact]) -> float | None:
    """(phase-1 passed + phase-2 passed) / phase-1 total, once both phases are recorded."""
    phase1, phase2 = qa.get(QACycle.PHASE1), qa.get(QACycle.PHASE2)
    if phase1 is None or phase2 is None:
        return None
    return success_rate(min(phase1.passed + phase2.passed, phase1.total), phase1.total)


@dataclass(frozen=True)
class ReadinessPolicy:
    """The default exit criteria of SPEC §3.1, with the QA target as its one setting."""

    qa_target: float = DEFAULT_QA_TARGET

    def evaluate(self, gate: int, facts: TrainFacts) -> list[Criterion]:
        evaluators = {1: self._scope_review, 2: self._plan, 3: self._freeze, 4: self._release}
        return evaluators[gate](facts)

    @staticmethod
    def unmet(criteria: list[Criterion]) -> list[Criterion]:
        return [criterion for criterion in criteria if not criterion.met]

    def _scope_review(self, facts: TrainFacts) -> list[Criterion]:
        anchors = facts.anchors_in_scope()
        customers = {fact.feature: fact.customers for fact in facts.scope}
        lonely = [anchor for anchor in anchors if not customers.get(anchor)]
        return [
            Criterion(
                "anchor-feature",
                "at least one anchor feature",
                bool(anchors),
                {"anchors": anchors},
            ),
            Criterion(
                "anchors-have-customers",
                "every anchor feature has at least one customer",
                bool(anchors) and not lonely,
                {"anchors_without_customers": lonely},
            ),
        ]

    def _plan(self, facts: TrainFacts) -> list[Criterion]:
        proposed = sorted(f.feature for f in facts.scope if f.status == ScopeStatus.PROPOSED)
        return [
            Criterion(
                "no-feature-proposed",
                "no feature left proposed: each is committed, stretched, dropped or moved",
                not proposed,
                {"still_proposed": proposed},
            )
        ]

    def _freeze(self, facts: TrainFacts) -> list[Criterion]:
        phase1, phase2 = facts.qa.get(QACycle.PHASE1), facts.qa.get(QACycle.PHASE2)
        effective = effective_phase2_rate(facts.qa)
        anchors = facts.anchors_in_scope()
        without_beta = [anchor for anchor in anchors if not facts.beta_customers.get(anchor)]
        return [
            Criterion(
                "phase1-recorded",
                "QA phase 1 recorded",
                phase1 is not None,
                _qa_evidence(phase1),
            ),
            Criterion(
                "phase2-recorded",
                "QA phase 2 recorded",
                phase2 is not None,
                _qa_evidence(phase2),
            ),
            Criterion(
                "effective-rate-reported",
                "effective success rate after phase 2 reported",
                effective is not None,
                {"effective_rate": effective, "target": self.qa_target},
            ),
            Criterion(
                "anchors-have-beta-customers",
                "every anchor feature still in scope has a beta customer through a beta drop",
                not without_beta,
                {"anchors": anchors, "anchors_without_beta_customers": without_beta},
            ),
        ]

    def _release(self, facts: TrainFacts) -> list[Criterion]:
        golden = facts.qa.get(QACycle.GOLDEN)
        rate = success_rate(golden.passed, golden.total) if golden else None
        criteria = [
            Criterion(
                "golden-run-at-target",
                f"golden run recorded with a success rate of at least {self.qa_target:g} %",
                rate is not None and rate >= self.qa_target,
                {**_qa_evidence(golden), "target": self.qa_target},
            )
        ]
        if facts.kind == TrainKind.MAJOR:
            criteria.append(
                Criterion(
                    "gate-3-passed",
                    "gate 3 (code freeze and beta readiness) passed",
                    3 in facts.gates_passed,
                    {"gates_passed": sorted(facts.gates_passed)},
                )
            )
        return criteria


def _qa_evidence(run: QAFact | None) -> dict[str, Any]:
    if run is None:
        return {"recorded": False}
    return {
        "recorded": True,
        "total": run.total,
        "passed": run.passed,
        "success_rate": success_rate(run.passed, run.total),
    }
