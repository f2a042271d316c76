"""The vocabulary of the domain (SPEC §3): kinds, statuses, outcomes, cycles, and id rules."""

from __future__ import annotations

import re
from datetime import date, datetime
from enum import StrEnum
from typing import TypeVar
from uuid import UUID, uuid5

from ledger.exceptions import InvalidCommand

TRAIN_ID_PATTERN = re.compile(r"^[0-9]+(\.[0-9]+){1,3}(-[a-z0-9]+)?$")
FEATURE_KEY_PATTERN = re.compile(r"^[A-Za-z][A-Za-z0-9_.-]{0,63}$")

# Stream ids are derived from the business keys, so every writer finds the same stream.
E = TypeVar("E", bound=StrEnum)

STREAM_NAMESPACE = UUID("6f1d4c2a-52a7-4f43-9d0e-2b51c2d7a8e1")

EARLIEST_DATE = date(1900, 1, 1)
LATEST_DATE = date(2199, 12, 31)
"""Gate and end-of-life dates lie in this range: any plan fits, and every chart of them
has room around its ends."""

MAX_TEXT = 2000
"""The longest text a field takes, once trimmed."""
CONTROL_CHARACTER_RANGES = r"\x00-\x1f\x7f-\x9f"
"""Unicode's control characters (category ``Cc``: C0, DEL and C1), as a regular expression's
character class body (escapes, which Python and JSON Schema's ECMA-262 patterns both read).
No name holds one: it would be invisible on the board and could not be searched for."""
PROSE_CONTROL_CHARACTER_RANGES = r"\x00-\x08\x0b-\x1f\x7f-\x9f"
"""The same but for tabs and line breaks (``\\t``, ``\\n``), which prose may hold."""

MAX_CUSTOMER_WEIGHT = 1_000_000
"""Deal sizes and temperatures fit, and a feature's summed weight stays finite."""


class TrainKind(StrEnum):
    MAJOR = "major"
    MINOR = "minor"
    HOTFIX = "hotfix"


class TrainStatus(StrEnum):
    PLANNING = "planning"
    SCOPED = "scoped"
    COMMITTED = "committed"
    FROZEN = "frozen"
    RELEASED = "released"


# The status a major reaches when each gate passes.
STATUS_AFTER_GATE = {
    1: TrainStatus.SCOPED,
    2: TrainStatus.COMMITTED,
    3: TrainStatus.FROZEN,
    4: TrainStatus.RELEASED,
}
GATE_NAMES = {
    1: "scope review",
    2: "plan and change management",
    3: "code freeze and beta readiness",
    4: "release",
}
RELEASE_GATE = 4


class GateOutcome(StrEnum):
    PASSED = "passed"
    CONDITIONAL = "conditional"
    FAILED = "failed"
    POSTPONED = "postponed"


PASSING_OUTCOMES = frozenset({GateOutcome.PASSED, GateOutcome.CONDITIONAL})


class Classification(StrEnum):
    ANCHOR = "anchor"
    COMMITTED = "committed"
    STRETCH = "stretch"


class ScopeStatus(StrEnum):
    PROPOSED = "proposed"
    COMMITTED = "committed"
    STRETCHED = "stretched"
    DROPPED = "dropped"
    MOVED_OUT = "moved_out"
    DELIVERED = "delivered"


# A feature with one of these statuses is still in its train's scope.
IN_SCOPE_STATUSES = frozenset({ScopeStatus.PROPOSED, ScopeStatus.COMMITTED, ScopeStatus.STRETCHED})


class DecisionAction(StrEnum):
    COMMIT = "commit"
    STRETCH = "stretch"
    DROP = "drop"
    MOVE = "move"
    ADD = "add"


ACTIONS_NEEDING_REASON = frozenset(
    {DecisionAction.DROP, DecisionAction.STRETCH, DecisionAction.MOVE, DecisionAction.ADD}
)


class QACycle(StrEnum):
    PHASE1 = "phase1"
    PHASE2 = "phase2"
    GOLDEN = "golden"


class SupportStatus(StrEnum):
    SUPPORTED = "supported"
    HOTFIX_ONLY = "hotfix_only"
    EOL = "eol"


SUPPORT_ORDER = (SupportStatus.SUPPORTED, SupportStatus.HOTFIX_ONLY, SupportStatus.EOL)


def parse_enum(enum: type[E], value: str, *, field: str) -> E:
    """The member of ``enum`` named by ``value``, or an ``InvalidCommand`` listing the choices."""
    try:
        return enum(value)
    except ValueError:
        choices = ", ".join(member.value for member in enum)
        raise InvalidCommand(
            f"{field} must be one of {choices}, not {value!r}", field=field
        ) from None


def check_train_id(train_id: str, *, field: str = "train") -> str:
    """A valid train id (``5.5``, ``5.4.1``, ``5.1.7-hf2``) or an ``InvalidCommand``."""
    if not isinstance(train_id, str) or not TRAIN_ID_PATTERN.fullmatch(train_id):
        raise InvalidCommand(
            f"{field} {train_id!r} is not a train id like 5.5, 5.4.1 or 5.1.7-hf2", field=field
        )
    return train_id


def check_feature_key(key: str, *, field: str = "feature") -> str:
    """A valid feature key (a Jira key or a slug) or an ``InvalidCommand``."""
    if not isinstance(key, str) or not FEATURE_KEY_PATTERN.fullmatch(key):
        raise InvalidCommand(
            f"{field} {key!r} is not a feature key: a letter, then up to 63 letters, "
            "digits, '_', '.' or '-'",
            field=field,
        )
    return key


def train_stream_id(train_id: str) -> UUID:
    return uuid5(STREAM_NAMESPACE, f"train:{train_id}")


def feature_stream_id(key: str) -> UUID:
    return uuid5(STREAM_NAMESPACE, f"feature:{key}")


def source_reference_stream_id(source_ref: str) -> UUID:
    return uuid5(STREAM_NAMESPACE, f"source-ref:{source_ref}")


def check_calendar_date(value: object, field: str) -> date:
    """A calendar date (not a moment) between ``EARLIEST_DATE`` and ``LATEST_DATE``."""
    if not isinstance(value, date) or isinstance(value, datetime):
        raise InvalidCommand(f"{field} must be a calendar date (YYYY-MM-DD)", field=field)
    if not EARLIEST_DATE <= value <= LATEST_DATE:
        raise InvalidCommand(
            f"{field} must lie between {EARLIEST_DATE.isoformat()} and {LATEST_DATE.isoformat()}",
            field=field,
        )
    return value
