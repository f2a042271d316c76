"""The change-management log, filtered and paged by cursor."""

from __future__ import annotations

from typing import Annotated, Any, Literal

from fastapi import APIRouter, Query

from api import schemas
from api.deps import ProjectionReaderAt
from api.schemas import FILTER_PATTERN, MAX_POSITION, Moment, problems
from projections.queries import AUDIT_PAGE_DEFAULT, AUDIT_PAGE_MAX

router = APIRouter(prefix="/v1/audit", tags=["audit"])

Filter = Annotated[str | None, Query(min_length=1, max_length=200, pattern=FILTER_PATTERN)]


@router.get(
    "",
    operation_id="listAudit",
    summary="Change-management decisions, oldest first, a page at a time",
    description="Pass a page's `next_cursor` as `after` for the next one; pages stay stable "
    f"while new decisions arrive. `limit` defaults to {AUDIT_PAGE_DEFAULT} and is clamped "
    f"to 1..{AUDIT_PAGE_MAX}.",
    response_model=schemas.AuditPage,
    responses=problems(401, 403, 422, 503),
)
def list_audit(
    reading: ProjectionReaderAt,
    train: Filter = None,
    feature: Filter = None,
    actor: Filter = None,
    action: Annotated[Literal["commit", "stretch", "drop", "move", "add"] | None, Query()] = None,
    since: Annotated[Moment | None, Query(description="decisions that occurred from then")] = None,
    until: Annotated[Moment | None, Query(description="decisions that occurred until then")] = None,
    after: Annotated[int | None, Query(ge=0, le=MAX_POSITION, description="a cursor")] = None,
    limit: Annotated[int, Query(description="clamped, never refused")] = AUDIT_PAGE_DEFAULT,
) -> dict[str, Any]:
    items, cursor = reading.queries.audit(
        train=train,
        feature=feature,
        actor=actor,
        action=action,
        since=since,
        until=until,
        after=after,
        limit=max(1, min(limit, AUDIT_PAGE_MAX)),
        at=reading.at,
    )
    return {"items": items, "next_cursor": cursor}
