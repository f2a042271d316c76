"""Projection rebuild and query speed of the Release Ledger on PostgreSQL, on a big ledger.

One run, against a fresh database on one server:

0. setup     -- generate a ledger of N events (default 1,000,000) spread over two years:
                hundreds of trains (majors, minors, hotfixes), thousands of features and,
                mostly, QA runs. The aggregates are built in memory through the domain's
                own command methods (``Train``/``Feature``, with ``EventMeta``), so their
                rules, digests and hash chains are the real ones; their events go through
                the ledger's mapper and the library recorder in batches. Timed, not measured.
1. baseline  -- read the whole notification log in batches (``ledger.event_log.read``) and
                decode every event with the ledger's mapper: the floor of any projection.
                Run before and after the rebuild, each in a fresh child process.
2. rebuild   -- ``projections.runner.rebuild`` of every projection from position 0, in a
                child process whose VmHWM is its peak RSS. Ratio to the baselines' mean.
3. queries   -- ``ProjectionQueries.train`` for random trains: current state (rows),
                as of a random date in the train's life (replay), and as of a date as
                known at a later one; p50/p95, interleaved.

The database is created here with a unique name and dropped at the end, even on failure
or SIGTERM; only loopback servers are accepted. Usage:
``.venv/bin/python bench/projections.py [--events N]`` (``--events 100000``: a quick run).
"""

from __future__ import annotations

import sys
from pathlib import Path

# Run as a script, this file's directory comes first on sys.path, and this file would
# shadow the ``projections`` package it measures: look in that directory last (where
# ``append``, the other benchmark, whose helpers this one shares, is still found).
sys.path.sort(key=lambda entry: Path(entry or ".").resolve() == Path(__file__).resolve().parent)

import argparse
import cProfile
import gc
import hashlib
import io
import json
import os
import platform
import pstats
import random
import signal
import statistics
import subprocess
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from importlib.metadata import version
from queue import Empty, Queue
from typing import Any

import psycopg
from eventsourcing.persistence import StoredEvent
from psycopg import sql
from rich.console import Console
from rich.table import Table

from append import (
    Bench,
    Measurement,
    fresh_databases,
    on_loopback_server,
    open_ledger,
    run_interleaved,
    scrub_library_overrides,
    server_version,
)
from ledger.aggregate import LedgerAggregate
from ledger.application import ReleaseLedger
from ledger.config import Database
from ledger.feature import Feature
from ledger.integrity import verify_events
from ledger.metadata import EventMeta, Source
from ledger.readiness import QAFact, ReadinessPolicy, ScopeFact, TrainFacts
from ledger.train import Train
from ledger.values import (
    RELEASE_GATE,
    Classification,
    GateOutcome,
    QACycle,
    SupportStatus,
    TrainKind,
)
from projections.projectors import PROJECTION_NAMES
from projections.queries import ProjectionQueries, TimePoint
from projections.runner import rebuild
from projections.schema import engine_for, upgrade

DEFAULT_EVENTS = 1_000_000
MIN_EVENTS = 20_000
MAX_EVENTS = 2_000_000
DAYS = 730  # the history spans two years, ending yesterday
INSERT_CHUNK = 5000  # stored events per recorder.insert_events() call
DEFAULT_QUERIES = 300
QUERY_WARMUP = 20
QUERY_BLOCK = 10
QUERY_CAP_SECONDS = 90.0  # per kind of query
REBUILD_CAP_SECONDS = 600.0
MAX_CHILD_SECONDS = 600.0  # the baseline's cap

REBUILD_RATIO_GOAL = 0.5
REBUILD_MEMORY_GOAL_MB = 300.0
AS_OF_P95_GOAL_MS = 50.0
AS_OF_RATIO_GOAL = 5.0

console = Console(width=None if sys.stdout.isatty() else 120)


# ================================================================ the generator

CUSTOMERS = [
    f"{a} {b}"
    for a in ("Helios", "Orion", "Bluefin", "Kestrel", "Granite", "Lumen", "Polaris", "Tidewater")
    for b in ("Bank", "Telecom", "Health", "Media", "Insurance", "Retail", "Energy", "Pharma")
]
TOPICS = (
    "snapshot replication", "object lock", "NFS 4.2 support", "inline dedupe", "S3 select",
    "erasure coding", "tiering to cloud", "audit trail export", "multi-tenant quotas",
    "SMB encryption", "key rotation", "metrics API", "rolling upgrade", "QoS policies",
    "immutable backups", "metro cluster", "LDAP groups", "web console", "cert renewal",
)  # fmt: skip
PLANNERS = ("Priya Raman", "Daniel Brandt", "Marta Okafor")
ENGINEERS = ("Hiroshi Tanaka", "Grace Liu", "Leo Fontaine", "Amara Nwosu")
QA_PEOPLE = ("Ingrid Solberg", "Tomas Vidal", "Mei Chen", "Olu Adeyemi", "Sara Lind")
MILESTONES = ("design approved", "code complete", "docs ready", "perf signed off")

# QA runs per train, relative: a major is tested longer and harder than a hotfix.
QA_WEIGHT = {TrainKind.MAJOR: 4.0, TrainKind.MINOR: 1.5, TrainKind.HOTFIX: 0.7}


# How long each kind of train is tested when its history is complete, in days.
QA_NOMINAL_DAYS = {TrainKind.MAJOR: 150.0, TrainKind.MINOR: 30.0, TrainKind.HOTFIX: 12.0}


@dataclass
class TrainSpec:
    """A train of the generated history: when it is planned and released (days from start)."""

    train_id: str
    kind: str
    parent: str | None
    planned: float
    release: float | None = None  # when gate 4 is decided; None when after the history ends
    builds: Counter[str] = field(default_factory=Counter)

    def qa_window(self) -> tuple[float, float]:
        """When QA runs are recorded: from half a day after planning to the eve of release."""
        return self.planned + 0.5, DAYS if self.release is None else self.release - 0.3


@dataclass
class TrainLife:
    """What the queries need to know about a generated train."""

    train_id: str
    kind: str
    planned_at: datetime
    last_at: datetime
    events: int


Action = tuple[float, int, Callable[[], None]]


class History:
    """A ledger's history, built in memory with the domain's own command methods.

    Every command runs at a moment of one timeline (its ``recorded_at``, the library
    timestamp of its events) with an ``occurred_at`` a little before it, or, for 3 % of the
    QA summaries, up to two days before. Commands run in timeline order, so positions in
    the log follow ``recorded_at``. The skeleton (trains, gates, scope, decisions, beta
    drops, milestones, support) draws from one random stream and the QA runs from another,
    so a dry run of the skeleton alone counts its events exactly, and ``qa_runs`` QA
    summaries fill the ledger up to the wanted size.
    """

    def __init__(self, events: int, seed: int, start: datetime, qa_runs: int) -> None:
        self.scale = events / DEFAULT_EVENTS
        self.start = start
        self.rng = random.Random(seed)  # the skeleton's choices
        self.qa_rng = random.Random(seed + 1)  # the QA runs'
        self.ids = random.Random(seed + 2)  # correlation ids
        self.policy = ReadinessPolicy()
        self.trains: dict[str, Train] = {}
        self.features: dict[str, Feature] = {}
        self.specs: dict[str, TrainSpec] = {}
        self.lives: dict[str, TrainLife] = {}
        self.moved_in: dict[str, list[str]] = {}
        self.agenda: dict[int, list[Action]] = {}
        self.sequence = 0
        self.next_feature = 1000
        self.now = start
        self.tick = 0
        self.events = 0
        self.types: Counter[str] = Counter()
        self.skipped = 0  # skeleton steps whose moment had passed (deterministic, by design)
        self.sink: Callable[[list[LedgerAggregate.Event]], None] | None = None
        self._plan_history()
        self._share_qa_runs(qa_runs)

    # ------------------------------------------------------------ the timeline

    def at(self, day: float, action: Callable[[], None]) -> None:
        """Run ``action`` at ``day`` (days from the start; the fraction is the time of day)."""
        if 0 <= day < DAYS:
            self.sequence += 1
            self.agenda.setdefault(int(day), []).append((day, self.sequence, action))

    def work_time(self, day: float) -> float:
        """A moment in the working day (08:00-18:00 UTC) of ``day``."""
        return int(day) + self.rng.uniform(8 / 24, 18 / 24)

    def moment(self, day: float) -> datetime:
        return self.start + timedelta(days=day)

    def timestamp(self) -> datetime:
        """The library timestamp of the next event: the timeline's now, a microsecond apart."""
        self.tick += 1
        return self.now + timedelta(microseconds=self.tick)

    def meta(
        self, actor: str, source: Source, recorded_by: str, late: float, *floors: datetime
    ) -> EventMeta:
        """Provenance of a command recorded now that occurred ``late`` seconds ago.

        ``floors`` are the times the domain's guards compare against (a train's planning, a
        feature's registration, a scope entry's arrival): it occurred after them.
        """
        occurred = self.now - timedelta(seconds=late)
        for floor in floors:
            occurred = max(occurred, floor + timedelta(microseconds=1))
        return EventMeta(
            actor=actor,
            recorded_by=recorded_by,
            source=str(source),
            source_ref=None,
            correlation_id=f"{self.ids.getrandbits(128):032x}",
            occurred_at=occurred,
        )

    def emit(self, *aggregates: LedgerAggregate) -> None:
        """Collect what a command triggered, in the order the ledger saves its aggregates."""
        batch: list[LedgerAggregate.Event] = []
        for aggregate in aggregates:
            events: list[LedgerAggregate.Event] = aggregate.collect_events()  # type: ignore[assignment]
            if isinstance(aggregate, Train):
                life = self.lives[aggregate.train_id]
                life.events += len(events)
                life.last_at = max(life.last_at, *(e.meta.occurred_at for e in events))
            batch.extend(events)
        for event in batch:
            self.types[type(event).__name__] += 1
        self.events += len(batch)
        if self.sink is not None:
            self.sink(batch)

    def run(self, limit: int, progress: Callable[[int, int], None] | None = None) -> None:
        """Run the timeline day by day, until it ends or ``limit`` events are recorded."""
        for day in range(DAYS):
            actions = self.agenda.pop(day, [])
            for train_id, count in self.qa_days.pop(day, {}).items():
                low, high = self.specs[train_id].qa_window()
                for _ in range(count):
                    when = self.qa_rng.uniform(max(low, day), min(high, day + 1))
                    actions.append((when, 0, _bind(self.qa_run, train_id)))
            actions.sort(key=lambda action: (action[0], action[1]))
            for when, _, action in actions:
                if self.events >= limit:
                    return
                self.now = self.moment(when)
                self.tick = 0
                action()
            if progress is not None:
                progress(day, self.events)

    # ------------------------------------------------------------ the plan

    def _plan_history(self) -> None:
        """Twelve majors two months apart; minors after each release; hotfixes of each minor."""
        scale = self.scale
        per_major = max(10, round(150 * scale))
        minors = max(1, round(8 * scale))
        hotfixes = max(1, round(3 * scale))
        per_minor = max(2, round(8 * scale))
        for k in range(12):
            major = self._major(k, 5 + 60 * k, per_major)
            if major.release is None:
                continue
            for j in range(minors):
                planned = major.release + 7 + 25 * j
                minor = self._minor(f"{major.train_id}.{j + 1}", major.train_id, planned, per_minor)
                if minor is None:
                    break
                for h in range(hotfixes):
                    self._hotfix(f"{minor.train_id}-hf{h + 1}", major.train_id, planned + 5 + 7 * h)

    @staticmethod
    def major_id(k: int) -> str:
        return f"{20 + k // 6}.{k % 6}"

    def _spec(self, train_id: str, kind: str, parent: str | None, planned: float) -> TrainSpec:
        spec = TrainSpec(train_id, kind, parent, planned + 0.4)
        self.specs[train_id] = spec
        self.at(spec.planned, _bind(self.plan, train_id, kind, parent))
        return spec

    def _gate(self, spec: TrainSpec, gate: int, target: float) -> float:
        """Schedule a gate, maybe slip it or fail it once, pass it; when it passes."""
        rng = self.rng
        train_id = spec.train_id
        self.at(spec.planned + 0.01 * gate, _bind(self.schedule, train_id, gate, target))
        decided = target
        if rng.random() < 0.25:  # slipped ahead of the date, with a reason
            decided = target + rng.randint(3, 10)
            reason = rng.choice(("vendor firmware late", "blocking defect", "beta feedback"))
            when = self.work_time(target - rng.randint(2, 9))
            self.at(when, _bind(self.schedule, train_id, gate, decided, reason))
        elif rng.random() < 0.08:  # the board met, found it not ready, and moved it a week
            self.at(decided + 0.65, _bind(self.decide_gate, train_id, gate, GateOutcome.FAILED))
            decided += 7
            when = self.work_time(target + 1)
            self.at(when, _bind(self.schedule, train_id, gate, decided, "failed review"))
        self.at(decided + 0.7, _bind(self.decide_gate, train_id, gate, GateOutcome.PASSED))
        return decided + 0.7

    def _major(self, k: int, planned: float, features: int) -> TrainSpec:
        rng = self.rng
        train_id = self.major_id(k)
        spec = self._spec(train_id, TrainKind.MAJOR, None, planned)
        targets = {1: planned + 30, 2: planned + 70, 3: planned + 110, 4: planned + 150}
        decided = {gate: self._gate(spec, gate, target) for gate, target in targets.items()}
        spec.release = decided[4] if decided[4] < DAYS else None
        for n in range(features):
            key = self.feature_key()
            kind = Classification.ANCHOR if n % 7 == 0 else Classification.COMMITTED
            if n % 7 != 0 and rng.random() < 0.25:
                kind = Classification.STRETCH
            customers = rng.randint(1, 3) if kind == Classification.ANCHOR else rng.randint(0, 2)
            when = self.work_time(planned + rng.uniform(1, 25))
            self.at(when, _bind(self.propose, train_id, key, kind, self.asks(customers)))
            # The change board decides each proposal between gates 1 and 2.
            roll = rng.random()
            when = self.work_time(decided[1] + rng.uniform(1, 25))
            if roll < 0.75:
                self.at(when, _bind(self.decide, train_id, key, "commit"))
            elif roll < 0.87:
                self.at(when, _bind(self.decide, train_id, key, "stretch"))
            elif roll < 0.95:
                self.at(when, _bind(self.decide, train_id, key, "drop"))
            else:  # moved to the next major, once that is planned
                when = self.work_time(planned + 61 + rng.uniform(0, 5))
                self.at(when, _bind(self.move_to_next, k, key))
            if rng.random() < 0.3:
                when = self.work_time(planned + rng.uniform(30, 140))
                self.at(when, _bind(self.demand, key, self.asks(1)[0]))
            if rng.random() < 0.2:
                when = self.work_time(planned + rng.uniform(80, 145))
                self.at(when, _bind(self.milestone, key, train_id, rng.choice(MILESTONES)))
        # What the previous major moved here is committed after gate 1.
        self.at(self.work_time(decided[1] + 3), _bind(self.commit_moved_in, train_id))
        for _ in range(max(1, features // 20)):  # late additions after gate 1
            when = self.work_time(decided[1] + rng.uniform(5, 70))
            self.at(when, _bind(self.add, train_id, self.feature_key(), False))
        when = self.work_time(decided[3] + rng.uniform(2, 20))  # an exception after freeze
        self.at(when, _bind(self.add, train_id, self.feature_key(), True))
        for n in range(3):  # beta drops between gates 2 and 3
            self.at(self.work_time(decided[2] + 5 + 12 * n), _bind(self.beta, train_id, n))
        self.at(decided[2] - 0.2, _bind(self.commit_proposed, train_id))
        self.at(decided[4] - 0.1, _bind(self.golden, train_id))
        self.support_after(train_id, decided[4], 180, 360)
        return spec

    def _minor(self, train_id: str, parent: str, planned: float, features: int) -> TrainSpec | None:
        if planned >= DAYS:
            return None
        rng = self.rng
        spec = self._spec(train_id, TrainKind.MINOR, parent, planned)
        released = self._gate(spec, RELEASE_GATE, planned + 30)
        spec.release = released if released < DAYS else None
        for _ in range(features):
            key = self.feature_key()
            kind = rng.choice((Classification.COMMITTED, Classification.STRETCH))
            when = self.work_time(planned + rng.uniform(1, 10))
            self.at(when, _bind(self.propose, train_id, key, kind, self.asks(rng.randint(0, 2))))
            action = "commit" if rng.random() < 0.85 else "drop"
            when = self.work_time(planned + rng.uniform(11, 20))
            self.at(when, _bind(self.decide, train_id, key, action))
        self.at(released - 0.1, _bind(self.golden, train_id))
        self.support_after(train_id, released, 60, 200)
        return spec

    def _hotfix(self, train_id: str, parent: str, planned: float) -> None:
        if planned >= DAYS:
            return
        rng = self.rng
        spec = self._spec(train_id, TrainKind.HOTFIX, parent, planned)
        released = self._gate(spec, RELEASE_GATE, planned + 12)
        spec.release = released if released < DAYS else None
        for _ in range(rng.randint(1, 2)):
            when = self.work_time(planned + rng.uniform(1, 3))
            self.at(when, _bind(self.add, train_id, self.feature_key(), False))
        self.at(released - 0.1, _bind(self.golden, train_id))
        self.support_after(train_id, released, 100, 240)

    def support_after(self, train_id: str, released: float, hotfix_only: int, eol: int) -> None:
        when = self.work_time(released + hotfix_only)
        self.at(when, _bind(self.support, train_id, SupportStatus.HOTFIX_ONLY, None))
        eol_date = self.moment(released + eol + 30).date()
        when = self.work_time(released + eol)
        self.at(when, _bind(self.support, train_id, SupportStatus.EOL, eol_date))

    def _share_qa_runs(self, total: int) -> None:
        """Share ``total`` QA runs out among the trains, then among the days each is tested."""
        weights = {}
        for train_id, spec in self.specs.items():
            low, high = spec.qa_window()
            if high > low:
                share = min(1.0, (high - low) / QA_NOMINAL_DAYS[TrainKind(spec.kind)])
                weights[train_id] = QA_WEIGHT[TrainKind(spec.kind)] * share
        whole = sum(weights.values()) or 1.0
        exact = {train_id: total * weight / whole for train_id, weight in weights.items()}
        counts = {train_id: int(value) for train_id, value in exact.items()}
        by_remainder = sorted(exact, key=lambda t: exact[t] - counts[t], reverse=True)
        for train_id in by_remainder[: total - sum(counts.values())]:
            counts[train_id] += 1
        self.qa_days: dict[int, Counter[str]] = {}
        for train_id, count in counts.items():
            spec = self.specs[train_id]
            low, high = spec.qa_window()
            for _ in range(count):
                day = int(self.qa_rng.uniform(low, high))
                self.qa_days.setdefault(day, Counter())[train_id] += 1

    def feature_key(self) -> str:
        self.next_feature += 1
        return f"ARC-{self.next_feature}"

    def asks(self, count: int) -> list[tuple[str, float]]:
        return [(self.rng.choice(CUSTOMERS), float(self.rng.randint(1, 10))) for _ in range(count)]

    # ------------------------------------------------------------ commands
    # Each mirrors its ReleaseLedger command: the same aggregate methods in the same order,
    # saved together. A step whose moment has passed (a decision on a feature moved away
    # meanwhile) is skipped, never half-done: the guards below run before any event.

    def plan(self, train_id: str, kind: str, parent: str | None) -> None:
        meta = self.meta(self.rng.choice(PLANNERS), Source.API, "api", self.rng.uniform(0, 60))
        title = f"Arcstone OS {train_id}"
        train = Train(train_id=train_id, kind=kind, parent=parent, title=title, meta=meta)
        self.trains[train_id] = train
        self.lives[train_id] = TrainLife(train_id, kind, train.planned_at, train.planned_at, 0)
        self.emit(train)

    def schedule(self, train_id: str, gate: int, day: float, reason: str | None = None) -> None:
        train = self.trains[train_id]
        target = self.moment(day).date()
        if train.gates[gate].passed or train.gates[gate].scheduled_for == target:
            self.skipped += 1
            return
        meta = self.meta(PLANNERS[0], Source.API, "api", self.rng.uniform(0, 60), train.planned_at)
        train.schedule_gate(gate, target, reason, meta)
        self.emit(train)

    def facts(self, train: Train) -> TrainFacts:
        """What ``ReleaseLedger._facts`` reads, from the aggregates in memory."""
        scope = []
        for entry in train.scope.values():
            customers: tuple[str, ...] = ()
            if entry.in_scope and entry.classification == Classification.ANCHOR:
                customers = tuple(self.features[entry.feature].customers)
            scope.append(ScopeFact(entry.feature, entry.classification, entry.status, customers))
        beta: dict[str, set[str]] = {}
        for drop in train.beta_drops:
            for key in drop.features:
                beta.setdefault(key, set()).update(drop.customers)
        return TrainFacts(
            train=train.train_id,
            kind=train.kind,
            gates_passed=frozenset(g for g, state in train.gates.items() if state.passed),
            scope=tuple(scope),
            qa={
                str(cycle): QAFact(run.total, run.passed)
                for cycle in QACycle
                if (run := train.latest_qa(cycle)) is not None
            },
            beta_customers={key: tuple(sorted(names)) for key, names in beta.items()},
        )

    def decide_gate(self, train_id: str, gate: int, outcome: GateOutcome) -> None:
        """As ``ReleaseLedger.decide_gate``: judged by the policy, delivering on release."""
        train = self.trains[train_id]
        if train.gates[gate].passed:
            self.skipped += 1
            return
        criteria = self.policy.evaluate(gate, self.facts(train))
        unmet = self.policy.unmet(criteria)
        conditions = None
        if outcome == GateOutcome.PASSED and unmet:
            outcome = GateOutcome.CONDITIONAL
            conditions = "close before the next gate: " + ", ".join(c.key for c in unmet)
        features = [
            self.features[entry.feature] for entry in train.scope.values() if entry.in_scope
        ]
        floors = [train.planned_at, *(feature.registered_at for feature in features)]
        meta = self.meta(PLANNERS[0], Source.API, "api", self.rng.uniform(0, 300), *floors)
        notes = "re-review in a week" if outcome == GateOutcome.FAILED else "gate board"
        train.decide_gate(gate, outcome, conditions, notes, [c.as_dict() for c in criteria], meta)
        touched: list[LedgerAggregate] = [train]
        if gate == RELEASE_GATE and train.is_released:
            for feature in features:
                feature.deliver_in(train_id, meta)
            touched += features
        self.emit(*touched)

    def joining(self, key: str, meta: EventMeta) -> Feature:
        """The feature about to join a train: registered when new."""
        feature = self.features.get(key)
        if feature is None:
            title = f"{key}: {self.rng.choice(TOPICS)}"
            feature = Feature(key=key, title=title, owner=None, architect=None, meta=meta)
            self.features[key] = feature
        return feature

    def propose(self, train_id: str, key: str, kind: str, asks: list[tuple[str, float]]) -> None:
        train = self.trains[train_id]
        if train.is_released or (1 in train.gates and train.gates[1].passed):
            self.skipped += 1
            return
        late = self.rng.uniform(0, 90)
        meta = self.meta(self.rng.choice(PLANNERS), Source.JIRA, "jira", late, train.planned_at)
        train.propose_scope(key, Classification(kind), meta)
        feature = self.joining(key, meta)
        feature.propose_for(train_id, kind, meta)
        for customer, weight in asks:
            feature.record_customer_demand(customer, weight, None, meta)
        self.emit(train, feature)

    def decision_meta(self, train: Train, feature: Feature) -> EventMeta:
        since = train.scope[feature.key].since
        floors = [train.planned_at, feature.registered_at, *([since] if since else [])]
        late = self.rng.uniform(0, 600)
        return self.meta(self.rng.choice(PLANNERS), Source.API, "api", late, *floors)

    def decide(self, train_id: str, key: str, action: str) -> None:
        train, feature = self.trains[train_id], self.features[key]
        entry = train.scope.get(key)
        if train.is_released or entry is None or entry.status != "proposed":
            self.skipped += 1
            return
        meta = self.decision_meta(train, feature)
        requested_by = self.rng.choice(CUSTOMERS) if self.rng.random() < 0.3 else None
        if action == "commit":
            train.commit_feature(key, None, requested_by, meta)
            feature.commit_to(train_id, None, requested_by, meta)
        elif action == "stretch":
            reason = "depends on a partner's API"
            train.stretch_feature(key, reason, requested_by, meta)
            feature.stretch_in(train_id, reason, requested_by, meta)
        else:
            reason = "no capacity in this train"
            train.drop_feature(key, reason, requested_by, meta)
            feature.drop_from(train_id, reason, requested_by, meta)
        self.emit(train, feature)

    def commit_proposed(self, train_id: str) -> None:
        """The board commits what is still proposed before gate 2."""
        for entry in list(self.trains[train_id].scope.values()):
            if entry.status == "proposed":
                self.decide(train_id, entry.feature, "commit")

    def commit_moved_in(self, train_id: str) -> None:
        for key in self.moved_in.pop(train_id, []):
            self.decide(train_id, key, "commit")

    def move_to_next(self, k: int, key: str) -> None:
        train_id, target_id = self.major_id(k), self.major_id(k + 1)
        train, feature, target = (
            self.trains[train_id],
            self.features[key],
            self.trains.get(target_id),
        )
        entry = train.scope.get(key)
        if target is None or target.is_released or entry is None or not entry.in_scope:
            self.skipped += 1
            return
        meta = self.decision_meta(train, feature)
        reason = "moved to the next major"
        train.move_feature_out(key, target_id, reason, None, meta)
        target.move_feature_in(key, train_id, entry.classification, reason, None, False, meta)
        feature.move(train_id, target_id, target.scope[key].status, reason, None, meta)
        self.moved_in.setdefault(target_id, []).append(key)
        self.emit(train, target, feature)

    def add(self, train_id: str, key: str, exception: bool) -> None:
        """A late addition: a hotfix's fix, a major's after gate 1 or after code freeze."""
        train = self.trains[train_id]
        frozen = 3 in train.gates and train.gates[3].passed
        scoping = 1 in train.gates and not train.gates[1].passed
        if train.is_released or scoping or (frozen and not exception):
            self.skipped += 1
            return
        late = self.rng.uniform(0, 600)
        meta = self.meta(self.rng.choice(ENGINEERS), Source.API, "api", late, train.planned_at)
        reason = "customer escalation" if exception or train.kind == TrainKind.HOTFIX else "ask"
        requested_by = self.rng.choice(CUSTOMERS)
        kind = Classification.COMMITTED
        train.add_feature(key, kind, reason, requested_by, exception, meta)
        feature = self.joining(key, meta)
        feature.add_to(train_id, str(kind), reason, requested_by, exception, meta)
        feature.record_customer_demand(requested_by, 5.0, "escalation", meta)
        self.emit(train, feature)

    def demand(self, key: str, ask: tuple[str, float]) -> None:
        feature = self.features[key]
        late = self.rng.uniform(0, 90)
        meta = self.meta(
            self.rng.choice(PLANNERS), Source.JIRA, "jira", late, feature.registered_at
        )
        feature.record_customer_demand(*ask, None, meta)
        self.emit(feature)

    def milestone(self, key: str, train_id: str, milestone: str) -> None:
        feature, train = self.features[key], self.trains[train_id]
        if feature.train != train_id or not feature.in_scope:
            self.skipped += 1
            return
        floors = (feature.registered_at, train.planned_at)
        meta = self.meta(self.rng.choice(ENGINEERS), Source.JIRA, "jira", 60.0, *floors)
        feature.deliver_milestone(train_id, milestone, None, meta)
        self.emit(feature)

    def beta(self, train_id: str, n: int) -> None:
        train = self.trains[train_id]
        in_scope = [entry for entry in train.scope.values() if entry.in_scope]
        if train.is_released or not train.gates[2].passed or not in_scope:
            self.skipped += 1
            return
        anchors = [e.feature for e in in_scope if e.classification == Classification.ANCHOR]
        others = [e.feature for e in in_scope if e.classification != Classification.ANCHOR]
        features = anchors + self.rng.sample(others, min(len(others), 5))
        customers = {name for key in anchors for name in self.features[key].customers}
        customers |= set(self.rng.sample(CUSTOMERS, 3))
        meta = self.meta(ENGINEERS[2], Source.API, "api", 120.0, train.planned_at)
        train.ship_beta_drop(f"{train_id}-beta{n + 1}", sorted(customers), features, meta)
        self.emit(train)

    def golden(self, train_id: str) -> None:
        """The golden run the release gate is judged on, on the eve of the release."""
        train = self.trains[train_id]
        self.record_qa(train, QACycle.GOLDEN, 800, 796, 30.0)

    def qa_run(self, train_id: str) -> None:
        """One QA summary from the test system: the cycle follows the train's progress."""
        train, spec, rng = self.trains[train_id], self.specs[train_id], self.qa_rng
        low, high = spec.qa_window()
        progress = min(1.0, (self.now - self.moment(low)) / (self.moment(high) - self.moment(low)))
        roll = rng.random()
        if train.latest_qa(QACycle.PHASE1) is None or roll < 0.7 - 0.6 * progress:
            cycle, total, rate = QACycle.PHASE1, rng.randint(1500, 4000), rng.uniform(0.85, 0.98)
        elif roll < 0.95 - 0.3 * progress:
            cycle, total, rate = QACycle.PHASE2, rng.randint(50, 300), rng.uniform(0.6, 0.95)
        else:
            cycle, total, rate = QACycle.GOLDEN, rng.randint(600, 900), rng.uniform(0.93, 1.0)
        late = rng.uniform(3600, 2 * 86400) if rng.random() < 0.03 else rng.uniform(5, 300)
        self.record_qa(train, cycle, total, int(total * rate), late)

    def record_qa(self, train: Train, cycle: QACycle, total: int, passed: int, late: float) -> None:
        spec = self.specs[train.train_id]
        spec.builds[cycle] += 1
        blocked = min(total - passed, self.qa_rng.randint(0, 3))
        actor = self.qa_rng.choice(QA_PEOPLE)
        meta = self.meta(actor, Source.QTEST, "qtest", late, train.planned_at)
        build = f"{train.train_id}-{cycle}-b{spec.builds[cycle]}"
        train.record_qa_run(cycle, build, total, passed, total - passed - blocked, blocked, meta)
        self.emit(train)

    def support(self, train_id: str, status: SupportStatus, eol_date: date | None) -> None:
        train = self.trains[train_id]
        late = self.rng.uniform(0, 600)
        meta = self.meta(ENGINEERS[1], Source.API, "api", late, train.planned_at)
        train.change_support(status, eol_date, "support policy", meta)
        self.emit(train)


def _bind(function: Callable[..., None], *args: Any) -> Callable[[], None]:
    return lambda: function(*args)


@contextmanager
def timeline_clock(history: Callable[[], History]) -> Iterator[None]:
    """Give every ledger event the generating history's ``recorded_at`` as its timestamp."""
    event_class: Any = LedgerAggregate.Event
    original = event_class.__dict__.get("create_timestamp")
    event_class.create_timestamp = staticmethod(lambda: history().timestamp())
    try:
        yield
    finally:
        if original is None:
            del event_class.create_timestamp
        else:
            event_class.create_timestamp = original


# ================================================================ setup


class EventSink:
    """Stores what the history generates: the ledger's mapper, then the library's recorder.

    A writer thread inserts each chunk while the next one is generated, so the server's
    work overlaps the generator's (it is setup, and this halves its time on two cores).
    """

    def __init__(self, ledger: ReleaseLedger) -> None:
        self.to_stored_event = ledger.mapper.to_stored_event
        self.recorder = ledger.recorder
        self.pending: list[StoredEvent] = []
        self.stored = 0
        self.chunks: Queue[list[StoredEvent] | None] = Queue(maxsize=4)
        self.error: BaseException | None = None
        self.writer = threading.Thread(target=self._write, name="bench-writer", daemon=True)
        self.writer.start()

    def __call__(self, events: list[LedgerAggregate.Event]) -> None:
        self.pending.extend(self.to_stored_event(event) for event in events)
        if len(self.pending) >= INSERT_CHUNK:
            self._put(self.pending)
            self.pending = []

    def _put(self, chunk: list[StoredEvent] | None) -> None:
        if self.error is not None:
            raise RuntimeError("inserting the generated events failed") from self.error
        self.chunks.put(chunk)

    def _write(self) -> None:
        while (chunk := self.chunks.get()) is not None:
            if self.error is None:
                try:
                    self.recorder.insert_events(chunk)
                    self.stored += len(chunk)
                except BaseException as error:  # reported by the generating thread
                    self.error = error

    def close(self) -> None:
        """Insert what is left and wait for the writer."""
        if self.pending:
            self._put(self.pending)
            self.pending = []
        self._put(None)
        self.writer.join()
        if self.error is not None:
            raise RuntimeError("inserting the generated events failed") from self.error


@dataclass(frozen=True)
class Generated:
    events: int
    seconds: float
    trains: dict[str, int]  # by kind
    features: int
    qa_share: float
    lives: list[TrainLife]
    start: datetime
    end: datetime


def generate(ledger: ReleaseLedger, wanted: int, seed: int) -> Generated:
    """Record a two-year history of ``wanted`` events, ending yesterday."""
    started = time.perf_counter()
    end = datetime.now(UTC).replace(minute=0, second=0, microsecond=0) - timedelta(days=1)
    start = end - timedelta(days=DAYS)
    current: list[History] = []
    with timeline_clock(lambda: current[-1]):
        skeleton = History(wanted, seed, start, qa_runs=0)
        current.append(skeleton)
        skeleton.run(wanted)  # in memory only: how many events the skeleton has
        if skeleton.events >= wanted:
            raise SystemExit(f"--events {wanted:,} leaves no room for QA runs: use more")
        history = History(wanted, seed, start, qa_runs=wanted - skeleton.events)
        current.append(history)
        sink = EventSink(ledger)
        history.sink = sink
        shown = [0]

        def progress(day: int, events: int) -> None:
            if events >= shown[0] + wanted // 10 or day == DAYS - 1:
                shown[0] = events
                rate = events / (time.perf_counter() - started)
                console.print(
                    f"[dim]  day {day + 1}/{DAYS}: {events:,} events ({rate:,.0f}/s)[/dim]"
                )

        try:
            history.run(wanted, progress)
        finally:
            sink.close()
    seconds = time.perf_counter() - started
    head = ledger.event_log.last_position()
    if sink.stored != wanted or head != wanted:
        raise RuntimeError(f"generated {sink.stored:,} events, the log ends at {head:,}")
    kinds = Counter(str(life.kind) for life in history.lives.values())
    return Generated(
        events=sink.stored,
        seconds=seconds,
        trains=dict(kinds),
        features=len(history.features),
        qa_share=history.types["QARunRecorded"] / history.events,
        lives=list(history.lives.values()),
        start=start,
        end=end,
    )


def vacuum(url: str, ledger: ReleaseLedger) -> None:
    """VACUUM ANALYZE the log after the bulk load, as autovacuum would in time."""
    recorder: Any = ledger.recorder
    table = sql.Identifier(recorder.datastore.schema, recorder.events_table_name)
    with psycopg.connect(url, autocommit=True, connect_timeout=5) as connection:
        connection.execute(sql.SQL("VACUUM (ANALYZE) {}").format(table))


def table_sizes(url: str) -> dict[str, int]:
    """Bytes on disk of the event log and of the projection tables, with their indexes."""
    with psycopg.connect(url, connect_timeout=5) as connection:
        rows = connection.execute(
            "SELECT c.relname, pg_total_relation_size(c.oid) FROM pg_class c "
            "JOIN pg_namespace n ON n.oid = c.relnamespace "
            "WHERE n.nspname = 'public' AND c.relkind = 'r'"
        ).fetchall()
    return {str(name): int(size) for name, size in rows}


def row_traffic(url: str) -> dict[str, tuple[int, int, int]]:
    """Rows inserted, deleted and live per projection table (the event log left out)."""
    with psycopg.connect(url, connect_timeout=5) as connection:
        connection.execute("SELECT pg_stat_force_next_flush()")
        rows = connection.execute(
            "SELECT relname, n_tup_ins, n_tup_del, n_live_tup FROM pg_stat_user_tables "
            "WHERE relname NOT LIKE '%\\_events' AND relname <> 'alembic_version'"
        ).fetchall()
    return {str(name): (int(ins), int(dels), int(live)) for name, ins, dels, live in rows}


# ================================================================ child processes
# The baseline and the rebuild each run in a process of their own, started fresh like
# ``ledger`` commands are, so each one's peak RSS is its own high-water mark.


def rss_kb(field_name: str) -> int:
    """VmRSS or VmHWM of this process, in KiB."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(field_name + ":"):
            return int(line.split()[1])
    return 0


def child(kind: str, url: str, profile: str | None) -> int:
    """Run one measured phase and print its result as JSON on the last line."""
    ledger = open_ledger(url)
    engine = engine_for(Database.from_url(url))
    head = ledger.event_log.last_position()
    started = time.perf_counter()
    last = [started]

    def progress(position: int) -> None:
        now = time.perf_counter()
        if now - last[0] >= 2.0:
            last[0] = now
            print(f"progress {position} {now - started:.3f}", flush=True)

    def read_and_decode() -> int:
        to_domain_event = ledger.mapper.to_domain_event
        count = 0
        for raw in ledger.event_log.read():
            stored = StoredEvent(raw.originator_id, raw.originator_version, raw.topic, raw.state)
            to_domain_event(stored)
            count += 1
            if count % 1000 == 0:
                progress(raw.position)
        return count

    def rebuild_all() -> int:
        rebuild(ledger, engine, PROJECTION_NAMES, progress)
        return head

    measured = read_and_decode if kind == "read" else rebuild_all
    gc.collect()
    rss_before = rss_kb("VmRSS")
    profiler = cProfile.Profile() if profile else None
    started = last[0] = time.perf_counter()
    if profiler is not None:
        profiler.enable()
    events = measured()
    if profiler is not None:
        profiler.disable()
        profiler.dump_stats(profile)
    seconds = time.perf_counter() - started
    # VmHWM, not getrusage(): ru_maxrss carries the parent's RSS across fork and exec.
    peak_kb = rss_kb("VmHWM")
    result = {"events": events, "seconds": seconds, "rss_before_kb": rss_before, "peak_kb": peak_kb}
    print("result " + json.dumps(result), flush=True)
    engine.dispose()
    ledger.close()
    return 0


@dataclass(frozen=True)
class Phase:
    label: str
    events: int
    seconds: float
    rss_before_mb: float
    peak_mb: float
    truncated: bool = False

    @property
    def events_per_second(self) -> float:
        return self.events / self.seconds


def run_child(kind: str, url: str, label: str, cap: float, profile: str | None) -> Phase:
    """Run ``child`` in a fresh interpreter, showing its progress; stop it at ``cap`` seconds."""
    command = [sys.executable, str(Path(__file__).resolve()), "--child", kind, "--url", url]
    if profile:
        command += ["--profile", profile]
    lines: Queue[str | None] = Queue()
    process = subprocess.Popen(command, stdout=subprocess.PIPE, text=True)
    assert process.stdout is not None
    stdout = process.stdout

    def pump() -> None:
        for line in stdout:
            lines.put(line)
        lines.put(None)

    threading.Thread(target=pump, daemon=True).start()
    deadline = time.monotonic() + cap
    result: dict[str, Any] | None = None
    last_progress = (0, 0.0)
    shown = time.monotonic()
    try:
        while True:
            try:
                line = lines.get(timeout=max(0.1, deadline - time.monotonic()))
            except Empty:
                line = ""
            if line is None:
                break
            if line.startswith("progress "):
                position, elapsed = line.split()[1:3]
                last_progress = (int(position), float(elapsed))
                if time.monotonic() - shown >= 15:
                    shown = time.monotonic()
                    rate = last_progress[0] / max(last_progress[1], 1e-9)
                    console.print(
                        f"[dim]  {label}: position {last_progress[0]:,} after "
                        f"{last_progress[1]:.0f} s ({rate:,.0f} events/s)[/dim]"
                    )
            elif line.startswith("result "):
                result = json.loads(line[len("result ") :])
            if time.monotonic() >= deadline and result is None:
                console.print(f"[yellow]  {label}: stopped at the {cap:.0f} s cap[/yellow]")
                break
    finally:
        if process.poll() is None and result is None:
            process.kill()
        process.wait()
    if result is None:
        if process.returncode not in (0, -signal.SIGKILL):
            raise RuntimeError(f"{label} failed (exit {process.returncode})")
        position, elapsed = last_progress
        return Phase(label, position, max(elapsed, 1e-9), 0.0, 0.0, truncated=True)
    return Phase(
        label,
        int(result["events"]),
        float(result["seconds"]),
        result["rss_before_kb"] / 1024,
        result["peak_kb"] / 1024,
    )


def top_of_profile(path: str, count: int = 25) -> str:
    """The heaviest functions of a profile, by own time and by cumulative time."""
    out = io.StringIO()
    stats = pstats.Stats(path, stream=out)
    stats.strip_dirs().sort_stats("tottime").print_stats(count)
    stats.sort_stats("cumulative").print_stats(count)
    return out.getvalue()


# ================================================================ queries


@dataclass(frozen=True)
class QuerySample:
    train: str
    at: TimePoint


def query_samples(
    generated: Generated, count: int, rng: random.Random
) -> dict[str, list[QuerySample]]:
    """Random trains; random dates in each one's life (planned to its last event)."""
    lives = generated.lives
    samples: dict[str, list[QuerySample]] = {"current": [], "as_of": [], "known_at": []}
    for _ in range(count):
        life = rng.choice(lives)
        samples["current"].append(QuerySample(life.train_id, TimePoint()))
        life = rng.choice(lives)
        span = max((life.last_at - life.planned_at).total_seconds(), 7200.0)
        as_of = life.planned_at + timedelta(seconds=rng.uniform(3600, span))
        samples["as_of"].append(QuerySample(life.train_id, TimePoint(as_of=as_of)))
        life = rng.choice(lives)
        span = max((life.last_at - life.planned_at).total_seconds(), 7200.0)
        as_of = life.planned_at + timedelta(seconds=rng.uniform(3600, span))
        known_at = min(as_of + timedelta(days=rng.uniform(0.1, 30)), generated.end)
        samples["known_at"].append(QuerySample(life.train_id, TimePoint(as_of, known_at)))
    return samples


def check_consistency(queries: ProjectionQueries, generated: Generated, rng: random.Random) -> int:
    """Trains whose projected state equals their replay as of now (out of 5)."""
    now = TimePoint(as_of=datetime.now(UTC))
    trains = rng.sample([life.train_id for life in generated.lives], 5)
    return sum(queries.train(train) == queries.train(train, now) for train in trains)


def bench_queries(
    queries: ProjectionQueries,
    generated: Generated,
    count: int,
    rng: random.Random,
    *,
    current: bool,
) -> dict[str, Measurement]:
    """Current-state, as-of and as-of-as-known-at train queries, interleaved in blocks."""
    warm = query_samples(generated, QUERY_WARMUP, rng)
    samples = query_samples(generated, count, rng)
    kinds = ["current", "as_of", "known_at"] if current else ["as_of", "known_at"]
    labels = {
        "current": "query: train, current state",
        "as_of": "query: train as of a date",
        "known_at": "query: train as of, known at",
    }
    for kind in kinds:
        for sample in warm[kind]:
            queries.train(sample.train, sample.at)

    def operation(kind: str) -> Callable[[int], Any]:
        chosen = samples[kind]
        return lambda i: queries.train(chosen[i].train, chosen[i].at)

    benches = [Bench(labels[kind], operation(kind), count, QUERY_CAP_SECONDS) for kind in kinds]
    return dict(zip(kinds, run_interleaved(benches, QUERY_BLOCK), strict=True))


def profile_as_of(
    queries: ProjectionQueries, generated: Generated, rng: random.Random, path: str
) -> None:
    samples = query_samples(generated, 30, rng)["as_of"]
    profiler = cProfile.Profile()
    profiler.enable()
    for sample in samples:
        queries.train(sample.train, sample.at)
    profiler.disable()
    profiler.dump_stats(path)


# ================================================================ report


def report(
    generated: Generated,
    baselines: tuple[Phase, Phase],
    rebuilt: Phase,
    measured: dict[str, Measurement],
    traffic: dict[str, tuple[int, int, int]],
    context: dict[str, str],
    seconds: float,
) -> None:
    # The rebuild is compared with the mean of the baselines run before and after it, so
    # a change of load on this shared host during the run counts against both alike.
    baseline_rate = statistics.mean(phase.events_per_second for phase in baselines)

    def number(value: float | None, digits: int = 0) -> str:
        return "-" if value is None else f"{value:,.{digits}f}"

    table = Table(title="Release Ledger projections on PostgreSQL")
    for column in ("phase", "events/ops", "seconds", "events/s", "RSS MB", "p50 ms"):
        table.add_column(column, justify="left" if column == "phase" else "right")
    table.add_column("p95 ms", justify="right")
    table.add_column("ratio", justify="right")
    table.add_row(
        "setup: generate (not measured)",
        f"{generated.events:,}",
        number(generated.seconds, 1),
        number(generated.events / generated.seconds),
        "-",
        "-",
        "-",
        "-",
    )
    for phase in (baselines[0], rebuilt, baselines[1]):
        star = "*" if phase.truncated else ""
        ratio = f"{phase.events_per_second / baseline_rate:.2f}"
        table.add_row(
            phase.label,
            f"{phase.events:,}{star}",
            number(phase.seconds, 1),
            number(phase.events_per_second),
            f"{phase.rss_before_mb:,.0f} -> {phase.peak_mb:,.0f}" if phase.peak_mb else "-",
            "-",
            "-",
            ratio + (" x baseline" if phase is rebuilt else ""),
        )
    current = measured.get("current")
    for kind, row in measured.items():
        ratio = "-"
        p95 = row.percentile_ms(95)
        if kind != "current" and current is not None and p95 is not None:
            ratio = f"{p95 / (current.percentile_ms(95) or 1):.1f} x current p95"
        ops = f"{row.operations:,}" + (f" of {row.wanted:,}*" if row.truncated else "")
        table.add_row(
            row.label,
            ops,
            number(row.seconds, 1),
            "-",
            "-",
            number(row.percentile_ms(50), 1),
            number(p95, 1),
            ratio,
        )
    console.print(" · ".join(f"{key} {value}" for key, value in context.items()))
    console.print(table)
    lives = sorted(life.events for life in generated.lives)
    console.print(
        f"[dim]ledger: {generated.events:,} events from {generated.start:%Y-%m-%d} to "
        f"{generated.end:%Y-%m-%d}; trains {sum(generated.trains.values())} "
        f"({', '.join(f'{n} {kind}' for kind, n in sorted(generated.trains.items()))}); "
        f"features {generated.features:,}; QA runs {generated.qa_share:.0%} of events; "
        f"events per train median {lives[len(lives) // 2]:,}, "
        f"p95 {lives[int(len(lives) * 0.95)]:,}, max {lives[-1]:,}.\n"
        "baseline: event_log.read() + mapper.to_domain_event() of every event, before and "
        "after the rebuild; ratios are to their mean. rebuild: "
        "projections.runner.rebuild() of every projection. RSS MB: the child process's "
        "resident memory before the phase (interpreter, libraries, ledger open) -> its "
        "high-water mark. Queries: random trains, random dates in their lives, interleaved "
        "in blocks of 10. * stopped at the time cap.[/dim]"
    )

    def verdict(met: bool, text: str) -> None:
        mark = "[green]MET[/green]" if met else "[red]NOT MET[/red]"
        console.print(f"goal {text}: {mark}")

    written = sorted(traffic.items(), key=lambda item: -item[1][0])[:4]
    console.print(
        "[dim]rows the rebuild wrote (inserted / deleted / live): "
        + ", ".join(f"{name} {ins:,} / {dels:,} / {live:,}" for name, (ins, dels, live) in written)
        + "[/dim]"
    )
    ratio = rebuilt.events_per_second / baseline_rate
    verdict(
        ratio >= REBUILD_RATIO_GOAL and not rebuilt.truncated,
        f"rebuild >= {REBUILD_RATIO_GOAL} x baseline ({ratio:.2f})",
    )
    if rebuilt.peak_mb:
        verdict(
            rebuilt.peak_mb <= REBUILD_MEMORY_GOAL_MB,
            f"rebuild peak RSS <= {REBUILD_MEMORY_GOAL_MB:.0f} MB ({rebuilt.peak_mb:.0f} MB)",
        )
    for kind in ("as_of", "known_at"):
        row = measured[kind]
        p95 = row.percentile_ms(95) or 0.0
        verdict(
            p95 <= AS_OF_P95_GOAL_MS, f"{row.label} p95 <= {AS_OF_P95_GOAL_MS:.0f} ms ({p95:.1f})"
        )
        if current is not None:
            times = p95 / (current.percentile_ms(95) or 1)
            verdict(
                times <= AS_OF_RATIO_GOAL,
                f"{row.label} p95 <= {AS_OF_RATIO_GOAL:.0f} x current p95 ({times:.1f} x)",
            )
    console.print(f"[dim]total wall time {seconds:.0f} s[/dim]")


# ================================================================ main


def source_fingerprint() -> str:
    """A short hash of the code measured (every module of src/, migrations included)."""
    root = Path(__file__).resolve().parents[1]
    digest = hashlib.sha256()
    for file in sorted(root.glob("src/**/*.py")):
        digest.update(file.relative_to(root).as_posix().encode() + b"\0" + file.read_bytes())
    return digest.hexdigest()[:10]


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n\n", 1)[0])
    parser.add_argument(
        "--events",
        type=int,
        default=DEFAULT_EVENTS,
        help=f"events in the generated ledger (default {DEFAULT_EVENTS:,}; "
        f"{MIN_EVENTS:,} to {MAX_EVENTS:,}); 100000 makes a quick run",
    )
    parser.add_argument(
        "--queries",
        type=int,
        default=DEFAULT_QUERIES,
        help=f"measured queries of each kind (default {DEFAULT_QUERIES}, 10 to 2000)",
    )
    parser.add_argument("--seed", type=int, default=1, help="seed of the generated history")
    parser.add_argument(
        "--rebuild-seconds",
        type=float,
        default=REBUILD_CAP_SECONDS,
        help=f"time cap of the rebuild (default {REBUILD_CAP_SECONDS:.0f})",
    )
    parser.add_argument(
        "--verify",
        action="store_true",
        help="also run 'ledger verify' (the hash chains) over the generated log",
    )
    parser.add_argument(
        "--profile",
        metavar="DIR",
        help="profile the baseline, the rebuild and 30 as-of queries (cProfile) into DIR "
        "and print the heaviest functions; the timings are then not for the record",
    )
    parser.add_argument("--child", choices=("read", "rebuild"), help=argparse.SUPPRESS)
    parser.add_argument("--url", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if not MIN_EVENTS <= args.events <= MAX_EVENTS:
        parser.error(f"--events must be from {MIN_EVENTS:,} to {MAX_EVENTS:,}")
    if not 10 <= args.queries <= 2000:
        parser.error("--queries must be from 10 to 2000")
    if not 10 <= args.rebuild_seconds <= 3600:
        parser.error("--rebuild-seconds must be from 10 to 3600")
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    if args.child:
        return child(args.child, args.url, args.profile)
    return on_loopback_server(lambda admin_url: run(args, admin_url))


def run(args: argparse.Namespace, admin_url: str) -> int:
    # A SIGTERM unwinds like Ctrl-C, so the database is still dropped.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    removed = scrub_library_overrides()
    if removed:
        console.print(f"[yellow]ignoring library settings from the environment: {removed}")
    started = time.perf_counter()
    context = {
        "date": date.today().isoformat(),
        "python": platform.python_version(),
        "eventsourcing": version("eventsourcing"),
        "SQLAlchemy": version("sqlalchemy"),
        "PostgreSQL": server_version(admin_url).split()[0],
        "cores": str(os.cpu_count()),
        "events": f"{args.events:,}",
        "src": source_fingerprint(),
    }
    console.print(
        f"[bold]bench/projections.py[/bold]: a ledger of {args.events:,} events, "
        f"{args.queries} queries of each kind"
    )
    profile_dir = Path(args.profile) if args.profile else None
    if profile_dir is not None:
        profile_dir.mkdir(parents=True, exist_ok=True)
    rng = random.Random(args.seed)
    with fresh_databases(admin_url, ("projections",)) as urls:
        url = urls["projections"]
        with open_ledger(url) as ledger:
            console.print("[dim]0/3 setup: generating the ledger...[/dim]")
            generated = generate(ledger, args.events, args.seed)
            console.print(
                f"[dim]  generated {generated.events:,} events in {generated.seconds:.0f} s; "
                "VACUUM ANALYZE...[/dim]"
            )
            vacuum(url, ledger)
            if args.verify:
                verified = verify_events(ledger.event_log.read(), ledger.mapper)
                console.print(
                    f"[dim]  ledger verify: {verified.events:,} events in {verified.streams:,} "
                    f"streams, {'intact' if verified.ok else verified.broken}[/dim]"
                )
                if not verified.ok:
                    return 1
            engine = engine_for(Database.from_url(url))
            upgrade(engine)

            def profile_path(name: str) -> str | None:
                return str(profile_dir / f"{name}.prof") if profile_dir else None

            console.print("[dim]1/3 baseline: read and decode the whole log...[/dim]")
            before = run_child(
                "read", url, "baseline: read + decode", MAX_CHILD_SECONDS, profile_path("read")
            )
            console.print(f"[dim]  {before.events_per_second:,.0f} events/s; 2/3 rebuild...[/dim]")
            rebuilt = run_child(
                "rebuild", url, "rebuild: all projections", args.rebuild_seconds,
                profile_path("rebuild"),
            )  # fmt: skip
            console.print(
                f"[dim]  {rebuilt.events_per_second:,.0f} events/s; the baseline again...[/dim]"
            )
            after = run_child(
                "read", url, "baseline: read + decode (again)", MAX_CHILD_SECONDS,
                profile_path("read_again"),
            )  # fmt: skip
            traffic = row_traffic(url)
            console.print(f"[dim]  {after.events_per_second:,.0f} events/s; 3/3 queries...[/dim]")
            queries = ProjectionQueries(engine, ledger)
            if not rebuilt.truncated:
                same = check_consistency(queries, generated, rng)
                style = "dim" if same == 5 else "red"
                console.print(f"[{style}]  current state == replay as of now: {same}/5 trains")
            measured = bench_queries(
                queries, generated, args.queries, rng, current=not rebuilt.truncated
            )
            if profile_dir is not None:
                profile_as_of(queries, generated, rng, str(profile_dir / "as_of.prof"))
            sizes = table_sizes(url)
            engine.dispose()
    seconds = time.perf_counter() - started
    report(generated, (before, after), rebuilt, measured, traffic, context, seconds)
    big = sorted(sizes.items(), key=lambda item: -item[1])[:6]
    console.print(
        "[dim]on disk: "
        + ", ".join(f"{name} {size / 2**20:,.0f} MB" for name, size in big)
        + "[/dim]"
    )
    if profile_dir is not None:
        for name in ("read", "rebuild", "as_of"):
            path = profile_dir / f"{name}.prof"
            if path.exists():  # a rebuild stopped at its cap leaves no profile
                console.print(f"[bold]profile: {name}[/bold]")
                console.print(top_of_profile(str(path)), markup=False)
    return 0


if __name__ == "__main__":
    sys.exit(main())
