"""The application service: one method per command of SPEC §5.

Every command reads load → act → save: it loads the aggregates it touches, lets their
guards accept or refuse it, and saves every resulting event in one atomic write. A
version conflict (another writer got there first) re-runs the whole command on fresh
state, so a command is always validated against the state it is recorded on.
"""

from __future__ import annotations

import math
import random
import re
import time
import uuid
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from functools import cached_property
from typing import Any, ClassVar, Self, cast
from uuid import UUID

from eventsourcing.application import AggregateNotFoundError, Application
from eventsourcing.persistence import IntegrityError, JSONTranscoder
from eventsourcing.utils import EnvType

from ledger.aggregate import LedgerAggregate
from ledger.config import APPLICATION_NAME, Database, Settings
from ledger.event_log import EventLog
from ledger.exceptions import (
    ConcurrencyConflict,
    InvalidCommand,
    LedgerError,
    NotFound,
    RuleViolation,
)
from ledger.feature import Feature
from ledger.metadata import EventMeta, Source
from ledger.readiness import Criterion, QAFact, ReadinessPolicy, ScopeFact, TrainFacts
from ledger.source_reference import SourceReference
from ledger.train import Train
from ledger.transcodings import register_ledger_transcodings
from ledger.values import (
    ACTIONS_NEEDING_REASON,
    CONTROL_CHARACTER_RANGES,
    MAX_CUSTOMER_WEIGHT,
    MAX_TEXT,
    PROSE_CONTROL_CHARACTER_RANGES,
    RELEASE_GATE,
    Classification,
    DecisionAction,
    GateOutcome,
    QACycle,
    SupportStatus,
    TrainKind,
    check_calendar_date,
    check_feature_key,
    check_train_id,
    feature_stream_id,
    parse_enum,
    source_reference_stream_id,
    train_stream_id,
)

FUTURE_TOLERANCE = timedelta(minutes=5)
CONTROL_CHARACTERS = re.compile(f"[{CONTROL_CHARACTER_RANGES}]")
PROSE_CONTROL_CHARACTERS = re.compile(f"[{PROSE_CONTROL_CHARACTER_RANGES}]")
MAX_COUNT = 100_000_000


def utc_now() -> datetime:
    return datetime.now(UTC)


@dataclass(frozen=True)
class CommandContext:
    """Who is recording a command, through which door, and when it happened."""

    recorded_by: str = "local"
    source: Source = Source.API
    source_ref: str | None = None
    correlation_id: str | None = None
    occurred_at: datetime | None = None


@dataclass(frozen=True)
class RecordedEvent:
    """One event a command recorded, with its position in the global log."""

    position: int
    type: str
    stream: UUID
    version: int
    recorded_at: datetime
    occurred_at: datetime

    def as_dict(self) -> dict[str, Any]:
        return {
            "position": self.position,
            "type": self.type,
            "stream": str(self.stream),
            "version": self.version,
            "recorded_at": self.recorded_at,
            "occurred_at": self.occurred_at,
        }


@dataclass(frozen=True)
class CommandResult:
    """What a command recorded and the state it left; ``replayed`` for a known source_ref."""

    events: tuple[RecordedEvent, ...]
    subject: LedgerAggregate = field(repr=False, compare=False)
    replayed: bool = False

    @cached_property
    def state(self) -> dict[str, Any]:
        """The subject's state after the command, as plain values (built when asked)."""
        state: dict[str, Any] = self.subject.as_dict()  # type: ignore[attr-defined]
        return state

    @property
    def last_position(self) -> int:
        return max((event.position for event in self.events), default=0)


@dataclass(frozen=True)
class CustomerAsk:
    """A customer's demand for a feature, as a command states it."""

    name: str
    weight: float
    note: str | None = None


@dataclass
class _Attempt:
    """One try of a command: what it loads to change, and what it changed.

    A first try trusts the aggregate cache (a stale copy shows up as a version conflict
    on save, or is re-judged on fresh state before a refusal is final); later tries
    read every stream up to date. The first aggregate touched is the answer's subject.
    """

    ledger: ReleaseLedger
    fresh: bool
    aggregates: list[LedgerAggregate] = field(default_factory=list)

    def train(self, train: str) -> Train:
        return self.ledger._train(train, fresh=self.fresh)

    def feature(self, key: str) -> Feature:
        return self.ledger._feature(key, fresh=self.fresh)

    def touch(self, *aggregates: LedgerAggregate) -> None:
        for aggregate in aggregates:
            if all(aggregate is not known for known in self.aggregates):
                self.aggregates.append(aggregate)


class ReleaseLedger(Application[UUID]):
    """Records release trains, their gates, scope decisions, QA and support as events."""

    name = APPLICATION_NAME
    MAX_ATTEMPTS: ClassVar[int] = 10

    def __init__(
        self,
        env: EnvType | None = None,
        *,
        policy: ReadinessPolicy | None = None,
        clock: Callable[[], datetime] = utc_now,
    ) -> None:
        super().__init__(env)
        self.policy = policy or ReadinessPolicy()
        self.clock = clock
        self.event_log = EventLog.for_recorder(self.recorder)
        self.event_log.prepare()

    @classmethod
    def from_settings(cls, settings: Settings | None = None, **kwargs: Any) -> Self:
        """A ledger on the database and policy the settings name."""
        settings = settings or Settings()
        database = Database.from_url(settings.database_url)
        env = dict(database.env)
        if settings.aggregate_cache_size:
            env["AGGREGATE_CACHE_MAXSIZE"] = str(settings.aggregate_cache_size)
            # Commands do not re-read cached streams before acting: the version check on
            # save catches a stale copy, and _execute then retries on fresh state.
            env["AGGREGATE_CACHE_FASTFORWARD"] = "n"
        return cls(env, policy=ReadinessPolicy(qa_target=settings.qa_target), **kwargs)

    def register_transcodings(self, transcoder: JSONTranscoder) -> None:
        super().register_transcodings(transcoder)
        register_ledger_transcodings(transcoder)

    # =================================================================== trains

    def plan_train(
        self,
        train: str,
        kind: str,
        actor: str,
        *,
        parent: str | None = None,
        title: str | None = None,
        context: CommandContext = CommandContext(),
    ) -> CommandResult:
        check_train_id(train)
        train_kind = parse_enum(TrainKind, kind, field="kind")
        title = _optional_text(title, "title")
        if train_kind == TrainKind.MAJOR and parent is not None:
            raise InvalidCommand("a major train has no parent", field="parent")
        if train_kind != TrainKind.MAJOR:
            if parent is None:
                raise InvalidCommand(f"a {train_kind} train names its parent major", field="parent")
            check_train_id(parent, field="parent")

        def act(attempt: _Attempt, meta: EventMeta) -> None:
            if self._exists(train_stream_id(train)):
                raise RuleViolation(f"train {train} is already planned")
            if parent is not None:
                parent_train = self._train(parent)
                if parent_train.kind != TrainKind.MAJOR:
                    raise RuleViolation(f"parent {parent} is a {parent_train.kind}, not a major")
            attempt.touch(
                Train(train_id=train, kind=str(train_kind), parent=parent, title=title, meta=meta)
            )

        return self._execute("plan_train", f"train:{train}", actor, context, act)

    def schedule_gate(
        self,
        train: str,
        gate: int,
        target_date: date,
        actor: str,
        *,
        reason: str | None = None,
        context: CommandContext = CommandContext(),
    ) -> CommandResult:
        check_calendar_date(target_date, "date")
        reason = _optional_text(reason, "reason", multiline=True)

        def act(attempt: _Attempt, meta: EventMeta) -> None:
            subject = attempt.train(train)
            subject.schedule_gate(gate, target_date, reason, meta)
            attempt.touch(subject)

        return self._execute("schedule_gate", f"train:{train}", actor, context, act)

    def decide_gate(
        self,
        train: str,
        gate: int,
        outcome: str,
        actor: str,
        *,
        conditions: str | None = None,
        notes: str | None = None,
        context: CommandContext = CommandContext(),
    ) -> CommandResult:
        gate_outcome = parse_enum(GateOutcome, outcome, field="outcome")
        conditions = _optional_text(conditions, "conditions", multiline=True)
        notes = _optional_text(notes, "notes", multiline=True)

        def act(attempt: _Attempt, meta: EventMeta) -> None:
            subject = attempt.train(train)
            subject.gate(gate)
            criteria = self.policy.evaluate(gate, self._facts(subject))
            in_scope = [entry.feature for entry in subject.scope.values() if entry.in_scope]
            subject.decide_gate(
                gate,
                gate_outcome,
                conditions,
                notes,
                [criterion.as_dict() for criterion in criteria],
                meta,
            )
            attempt.touch(subject)
            if gate == RELEASE_GATE and subject.is_released:
                for key in in_scope:
                    feature = attempt.feature(key)
                    feature.deliver_in(train, meta)
                    attempt.touch(feature)

        return self._execute("decide_gate", f"train:{train}", actor, context, act)

    def readiness(self, train: str, gate: int) -> list[Criterion]:
        """The exit criteria of one gate as the train stands now."""
        subject = self._train(train)
        subject.gate(gate)
        return self.policy.evaluate(gate, self._facts(subject))

    # ==================================================================== scope

    def propose_scope(
        self,
        train: str,
        feature: str,
        classification: str,
        actor: str,
        *,
        title: str | None = None,
        customers: Sequence[CustomerAsk] = (),
        context: CommandContext = CommandContext(),
    ) -> CommandResult:
        check_feature_key(feature)
        kind = parse_enum(Classification, classification, field="classification")
        title = _optional_text(title, "title")
        asks = _check_customers(customers)

        def act(attempt: _Attempt, meta: EventMeta) -> None:
            subject = attempt.train(train)
            subject.propose_scope(feature, kind, meta)
            item = self._feature_joining(attempt, subject.train_id, feature, title, meta)
            item.propose_for(train, str(kind), meta)
            for ask in asks:
                item.record_customer_demand(ask.name, ask.weight, ask.note, meta)
            attempt.touch(subject, item)

        return self._execute("propose_scope", f"train:{train}", actor, context, act)

    def decide(
        self,
        train: str,
        feature: str,
        action: str,
        actor: str,
        *,
        reason: str | None = None,
        to_train: str | None = None,
        requested_by: str | None = None,
        exception: bool = False,
        classification: str | None = None,
        title: str | None = None,
        customers: Sequence[CustomerAsk] = (),
        context: CommandContext = CommandContext(),
    ) -> CommandResult:
        """A change-management decision: commit, stretch, drop, move or add."""
        check_feature_key(feature)
        decision = parse_enum(DecisionAction, action, field="action")
        reason = _optional_text(reason, "reason", multiline=True)
        requested_by = _optional_text(requested_by, "requested_by")
        if decision in ACTIONS_NEEDING_REASON and reason is None:
            raise InvalidCommand(f"a '{decision}' decision needs a reason", field="reason")
        if decision == DecisionAction.MOVE:
            if to_train is None:
                raise InvalidCommand("a 'move' decision names its to_train", field="to_train")
            check_train_id(to_train, field="to_train")
        elif to_train is not None:
            raise InvalidCommand(
                f"only a 'move' names a to_train, not '{decision}'", field="to_train"
            )
        if not isinstance(exception, bool):
            raise InvalidCommand("exception is true or false", field="exception")
        added_as = parse_enum(
            Classification, classification or Classification.COMMITTED, field="classification"
        )
        asks = _check_customers(customers)

        def act(attempt: _Attempt, meta: EventMeta) -> None:
            if decision == DecisionAction.ADD:
                assert reason is not None
                subject = attempt.train(train)
                subject.add_feature(feature, added_as, reason, requested_by, exception, meta)
                item = self._feature_joining(attempt, train, feature, title, meta)
                item.add_to(train, str(added_as), reason, requested_by, exception, meta)
                for ask in asks:
                    item.record_customer_demand(ask.name, ask.weight, ask.note, meta)
                attempt.touch(subject, item)
                return
            # An unknown feature is not found, whatever the train says about it.
            item = attempt.feature(feature)
            subject = attempt.train(train)
            attempt.touch(subject)
            if decision == DecisionAction.MOVE:
                assert reason is not None
                assert to_train is not None
                subject.move_feature_out(feature, to_train, reason, requested_by, meta)
                target = attempt.train(to_train)
                classification_there = subject.scope[feature].classification
                target.move_feature_in(
                    feature, train, classification_there, reason, requested_by, exception, meta
                )
                attempt.touch(target)
                status_there = target.scope[feature].status
                item.move(train, to_train, status_there, reason, requested_by, meta)
            elif decision == DecisionAction.COMMIT:
                subject.commit_feature(feature, reason, requested_by, meta)
                item.commit_to(train, reason, requested_by, meta)
            elif decision == DecisionAction.STRETCH:
                assert reason is not None
                subject.stretch_feature(feature, reason, requested_by, meta)
                item.stretch_in(train, reason, requested_by, meta)
            else:
                assert reason is not None
                subject.drop_feature(feature, reason, requested_by, meta)
                item.drop_from(train, reason, requested_by, meta)
            attempt.touch(item)

        return self._execute(f"decide_{decision}", f"train:{train}", actor, context, act)

    # ======================================================= beta, QA, support

    def ship_beta_drop(
        self,
        train: str,
        build: str,
        customers: Sequence[str],
        features: Sequence[str],
        actor: str,
        *,
        context: CommandContext = CommandContext(),
    ) -> CommandResult:
        build = _required_text(build, "build")
        names = _distinct_texts(customers, "customers")
        keys = _distinct_texts(features, "features")
        for key in keys:
            check_feature_key(key, field="features")

        def act(attempt: _Attempt, meta: EventMeta) -> None:
            subject = attempt.train(train)
            subject.ship_beta_drop(build, names, keys, meta)
            attempt.touch(subject)

        return self._execute("ship_beta_drop", f"train:{train}", actor, context, act)

    def record_qa_run(
        self,
        train: str,
        cycle: str,
        build: str,
        total: int,
        passed: int,
        failed: int,
        actor: str,
        *,
        blocked: int = 0,
        context: CommandContext = CommandContext(),
    ) -> CommandResult:
        qa_cycle = parse_enum(QACycle, cycle, field="cycle")
        build = _required_text(build, "build")
        counts = {"total": total, "passed": passed, "failed": failed, "blocked": blocked}
        for name, count in counts.items():
            if not isinstance(count, int) or isinstance(count, bool) or not 0 <= count <= MAX_COUNT:
                raise InvalidCommand(
                    f"{name} must be a whole number from 0 to {MAX_COUNT}", field=name
                )
        if total == 0:
            raise InvalidCommand("a QA run has at least one test", field="total")
        if passed + failed + blocked > total:
            raise InvalidCommand(
                f"passed + failed + blocked ({passed + failed + blocked}) exceeds total ({total})",
                field="total",
            )

        def act(attempt: _Attempt, meta: EventMeta) -> None:
            subject = attempt.train(train)
            subject.record_qa_run(qa_cycle, build, total, passed, failed, blocked, meta)
            attempt.touch(subject)

        return self._execute("record_qa_run", f"train:{train}", actor, context, act)

    def change_support(
        self,
        train: str,
        status: str,
        actor: str,
        reason: str,
        *,
        eol_date: date | None = None,
        context: CommandContext = CommandContext(),
    ) -> CommandResult:
        support = parse_enum(SupportStatus, status, field="status")
        reason = _required_text(reason, "reason", multiline=True)
        if eol_date is not None:
            check_calendar_date(eol_date, "eol_date")

        def act(attempt: _Attempt, meta: EventMeta) -> None:
            subject = attempt.train(train)
            subject.change_support(support, eol_date, reason, meta)
            attempt.touch(subject)

        return self._execute("change_support", f"train:{train}", actor, context, act)

    # ================================================================ features

    def record_customer_demand(
        self,
        feature: str,
        customer: str,
        weight: float,
        actor: str,
        *,
        note: str | None = None,
        context: CommandContext = CommandContext(),
    ) -> CommandResult:
        check_feature_key(feature)
        (ask,) = _check_customers([CustomerAsk(customer, weight, note)])

        def act(attempt: _Attempt, meta: EventMeta) -> None:
            item = attempt.feature(feature)
            item.record_customer_demand(ask.name, ask.weight, ask.note, meta)
            attempt.touch(item)

        return self._execute("record_customer_demand", f"feature:{feature}", actor, context, act)

    def deliver_milestone(
        self,
        feature: str,
        train: str,
        milestone: str,
        actor: str,
        *,
        note: str | None = None,
        context: CommandContext = CommandContext(),
    ) -> CommandResult:
        check_feature_key(feature)
        check_train_id(train)
        milestone = _required_text(milestone, "milestone")
        note = _optional_text(note, "note", multiline=True)

        def act(attempt: _Attempt, meta: EventMeta) -> None:
            self._train(train).check_occurred_after_planning(meta)
            item = attempt.feature(feature)
            item.deliver_milestone(train, milestone, note, meta)
            attempt.touch(item)

        return self._execute("deliver_milestone", f"feature:{feature}", actor, context, act)

    # ================================================================= queries

    def train(self, train: str) -> dict[str, Any]:
        """One train's current state."""
        return self._train(train).as_dict()

    def feature(self, key: str) -> dict[str, Any]:
        """One feature's current state."""
        return self._feature(key).as_dict()

    def gates_passed(self, train: str) -> frozenset[int]:
        """The gates of ``train`` passed so far (``passed`` or ``conditional``)."""
        return frozenset(gate for gate, state in self._train(train).gates.items() if state.passed)

    def recorded(self, source_ref: str) -> bool:
        """Whether a command with this ``source_ref`` has been recorded."""
        return self._exists(source_reference_stream_id(source_ref))

    def is_planned(self, train: str) -> bool:
        """Whether ``train`` is a train id that has been planned."""
        check_train_id(train)
        return self._exists(train_stream_id(train))

    # =============================================================== machinery

    def _execute(
        self,
        command: str,
        subject: str,
        actor: str,
        context: CommandContext,
        act: Callable[[_Attempt, EventMeta], None],
    ) -> CommandResult:
        source_ref = context.source_ref
        for attempt_number in range(self.MAX_ATTEMPTS):
            # "Now" is read afresh on every try: a retried command occurs after the rival
            # it lost to, so recorded order and occurred order agree.
            meta = self._meta(actor, context)
            attempt = _Attempt(self, fresh=attempt_number > 0)
            try:
                act(attempt, meta)
            except LedgerError:
                # A retried integration command is answered from the log, even when
                # the state it created would now refuse it.
                if source_ref is not None and (earlier := self._earlier_result(source_ref)):
                    return earlier
                if not attempt.fresh:
                    continue  # a refusal counts only when judged on fresh state
                raise
            if context.occurred_at is None and self._overtaken(attempt, meta):
                continue
            to_save: list[LedgerAggregate] = list(attempt.aggregates)
            if source_ref is not None:
                to_save.append(self._claim(source_ref, command, subject, attempt, meta))
            try:
                recordings = self.save(*to_save)
            except IntegrityError:
                if source_ref is not None and (earlier := self._earlier_result(source_ref)):
                    return earlier
                # Someone else wrote these streams first: back off (jittered, so rivals
                # spread out), then redo the command on fresh state.
                time.sleep(min(0.2, 0.005 * 2**attempt_number) * random.uniform(0.5, 1.5))
                continue
            events = tuple(
                _recorded(recording.notification.id, recording.domain_event)
                for recording in recordings
                if not isinstance(recording.domain_event, SourceReference.Event)
            )
            return CommandResult(events, attempt.aggregates[0])
        raise ConcurrencyConflict(
            f"{command} on {subject} kept conflicting with other writers; try again"
        )

    def _overtaken(self, attempt: _Attempt, meta: EventMeta) -> bool:
        """Whether a rival recorded, between this try's clock reading and its loads, an
        event that occurred after that reading: this try's "now" is then stale, and a
        decision stamped with it would be history a recorded one overrides. Events stamped
        in the future (a client may, by up to five minutes) do not count."""
        now = self.clock()
        return any(
            aggregate.latest_occurred_at is not None
            and meta.occurred_at < aggregate.latest_occurred_at <= now
            for aggregate in attempt.aggregates
        )

    @staticmethod
    def _claim(
        source_ref: str, command: str, subject: str, attempt: _Attempt, meta: EventMeta
    ) -> SourceReference:
        """The claim on ``source_ref``, naming the events this attempt is about to record."""
        pending = [event for aggregate in attempt.aggregates for event in aggregate.pending_events]
        return SourceReference(
            source_ref=source_ref,
            command=command,
            subject=subject,
            recorded=[
                {"stream": str(event.originator_id), "version": event.originator_version}
                for event in pending
            ],
            meta=meta,
        )

    def _earlier_result(self, source_ref: str) -> CommandResult | None:
        try:
            claim: SourceReference = self.repository.get(source_reference_stream_id(source_ref))
        except AggregateNotFoundError:
            return None
        refs = [(UUID(item["stream"]), int(item["version"])) for item in claim.recorded]
        positions = self.event_log.positions(refs)
        events = []
        for stream, version in refs:
            (domain_event,) = self.events.get(stream, gt=version - 1, lte=version)
            events.append(_recorded(positions.get((stream, version), 0), domain_event))
        kind, _, name = claim.subject.partition(":")
        subject = self._train(name) if kind == "train" else self._feature(name)
        return CommandResult(tuple(events), subject, replayed=True)

    def _meta(self, actor: str, context: CommandContext) -> EventMeta:
        now = self.clock()
        occurred_at = context.occurred_at or now
        if occurred_at.tzinfo is None or occurred_at.utcoffset() is None:
            raise InvalidCommand("occurred_at needs a UTC offset", field="occurred_at")
        if occurred_at > now + FUTURE_TOLERANCE:
            raise InvalidCommand(
                f"occurred_at {occurred_at.isoformat()} is more than 5 minutes in the future",
                field="occurred_at",
            )
        return EventMeta(
            actor=_required_text(actor, "actor"),
            recorded_by=_required_text(context.recorded_by, "recorded_by"),
            source=str(context.source),
            source_ref=_optional_text(context.source_ref, "source_ref"),
            correlation_id=context.correlation_id or uuid.uuid4().hex,
            occurred_at=occurred_at,
        )

    def _exists(self, stream: UUID) -> bool:
        return bool(self.recorder.select_events(stream, limit=1))

    def _train(self, train: str, *, fresh: bool = True) -> Train:
        check_train_id(train)
        try:
            subject: Train = self._load(train_stream_id(train), fresh)
        except AggregateNotFoundError:
            raise NotFound(f"train {train} is not planned") from None
        return subject

    def _feature(self, key: str, *, fresh: bool = True) -> Feature:
        check_feature_key(key)
        try:
            item: Feature = self._load(feature_stream_id(key), fresh)
        except AggregateNotFoundError:
            raise NotFound(f"feature {key} is unknown") from None
        return item

    def _load(self, stream: UUID, fresh: bool) -> Any:
        """A copy of the aggregate; ``fresh`` applies what others recorded since it was cached."""
        aggregate: LedgerAggregate = self.repository.get(stream)
        if fresh and self.repository.cache is not None:
            for event in self.events.get(stream, gt=aggregate.version):
                cast(LedgerAggregate.Event, event).mutate(aggregate)
        return aggregate

    def _feature_joining(
        self, attempt: _Attempt, train: str, key: str, title: str | None, meta: EventMeta
    ) -> Feature:
        """The feature about to join ``train``: registered if new, else free to join."""
        try:
            item = attempt.feature(key)
        except NotFound:
            return Feature(key=key, title=title or key, owner=None, architect=None, meta=meta)
        if item.in_scope and item.train is not None and item.train != train:
            item.check_free_for(train, not self._train(item.train).is_released)
        return item

    def _facts(self, subject: Train) -> TrainFacts:
        """What the readiness policy needs to know about a train, read from the streams."""
        scope = []
        for entry in subject.scope.values():
            customers: tuple[str, ...] = ()
            if entry.in_scope and entry.classification == Classification.ANCHOR:
                customers = tuple(self._feature(entry.feature).customers)
            scope.append(ScopeFact(entry.feature, entry.classification, entry.status, customers))
        beta: dict[str, set[str]] = {}
        for drop in subject.beta_drops:
            for key in drop.features:
                beta.setdefault(key, set()).update(drop.customers)
        qa = {
            str(cycle): QAFact(run.total, run.passed)
            for cycle in QACycle
            if (run := subject.latest_qa(cycle)) is not None
        }
        return TrainFacts(
            train=subject.train_id,
            kind=subject.kind,
            gates_passed=frozenset(g for g, state in subject.gates.items() if state.passed),
            scope=tuple(scope),
            qa=qa,
            beta_customers={key: tuple(sorted(names)) for key, names in beta.items()},
        )


def _recorded(position: int, domain_event: Any) -> RecordedEvent:
    return RecordedEvent(
        position=position,
        type=type(domain_event).__name__,
        stream=domain_event.originator_id,
        version=domain_event.originator_version,
        recorded_at=domain_event.timestamp,
        occurred_at=domain_event.meta.occurred_at,
    )


def _required_text(value: str, field: str, *, multiline: bool = False) -> str:
    text = _optional_text(value, field, multiline=multiline)
    if text is None:
        raise InvalidCommand(f"{field} is required", field=field)
    return text


def _optional_text(value: str | None, field: str, *, multiline: bool = False) -> str | None:
    """Text as given, trimmed; a name is one line, prose (``multiline``) may have line
    breaks and tabs. No other control character, C0, DEL or C1, is ever taken: it would
    be invisible on the board and could not be searched for."""
    if value is None:
        return None
    if not isinstance(value, str):
        raise InvalidCommand(f"{field} must be text", field=field)
    text = value.strip()
    if len(text) > MAX_TEXT:
        raise InvalidCommand(f"{field} is longer than {MAX_TEXT} characters", field=field)
    if (PROSE_CONTROL_CHARACTERS if multiline else CONTROL_CHARACTERS).search(text):
        kind = "control characters" if multiline else "control characters or line breaks"
        raise InvalidCommand(f"{field} contains {kind}", field=field)
    return text or None


def _distinct_texts(values: Iterable[str], field: str) -> list[str]:
    if isinstance(values, str):
        raise InvalidCommand(f"{field} is a list of names, not one text", field=field)
    texts = list(dict.fromkeys(_required_text(value, field) for value in values))
    if not texts:
        raise InvalidCommand(f"{field} names at least one", field=field)
    return texts


def _check_customers(customers: Iterable[CustomerAsk]) -> list[CustomerAsk]:
    asks = []
    for ask in customers:
        name = _required_text(ask.name, "customers.name")
        weight = ask.weight
        if (
            isinstance(weight, bool)
            or not isinstance(weight, int | float)
            or not math.isfinite(weight)
            or not 0 < weight <= MAX_CUSTOMER_WEIGHT
        ):
            raise InvalidCommand(
                f"a customer's weight is a positive number up to {MAX_CUSTOMER_WEIGHT:,}",
                field="customers.weight",
            )
        asks.append(
            CustomerAsk(
                name, float(weight), _optional_text(ask.note, "customers.note", multiline=True)
            )
        )
    return asks
