"""Jira webhooks as ledger commands (SPEC §6): fix versions become scope, versions become trains.

Mapping a delivery takes two steps. ``plan_jira_delivery`` reads the payload alone (no I/O)
and says what it asks for: a feature joining, leaving or moving between trains, a train to
plan, a train released — or why it asks for nothing. ``apply_jira_delivery`` then looks at
the trains concerned and records each planned command with ``source_ref``
``jira:<delivery id>:<changelog id>:<n>`` (n counts the delivery's commands from 1), so
mapping the same delivery again replays the earlier result instead of recording twice.

What each event becomes:

- ``jira:issue_updated``: the changelog items whose ``fieldId`` is ``fixVersions`` (the
  ``field`` is a localised display name, "Fix Version", and is not trusted). A removal and
  an addition (or one item with both sides) move the feature between the two trains; an
  addition alone brings it into a train, a removal alone drops it. A side whose version
  maps to no train counts as absent; a change whose versions map to no train is ignored.
- ``jira:issue_created``: the issue's ``fixVersions`` bring the feature into a train.
- Bringing a feature into a train is a scope proposal while the train takes proposals
  (gate 1 not passed; minors and hotfixes have no gate 1), an ``add`` decision after gate 1,
  and an ``add`` recorded as an exception after gate 3 (code freeze): Jira says it happened,
  the ledger records reality, and the reason says so.
- A feature is in scope of one open train at a time, so when several versions on one side
  map to trains, the first (in the payload's order) counts; the outcome names the others.
- ``jira:version_created`` plans the train its name maps to: ``5.5`` a major, ``5.4.1`` a
  minor of ``5.4``, ``5.1.7-hf2`` (any ``-suffix``) a hotfix of ``5.1``.
- ``jira:version_released`` decides gate 4 of the train: ``passed`` when its readiness
  criteria are met, else ``conditional`` with the unmet criteria as conditions.
- Anything else is stored and ignored.

When the ledger already shows what Jira says (the feature is in that train already, or out
of it; the train planned or released already), the delivery is ignored with that reason.

``actor`` is the Jira user's displayName (else name, accountId, or "jira"); ``occurred_at``
the payload's ``timestamp`` (epoch milliseconds), else a released version's ``releaseDate``,
else now.
"""

from __future__ import annotations

import math
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime, time
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, field_validator

from ledger.application import CommandContext, CommandResult, ReleaseLedger
from ledger.exceptions import RuleViolation
from ledger.metadata import Source
from ledger.readiness import Criterion
from ledger.values import (
    FEATURE_KEY_PATTERN,
    IN_SCOPE_STATUSES,
    RELEASE_GATE,
    TRAIN_ID_PATTERN,
    Classification,
    DecisionAction,
    GateOutcome,
    TrainKind,
    TrainStatus,
)

FIX_VERSIONS = "fixVersions"
FALLBACK_ACTOR = "jira"
ISSUE_UPDATED = "jira:issue_updated"
ISSUE_CREATED = "jira:issue_created"
VERSION_CREATED = "jira:version_created"
VERSION_RELEASED = "jira:version_released"
MAPPED_EVENTS = frozenset({ISSUE_UPDATED, ISSUE_CREATED, VERSION_CREATED, VERSION_RELEASED})

MAX_NAME = 200
MAX_TITLE = 500
MAX_CHANGE = 1500
"""Room left in a decision's reason (at most 2000 characters) for the notes the mapping adds."""
_ID = re.compile(r"[A-Za-z0-9._-]{1,64}")
_CONTROL = re.compile(r"[\x00-\x1f\x7f]")
_DIGITS = re.compile(r"[0-9]+")


# ----------------------------------------------------------------------------- mapping


class JiraMapping(BaseModel):
    """How Jira versions become trains and issues get a classification (``[jira]``).

    Defaults, which need no file: a version whose name is a train id (``5.5``, ``5.4.1``,
    ``5.1.7-hf2``) is that train; an issue labelled ``anchor`` is an anchor feature, one
    labelled ``stretch`` a stretch feature, any other a ``default_classification`` one
    (committed).

    ``versions`` maps version names to train ids in every project; ``projects`` maps them
    per project, keyed by project key or numeric project id (version events carry only the
    id), and wins over ``versions``. Names match exactly, else ignoring case and blanks.
    ``classification_field`` names a custom field (``customfield_10207``) whose value (text,
    a select option ``{"value": ...}`` or a list of them) says ``anchor``, ``committed`` or
    ``stretch``; it wins over labels.

    ```toml
    [jira]
    versions = { "Objects Autumn" = "5.6" }
    anchor_labels = ["anchor", "tentpole"]
    classification_field = "customfield_10207"
    [jira.projects.OBJ]
    "Objects 5.5" = "5.5"
    ```
    """

    model_config = ConfigDict(frozen=True, extra="forbid")

    versions: dict[str, str] = Field(default_factory=dict)
    projects: dict[str, dict[str, str]] = Field(default_factory=dict)
    anchor_labels: tuple[str, ...] = ("anchor",)
    stretch_labels: tuple[str, ...] = ("stretch",)
    classification_field: str | None = None
    default_classification: Classification = Classification.COMMITTED

    @field_validator("versions")
    @classmethod
    def _versions_map_to_trains(cls, versions: dict[str, str]) -> dict[str, str]:
        _check_trains(versions, "version")
        return versions

    @field_validator("projects")
    @classmethod
    def _project_versions_map_to_trains(
        cls, projects: dict[str, dict[str, str]]
    ) -> dict[str, dict[str, str]]:
        for project, versions in projects.items():
            _check_trains(versions, f"project {project} version")
        return projects

    def train_for(self, version_name: str, projects: Sequence[str] = ()) -> str | None:
        """The train a Jira version stands for, or None; ``projects``: its key and/or id."""
        for project in projects:
            train = _lookup(self.projects.get(project, {}), version_name)
            if train is not None:
                return train
        train = _lookup(self.versions, version_name)
        if train is not None:
            return train
        name = version_name.strip()
        return name if TRAIN_ID_PATTERN.fullmatch(name) else None

    def classification_for(self, fields: Mapping[str, Any]) -> Classification:
        """An issue's classification: the custom field, else its labels, else the default."""
        if self.classification_field is not None:
            for value in _option_values(fields.get(self.classification_field)):
                folded = value.strip().casefold()
                for classification in Classification:
                    if folded == classification.value:
                        return classification
        labels = fields.get("labels")
        names = {
            label.strip().casefold()
            for label in (labels if isinstance(labels, list) else [])
            if isinstance(label, str)
        }
        if names & {label.casefold() for label in self.anchor_labels}:
            return Classification.ANCHOR
        if names & {label.casefold() for label in self.stretch_labels}:
            return Classification.STRETCH
        return self.default_classification


def _check_trains(versions: Mapping[str, str], what: str) -> None:
    for name, train in versions.items():
        if not TRAIN_ID_PATTERN.fullmatch(train):
            raise ValueError(f"{what} {name!r} maps to {train!r}, not a train id like 5.5 or 5.4.1")


def _lookup(versions: Mapping[str, str], name: str) -> str | None:
    if name in versions:
        return versions[name]
    folded = name.strip().casefold()
    for known, train in versions.items():
        if known.strip().casefold() == folded:
            return train
    return None


def _option_values(value: Any) -> list[str]:
    """The texts of a custom field: a string, a select option ``{"value": …}``, or a list."""
    items = value if isinstance(value, list) else [value]
    texts = []
    for item in items:
        if isinstance(item, dict):
            item = item.get("value")
        if isinstance(item, str):
            texts.append(item)
    return texts


# ---------------------------------------------------------------------- planned commands


class Unmappable(Exception):
    """A delivery of a type we map whose content cannot become ledger commands.

    The reason is ``str(exc)``; the inbox keeps it with the delivery.
    """


@dataclass(frozen=True)
class JoinTrain:
    """The feature comes into ``train``: proposed, added, or added as an exception."""

    train: str
    feature: str
    title: str | None
    classification: Classification
    reason: str


@dataclass(frozen=True)
class MoveFeature:
    from_train: str
    to_train: str
    feature: str
    reason: str


@dataclass(frozen=True)
class DropFeature:
    train: str
    feature: str
    reason: str


@dataclass(frozen=True)
class PlanTrain:
    train: str
    kind: TrainKind
    parent: str | None
    title: str


@dataclass(frozen=True)
class ReleaseTrain:
    train: str
    version: str


PlannedCommand = JoinTrain | MoveFeature | DropFeature | PlanTrain | ReleaseTrain


@dataclass(frozen=True)
class JiraPlan:
    """What one delivery asks of the ledger, read from its payload alone."""

    event: str
    actor: str = FALLBACK_ACTOR
    occurred_at: datetime | None = None
    anchor: str = "-"
    """The changelog (or version) id; with the delivery id and the index, a source_ref."""
    commands: tuple[PlannedCommand, ...] = ()
    ignored: str | None = None
    """Why the delivery asks for nothing, when it has no commands."""
    notes: tuple[str, ...] = ()
    """What the payload also said that is left aside on purpose."""


@dataclass(frozen=True)
class JiraOutcome:
    """What a delivery became, for the inbox: applied (with its events) or ignored, and why."""

    applied: bool
    """False: stored but ignored, no event on purpose."""
    reason: str | None
    """Why ignored, or a short summary of what was applied."""
    positions: tuple[int, ...]
    """Positions of the events recorded (replays included)."""


def train_kind(train: str) -> tuple[TrainKind, str | None]:
    """The kind and parent major a train id implies: 5.5, 5.4.1 (of 5.4), 5.1.7-hf2 (of 5.1)."""
    numbers, suffix_mark, _ = train.partition("-")
    parts = numbers.split(".")
    major = ".".join(parts[:2])
    if suffix_mark:
        return TrainKind.HOTFIX, major
    if len(parts) > 2:
        return TrainKind.MINOR, major
    return TrainKind.MAJOR, None


# ------------------------------------------------------------------------------ planning


def plan_jira_delivery(mapping: JiraMapping, payload: Any) -> JiraPlan:
    """What a Jira webhook body (parsed JSON) asks of the ledger; ``Unmappable`` if garbled."""
    if not isinstance(payload, dict):
        raise Unmappable(f"Jira delivery is a JSON {_json_type(payload)}, not an object")
    event = payload.get("webhookEvent")
    if not isinstance(event, str) or not event.strip():
        raise Unmappable("Jira delivery has no webhookEvent")
    event = event.strip()
    if event not in MAPPED_EVENTS:
        return JiraPlan(event, ignored=f"Jira {_clean(event, MAX_NAME) or '?'} is not mapped")
    if event == ISSUE_UPDATED:
        return _plan_issue_updated(mapping, payload)
    if event == ISSUE_CREATED:
        return _plan_issue_created(mapping, payload)
    return _plan_version_event(mapping, event, payload)


@dataclass(frozen=True)
class _Version:
    name: str
    train: str | None

    @property
    def label(self) -> str:
        return self.name if self.train in (None, self.name) else f"{self.name} (train {self.train})"


@dataclass(frozen=True)
class _Issue:
    """The issue a delivery is about; ``problem`` says why it has no usable key."""

    key: str | None
    fields: Mapping[str, Any]
    projects: tuple[str, ...]
    problem: str | None = None

    def feature(self, event: str) -> str:
        """The issue key as a feature key, needed only once something maps to a train."""
        if self.key is None:
            raise Unmappable(f"{event}: {self.problem or 'the issue has no key'}")
        return self.key

    @property
    def title(self) -> str | None:
        return _clean(self.fields.get("summary"), MAX_TITLE)

    @property
    def name(self) -> str:
        return self.key or "issue"


def _plan_issue_updated(mapping: JiraMapping, payload: dict[str, Any]) -> JiraPlan:
    changelog = payload.get("changelog")
    if changelog is None:
        return JiraPlan(ISSUE_UPDATED, ignored=f"{ISSUE_UPDATED} without a changelog")
    if not isinstance(changelog, dict):
        raise Unmappable(f"{ISSUE_UPDATED} changelog is a {_json_type(changelog)}, not an object")
    changelog_id = _payload_id(changelog.get("id"), "changelog.id")
    items = changelog.get("items")
    if items is None:
        items = []
    if not isinstance(items, list):
        raise Unmappable(f"{ISSUE_UPDATED} changelog.items is a {_json_type(items)}, not a list")
    issue = _issue(payload)
    removed: list[_Version] = []
    added: list[_Version] = []
    for item in items:
        if not isinstance(item, dict):
            raise Unmappable(f"{ISSUE_UPDATED} changelog item is a {_json_type(item)}")
        if item.get("fieldId") != FIX_VERSIONS:
            continue
        for side, found in (("fromString", removed), ("toString", added)):
            name = _version_name(item.get(side), f"changelog fixVersions {side}")
            if name is not None:
                found.append(_Version(name, mapping.train_for(name, issue.projects)))
    if not removed and not added:
        return JiraPlan(
            ISSUE_UPDATED,
            ignored=f"{ISSUE_UPDATED} of {issue.name} changes no fixVersions (by fieldId)",
        )
    change = f"Jira {issue.name} fixVersions {_change(removed, added)}"[:MAX_CHANGE]
    if changelog_id is not None:
        change += f" (changelog {changelog_id})"
    leaving = _distinct(version.train for version in removed)
    joining = _distinct(version.train for version in added)
    unchanged = set(leaving) & set(joining)
    leaving = [train for train in leaving if train not in unchanged]
    joining = [train for train in joining if train not in unchanged]
    if not leaving and not joining:
        why = "leaves its train unchanged" if unchanged else "names no train"
        return JiraPlan(ISSUE_UPDATED, ignored=f"{change}: {why}")
    feature = issue.feature(ISSUE_UPDATED)
    command: PlannedCommand
    if leaving and joining:
        command = MoveFeature(leaving[0], joining[0], feature, change)
    elif joining:
        classification = mapping.classification_for(issue.fields)
        command = JoinTrain(joining[0], feature, issue.title, classification, change)
    else:
        command = DropFeature(leaving[0], feature, change)
    return JiraPlan(
        ISSUE_UPDATED,
        actor=_actor(payload.get("user")),
        occurred_at=_epoch_milliseconds(payload.get("timestamp")),
        anchor=changelog_id or "-",
        commands=(command,),
        notes=_one_train_notes(leaving[1:] + joining[1:]),
    )


def _plan_issue_created(mapping: JiraMapping, payload: dict[str, Any]) -> JiraPlan:
    issue = _issue(payload)
    listed = issue.fields.get(FIX_VERSIONS)
    if listed is None:
        listed = []
    if not isinstance(listed, list):
        raise Unmappable(f"{ISSUE_CREATED} fields.fixVersions is a {_json_type(listed)}")
    versions = []
    for entry in listed:
        raw = entry.get("name") if isinstance(entry, dict) else entry
        name = _version_name(raw, "fields.fixVersions name")
        if name is not None:
            versions.append(_Version(name, mapping.train_for(name, issue.projects)))
    if not versions:
        return JiraPlan(ISSUE_CREATED, ignored=f"{issue.name} was created without fixVersions")
    names = ", ".join(version.label for version in versions)
    trains = _distinct(version.train for version in versions)
    if not trains:
        return JiraPlan(
            ISSUE_CREATED, ignored=f"{issue.name} was created with fixVersions {names}: no train"
        )
    changelog = payload.get("changelog")
    changelog_id = (
        _payload_id(changelog.get("id"), "changelog.id") if isinstance(changelog, dict) else None
    )
    reason = f"Jira {issue.name} created with fixVersions {names}"[:MAX_CHANGE]
    feature = issue.feature(ISSUE_CREATED)
    classification = mapping.classification_for(issue.fields)
    return JiraPlan(
        ISSUE_CREATED,
        actor=_actor(payload.get("user")),
        occurred_at=_epoch_milliseconds(payload.get("timestamp")),
        anchor=changelog_id or "created",
        commands=(JoinTrain(trains[0], feature, issue.title, classification, reason),),
        notes=_one_train_notes(trains[1:]),
    )


def _plan_version_event(mapping: JiraMapping, event: str, payload: dict[str, Any]) -> JiraPlan:
    version = payload.get("version")
    if not isinstance(version, dict):
        raise Unmappable(f"{event} has no version object")
    name = _version_name(version.get("name"), "version.name")
    if name is None:
        raise Unmappable(f"{event} names no version")
    project = _payload_id(version.get("projectId"), "version.projectId")
    train = mapping.train_for(name, () if project is None else (project,))
    if train is None:
        return JiraPlan(event, ignored=f"Jira version {name!r} names no train")
    version_id = _payload_id(version.get("id"), "version.id")
    occurred_at = _epoch_milliseconds(payload.get("timestamp"))
    command: PlannedCommand
    if event == VERSION_CREATED:
        kind, parent = train_kind(train)
        title = _clean(version.get("description"), MAX_TITLE) or name
        command = PlanTrain(train, kind, parent, title)
    else:
        if occurred_at is None:
            occurred_at = _release_date(version.get("releaseDate"))
        command = ReleaseTrain(train, name)
    return JiraPlan(
        event,
        actor=_actor(payload.get("user")),
        occurred_at=occurred_at,
        anchor=f"version-{version_id}" if version_id else "version",
        commands=(command,),
    )


def _issue(payload: dict[str, Any]) -> _Issue:
    """The issue's key, fields and project (key and id), as far as the payload has them."""
    issue = payload.get("issue")
    if not isinstance(issue, dict):
        return _Issue(None, {}, (), problem="the delivery has no issue object")
    key = issue.get("key")
    if not (isinstance(key, str) and FEATURE_KEY_PATTERN.fullmatch(key)):
        problem = f"issue key {str(key)[:80]!r} is not a feature key like OBJ-603"
        return _Issue(None, {}, (), problem="the issue has no key" if key is None else problem)
    fields = issue.get("fields")
    fields = fields if isinstance(fields, dict) else {}
    project = fields.get("project")
    projects: list[str] = []
    if isinstance(project, dict):
        projects += [
            found
            for found in (_clean(project.get("key"), MAX_NAME), _loose_id(project.get("id")))
            if found
        ]
    if not projects and "-" in key:
        projects.append(key.rsplit("-", 1)[0])
    return _Issue(key, fields, tuple(projects))


# ------------------------------------------------------------------------------ applying


def apply_jira_delivery(
    ledger: ReleaseLedger,
    mapping: JiraMapping,
    delivery_id: str,
    payload: Any,
    *,
    recorded_by: str = "jira",
) -> JiraOutcome:
    """Record what a Jira delivery asks for; a re-run of the same delivery records nothing new.

    Raises ``Unmappable`` for a payload that cannot become commands, and lets the ledger's
    ``LedgerError`` through when it refuses one (its detail names what to fix).
    """
    if not isinstance(delivery_id, str) or not delivery_id.strip():
        raise Unmappable("a Jira delivery needs its delivery id")
    plan = plan_jira_delivery(mapping, payload)
    if not plan.commands:
        return JiraOutcome(applied=False, reason=plan.ignored, positions=())
    positions: list[int] = []
    summaries: list[str] = []
    applied = False
    for number, command in enumerate(plan.commands, start=1):
        context = CommandContext(
            recorded_by=recorded_by,
            source=Source.JIRA,
            source_ref=f"jira:{delivery_id.strip()}:{plan.anchor}:{number}",
            occurred_at=plan.occurred_at,
        )
        summary, result = _apply(ledger, command, plan.actor, context)
        if result is not None:
            applied = True
            positions += [event.position for event in result.events]
            if result.replayed:
                summary += " (recorded before: replayed)"
        summaries.append(summary)
    return JiraOutcome(
        applied=applied, reason="; ".join([*summaries, *plan.notes]), positions=tuple(positions)
    )


def _apply(
    ledger: ReleaseLedger, command: PlannedCommand, actor: str, context: CommandContext
) -> tuple[str, CommandResult | None]:
    """A summary of what ``command`` did, and its result (None: nothing to record)."""
    if isinstance(command, JoinTrain):
        return _join(ledger, command, actor, context)
    if isinstance(command, MoveFeature):
        return _move(ledger, command, actor, context)
    if isinstance(command, DropFeature):
        return _drop(ledger, command, actor, context)
    if isinstance(command, PlanTrain):
        return _plan_train(ledger, command, actor, context)
    return _release(ledger, command, actor, context)


# A refusal that only says the ledger already shows what Jira says (the feature is in the
# train already, or out of it already; the train planned or released already) is no
# failure: the delivery is ignored with that reason. A re-run of an applied delivery never
# gets there: the ledger answers it from its source_ref claim before refusing anything.


def _join(
    ledger: ReleaseLedger, command: JoinTrain, actor: str, context: CommandContext
) -> tuple[str, CommandResult | None]:
    gates = _gates_passed(ledger, command.train)
    exception = gates.get(3, False)
    try:
        if not gates.get(1, False):
            result = ledger.propose_scope(
                command.train,
                command.feature,
                command.classification,
                actor,
                title=command.title,
                context=context,
            )
            summary = f"proposed {command.feature} for {command.train}"
        else:
            result = ledger.decide(
                command.train,
                command.feature,
                DecisionAction.ADD,
                actor,
                reason=command.reason + _exception_note(command.train, exception),
                exception=exception,
                classification=command.classification,
                title=command.title,
                context=context,
            )
            summary = f"added {command.feature} to {command.train}"
            summary += " as an exception" if exception else ""
    except RuleViolation:
        if _in_scope(ledger, command.train, command.feature):
            return f"{command.feature} is already in scope of {command.train}", None
        raise
    return f"{summary} ({command.classification})", result


def _move(
    ledger: ReleaseLedger, command: MoveFeature, actor: str, context: CommandContext
) -> tuple[str, CommandResult | None]:
    exception = _gates_passed(ledger, command.to_train).get(3, False)
    try:
        result = ledger.decide(
            command.from_train,
            command.feature,
            DecisionAction.MOVE,
            actor,
            reason=command.reason + _exception_note(command.to_train, exception),
            to_train=command.to_train,
            exception=exception,
            context=context,
        )
    except RuleViolation:
        if _in_scope(ledger, command.to_train, command.feature):
            return f"{command.feature} is already in scope of {command.to_train}", None
        raise
    summary = f"moved {command.feature} from {command.from_train} to {command.to_train}"
    return summary + (" as an exception" if exception else ""), result


def _drop(
    ledger: ReleaseLedger, command: DropFeature, actor: str, context: CommandContext
) -> tuple[str, CommandResult | None]:
    try:
        result = ledger.decide(
            command.train,
            command.feature,
            DecisionAction.DROP,
            actor,
            reason=command.reason,
            context=context,
        )
    except RuleViolation:
        status = _scope_status(ledger, command.train, command.feature)
        if status not in IN_SCOPE_STATUSES:
            return f"{command.feature} is not in scope of {command.train} ({status})", None
        raise
    return f"dropped {command.feature} from {command.train}", result


def _plan_train(
    ledger: ReleaseLedger, command: PlanTrain, actor: str, context: CommandContext
) -> tuple[str, CommandResult | None]:
    try:
        result = ledger.plan_train(
            command.train,
            command.kind,
            actor,
            parent=command.parent,
            title=command.title,
            context=context,
        )
    except RuleViolation:
        if ledger.is_planned(command.train):
            return f"train {command.train} is already planned", None
        raise
    of_parent = f" of {command.parent}" if command.parent else ""
    return f"planned {command.kind} train {command.train}{of_parent}", result


def _release(
    ledger: ReleaseLedger, command: ReleaseTrain, actor: str, context: CommandContext
) -> tuple[str, CommandResult | None]:
    criteria = ledger.readiness(command.train, RELEASE_GATE)
    unmet = [criterion for criterion in criteria if not criterion.met]
    outcome = GateOutcome.CONDITIONAL if unmet else GateOutcome.PASSED
    try:
        result = ledger.decide_gate(
            command.train,
            RELEASE_GATE,
            outcome,
            actor,
            conditions=_conditions(unmet),
            notes=f"Jira version {command.version} released",
            context=context,
        )
    except RuleViolation:
        if ledger.train(command.train)["status"] == TrainStatus.RELEASED:
            return f"train {command.train} is already released", None
        raise
    return f"released {command.train}: gate {RELEASE_GATE} {outcome}", result


def _gates_passed(ledger: ReleaseLedger, train: str) -> dict[int, bool]:
    """Which of the train's gates passed, as it stands (a minor has gate 4 alone)."""
    passed = ledger.gates_passed(train)
    return {gate: gate in passed for gate in range(1, RELEASE_GATE + 1)}


def _scope_status(ledger: ReleaseLedger, train: str, feature: str) -> str:
    """The feature's status in the train's scope, or "never in it"."""
    for entry in ledger.train(train)["scope"]:
        if entry["feature"] == feature:
            return str(entry["status"])
    return "never in it"


def _in_scope(ledger: ReleaseLedger, train: str, feature: str) -> bool:
    return _scope_status(ledger, train, feature) in IN_SCOPE_STATUSES


def _exception_note(train: str, exception: bool) -> str:
    if not exception:
        return ""
    return f"; {train} is past code freeze (gate 3 passed), recorded as an exception"


def _conditions(unmet: Sequence[Criterion]) -> str | None:
    if not unmet:
        return None
    return "Released in Jira with unmet criteria: " + "; ".join(c.description for c in unmet)


# ------------------------------------------------------------------------ payload values


def _json_type(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, int | float):
        return "number"
    if isinstance(value, str):
        return "string"
    if isinstance(value, list):
        return "list"
    return "object" if isinstance(value, dict) else type(value).__name__


def _clean(value: Any, limit: int) -> str | None:
    """Printable text on one line, at most ``limit`` characters; None when empty or not text."""
    if not isinstance(value, str):
        return None
    text = " ".join(_CONTROL.sub(" ", value).split())
    return text[:limit] or None


def _version_name(value: Any, what: str) -> str | None:
    if value is None:
        return None
    if not isinstance(value, str):
        raise Unmappable(f"Jira {what} is a {_json_type(value)}, not a version name")
    return _clean(value, MAX_NAME)


def _loose_id(value: Any) -> str | None:
    """A Jira id given as a number or as text (``10105`` or ``"10105"``), else None."""
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    if isinstance(value, str) and _ID.fullmatch(value.strip()):
        return value.strip()
    return None


def _payload_id(value: Any, what: str) -> str | None:
    if value is None:
        return None
    found = _loose_id(value)
    if found is None:
        raise Unmappable(f"Jira {what} {str(value)[:80]!r} is not an id")
    return found


def _actor(user: Any) -> str:
    """Who did it in Jira: displayName, else name, else accountId, else "jira"."""
    if isinstance(user, dict):
        for field in ("displayName", "name", "accountId"):
            name = _clean(user.get(field), MAX_NAME)
            if name:
                return name
    return FALLBACK_ACTOR


def _epoch_milliseconds(value: Any) -> datetime | None:
    """A Jira ``timestamp`` (epoch milliseconds, a number or digits) in UTC; None if absent."""
    if value is None:
        return None
    number: float
    if isinstance(value, str) and _DIGITS.fullmatch(value.strip()):
        number = int(value.strip())
    elif isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value):
        number = value
    else:
        raise Unmappable(f"Jira timestamp {str(value)[:80]!r} is not epoch milliseconds")
    try:
        return datetime.fromtimestamp(number / 1000, UTC)
    except (OverflowError, OSError, ValueError):
        # Too far from now for a datetime, or for a float at all.
        raise Unmappable(f"Jira timestamp {str(value)[:80]} is out of range") from None


def _release_date(value: Any) -> datetime | None:
    """A version's ``releaseDate`` (YYYY-MM-DD) as midnight UTC; None if absent."""
    if value is None:
        return None
    try:
        day = date.fromisoformat(value) if isinstance(value, str) else None
    except ValueError:
        day = None
    if day is None:
        raise Unmappable(f"Jira version releaseDate {str(value)[:80]!r} is not a date")
    return datetime.combine(day, time(), UTC)


def _distinct(trains: Iterable[str | None]) -> list[str]:
    return list(dict.fromkeys(train for train in trains if train is not None))


def _change(removed: Sequence[_Version], added: Sequence[_Version]) -> str:
    """The fixVersions change as Jira names it: "5.5 → 5.6", "added 5.6" or "removed 5.5"."""
    old = ", ".join(version.label for version in removed)
    new = ", ".join(version.label for version in added)
    if old and new:
        return f"{old} → {new}"
    return f"added {new}" if new else f"removed {old}"


def _one_train_notes(extra_trains: Sequence[str]) -> tuple[str, ...]:
    if not extra_trains:
        return ()
    return (f"{', '.join(extra_trains)} left aside: a feature is in one open train at a time",)
