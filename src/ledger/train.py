"""The release train aggregate: gates, scope, QA, beta drops and support (SPEC §3)."""

from __future__ import annotations

from dataclasses import asdict, dataclass, replace
from datetime import date, datetime
from typing import Any
from uuid import UUID

from eventsourcing.domain import event

from ledger.aggregate import LedgerAggregate
from ledger.exceptions import GateCriteriaUnmet, InvalidCommand, NotFound, RuleViolation
from ledger.metadata import EventMeta
from ledger.values import (
    IN_SCOPE_STATUSES,
    PASSING_OUTCOMES,
    RELEASE_GATE,
    STATUS_AFTER_GATE,
    SUPPORT_ORDER,
    Classification,
    GateOutcome,
    QACycle,
    ScopeStatus,
    SupportStatus,
    TrainKind,
    TrainStatus,
    train_stream_id,
)

# The values a train holds are immutable and replaced on change, so copying a train
# (the event store's cache hands out copies) costs a few container copies, not a deep walk.
#
# State never depends on the order events were recorded in, only on when they occurred:
# a late event that occurred before a later-recorded one does not override it. So folding
# a stream in recorded order (commands, projections) and in occurred order (as-of
# queries) always gives the same train.


@dataclass(frozen=True)
class Slip:
    previous_date: date
    target_date: date
    reason: str | None
    occurred_at: datetime


@dataclass(frozen=True)
class GateState:
    gate: int
    scheduled_for: date | None = None
    scheduled_at: datetime | None = None
    slips: tuple[Slip, ...] = ()
    outcome: str | None = None
    conditions: str | None = None
    notes: str | None = None
    decided_at: datetime | None = None
    evidence: tuple[dict[str, Any], ...] = ()

    @property
    def passed(self) -> bool:
        return self.outcome in PASSING_OUTCOMES

    def slip_history(self) -> list[dict[str, Any]]:
        return [
            {"from": slip.previous_date, "to": slip.target_date, "reason": slip.reason}
            for slip in self.slips
        ]

    def as_dict(self) -> dict[str, Any]:
        # Written out: dataclasses.asdict deep-copies recursively, and every write's answer
        # and every projected event renders each gate.
        return {
            "gate": self.gate,
            "scheduled_for": self.scheduled_for,
            "slips": self.slip_history(),
            "outcome": self.outcome,
            "conditions": self.conditions,
            "notes": self.notes,
            "decided_at": self.decided_at,
            "evidence": list(self.evidence),
        }

    def rescheduled(self, target_date: date, at: datetime) -> GateState:
        """This gate with the target set at ``at``, unless a later-occurring one is known."""
        if self.scheduled_at is not None and at < self.scheduled_at:
            return self
        return replace(self, scheduled_for=target_date, scheduled_at=at)

    def decided(
        self,
        outcome: str,
        conditions: str | None,
        notes: str | None,
        evidence: tuple[dict[str, Any], ...],
        at: datetime,
    ) -> GateState:
        """This gate with a decision: a pass stands; otherwise the latest decision counts."""
        if self.passed or (
            outcome not in PASSING_OUTCOMES and self.decided_at is not None and at < self.decided_at
        ):
            return self
        return replace(
            self,
            outcome=outcome,
            conditions=conditions,
            notes=notes,
            decided_at=at,
            evidence=evidence,
        )


@dataclass(frozen=True)
class ScopeEntry:
    feature: str
    classification: str
    status: str
    moved_to: str | None = None
    since: datetime | None = None
    decided_at: datetime | None = None

    def with_status(self, status: str, at: datetime, moved_to: str | None = None) -> ScopeEntry:
        """This entry after a decision at ``at``, unless a later-occurring one is known."""
        if self.decided_at is not None and at < self.decided_at:
            return self
        return replace(self, status=status, decided_at=at, moved_to=moved_to)

    @property
    def in_scope(self) -> bool:
        return self.status in IN_SCOPE_STATUSES


@dataclass(frozen=True)
class QARun:
    cycle: str
    build: str
    total: int
    passed: int
    failed: int
    blocked: int
    occurred_at: datetime


@dataclass(frozen=True)
class BetaDrop:
    build: str
    customers: tuple[str, ...]
    features: tuple[str, ...]
    occurred_at: datetime

    def as_dict(self) -> dict[str, Any]:
        return {
            "build": self.build,
            "customers": list(self.customers),
            "features": list(self.features),
            "occurred_at": self.occurred_at,
        }


class Train(LedgerAggregate):
    """A release train, from planning through its gates to release and end of life."""

    @staticmethod
    def create_id(train_id: str) -> UUID:
        return train_stream_id(train_id)

    # ----------------------------------------------------------------- planning

    class Planned(LedgerAggregate.Created):
        train_id: str
        kind: str
        parent: str | None
        title: str | None

    @event(Planned)
    def __init__(
        self, train_id: str, kind: str, parent: str | None, title: str | None, meta: EventMeta
    ) -> None:
        self.train_id = train_id
        self.kind = kind
        self.parent = parent
        self.title = title
        self.planned_at = meta.occurred_at
        self.status: str = TrainStatus.PLANNING
        self.gates = {gate: GateState(gate) for gate in self.gates_for(kind)}
        self.scope: dict[str, ScopeEntry] = {}
        self.qa: dict[str, QARun] = {}
        self.beta_drops: list[BetaDrop] = []
        self.support: str | None = None
        self.eol_date: date | None = None
        self.support_at: datetime | None = None

    @staticmethod
    def gates_for(kind: str) -> tuple[int, ...]:
        """Majors pass all four gates; minors and hotfixes release through gate 4 alone."""
        return (1, 2, 3, 4) if kind == TrainKind.MAJOR else (RELEASE_GATE,)

    # -------------------------------------------------------------------- gates

    class GateScheduled(LedgerAggregate.Event):
        gate: int
        target_date: date
        reason: str | None

    class GateRescheduled(LedgerAggregate.Event):
        gate: int
        previous_date: date
        target_date: date
        reason: str | None

    class GateDecided(LedgerAggregate.Event):
        gate: int
        outcome: str
        conditions: str | None
        notes: str | None
        evidence: list[dict[str, Any]]

    def schedule_gate(
        self, gate: int, target_date: date, reason: str | None, meta: EventMeta
    ) -> None:
        self.check_occurred_after_planning(meta)
        state = self.gate(gate)
        self.check_gate_not_passed(state)
        if state.scheduled_for is None:
            self._schedule_gate(gate=gate, target_date=target_date, reason=reason, meta=meta)
        else:
            self.check_date_changes(state, target_date)
            self._reschedule_gate(
                gate=gate,
                previous_date=state.scheduled_for,
                target_date=target_date,
                reason=reason,
                meta=meta,
            )

    @event(GateScheduled)
    def _schedule_gate(
        self, gate: int, target_date: date, reason: str | None, meta: EventMeta
    ) -> None:
        self.gates[gate] = self.gates[gate].rescheduled(target_date, meta.occurred_at)

    @event(GateRescheduled)
    def _reschedule_gate(
        self,
        gate: int,
        previous_date: date,
        target_date: date,
        reason: str | None,
        meta: EventMeta,
    ) -> None:
        state = self.gates[gate]
        slip = Slip(previous_date, target_date, reason, meta.occurred_at)
        slips = tuple(sorted((*state.slips, slip), key=lambda known: known.occurred_at))
        self.gates[gate] = replace(state, slips=slips).rescheduled(target_date, meta.occurred_at)

    def decide_gate(
        self,
        gate: int,
        outcome: GateOutcome,
        conditions: str | None,
        notes: str | None,
        evidence: list[dict[str, Any]],
        meta: EventMeta,
    ) -> None:
        """Record a gate decision on the readiness ``evidence`` the caller evaluated.

        The evaluation spans aggregates (features' customers), so the application makes
        it; the train judges it: ``passed`` needs every criterion met.
        """
        self.check_occurred_after_planning(meta)
        state = self.gate(gate)
        self.check_gate_not_passed(state)
        if outcome in PASSING_OUTCOMES:
            self.check_previous_gate_passed(gate)
        if outcome == GateOutcome.CONDITIONAL and not (conditions and conditions.strip()):
            raise InvalidCommand("a conditional pass needs its conditions", field="conditions")
        if outcome == GateOutcome.PASSED:
            self.check_criteria_met(gate, evidence)
        self._decide_gate(
            gate=gate,
            outcome=str(outcome),
            conditions=conditions,
            notes=notes,
            evidence=evidence,
            meta=meta,
        )

    @event(GateDecided)
    def _decide_gate(
        self,
        gate: int,
        outcome: str,
        conditions: str | None,
        notes: str | None,
        evidence: list[dict[str, Any]],
        meta: EventMeta,
    ) -> None:
        self.gates[gate] = self.gates[gate].decided(
            outcome, conditions, notes, tuple(evidence), meta.occurred_at
        )
        if outcome in PASSING_OUTCOMES:
            passed = [g for g, state in self.gates.items() if state.passed]
            self.status = STATUS_AFTER_GATE[max(passed)]
            if gate == RELEASE_GATE:
                for entry in list(self.scope.values()):
                    if entry.in_scope:
                        self._set_scope_status(entry.feature, ScopeStatus.DELIVERED, meta)
                self._set_support(SupportStatus.SUPPORTED, None, meta)

    def gate(self, gate: int) -> GateState:
        """The state of one of this train's gates, or ``NotFound``."""
        if isinstance(gate, bool) or not isinstance(gate, int):
            raise InvalidCommand(f"gate is a number from 1 to 4, not {gate!r}", field="gate")
        try:
            return self.gates[gate]
        except KeyError:
            raise NotFound(
                f"train {self.train_id} ({self.kind}) has no gate {gate}; "
                f"its gates are {', '.join(map(str, self.gates))}"
            ) from None

    def passed(self, gate: int) -> bool:
        """Whether ``gate`` passed; a gate this kind of train skips counts as passed."""
        return gate not in self.gates or self.gates[gate].passed

    @property
    def is_released(self) -> bool:
        return self.status == TrainStatus.RELEASED

    def check_gate_not_passed(self, state: GateState) -> None:
        if state.passed:
            raise RuleViolation(
                f"gate {state.gate} of {self.train_id} already passed ({state.outcome})"
            )

    def check_previous_gate_passed(self, gate: int) -> None:
        earlier = [g for g in self.gates if g < gate and not self.gates[g].passed]
        if earlier:
            raise RuleViolation(
                f"gate {gate} of {self.train_id} cannot pass before gate {earlier[-1]} passed"
            )

    def check_criteria_met(self, gate: int, evidence: list[dict[str, Any]]) -> None:
        unmet = [criterion for criterion in evidence if not criterion["met"]]
        if unmet:
            raise GateCriteriaUnmet(
                f"gate {gate} of {self.train_id} cannot pass with unmet criteria; decide it "
                "'conditional' with the conditions instead",
                unmet,
            )

    def check_date_changes(self, state: GateState, target_date: date) -> None:
        if state.scheduled_for == target_date:
            raise RuleViolation(
                f"gate {state.gate} of {self.train_id} is already scheduled for {target_date}"
            )

    def check_occurred_after_planning(self, meta: EventMeta) -> None:
        if meta.occurred_at < self.planned_at:
            raise RuleViolation(
                f"an event of {self.train_id} cannot occur at {meta.occurred_at.isoformat()}, "
                f"before the train was planned ({self.planned_at.isoformat()})"
            )

    # -------------------------------------------------------------------- scope

    class ScopeProposed(LedgerAggregate.Event):
        feature: str
        classification: str

    class FeatureCommitted(LedgerAggregate.Event):
        feature: str
        reason: str | None
        requested_by: str | None

    class FeatureStretched(LedgerAggregate.Event):
        feature: str
        reason: str
        requested_by: str | None

    class FeatureDropped(LedgerAggregate.Event):
        feature: str
        reason: str
        requested_by: str | None

    class FeatureMovedOut(LedgerAggregate.Event):
        feature: str
        to_train: str
        reason: str
        requested_by: str | None

    class FeatureMovedIn(LedgerAggregate.Event):
        feature: str
        from_train: str
        classification: str
        status: str
        reason: str
        requested_by: str | None
        exception: bool

    class FeatureAdded(LedgerAggregate.Event):
        feature: str
        classification: str
        reason: str
        requested_by: str | None
        exception: bool

    def propose_scope(self, feature: str, classification: Classification, meta: EventMeta) -> None:
        self.check_occurred_after_planning(meta)
        self.check_scope_open()
        self.check_accepts_proposals()
        self.check_not_in_scope(feature)
        self._propose_scope(feature=feature, classification=str(classification), meta=meta)

    @event(ScopeProposed)
    def _propose_scope(self, feature: str, classification: str, meta: EventMeta) -> None:
        self.scope[feature] = ScopeEntry(
            feature, classification, ScopeStatus.PROPOSED, since=meta.occurred_at
        )

    def commit_feature(
        self, feature: str, reason: str | None, requested_by: str | None, meta: EventMeta
    ) -> None:
        self.check_decision(
            feature, meta, allowed_from={ScopeStatus.PROPOSED, ScopeStatus.STRETCHED}
        )
        self._commit_feature(feature=feature, reason=reason, requested_by=requested_by, meta=meta)

    @event(FeatureCommitted)
    def _commit_feature(
        self, feature: str, reason: str | None, requested_by: str | None, meta: EventMeta
    ) -> None:
        self._set_scope_status(feature, ScopeStatus.COMMITTED, meta)

    def stretch_feature(
        self, feature: str, reason: str, requested_by: str | None, meta: EventMeta
    ) -> None:
        self.check_decision(
            feature, meta, allowed_from={ScopeStatus.PROPOSED, ScopeStatus.COMMITTED}
        )
        self._stretch_feature(feature=feature, reason=reason, requested_by=requested_by, meta=meta)

    @event(FeatureStretched)
    def _stretch_feature(
        self, feature: str, reason: str, requested_by: str | None, meta: EventMeta
    ) -> None:
        self._set_scope_status(feature, ScopeStatus.STRETCHED, meta)

    def drop_feature(
        self, feature: str, reason: str, requested_by: str | None, meta: EventMeta
    ) -> None:
        self.check_decision(feature, meta, allowed_from=IN_SCOPE_STATUSES)
        self._drop_feature(feature=feature, reason=reason, requested_by=requested_by, meta=meta)

    @event(FeatureDropped)
    def _drop_feature(
        self, feature: str, reason: str, requested_by: str | None, meta: EventMeta
    ) -> None:
        self._set_scope_status(feature, ScopeStatus.DROPPED, meta)

    def move_feature_out(
        self, feature: str, to_train: str, reason: str, requested_by: str | None, meta: EventMeta
    ) -> None:
        self.check_decision(feature, meta, allowed_from=IN_SCOPE_STATUSES)
        self.check_latest_decision(feature, meta)
        if to_train == self.train_id:
            raise InvalidCommand(f"{feature} is already in {to_train}", field="to_train")
        self._move_feature_out(
            feature=feature, to_train=to_train, reason=reason, requested_by=requested_by, meta=meta
        )

    @event(FeatureMovedOut)
    def _move_feature_out(
        self, feature: str, to_train: str, reason: str, requested_by: str | None, meta: EventMeta
    ) -> None:
        self.scope[feature] = self.scope[feature].with_status(
            ScopeStatus.MOVED_OUT, meta.occurred_at, moved_to=to_train
        )

    def move_feature_in(
        self,
        feature: str,
        from_train: str,
        classification: str,
        reason: str,
        requested_by: str | None,
        exception: bool,
        meta: EventMeta,
    ) -> None:
        self.check_occurred_after_planning(meta)
        self.check_scope_open()
        self.check_exception_after_freeze(exception)
        self.check_not_in_scope(feature)
        # Before gate 1 a feature arrives as a proposal; afterwards it arrives committed.
        status = (
            ScopeStatus.COMMITTED if self.passed(1) and 1 in self.gates else ScopeStatus.PROPOSED
        )
        self._move_feature_in(
            feature=feature,
            from_train=from_train,
            classification=classification,
            status=str(status),
            reason=reason,
            requested_by=requested_by,
            exception=exception,
            meta=meta,
        )

    @event(FeatureMovedIn)
    def _move_feature_in(
        self,
        feature: str,
        from_train: str,
        classification: str,
        status: str,
        reason: str,
        requested_by: str | None,
        exception: bool,
        meta: EventMeta,
    ) -> None:
        self.scope[feature] = ScopeEntry(feature, classification, status, since=meta.occurred_at)

    def add_feature(
        self,
        feature: str,
        classification: Classification,
        reason: str,
        requested_by: str | None,
        exception: bool,
        meta: EventMeta,
    ) -> None:
        self.check_occurred_after_planning(meta)
        self.check_scope_open()
        self.check_accepts_additions()
        self.check_exception_after_freeze(exception)
        self.check_not_in_scope(feature)
        self._add_feature(
            feature=feature,
            classification=str(classification),
            reason=reason,
            requested_by=requested_by,
            exception=exception,
            meta=meta,
        )

    @event(FeatureAdded)
    def _add_feature(
        self,
        feature: str,
        classification: str,
        reason: str,
        requested_by: str | None,
        exception: bool,
        meta: EventMeta,
    ) -> None:
        self.scope[feature] = ScopeEntry(
            feature, classification, ScopeStatus.COMMITTED, since=meta.occurred_at
        )

    def _set_scope_status(self, feature: str, status: str, meta: EventMeta) -> None:
        self.scope[feature] = self.scope[feature].with_status(status, meta.occurred_at)

    def check_scope_open(self) -> None:
        if self.is_released:
            raise RuleViolation(f"train {self.train_id} is released; its scope is closed")

    def check_accepts_proposals(self) -> None:
        if 1 in self.gates and self.gates[1].passed:
            raise RuleViolation(
                f"gate 1 of {self.train_id} passed; new scope comes only through an 'add' decision"
            )

    def check_accepts_additions(self) -> None:
        if 1 in self.gates and not self.gates[1].passed:
            raise RuleViolation(
                f"gate 1 of {self.train_id} has not passed; propose scope instead of adding it"
            )

    def check_exception_after_freeze(self, exception: bool) -> None:
        if 3 in self.gates and self.gates[3].passed and not exception:
            raise RuleViolation(
                f"gate 3 of {self.train_id} passed (code freeze); a late addition needs "
                '"exception": true'
            )

    def check_not_in_scope(self, feature: str) -> None:
        entry = self.scope.get(feature)
        if entry is not None and entry.in_scope:
            raise RuleViolation(
                f"{feature} is already in scope of {self.train_id} ({entry.status})"
            )

    def check_in_scope(self, feature: str) -> ScopeEntry:
        entry = self.scope.get(feature)
        if entry is None or not entry.in_scope:
            state = "not in" if entry is None else f"{entry.status} from"
            raise RuleViolation(f"{feature} is {state} the scope of {self.train_id}")
        return entry

    def check_decision(
        self, feature: str, meta: EventMeta, allowed_from: frozenset[str] | set[ScopeStatus]
    ) -> None:
        self.check_occurred_after_planning(meta)
        self.check_scope_open()
        entry = self.check_in_scope(feature)
        if entry.since is not None and meta.occurred_at < entry.since:
            raise RuleViolation(
                f"{feature} joined {self.train_id} at {entry.since.isoformat()}; a decision "
                "about it cannot occur before that"
            )
        if entry.status not in allowed_from:
            raise RuleViolation(f"{feature} is already {entry.status} in {self.train_id}")

    def check_latest_decision(self, feature: str, meta: EventMeta) -> None:
        """A move changes two trains, so it cannot be history that a later decision here
        overrides: the source would keep the feature while the target gains it."""
        decided_at = self.scope[feature].decided_at
        if decided_at is not None and meta.occurred_at < decided_at:
            raise RuleViolation(
                f"{feature} was last decided in {self.train_id} at {decided_at.isoformat()}; "
                "a move out of it cannot occur before that"
            )

    # --------------------------------------------------------------- beta drops

    class BetaDropShipped(LedgerAggregate.Event):
        build: str
        customers: list[str]
        features: list[str]

    def ship_beta_drop(
        self, build: str, customers: list[str], features: list[str], meta: EventMeta
    ) -> None:
        self.check_occurred_after_planning(meta)
        self.check_beta_window()
        for feature in features:
            self.check_in_scope(feature)
        self._ship_beta_drop(build=build, customers=customers, features=features, meta=meta)

    @event(BetaDropShipped)
    def _ship_beta_drop(
        self, build: str, customers: list[str], features: list[str], meta: EventMeta
    ) -> None:
        drop = BetaDrop(build, tuple(customers), tuple(features), meta.occurred_at)
        self.beta_drops = sorted([*self.beta_drops, drop], key=lambda known: known.occurred_at)

    def check_beta_window(self) -> None:
        if self.is_released:
            raise RuleViolation(f"train {self.train_id} is released; beta drops are over")
        if 2 in self.gates and not self.gates[2].passed:
            raise RuleViolation(f"beta drops of {self.train_id} start after gate 2 passed")

    # ------------------------------------------------------------------ QA runs

    class QARunRecorded(LedgerAggregate.Event):
        """One QA cycle's results; version 2 added the ``blocked`` count."""

        class_version = 2

        cycle: str
        build: str
        total: int
        passed: int
        failed: int
        blocked: int

        @staticmethod
        def upcast_v1_v2(state: dict[str, Any]) -> None:
            # Summaries recorded before version 2 had no blocked count: none were reported.
            state["blocked"] = 0

        def apply(self, aggregate: Train) -> None:
            # Written out rather than an @event mutator: QA runs are ~98 % of a train's
            # stream, and the decorator's per-call keyword filtering was a fifth of the
            # cost of every replay and projection rebuild.
            run = QARun(
                self.cycle,
                self.build,
                self.total,
                self.passed,
                self.failed,
                self.blocked,
                self.meta.occurred_at,
            )
            latest = aggregate.qa.get(self.cycle)
            # A late summary of an older run does not replace the newer one.
            if latest is None or latest.occurred_at <= run.occurred_at:
                aggregate.qa[self.cycle] = run

    def record_qa_run(
        self,
        cycle: QACycle,
        build: str,
        total: int,
        passed: int,
        failed: int,
        blocked: int,
        meta: EventMeta,
    ) -> None:
        self.check_occurred_after_planning(meta)
        if self.is_released:
            raise RuleViolation(
                f"train {self.train_id} is released; record QA on a minor or hotfix"
            )
        if cycle == QACycle.PHASE2 and self.latest_qa(QACycle.PHASE1) is None:
            raise RuleViolation(
                f"phase 2 of {self.train_id} re-runs phase 1's failures: record phase 1 first"
            )
        self.trigger_event(
            self.QARunRecorded,
            cycle=str(cycle),
            build=build,
            total=total,
            passed=passed,
            failed=failed,
            blocked=blocked,
            meta=meta,
        )

    def latest_qa(self, cycle: QACycle) -> QARun | None:
        """The run that counts for a cycle: the one that occurred last."""
        return self.qa.get(cycle)

    # ------------------------------------------------------------------ support

    class SupportStatusChanged(LedgerAggregate.Event):
        status: str
        eol_date: date | None
        reason: str

    def change_support(
        self, status: SupportStatus, eol_date: date | None, reason: str, meta: EventMeta
    ) -> None:
        self.check_occurred_after_planning(meta)
        if not self.is_released:
            raise RuleViolation(
                f"train {self.train_id} is not released; it has no support status yet"
            )
        if status == SupportStatus.EOL and eol_date is None:
            raise InvalidCommand("end of life needs its eol_date", field="eol_date")
        current = SUPPORT_ORDER.index(SupportStatus(self.support or SupportStatus.SUPPORTED))
        if SUPPORT_ORDER.index(status) <= current:
            raise RuleViolation(
                f"support of {self.train_id} is {self.support}; it only moves forward "
                f"({' → '.join(SUPPORT_ORDER)})"
            )
        self._change_support(status=str(status), eol_date=eol_date, reason=reason, meta=meta)

    @event(SupportStatusChanged)
    def _change_support(
        self, status: str, eol_date: date | None, reason: str, meta: EventMeta
    ) -> None:
        self._set_support(status, eol_date, meta)

    def _set_support(self, status: str, eol_date: date | None, meta: EventMeta) -> None:
        if self.support_at is None or meta.occurred_at >= self.support_at:
            self.support = status
            self.eol_date = eol_date
            self.support_at = meta.occurred_at

    # ------------------------------------------------------------------ reading

    def as_dict(self) -> dict[str, Any]:
        """The train's current state as plain values."""
        return {
            "train": self.train_id,
            "kind": self.kind,
            "parent": self.parent,
            "title": self.title,
            "status": self.status,
            "planned_at": self.planned_at,
            "support": self.support,
            "eol_date": self.eol_date,
            "gates": [state.as_dict() for state in self.gates.values()],
            "scope": [asdict(entry) for entry in self.scope.values()],
            "qa": {cycle: asdict(run) for cycle, run in self.qa.items()},
            "beta_drops": [drop.as_dict() for drop in self.beta_drops],
            "version": self.version,
        }
