"""Small, memorable histories that several test modules build on."""

from __future__ import annotations

from ledger.application import CustomerAsk, ReleaseLedger
from tests.conftest import at


def plan_scoped_train(ledger: ReleaseLedger, train: str = "5.5") -> None:
    """Train ``train`` planned 60 days ago with anchor DEDUP-7 (asked for by Globex) and
    stretch SNAP-3, and gate 1 passed."""
    ledger.plan_train(train, "major", "Ada Planner", title="Dedup everywhere", context=at(60))
    ledger.propose_scope(
        train,
        "DEDUP-7",
        "anchor",
        "Ada Planner",
        title="Inline deduplication",
        customers=[CustomerAsk("Globex", 8.0, "renewal depends on it")],
        context=at(59),
    )
    ledger.propose_scope(train, "SNAP-3", "stretch", "Ada Planner", context=at(59))
    ledger.decide_gate(train, 1, "passed", "Grace Director", context=at(50))
