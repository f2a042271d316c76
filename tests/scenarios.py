"""Small, memorable histories that several test modules build on."""

from __future__ import annotations

import psycopg

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


def tamper(postgres_url: str, statement: str) -> int | None:
    """Run ``statement`` on the event table as a superuser would, with the append-only
    trigger disabled; the first column of its first returned row, if any."""
    with psycopg.connect(postgres_url, autocommit=True) as connection:
        connection.execute("ALTER TABLE ledger_events DISABLE TRIGGER ledger_events_append_only")
        cursor = connection.execute(statement)
        row = cursor.fetchone() if cursor.description else None
        connection.execute("ALTER TABLE ledger_events ENABLE TRIGGER ledger_events_append_only")
    return None if row is None else int(row[0])
