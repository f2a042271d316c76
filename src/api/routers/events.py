"""The global feed: every domain event in log order, for integrations catching up."""

from __future__ import annotations

from datetime import date, datetime
from enum import Enum
from itertools import islice
from typing import Annotated, Any
from uuid import UUID

from eventsourcing.persistence import StoredEvent
from fastapi import APIRouter, Query

from api import schemas
from api.deps import LedgerDep, Reader
from api.schemas import MAX_POSITION, iso_utc, problems
from ledger.aggregate import LedgerAggregate
from ledger.application import ReleaseLedger
from ledger.source_reference import SourceReference

router = APIRouter(prefix="/v1/events", tags=["events"])

FEED_PAGE_DEFAULT = 100
FEED_PAGE_MAX = 1000
_ENVELOPE = {
    "originator_id",
    "originator_version",
    "originator_topic",
    "timestamp",
    "meta",
    "prev_hash",
    "digest",
}


@router.get(
    "",
    operation_id="listEvents",
    summary="The global event feed after a position",
    description="Events in position order. Positions can have gaps: poll again with "
    "`after=last_position`. `limit` defaults to 100 and is clamped to 1..1000.",
    response_model=schemas.EventsPage,
    responses=problems(401, 403, 422),
)
def list_events(
    _reader: Reader,
    ledger: LedgerDep,
    after: Annotated[int, Query(ge=0, le=MAX_POSITION, description="a position")] = 0,
    limit: Annotated[int, Query(description="clamped, never refused")] = FEED_PAGE_DEFAULT,
) -> dict[str, Any]:
    return feed_page(ledger, after, max(1, min(limit, FEED_PAGE_MAX)))


def feed_page(ledger: ReleaseLedger, after: int, limit: int) -> dict[str, Any]:
    """Up to ``limit`` log entries after ``after``; idempotency claims are not shown."""
    raws = list(islice(ledger.event_log.read(after, batch=limit + 1), limit + 1))
    page = raws[:limit]
    items = []
    for raw in page:
        stored = StoredEvent(raw.originator_id, raw.originator_version, raw.topic, raw.state)
        event = ledger.mapper.to_domain_event(stored)
        # A claim is the ledger's bookkeeping for idempotent integrations, not a fact.
        if isinstance(event, LedgerAggregate.Event) and not isinstance(
            event, SourceReference.Claimed
        ):
            items.append(_present(raw.position, event))
    last = page[-1].position if page else after
    return {
        "items": items,
        "next_cursor": last if len(raws) > limit else None,
        "last_position": last,
    }


def _present(position: int, event: LedgerAggregate.Event) -> dict[str, Any]:
    meta = event.meta
    return {
        "position": position,
        "type": type(event).__name__,
        "stream": str(event.originator_id),
        "version": event.originator_version,
        "occurred_at": meta.occurred_at,
        "recorded_at": event.timestamp,
        "actor": meta.actor,
        "recorded_by": meta.recorded_by,
        "source": meta.source,
        "source_ref": meta.source_ref,
        "correlation_id": meta.correlation_id,
        "data": {
            name: _plain(value) for name, value in vars(event).items() if name not in _ENVELOPE
        },
    }


def _plain(value: Any) -> Any:
    """JSON values, with times written the way every other answer writes them."""
    if isinstance(value, datetime):
        return iso_utc(value)
    if isinstance(value, date):
        return value.isoformat()
    if isinstance(value, Enum):
        return value.value
    if isinstance(value, UUID):
        return str(value)
    if isinstance(value, dict):
        return {str(key): _plain(item) for key, item in value.items()}
    if isinstance(value, list | tuple | set | frozenset):
        return [_plain(item) for item in value]
    return value
