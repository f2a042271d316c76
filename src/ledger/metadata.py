"""Who did what, through which door, and when: the metadata every ledger event carries."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum


class Source(StrEnum):
    """The door an event came through."""

    API = "api"
    JIRA = "jira"
    QTEST = "qtest"
    IMPORT = "import"
    DEMO = "demo"
    CLI = "cli"


@dataclass(frozen=True)
class EventMeta:
    """Provenance of one event.

    ``actor`` is the person who decided or did it; ``recorded_by`` the principal or
    integration that posted it; ``occurred_at`` the business time. The ledger's own
    ``recorded_at`` is the event's library timestamp, set when it is triggered.
    """

    actor: str
    recorded_by: str
    source: str
    source_ref: str | None
    correlation_id: str
    occurred_at: datetime
