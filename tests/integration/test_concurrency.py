"""Many writers on one train: every acknowledged command is in the log exactly once."""

from __future__ import annotations

import threading
from collections import Counter
from typing import Any

from ledger.application import CommandContext, CommandResult
from ledger.exceptions import ConcurrencyConflict, RuleViolation
from ledger.integrity import verify_events
from tests.conftest import at, open_ledger
from tests.scenarios import plan_scoped_train

WRITERS = 8
FEATURES_PER_WRITER = 4


def test_eight_writers_on_one_train_lose_and_double_nothing(postgres_url: str) -> None:
    """Eight threads, each its own ledger, race decisions on 5.5; the log stays exact and valid."""
    setup = open_ledger(postgres_url)
    plan_scoped_train(setup)
    for writer in range(WRITERS):
        for n in range(FEATURES_PER_WRITER):
            setup.decide(
                "5.5",
                f"LATE-{writer}-{n}",
                "add",
                "Ada Planner",
                reason="escalation",
                context=at(40),
            )
    setup_positions = {raw.position for raw in setup.event_log.read()}
    acknowledged: list[CommandResult] = []
    final_action: dict[str, str] = {}
    refused: list[str] = []
    conflicted: list[str] = []
    lock = threading.Lock()
    start = threading.Barrier(WRITERS)

    def writer(number: int) -> None:
        ledger = open_ledger(postgres_url)
        start.wait(timeout=60)
        for n in range(FEATURES_PER_WRITER):
            commands: list[tuple[str, str, dict[str, Any]]] = [
                # Everyone races for the same decision: exactly one may win it.
                ("SNAP-3", "commit", {}),
                (f"LATE-{number}-{n}", "stretch", {"reason": "QA capacity"}),
                (f"LATE-{number}-{n}", "drop", {"reason": "descoped"}),
            ]
            for feature, action, extra in commands:
                context = CommandContext(source_ref=f"w{number}-{n}-{feature}-{action}")
                try:
                    result = ledger.decide(
                        "5.5", feature, action, f"Writer {number}", context=context, **extra
                    )
                except RuleViolation as refusal:
                    with lock:
                        refused.append(str(refusal))
                    continue
                except ConcurrencyConflict as conflict:
                    with lock:
                        conflicted.append(str(conflict))
                    continue
                with lock:
                    acknowledged.append(result)
                    final_action[feature] = action
        ledger.close()

    threads = [threading.Thread(target=writer, args=(n,)) for n in range(WRITERS)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=120)

    log = [raw for raw in setup.event_log.read() if raw.position not in setup_positions]
    decisions = [raw for raw in log if "SourceReference" not in raw.topic]
    claims = [raw for raw in log if "SourceReference" in raw.topic]
    recorded = [event for result in acknowledged for event in result.events]
    commits_of_snap = [r for r in acknowledged if r.events[0].type == "FeatureCommitted"]

    assert not any(thread.is_alive() for thread in threads)
    assert len(acknowledged) + len(refused) + len(conflicted) == 3 * WRITERS * FEATURES_PER_WRITER
    # Each acknowledged command's events are in the log once, at the position it was told.
    assert Counter((e.stream, e.version, e.position) for e in recorded) == Counter(
        (raw.originator_id, raw.originator_version, raw.position) for raw in decisions
    )
    assert len(claims) == len(acknowledged)
    # The race for SNAP-3 has one winner; the losers were refused, not recorded.
    assert len(commits_of_snap) == 1
    assert setup.feature("SNAP-3")["status"] == "committed"
    assert all("already committed" in refusal for refusal in refused)
    # Every feature ends where its last acknowledged decision put it.
    expected = {"commit": "committed", "stretch": "stretched", "drop": "dropped"}
    scope = {entry["feature"]: entry["status"] for entry in setup.train("5.5")["scope"]}
    for writer_number in range(WRITERS):
        for n in range(FEATURES_PER_WRITER):
            feature = f"LATE-{writer_number}-{n}"
            assert scope[feature] == expected[final_action.get(feature, "commit")]
    assert verify_events(setup.event_log.read(), setup.mapper).ok
    setup.close()
