"""The HTTP API's request and response shapes (v1), apart from how anything is stored.

Requests are checked here for types, ranges and required fields; the ledger then judges
them against the event streams. Responses are validated on the way out, so the OpenAPI
document is what clients really get. Every timestamp goes out as ISO 8601 with its UTC
offset (``+00:00``), every date as ``YYYY-MM-DD``.
"""

from __future__ import annotations

import datetime as dt
import re
from datetime import UTC, date, datetime
from typing import Annotated, Any, Literal

from pydantic import (
    AfterValidator,
    AwareDatetime,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    PlainSerializer,
)

from ledger.values import (
    CONTROL_CHARACTER_RANGES,
    EARLIEST_DATE,
    FEATURE_KEY_PATTERN,
    LATEST_DATE,
    MAX_CUSTOMER_WEIGHT,
    MAX_TEXT,
    PROSE_CONTROL_CHARACTER_RANGES,
    TRAIN_ID_PATTERN,
)

MAX_ITEMS = 1000
MAX_COUNT = 100_000_000
MAX_POSITION = 2**63 - 1
FILTER_PATTERN = f"^[^{CONTROL_CHARACTER_RANGES}]+$"
"""A text filter: control characters match nothing stored, and PostgreSQL refuses NUL."""
EARLIEST = datetime(1900, 1, 1, tzinfo=UTC)
LATEST = datetime(9998, 12, 31, tzinfo=UTC)


ISO_MOMENT = re.compile(r"[0-9]{4}-[0-9]{2}-[0-9]{2}[Tt ][0-9]{2}:[0-9]{2}")
ISO_DATE = re.compile(r"[0-9]{4}-[0-9]{2}-[0-9]{2}")
MOMENT_PATTERN = (
    r"^(19[0-9]{2}|[2-8][0-9]{3}|9[0-8][0-9]{2}|99[0-8][0-9]|999[0-8])-[0-9]{2}-[0-9]{2}"
    r"[Tt ][0-9]{2}:[0-9]{2}"
)
"""What the OpenAPI document says of a moment beyond ``date-time``: a year from 1900 to 9998."""
DATE_PATTERN = r"^(19[0-9]{2}|2[01][0-9]{2})-[0-9]{2}-[0-9]{2}$"
"""The same for a calendar date: a year from 1900 to 2199."""


def _iso_moment(value: object) -> object:
    """Only ISO 8601 text: pydantic alone would take ``0.5`` as a Unix time."""
    if isinstance(value, datetime) or (isinstance(value, str) and ISO_MOMENT.match(value)):
        return value
    raise ValueError(
        "must be an ISO 8601 date and time with a UTC offset, e.g. 2026-11-02T14:30:00+01:00"
    )


def _iso_date(value: object) -> object:
    """Only ``YYYY-MM-DD``: pydantic alone would take ``0`` as 1970-01-01."""
    if isinstance(value, date) or (isinstance(value, str) and ISO_DATE.fullmatch(value)):
        return value
    raise ValueError("must be an ISO 8601 calendar date, YYYY-MM-DD")


def _in_range(moment: datetime) -> datetime:
    # Far-off years with an offset overflow when converted to UTC for storage.
    if not EARLIEST <= moment <= LATEST:
        raise ValueError("must lie between the years 1900 and 9998")
    return moment


def iso_utc(moment: datetime) -> str:
    """ISO 8601 in UTC with its offset written out (``+00:00``), as every answer has it."""
    if moment.utcoffset() is None:
        return moment.replace(tzinfo=UTC).isoformat()  # the ledger stores UTC only
    try:
        return moment.astimezone(UTC).isoformat()
    except OverflowError:  # a year-1 or year-9999 moment: keep its own offset
        return moment.isoformat()


def _in_date_range(day: dt.date) -> dt.date:
    if not EARLIEST_DATE <= day <= LATEST_DATE:
        raise ValueError(f"must lie between {EARLIEST_DATE} and {LATEST_DATE}")
    return day


def text_pattern(ranges: str, *, required: bool) -> str:
    """The ledger's rule for a text as a JSON Schema pattern: no character of ``ranges``
    and, when ``required``, something besides white space (the ledger trims it)."""
    allowed = f"[^{ranges}]*"
    return f"^{allowed}[^\\s{ranges}]{allowed}$" if required else f"^{allowed}$"


Moment = Annotated[
    AwareDatetime,
    BeforeValidator(_iso_moment),
    AfterValidator(_in_range),
    Field(json_schema_extra={"pattern": MOMENT_PATTERN}),
]
"""A client's point in time: ISO 8601 with a UTC offset, e.g. 2026-11-02T14:30:00+01:00,
between the years 1900 and 9998."""

CalendarDate = Annotated[
    dt.date,
    BeforeValidator(_iso_date),
    AfterValidator(_in_date_range),
    Field(json_schema_extra={"pattern": DATE_PATTERN}),
]
"""A plan's date (YYYY-MM-DD), between 1900 and 2199."""

Timestamp = Annotated[datetime, PlainSerializer(iso_utc, return_type=str, when_used="json")]
"""A point in time in a response, in UTC; pydantic alone would write ``Z`` and keep offsets."""

TrainId = Annotated[
    str,
    Field(
        pattern=TRAIN_ID_PATTERN.pattern,
        max_length=64,
        description="a train's version string",
        examples=["5.5", "5.4.1", "5.1.7-hf2"],
    ),
]
FeatureKey = Annotated[
    str,
    Field(
        pattern=FEATURE_KEY_PATTERN.pattern,
        max_length=64,
        description="a Jira key or a slug",
        examples=["DEDUP-7"],
    ),
]
NAME_PATTERN = text_pattern(CONTROL_CHARACTER_RANGES, required=True)
OPTIONAL_NAME_PATTERN = text_pattern(CONTROL_CHARACTER_RANGES, required=False)
PROSE_PATTERN = text_pattern(PROSE_CONTROL_CHARACTER_RANGES, required=False)
REQUIRED_PROSE_PATTERN = text_pattern(PROSE_CONTROL_CHARACTER_RANGES, required=True)
# The ledger checks these itself, with clearer messages; the patterns tell clients.
Name = Annotated[
    str,
    Field(
        min_length=1,
        max_length=MAX_TEXT,
        description="one line, trimmed, no control characters",
        json_schema_extra={"pattern": NAME_PATTERN},
    ),
]
"""A required name or label: a person, a customer, a build."""
Title = Annotated[
    str, Field(max_length=MAX_TEXT, json_schema_extra={"pattern": OPTIONAL_NAME_PATTERN})
]
"""An optional one-line text (a title, who asked); blank is the same as absent."""
Text = Annotated[str, Field(max_length=MAX_TEXT, json_schema_extra={"pattern": PROSE_PATTERN})]
"""Prose (a reason, notes): line breaks and tabs, but no other control character."""
RequiredText = Annotated[
    str,
    Field(min_length=1, max_length=MAX_TEXT, json_schema_extra={"pattern": REQUIRED_PROSE_PATTERN}),
]
Actor = Annotated[
    Name, Field(description="the person who decided or did it", examples=["Ada Planner"])
]
Count = Annotated[int, Field(ge=0, le=MAX_COUNT)]
OccurredAt = Annotated[
    Moment | None,
    Field(
        description="when it happened (business time), ISO 8601 with offset; default now, "
        "at most 5 minutes ahead",
        examples=["2026-11-02T14:30:00+01:00"],
    ),
]


# =================================================================== requests


class Command(BaseModel):
    """What every write carries: who did it, and when it happened."""

    model_config = ConfigDict(extra="forbid", allow_inf_nan=False)

    actor: Actor
    occurred_at: OccurredAt = None


class PlanTrain(Command):
    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {
                    "train": "5.6",
                    "kind": "major",
                    "title": "Object tiering",
                    "actor": "Ada Planner",
                },
                {"train": "5.5.1", "kind": "minor", "parent": "5.5", "actor": "Ada Planner"},
            ]
        }
    )

    train: TrainId
    kind: Literal["major", "minor", "hotfix"]
    parent: TrainId | None = Field(
        default=None, description="the major a minor or hotfix belongs to"
    )
    title: Title | None = None


class ScheduleGate(Command):
    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {"date": "2027-03-15", "actor": "Ada Planner"},
                {"date": "2027-04-01", "actor": "Ada Planner", "reason": "QA lab outage"},
            ]
        }
    )

    date: CalendarDate = Field(description="the target date; a later different date is a slip")
    reason: Text | None = None


class DecideGate(Command):
    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {"outcome": "passed", "actor": "Grace Director"},
                {
                    "outcome": "conditional",
                    "actor": "Grace Director",
                    "conditions": "beta customer for DEDUP-7 named by Friday",
                },
            ]
        }
    )

    outcome: Literal["passed", "conditional", "failed", "postponed"]
    conditions: Text | None = Field(default=None, description="required for a conditional pass")
    notes: Text | None = None


class CustomerAsk(BaseModel):
    model_config = ConfigDict(extra="forbid", allow_inf_nan=False)

    name: Annotated[Name, Field(max_length=200, examples=["Globex"])]
    weight: float = Field(
        gt=0, le=MAX_CUSTOMER_WEIGHT, description="deal size or temperature", examples=[8.0]
    )
    note: Text | None = None


class ProposeScope(Command):
    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {
                    "feature": "DEDUP-7",
                    "title": "Inline deduplication",
                    "classification": "anchor",
                    "customers": [{"name": "Globex", "weight": 8, "note": "renewal depends on it"}],
                    "actor": "Ada Planner",
                }
            ]
        }
    )

    feature: FeatureKey
    title: Title | None = None
    classification: Literal["anchor", "committed", "stretch"]
    customers: list[CustomerAsk] = Field(default_factory=list, max_length=MAX_ITEMS)


class Decide(Command):
    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {
                    "feature": "SNAP-3",
                    "action": "move",
                    "to_train": "5.6",
                    "reason": "QA capacity",
                    "actor": "Grace Director",
                },
                {
                    "feature": "OBJ-9",
                    "action": "add",
                    "reason": "Initech deal",
                    "requested_by": "Initech",
                    "exception": True,
                    "actor": "Grace Director",
                },
            ]
        }
    )

    feature: FeatureKey
    action: Literal["commit", "stretch", "drop", "move", "add"]
    to_train: TrainId | None = Field(default=None, description="where a move goes")
    reason: Text | None = Field(default=None, description="required for drop, stretch, move, add")
    requested_by: Title | None = None
    exception: bool = Field(default=False, description="an add after gate 3 (the big-deal case)")
    classification: Literal["anchor", "committed", "stretch"] | None = Field(
        default=None, description="for an add: how the feature joins (default committed)"
    )
    title: Title | None = Field(default=None, description="for an add of a new feature")
    customers: list[CustomerAsk] = Field(
        default_factory=list, max_length=MAX_ITEMS, description="for an add"
    )


class ShipBetaDrop(Command):
    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {
                    "build": "5.5.0-b3",
                    "customers": ["Globex"],
                    "features": ["DEDUP-7"],
                    "actor": "Bea Release",
                }
            ]
        }
    )

    build: Name
    customers: list[Annotated[Name, Field(max_length=200)]] = Field(
        min_length=1, max_length=MAX_ITEMS
    )
    features: list[FeatureKey] = Field(min_length=1, max_length=MAX_ITEMS)


class RecordQARun(Command):
    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {
                    "cycle": "phase1",
                    "build": "5.5.0-rc1",
                    "total": 21000,
                    "passed": 19950,
                    "failed": 900,
                    "blocked": 150,
                    "actor": "Quinn QA",
                }
            ]
        }
    )

    cycle: Literal["phase1", "phase2", "golden"]
    build: Name
    total: Count
    passed: Count
    failed: Count
    blocked: Count = 0


class ChangeSupport(Command):
    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {
                    "status": "eol",
                    "eol_date": "2027-06-30",
                    "actor": "Grace Director",
                    "reason": "major minus two",
                }
            ]
        }
    )

    status: Literal["supported", "hotfix_only", "eol"]
    eol_date: CalendarDate | None = None
    reason: RequiredText


# ================================================================== responses


class Out(BaseModel):
    model_config = ConfigDict(populate_by_name=True)


class Slip(Out):
    from_: date = Field(alias="from")
    to: date
    reason: str | None


class Criterion(Out):
    key: str
    description: str
    met: bool
    evidence: dict[str, Any]


class Gate(Out):
    gate: int
    name: str
    scheduled_for: date | None
    original_date: date | None
    slips: list[Slip]
    outcome: str | None
    conditions: str | None
    notes: str | None
    decided_at: Timestamp | None
    evidence: list[Criterion] = Field(description="the readiness criteria as of the decision")


class ScopeEntry(Out):
    feature: str
    classification: str
    status: str
    moved_to: str | None


class QARun(Out):
    build: str
    total: int
    passed: int
    failed: int
    blocked: int
    occurred_at: Timestamp
    success_rate: float | None


class QA(Out):
    cycles: dict[str, QARun]
    effective_phase2_rate: float | None


class BetaDrop(Out):
    build: str
    customers: list[str]
    features: list[str]
    occurred_at: Timestamp


class Train(Out):
    train: str
    kind: str
    parent: str | None
    title: str | None
    status: str
    support: str | None
    eol_date: date | None
    planned_at: Timestamp
    gates: list[Gate]
    scope: list[ScopeEntry]
    qa: QA
    beta_drops: list[BetaDrop]
    version: int


class TrainList(Out):
    items: list[Train]


class RecordedEvent(Out):
    position: int = Field(description="the event's position in the global log")
    type: str = Field(examples=["GateDecided"])
    stream: str
    version: int
    recorded_at: Timestamp = Field(description="when the ledger stored it")
    occurred_at: Timestamp = Field(description="when it happened")


class Recorded(Out):
    """What a write recorded, and the train as it stands after it."""

    events: list[RecordedEvent]
    state: Train


class Readiness(Out):
    train: str
    gate: int
    ready: bool = Field(description="every criterion met")
    criteria: list[Criterion]


class GateForecast(Out):
    gate: int
    name: str
    scheduled_for: date | None = Field(description="the gate's current target")
    p50: date | None = Field(description="half the trajectories decide the gate by this day")
    p80: date | None
    p95: date | None
    sample_trains: list[str] = Field(
        description="the past trains of the same kind whose slips of this gate were drawn"
    )
    sample_size: int
    reason: str | None = Field(description="why there are no dates; null when there are")


class GoldenForecast(Out):
    probability: float | None = Field(
        ge=0, le=1, description="that the golden run reaches the target; null with a reason"
    )
    phase1_rate: float | None = Field(description="the train's phase-1 success rate, percent")
    target: float = Field(description="the QA target, percent")
    sample_trains: list[str] = Field(
        description="the past trains whose gains from phase 1 to golden were drawn"
    )
    sample_size: int
    reason: str | None


class OverlapAlignment(Out):
    next_major: str | None
    code_freeze_from: date | None = Field(
        description="this train's gate 3: decided, else forecast P50, else scheduled"
    )
    code_freeze_until: date | None = Field(description="its gate 4, the same way")
    next_gate1: date | None = Field(description="the next major's gate 1, the same way")
    aligned: bool | None = Field(
        description="the next major's gate 1 falls inside this code freeze; null when a "
        "date is missing"
    )
    detail: str


class Forecast(Out):
    """The forecast of a train's undecided gates, its golden run and the majors' overlap.

    The example is the demo's 5.5 on the day it was laid out for, 2026-11-02.
    """

    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {
                    "train": "5.5",
                    "kind": "major",
                    "as_of": "2026-11-02T14:30:00+00:00",
                    "gates": [
                        {
                            "gate": 3,
                            "name": "code freeze and beta readiness",
                            "scheduled_for": "2026-11-11",
                            "p50": "2026-11-11",
                            "p80": "2026-11-11",
                            "p95": "2026-11-11",
                            "sample_trains": ["5.1", "5.2", "5.3", "5.4"],
                            "sample_size": 4,
                            "reason": None,
                        },
                        {
                            "gate": 4,
                            "name": "release",
                            "scheduled_for": "2026-12-27",
                            "p50": "2026-12-27",
                            "p80": "2026-12-31",
                            "p95": "2026-12-31",
                            "sample_trains": ["5.1", "5.2", "5.3", "5.4"],
                            "sample_size": 4,
                            "reason": None,
                        },
                    ],
                    "golden": {
                        "probability": 0.7391,
                        "phase1_rate": 89.6,
                        "target": 96.0,
                        "sample_trains": ["5.1", "5.2", "5.3", "5.4"],
                        "sample_size": 4,
                        "reason": None,
                    },
                    "overlap": {
                        "next_major": "5.6",
                        "code_freeze_from": "2026-11-11",
                        "code_freeze_until": "2026-12-27",
                        "next_gate1": "2026-11-22",
                        "aligned": True,
                        "detail": "5.6's gate 1 (forecast P50 2026-11-22) falls inside 5.5's "
                        "code freeze, 2026-11-11 (forecast P50) to 2026-12-27 (forecast P50)",
                    },
                    "draws": 10000,
                    "seed": 20111108,
                }
            ]
        }
    )

    train: str
    kind: str
    as_of: Timestamp = Field(description="the moment forecast from: `as_of`, default now")
    gates: list[GateForecast] = Field(description="each gate not yet passed, in order")
    golden: GoldenForecast
    overlap: OverlapAlignment | None = Field(description="majors only")
    draws: int = Field(description="Monte Carlo trajectories drawn")
    seed: int = Field(description="the fixed seed: the same ledger gives the same answer")


class Customer(Out):
    customer: str
    weight: float
    note: str | None


class Milestone(Out):
    train: str
    milestone: str
    note: str | None
    occurred_at: Timestamp


class Feature(Out):
    feature: str
    title: str
    owner: str | None
    architect: str | None
    train: str | None
    classification: str | None
    status: str | None
    customers: list[Customer]
    customer_weight: float
    milestones: list[Milestone]
    version: int


class Provenance(Out):
    position: int
    actor: str
    recorded_by: str
    source: str
    source_ref: str | None
    correlation_id: str
    reason: str | None
    requested_by: str | None
    occurred_at: Timestamp
    recorded_at: Timestamp
    lateness_seconds: float
    late: bool = Field(description="recorded more than an hour after it occurred")


class JourneyStep(Provenance):
    feature: str
    train: str | None
    action: str
    event_type: str
    details: dict[str, Any]


class Journey(Out):
    feature: str
    items: list[JourneyStep]


class AuditEntry(Provenance):
    train: str
    to_train: str | None
    feature: str
    action: str
    exception: bool


class AuditPage(Out):
    items: list[AuditEntry]
    next_cursor: int | None = Field(
        description="pass as `after` for the next page; null on the last page"
    )


class FeedEvent(Out):
    position: int
    type: str = Field(examples=["FeatureDropped"])
    stream: str
    version: int
    occurred_at: Timestamp
    recorded_at: Timestamp
    actor: str
    recorded_by: str
    source: str
    source_ref: str | None
    correlation_id: str
    data: dict[str, Any] = Field(description="the event's own fields")


class EventsPage(Out):
    items: list[FeedEvent]
    next_cursor: int | None = Field(
        description="pass as `after` for the next page; null when this page reached the end"
    )
    last_position: int = Field(
        description="the position read up to (positions may have gaps): poll from here"
    )


class Liveness(Out):
    status: Literal["ok"]


class ProjectionLag(Out):
    name: str
    position: int
    lag: int


class ReadinessCheck(Out):
    status: Literal["ready", "not ready"]
    database: bool
    head: int | None
    max_lag: int
    projections: list[ProjectionLag]
    detail: str | None = None


class FieldError(Out):
    field: str | None
    message: str
    type: str
    in_: str | None = Field(default=None, alias="in")


class Problem(Out):
    """An RFC 9457 problem document (``application/problem+json``)."""

    type: str = Field(examples=["/problems/rule-violation"])
    title: str
    status: int
    detail: str
    errors: list[FieldError] | None = Field(default=None, description="each invalid field")
    unmet: list[Criterion] | None = Field(default=None, description="the unmet gate criteria")


_PROBLEM_DESCRIPTIONS = {
    400: "malformed JSON",
    401: "no or invalid bearer token, or webhook signature",
    403: "the token's role may not do this",
    404: "unknown train, feature or gate",
    409: "refused by the current state of the ledger",
    413: "body over 1 MiB",
    415: "body not JSON",
    422: "invalid request: each field in `errors`",
    503: "projections did not reach `min_position` in time, or the database is unavailable",
}


def problems(*statuses: int) -> dict[int | str, dict[str, Any]]:
    """OpenAPI entries for the problem responses an operation can give."""
    return {
        status: {
            "model": Problem,
            "description": _PROBLEM_DESCRIPTIONS[status],
            "content": {"application/problem+json": {}},
        }
        for status in statuses
    }


# --------------------------------------------------------------- integrations

DeliveryStatusName = Literal["pending", "applied", "ignored", "failed"]
IntegrationName = Literal["jira", "qtest"]


class DeliveryReceipt(Out):
    """A webhook delivery stored in the inbox (or found there already)."""

    delivery: int = Field(description="the inbox id, for `GET /v1/inbox/{delivery}`")
    delivery_key: str = Field(description="the identity deliveries are deduplicated on")
    duplicate: bool = Field(description="true when this delivery was already stored")


class InboxDelivery(Out):
    id: int
    integration: IntegrationName
    delivery_key: str
    event_type: str
    received_at: Timestamp
    status: DeliveryStatusName
    reason: str | None = Field(description="why it failed, was ignored or waits; what it did")
    attempts: int
    next_attempt_at: Timestamp
    processed_at: Timestamp | None
    positions: list[int] = Field(description="positions of the events it recorded")


class InboxDeliveryDetail(InboxDelivery):
    headers: dict[str, str]
    payload: Any = Field(description="the body as received, parsed")


class InboxPage(Out):
    items: list[InboxDelivery]
    next_cursor: int | None = Field(description="pass as `after` for the next page")
    counts: dict[str, int] = Field(description="deliveries per status, over the whole inbox")
