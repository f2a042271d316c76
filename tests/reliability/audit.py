"""The audit every reliability scenario ends with, read from the database itself.

1. Every acknowledged write is in the log exactly once: the events carrying its
   correlation id are exactly those its 2xx answer listed (none missing: *lost*; any
   more: *doubled*).
2. A refused write recorded nothing, and a write whose client never heard a final answer
   either recorded nothing or recorded whole: its events are those its idempotency claim
   names (*partial* otherwise).
3. ``ledger verify`` passes: every stream's hash chain is intact.
4. The projections, once caught up, equal a rebuild of them from the first event.
"""

from __future__ import annotations

import json
import os
import subprocess
import time
from collections import defaultdict
from collections.abc import Iterable
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from eventsourcing.persistence import StoredEvent

from ledger.application import ReleaseLedger
from ledger.config import Database, Settings
from ledger.source_reference import SourceReference
from projections.projectors import PROJECTION_NAMES
from projections.runner import projection_status, rebuild
from projections.schema import engine_for
from tests.projection_fixtures import live_rows
from tests.reliability.load import Outcome, Tally
from tests.served import ledger_command

CATCH_UP_SECONDS = 60.0


@dataclass(frozen=True)
class Logged:
    """One event of the log, as the audit needs it."""

    position: int
    stream: str
    version: int
    claimed: tuple[tuple[str, int], ...] | None
    """For an idempotency claim, the (stream, version) of each event it recorded."""


@dataclass(frozen=True)
class AuditReport:
    """What the audit found: every count but the first four must be 0."""

    acknowledged: int
    refused: int
    unresolved: int
    recorded_unresolved: int
    """Writes whose client heard no final answer but which were recorded (whole)."""
    lost: int
    doubled: int
    partial: int
    recorded_refused: int


def logged_by_correlation(ledger: ReleaseLedger) -> dict[str, list[Logged]]:
    """Every event of the log, grouped by the correlation id of the request that made it."""
    groups: dict[str, list[Logged]] = defaultdict(list)
    for raw in ledger.event_log.read():
        stored = StoredEvent(raw.originator_id, raw.originator_version, raw.topic, raw.state)
        event = ledger.mapper.to_domain_event(stored)
        claimed = None
        if isinstance(event, SourceReference.Claimed):
            claimed = tuple((item["stream"], item["version"]) for item in event.recorded)
        groups[event.meta.correlation_id].append(
            Logged(raw.position, str(raw.originator_id), raw.originator_version, claimed)
        )
    return groups


def is_whole(events: list[Logged]) -> bool:
    """One command's events: one claim, naming every other event of the group."""
    claims = [event for event in events if event.claimed is not None]
    if len(claims) != 1:
        return False
    recorded = {(event.stream, event.version) for event in events if event.claimed is None}
    return set(claims[0].claimed or ()) == recorded


def check_writes(ledger: ReleaseLedger, outcomes: Iterable[Outcome]) -> AuditReport:
    groups = logged_by_correlation(ledger)
    counts = dict.fromkeys(AuditReport.__dataclass_fields__, 0)
    for outcome in outcomes:
        events = groups.get(outcome.write.correlation_id, [])
        if outcome.acknowledged:
            counts["acknowledged"] += 1
            answered = set(outcome.positions)
            claims = [event for event in events if event.claimed is not None]
            others = {event.position for event in events if event.claimed is None} - answered
            counts["lost"] += not answered <= {event.position for event in events}
            counts["doubled"] += bool(others) or len(claims) > 1
        elif outcome.refused:
            counts["refused"] += 1
            counts["recorded_refused"] += bool(events)
        else:
            counts["unresolved"] += 1
            counts["recorded_unresolved"] += bool(events)
            counts["partial"] += bool(events) and not is_whole(events)
    return AuditReport(**counts)


def verify_log(database_url: str) -> str:
    """``ledger verify`` on the database, as an operator runs it; its output."""
    result = subprocess.run(
        [ledger_command(), "verify"],
        env={**os.environ, "LEDGER_DATABASE_URL": database_url},
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert result.returncode == 0, f"ledger verify failed:\n{result.stdout}\n{result.stderr}"
    return result.stdout


def check_projections(ledger: ReleaseLedger, database_url: str) -> None:
    """Wait for the server's projector to reach the head, then compare with a rebuild."""
    engine = engine_for(Database.from_url(database_url))
    try:
        deadline = time.monotonic() + CATCH_UP_SECONDS
        while any(status.lag for status in projection_status(engine, ledger)):
            assert time.monotonic() < deadline, (
                f"the projections did not catch up in {CATCH_UP_SECONDS:.0f} s: "
                f"{projection_status(engine, ledger)}"
            )
            time.sleep(0.2)
        incremental = live_rows(engine)
        rebuild(ledger, engine, PROJECTION_NAMES)
        rebuilt = live_rows(engine)
        differing = [name for name in rebuilt if rebuilt[name] != incremental.get(name)]
        assert not differing, f"the projections differ from their rebuild in {differing}"
    finally:
        engine.dispose()


def audit(database_url: str, outcomes: Iterable[Outcome]) -> AuditReport:
    """The whole audit; fails on anything lost, doubled, partial or out of step."""
    ledger = ReleaseLedger.from_settings(Settings(database_url=database_url))
    try:
        report = check_writes(ledger, outcomes)
        failures = (report.lost, report.doubled, report.partial, report.recorded_refused)
        assert failures == (0, 0, 0, 0), report
        verify_log(database_url)
        check_projections(ledger, database_url)
    finally:
        ledger.close()
    return report


def record_figures(
    scenario: str, report: AuditReport, tally: Tally | None = None, **extra: Any
) -> None:
    """Print a scenario's figures; with ``LEDGER_RELIABILITY_REPORT`` set, append them
    there as one JSON line (``make reliability`` collects them for the docs)."""
    writes = asdict(tally) if tally is not None else {}
    figures = {"scenario": scenario, **writes, **asdict(report), **extra}
    print(f"\n{scenario}: {tally or 'no API writes'}; audit {report}; {extra}")
    target = os.environ.get("LEDGER_RELIABILITY_REPORT")
    if target:
        with Path(target).open("a") as file:
            file.write(json.dumps(figures, default=str) + "\n")
