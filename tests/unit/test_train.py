"""The train aggregate on its own: guards refuse before any event, events replay to state."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta

import pytest
from eventsourcing.application import project_aggregate

from ledger.chain import GENESIS, event_digest
from ledger.exceptions import RuleViolation
from ledger.metadata import EventMeta
from ledger.train import Train
from ledger.values import Classification

PLANNED = datetime(2026, 6, 1, 9, 0, tzinfo=UTC)


def meta(days_after_planning: float = 0) -> EventMeta:
    occurred = PLANNED + timedelta(days=days_after_planning)
    return EventMeta("Ada Planner", "test", "api", None, "corr", occurred)


def planned_train() -> Train:
    return Train(train_id="5.5", kind="major", parent=None, title="Dedup", meta=meta())


def test_a_refused_command_leaves_no_pending_event() -> None:
    """A guard raises before the mutator runs, so nothing is pending and nothing changed."""
    train = planned_train()
    train.collect_events()

    with pytest.raises(RuleViolation, match="before gate 1 passed"):
        train.decide_gate(2, "passed", None, None, [], meta(1))  # type: ignore[arg-type]

    assert train.pending_events == []
    assert train.gates[2].outcome is None


def test_replaying_the_events_rebuilds_the_same_train() -> None:
    """State is only ever changed by events, so replaying them yields an equal aggregate."""
    train = planned_train()
    train.propose_scope("DEDUP-7", Classification.ANCHOR, meta(1))
    train.schedule_gate(1, date(2026, 7, 1), None, meta(2))
    train.schedule_gate(1, date(2026, 7, 8), "Globex review moved", meta(3))
    events = train.collect_events()

    replayed = project_aggregate(None, events)

    assert replayed == train
    assert replayed is not None
    assert replayed.gates[1].as_dict()["slips"] == [
        {"from": date(2026, 7, 1), "to": date(2026, 7, 8), "reason": "Globex review moved"}
    ]


def test_each_event_carries_the_digest_of_its_predecessor() -> None:
    """The first event links to the genesis hash, each later one to the event before it."""
    train = planned_train()
    train.propose_scope("DEDUP-7", Classification.ANCHOR, meta(1))
    first, second = train.collect_events()

    assert first.prev_hash == GENESIS
    assert second.prev_hash == first.digest
    assert train.chain_head == second.digest


def test_the_digest_depends_on_every_stored_field() -> None:
    """Changing any value of an event changes its digest."""
    state = {"gate": 1, "reason": "slip", "meta": meta()}
    digest = event_digest("ledger.train:Train.GateScheduled", "stream", 2, state)

    assert digest == event_digest("ledger.train:Train.GateScheduled", "stream", 2, dict(state))
    assert digest != event_digest(
        "ledger.train:Train.GateScheduled", "stream", 2, {**state, "gate": 2}
    )
    assert digest != event_digest("ledger.train:Train.GateScheduled", "stream", 3, state)
    changed_meta = {**state, "meta": meta(1)}
    assert digest != event_digest("ledger.train:Train.GateScheduled", "stream", 2, changed_meta)
