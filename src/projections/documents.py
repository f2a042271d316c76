"""The shapes every train and feature query answers with, built from an aggregate's state.

Current-state queries build the same shapes from projection rows; as-of queries build
them from aggregates replayed to a point in time. Keeping one definition here is what
makes "as of now" and "current" comparable, field for field.
"""

from __future__ import annotations

from datetime import date, datetime
from typing import Any

from ledger.feature import Feature
from ledger.readiness import QAFact, effective_phase2_rate, success_rate
from ledger.train import Train
from ledger.values import GATE_NAMES

TrainDocument = dict[str, Any]
FeatureDocument = dict[str, Any]


def qa_document(runs: dict[str, dict[str, Any]]) -> dict[str, Any]:
    """QA per cycle with its success rate, and the effective rate after phase 2."""
    cycles = {
        cycle: {**run, "success_rate": success_rate(run["passed"], run["total"])}
        for cycle, run in sorted(runs.items())
    }
    facts = {cycle: QAFact(run["total"], run["passed"]) for cycle, run in runs.items()}
    return {"cycles": cycles, "effective_phase2_rate": effective_phase2_rate(facts)}


def gate_document(
    gate: int,
    scheduled_for: date | None,
    slips: list[dict[str, Any]],
    outcome: str | None,
    conditions: str | None,
    notes: str | None,
    decided_at: datetime | None,
    evidence: list[dict[str, Any]],
) -> dict[str, Any]:
    return {
        "gate": gate,
        "name": GATE_NAMES[gate],
        "scheduled_for": scheduled_for,
        "original_date": slips[0]["from"] if slips else scheduled_for,
        "slips": slips,
        "outcome": outcome,
        "conditions": conditions,
        "notes": notes,
        "decided_at": decided_at,
        "evidence": evidence,
    }


def train_document(train: Train, version: int | None = None) -> TrainDocument:
    """A train's document from its aggregate (``version``: events folded, when replayed)."""
    return {
        "train": train.train_id,
        "kind": train.kind,
        "parent": train.parent,
        "title": train.title,
        "status": train.status,
        "support": train.support,
        "eol_date": train.eol_date,
        "planned_at": train.planned_at,
        "gates": train_gates(train),
        "scope": train_scope(train),
        "qa": qa_document(train_qa_runs(train)),
        "beta_drops": [drop.as_dict() for drop in train.beta_drops],
        "version": train.version if version is None else version,
    }


def train_gates(train: Train) -> list[dict[str, Any]]:
    """The ``gates`` of a train's document."""
    return [
        gate_document(
            state.gate,
            state.scheduled_for,
            state.slip_history(),
            state.outcome,
            state.conditions,
            state.notes,
            state.decided_at,
            list(state.evidence),
        )
        for state in train.gates.values()
    ]


def train_scope(train: Train) -> list[dict[str, Any]]:
    """The ``scope`` of a train's document, by feature key."""
    return [
        {
            "feature": entry.feature,
            "classification": entry.classification,
            "status": entry.status,
            "moved_to": entry.moved_to,
        }
        for entry in sorted(train.scope.values(), key=lambda entry: entry.feature)
    ]


def train_qa_runs(train: Train) -> dict[str, dict[str, Any]]:
    """The latest QA run of each cycle, before ``qa_document`` adds the rates."""
    return {
        cycle: {
            "build": run.build,
            "total": run.total,
            "passed": run.passed,
            "failed": run.failed,
            "blocked": run.blocked,
            "occurred_at": run.occurred_at,
        }
        for cycle, run in train.qa.items()
    }


def feature_document(feature: Feature, version: int | None = None) -> FeatureDocument:
    """A feature's document from its aggregate."""
    customers = [
        {"customer": demand.customer, "weight": demand.weight, "note": demand.note}
        for demand in sorted(feature.customers.values(), key=lambda demand: demand.customer)
    ]
    return {
        "feature": feature.key,
        "title": feature.title,
        "owner": feature.owner,
        "architect": feature.architect,
        "train": feature.train,
        "classification": feature.classification,
        "status": feature.status,
        "customers": customers,
        "customer_weight": feature.customer_weight,
        "milestones": [
            {
                "train": m.train,
                "milestone": m.milestone,
                "note": m.note,
                "occurred_at": m.occurred_at,
            }
            for m in feature.milestones
        ],
        "version": feature.version if version is None else version,
    }
