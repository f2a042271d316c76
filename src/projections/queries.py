"""Reading the projections: current state from rows, past states by replaying streams.

``as_of`` is valid time: the events that occurred by then, folded in ``occurred_at``
order, according to all we know now. ``known_at`` is transaction time: only the events
recorded by then. Both together answer "what did we believe on Nov 8 about Nov 1".
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import date, datetime
from functools import cache
from typing import Any
from uuid import UUID

from sqlalchemy import (
    BindParameter,
    CompoundSelect,
    Connection,
    Engine,
    Select,
    Table,
    and_,
    bindparam,
    func,
    or_,
    select,
    union_all,
)

from ledger.aggregate import LedgerAggregate
from ledger.application import ReleaseLedger
from ledger.event_log import BULK_TOPICS
from ledger.exceptions import InvalidCommand, NotFound
from ledger.readiness import Criterion, QAFact, ReadinessPolicy, ScopeFact, TrainFacts
from ledger.train import QARun, Train
from ledger.values import (
    IN_SCOPE_STATUSES,
    Classification,
    QACycle,
    check_feature_key,
    check_train_id,
    feature_stream_id,
    train_stream_id,
)
from projections import tables
from projections.documents import (
    FeatureDocument,
    TrainDocument,
    feature_document,
    gate_document,
    qa_document,
    train_document,
)
from projections.watch import ChangeWatch

TRAIN_CACHE_SIZE = 256
"""Current train documents kept per ``ProjectionQueries``: one entry per train."""
AUDIT_PAGE_DEFAULT = 100
AUDIT_PAGE_MAX = 1000
LATE_AFTER_SECONDS = 3600.0
"""An event recorded more than an hour after it occurred is shown as late."""


@dataclass(frozen=True)
class TimePoint:
    """A point on both time axes; ``None`` on an axis means "now"."""

    as_of: datetime | None = None
    known_at: datetime | None = None

    @property
    def is_now(self) -> bool:
        return self.as_of is None and self.known_at is None

    def admits(self, event: LedgerAggregate.Event) -> bool:
        occurred: datetime = event.meta.occurred_at
        recorded: datetime = event.timestamp
        return (self.as_of is None or occurred <= self.as_of) and (
            self.known_at is None or recorded <= self.known_at
        )


NOW = TimePoint()


@dataclass
class _CachedTrain:
    """A train's current document at one (generation, position) of the trains projection."""

    state: tuple[int, int]
    document: TrainDocument
    renderings: dict[Callable[[TrainDocument], bytes], bytes] = field(default_factory=dict)

    def rendered(self, render: Callable[[TrainDocument], bytes]) -> bytes:
        rendered = self.renderings.get(render)
        if rendered is None:
            rendered = self.renderings[render] = render(self.document)
        return rendered


class ProjectionQueries:
    """Every read of the projections the API, the dashboard and the CLI make."""

    def __init__(
        self,
        engine: Engine,
        ledger: ReleaseLedger,
        policy: ReadinessPolicy | None = None,
        watch: ChangeWatch | None = None,
    ) -> None:
        self.engine = engine
        self.ledger = ledger
        self.policy = policy or ledger.policy
        self.watch = watch
        # Exact, not time-bound: the trains projection writes its rows and moves its position
        # in one commit, and a rebuild swaps the generation, so an entry whose state still
        # matches the projection_state row is the document the tables would give.
        self._trains: OrderedDict[str, _CachedTrain] = OrderedDict()
        self._trains_lock = threading.Lock()

    # ------------------------------------------------------------------ trains

    def train(self, train: str, at: TimePoint = NOW) -> TrainDocument:
        check_train_id(train)
        if not at.is_now:
            return self._replayed_train(train, at)
        # A copy: callers may change what they get without touching the cached document.
        document: TrainDocument = _copied(self._current_train(train).document)
        return document

    def train_rendered(self, train: str, render: Callable[[TrainDocument], bytes]) -> bytes:
        """The current document of ``train`` as ``render`` gives it, cached with the document.

        ``render`` must be a pure function of the document (the API's JSON body), and the
        same object on every call, as it is the key of its rendering.
        """
        check_train_id(train)
        return self._current_train(train).rendered(render)

    def train_remembered(
        self, train: str, render: Callable[[TrainDocument], bytes], min_position: int = 0
    ) -> bytes | None:
        """``train_rendered`` without the database, or None when that cannot be exact.

        It answers only while the watch listens, from a document cached at the state it
        last heard, and only when that state reached ``min_position``.
        """
        watch = self.watch
        if watch is None or not watch.listening:
            return None
        state = watch.states.get("trains")
        if state is None or state[1] < min_position:
            return None
        with self._trains_lock:
            entry = self._trains.get(train)
            if entry is None or entry.state != state:
                return None
            self._trains.move_to_end(train)
        return entry.rendered(render)

    def _current_train(self, train: str) -> _CachedTrain:
        with self.engine.connect() as connection:
            state = _state(connection, "trains")
            with self._trains_lock:
                entry = self._trains.get(train)
                if entry is not None and entry.state == state:
                    self._trains.move_to_end(train)
                    return entry
            row = connection.execute(
                select(tables.trains).where(
                    tables.trains.c.generation == state[0], tables.trains.c.train == train
                )
            ).first()
            if row is None:
                raise NotFound(f"train {train} is not planned")
            document = _train_from_rows(connection, state[0], row._asdict())
            entry = _CachedTrain(state, document)
            # Each statement sees the commits made before it started (READ COMMITTED), so a
            # batch applied while the document was read may show in part of it. Only a state
            # unchanged since the first statement proves that none was.
            if _state(connection, "trains") == state:
                with self._trains_lock:
                    self._trains[train] = entry
                    self._trains.move_to_end(train)
                    while len(self._trains) > TRAIN_CACHE_SIZE:
                        self._trains.popitem(last=False)
            return entry

    def trains(
        self,
        *,
        kind: str | None = None,
        status: str | None = None,
        support: str | None = None,
        at: TimePoint = NOW,
    ) -> list[TrainDocument]:
        """Every train (current state, or as of a time point), filtered, in train order."""
        if at.is_now:
            with self.engine.connect() as connection:
                generation = _generation(connection, "trains")
                rows = connection.execute(
                    select(tables.trains)
                    .where(tables.trains.c.generation == generation)
                    .order_by(tables.trains.c.train)
                ).all()
                documents = _trains_from_rows(connection, generation, [r._asdict() for r in rows])
        else:
            documents = []
            for train in self._train_ids():
                try:
                    documents.append(self._replayed_train(train, at))
                except NotFound:
                    continue  # not planned yet at that time point
        return [
            document
            for document in documents
            if (kind is None or document["kind"] == kind)
            and (status is None or document["status"] == status)
            and (support is None or document["support"] == support)
        ]

    def calendar(self, at: TimePoint = NOW) -> list[dict[str, Any]]:
        """Trains with their gate dates and outcomes, for the timeline."""
        return [
            {
                "train": document["train"],
                "kind": document["kind"],
                "parent": document["parent"],
                "status": document["status"],
                "support": document["support"],
                "planned_at": document["planned_at"],
                "gates": [
                    {
                        key: gate[key]
                        for key in ("gate", "name", "scheduled_for", "original_date", "outcome")
                    }
                    | {"slipped": bool(gate["slips"]), "decided_at": gate["decided_at"]}
                    for gate in document["gates"]
                ],
            }
            for document in self.trains(at=at)
        ]

    def readiness(self, train: str, gate: int, at: TimePoint = NOW) -> list[Criterion]:
        """The exit criteria of a gate, evaluated on the projections (or as of a time point)."""
        document = self.train(train, at)
        if not any(g["gate"] == gate for g in document["gates"]):
            gates = ", ".join(str(g["gate"]) for g in document["gates"])
            raise NotFound(
                f"train {train} ({document['kind']}) has no gate {gate}; its gates are {gates}"
            )
        anchors = [
            entry["feature"]
            for entry in document["scope"]
            if entry["classification"] == Classification.ANCHOR
            and entry["status"] in IN_SCOPE_STATUSES
        ]
        customers = {key: self._customers(key, at) for key in anchors}
        beta: dict[str, set[str]] = {}
        for drop in document["beta_drops"]:
            for key in drop["features"]:
                beta.setdefault(key, set()).update(drop["customers"])
        facts = TrainFacts(
            train=train,
            kind=document["kind"],
            gates_passed=frozenset(
                g["gate"] for g in document["gates"] if g["outcome"] in ("passed", "conditional")
            ),
            scope=tuple(
                ScopeFact(
                    entry["feature"],
                    entry["classification"],
                    entry["status"],
                    customers.get(entry["feature"], ()),
                )
                for entry in document["scope"]
            ),
            qa={
                cycle: QAFact(run["total"], run["passed"])
                for cycle, run in document["qa"]["cycles"].items()
            },
            beta_customers={key: tuple(sorted(names)) for key, names in beta.items()},
        )
        return self.policy.evaluate(gate, facts)

    # ---------------------------------------------------------------- features

    def feature(self, key: str, at: TimePoint = NOW) -> FeatureDocument:
        check_feature_key(key)
        if not at.is_now:
            return self._replayed_feature(key, at)
        with self.engine.connect() as connection:
            generation = _generation(connection, "features")
            row = connection.execute(
                select(tables.features).where(
                    tables.features.c.generation == generation, tables.features.c.feature == key
                )
            ).first()
            if row is None:
                raise NotFound(f"feature {key} is unknown")
            return _feature_from_rows(connection, generation, row._asdict())

    def journey(self, key: str, at: TimePoint = NOW) -> list[dict[str, Any]]:
        """Every event about a feature in the order it occurred, with lateness."""
        check_feature_key(key)
        table = tables.journey
        with self.engine.connect() as connection:
            generation = _generation(connection, "journeys")
            query = select(table).where(table.c.generation == generation, table.c.feature == key)
            rows = connection.execute(
                _at(query, table, at).order_by(table.c.occurred_at, table.c.position)
            ).all()
        if not rows:
            self.feature(key, at)  # an unknown feature is not found, not an empty journey
        return [_event_row(row._asdict()) for row in rows]

    # ------------------------------------------------------------------- audit

    def audit(
        self,
        *,
        train: str | None = None,
        feature: str | None = None,
        actor: str | None = None,
        action: str | None = None,
        since: datetime | None = None,
        until: datetime | None = None,
        after: int | None = None,
        limit: int = AUDIT_PAGE_DEFAULT,
        at: TimePoint = NOW,
    ) -> tuple[list[dict[str, Any]], int | None]:
        """Change-management decisions, newest last, and the cursor of the next page.

        ``since``/``until`` filter on when decisions occurred; the cursor is the position
        of the last row returned, so pages stay stable while new decisions arrive.
        """
        limit = max(1, min(limit, AUDIT_PAGE_MAX))
        table = tables.audit
        with self.engine.connect() as connection:
            generation = _generation(connection, "audit")
            query = select(table).where(table.c.generation == generation)
            if train is not None:
                query = query.where(or_(table.c.train == train, table.c.to_train == train))
            for column, value in (("feature", feature), ("actor", actor), ("action", action)):
                if value is not None:
                    query = query.where(table.c[column] == value)
            if since is not None:
                query = query.where(table.c.occurred_at >= since)
            if until is not None:
                query = query.where(table.c.occurred_at <= until)
            if after is not None:
                query = query.where(table.c.position > after)
            rows = connection.execute(
                _at(query, table, at).order_by(table.c.position).limit(limit + 1)
            ).all()
        page = [_event_row(row._asdict()) for row in rows[:limit]]
        cursor = page[-1]["position"] if len(rows) > limit else None
        return page, cursor

    # ------------------------------------------------------------------ replay

    def _replayed_train(self, train: str, at: TimePoint) -> TrainDocument:
        # QA runs are most of a train's stream; the qa_runs projection indexes them, so
        # only the other events are replayed and each cycle's run is looked up.
        stored = self.ledger.event_log.stream(train_stream_id(train), excluding=BULK_TOPICS)
        events = _admitted([self.ledger.mapper.to_domain_event(s) for s in stored], at)
        if not events:
            raise NotFound(f"train {train} was not planned at that time")
        replayed = _fold(events)
        assert isinstance(replayed, Train)
        runs, count = self._qa_as_of(train, at)
        replayed.qa = runs
        return train_document(replayed, version=len(events) + count)

    def _replayed_feature(self, key: str, at: TimePoint) -> FeatureDocument:
        events = self._events(feature_stream_id(key), at)
        if not events:
            raise NotFound(f"feature {key} was unknown at that time")
        return feature_document(_fold(events), version=len(events))  # type: ignore[arg-type]

    def _events(self, stream: UUID, at: TimePoint) -> list[LedgerAggregate.Event]:
        return _admitted(list(self.ledger.events.get(stream)), at)

    def _qa_as_of(self, train: str, at: TimePoint) -> tuple[dict[str, QARun], int]:
        """Each cycle's run that counts at the time point, and how many runs were known."""
        statement = _qa_as_of_statement(at.as_of is not None, at.known_at is not None)
        with self.engine.connect() as connection:
            parameters = {
                "generation": _generation(connection, "qa_runs"),
                "train": train,
                "as_of": at.as_of,
                "known_at": at.known_at,
            }
            rows = connection.execute(statement, parameters).all()
        runs = {
            row.cycle: QARun(
                row.cycle,
                row.build,
                row.total,
                row.passed,
                row.failed,
                row.blocked,
                row.occurred_at,
            )
            for row in rows
        }
        return runs, sum(row.known for row in rows)

    def _customers(self, key: str, at: TimePoint) -> tuple[str, ...]:
        try:
            document = self.feature(key, at)
        except NotFound:
            return ()
        return tuple(customer["customer"] for customer in document["customers"])

    def _train_ids(self) -> list[str]:
        with self.engine.connect() as connection:
            rows = connection.execute(
                select(tables.stream_keys.c.key)
                .where(tables.stream_keys.c.kind == "train")
                .order_by(tables.stream_keys.c.key)
            )
            return list(rows.scalars())


@cache
def _qa_as_of_statement(as_of: bool, known_at: bool) -> CompoundSelect[Any]:
    """Per cycle, the latest run and how many there were, in one statement.

    Each part is a range scan of the generation's ``qa_runs_latest`` index: the latest run
    reads one index entry, the count only the index. The generation is rendered as a
    literal, which the planner needs to match a partial index. Built once per shape:
    building it is a good part of the query's cost.
    """
    table = tables.train_qa_runs
    generation: BindParameter[int] = bindparam("generation", literal_execute=True)
    per_cycle = []
    for cycle in QACycle:
        mine = select(table).where(
            table.c.generation == generation,
            table.c.train == bindparam("train"),
            table.c.cycle == str(cycle),
        )
        if as_of:
            mine = mine.where(table.c.occurred_at <= bindparam("as_of"))
        if known_at:
            mine = mine.where(table.c.recorded_at <= bindparam("known_at"))
        known = mine.with_only_columns(func.count()).scalar_subquery()
        latest = (
            mine.add_columns(known.label("known"))
            .order_by(table.c.occurred_at.desc(), table.c.position.desc())
            .limit(1)
            .subquery()
        )
        per_cycle.append(select(latest))
    return union_all(*per_cycle)


def _admitted(events: Sequence[Any], at: TimePoint) -> list[LedgerAggregate.Event]:
    admitted = [e for e in events if isinstance(e, LedgerAggregate.Event) and at.admits(e)]
    # Valid time decides the order; ties keep the order they were recorded in.
    return sorted(admitted, key=lambda e: (e.meta.occurred_at, e.originator_version))


def _fold(events: Sequence[LedgerAggregate.Event]) -> LedgerAggregate:
    """Fold events in the order given (not version order): create, then apply each."""
    first, *rest = events
    aggregate: LedgerAggregate | None = first.mutate(None)
    assert aggregate is not None
    for event in rest:
        event.apply(aggregate)
    return aggregate


def parse_time_point(as_of: datetime | None, known_at: datetime | None) -> TimePoint:
    """A time point from query parameters, refusing times without a UTC offset."""
    for name, value in (("as_of", as_of), ("known_at", known_at)):
        if value is not None and value.utcoffset() is None:
            raise InvalidCommand(f"{name} needs a UTC offset", field=name)
    return TimePoint(as_of, known_at)


# ------------------------------------------------------------ rows to documents


def _state(connection: Connection, name: str) -> tuple[int, int]:
    """The live generation of a projection and the position it has applied the log to."""
    state = tables.projection_state
    row = connection.execute(
        select(state.c.generation, state.c.position).where(state.c.name == name)
    ).first()
    return (int(row.generation), int(row.position)) if row is not None else (1, 0)


def _copied(value: Any) -> Any:
    """A deep copy of a document: its containers are dicts and lists, the rest immutable."""
    if isinstance(value, dict):
        return {key: _copied(item) for key, item in value.items()}
    if isinstance(value, list):
        return [_copied(item) for item in value]
    return value


def _generation(connection: Connection, name: str) -> int:
    generation = connection.execute(
        select(tables.projection_state.c.generation).where(tables.projection_state.c.name == name)
    ).scalar()
    return int(generation) if generation is not None else 1


def _at(query: Select[Any], table: Table, at: TimePoint) -> Select[Any]:
    conditions = []
    if at.as_of is not None:
        conditions.append(table.c.occurred_at <= at.as_of)
    if at.known_at is not None:
        conditions.append(table.c.recorded_at <= at.known_at)
    return query.where(and_(*conditions)) if conditions else query


def _child_rows(
    connection: Connection, table: Table, generation: int, column: str, key: str, order: str
) -> list[dict[str, Any]]:
    rows = connection.execute(
        select(table)
        .where(table.c.generation == generation, table.c[column] == key)
        .order_by(table.c[order])
    ).all()
    return [row._asdict() for row in rows]


TRAIN_CHILDREN = (
    (tables.train_gates, "gate"),
    (tables.train_scope, "feature"),
    (tables.train_qa, "cycle"),
    (tables.train_beta_drops, "seq"),
)
"""A train's rows in other tables, each in the order its document lists them."""


def _train_from_rows(connection: Connection, generation: int, row: dict[str, Any]) -> TrainDocument:
    children = {
        table.name: _child_rows(connection, table, generation, "train", row["train"], order)
        for table, order in TRAIN_CHILDREN
    }
    return _train_document(row, children)


def _trains_from_rows(
    connection: Connection, generation: int, rows: list[dict[str, Any]]
) -> list[TrainDocument]:
    """Many trains' documents from one query per child table, not one per train and table."""
    trains = [row["train"] for row in rows]
    children: dict[str, dict[str, list[dict[str, Any]]]] = {}
    for table, order in TRAIN_CHILDREN:
        by_train: dict[str, list[dict[str, Any]]] = {}
        for child in connection.execute(
            select(table)
            .where(table.c.generation == generation, table.c.train.in_(trains))
            .order_by(table.c.train, table.c[order])
        ):
            by_train.setdefault(child.train, []).append(child._asdict())
        children[table.name] = by_train
    return [
        _train_document(row, {name: of.get(row["train"], []) for name, of in children.items()})
        for row in rows
    ]


def _train_document(
    row: dict[str, Any], children: dict[str, list[dict[str, Any]]]
) -> TrainDocument:
    """A train's document from its row and its rows in ``TRAIN_CHILDREN``, by table name."""
    train = row["train"]
    gates = [
        gate_document(
            gate["gate"],
            gate["scheduled_for"],
            [
                {
                    "from": date.fromisoformat(slip["from"]),
                    "to": date.fromisoformat(slip["to"]),
                    "reason": slip["reason"],
                }
                for slip in gate["slips"]
            ],
            gate["outcome"],
            gate["conditions"],
            gate["notes"],
            gate["decided_at"],
            gate["evidence"],
        )
        for gate in children[tables.train_gates.name]
    ]
    scope = [
        {key: entry[key] for key in ("feature", "classification", "status", "moved_to")}
        for entry in children[tables.train_scope.name]
    ]
    runs = {
        run["cycle"]: {
            "build": run["build"],
            "total": run["total"],
            "passed": run["passed"],
            "failed": run["failed"],
            "blocked": run["blocked"],
            "occurred_at": run["occurred_at"],
        }
        for run in children[tables.train_qa.name]
    }
    drops = [
        {
            "build": drop["build"],
            "customers": drop["customers"],
            "features": drop["features"],
            "occurred_at": drop["occurred_at"],
        }
        for drop in children[tables.train_beta_drops.name]
    ]
    return {
        "train": train,
        "kind": row["kind"],
        "parent": row["parent"],
        "title": row["title"],
        "status": row["status"],
        "support": row["support"],
        "eol_date": row["eol_date"],
        "planned_at": row["planned_at"],
        "gates": gates,
        "scope": scope,
        "qa": qa_document(runs),
        "beta_drops": drops,
        "version": row["version"],
    }


def _feature_from_rows(
    connection: Connection, generation: int, row: dict[str, Any]
) -> FeatureDocument:
    key = row["feature"]
    customers = [
        {"customer": c["customer"], "weight": c["weight"], "note": c["note"]}
        for c in _child_rows(
            connection, tables.feature_customers, generation, "feature", key, "customer"
        )
    ]
    milestones = [
        {
            "train": m["train"],
            "milestone": m["milestone"],
            "note": m["note"],
            "occurred_at": m["occurred_at"],
        }
        for m in _child_rows(
            connection, tables.feature_milestones, generation, "feature", key, "seq"
        )
    ]
    return {
        "feature": key,
        "title": row["title"],
        "owner": row["owner"],
        "architect": row["architect"],
        "train": row["train"],
        "classification": row["classification"],
        "status": row["status"],
        "customers": customers,
        "customer_weight": row["customer_weight"],
        "milestones": milestones,
        "version": row["version"],
    }


def _event_row(row: dict[str, Any]) -> dict[str, Any]:
    row.pop("generation", None)
    row["late"] = row["lateness_seconds"] > LATE_AFTER_SECONDS
    return row
