"""The webhook inbox, for admins: what each delivery became, and mapping one again."""

from __future__ import annotations

import asyncio
import time
from typing import Annotated, Any

from fastapi import APIRouter, Path, Query, Response
from starlette.concurrency import run_in_threadpool

from api import schemas
from api.deps import Admin, InboxDep, ResourcesDep
from api.errors import ApiProblem
from api.schemas import FILTER_PATTERN, MAX_POSITION, problems
from integrations.inbox import Delivery, DeliveryStatus, Integration

router = APIRouter(prefix="/v1/inbox", tags=["inbox"])

PAGE_DEFAULT = 100
PAGE_MAX = 1000
RETRY_WAIT_SECONDS = 10.0
RETRY_POLL_SECONDS = 0.05
DeliveryId = Annotated[int, Path(ge=1, le=MAX_POSITION, description="the inbox id")]


@router.get(
    "",
    operation_id="listInbox",
    summary="Webhook deliveries and what became of them",
    description="Oldest first; filter by `status`, `integration`, `event_type`; page with "
    "`after=next_cursor`. `limit` defaults to 100 and is clamped to 1..1000.",
    response_model=schemas.InboxPage,
    responses=problems(401, 403, 422),
)
async def list_inbox(
    _admin: Admin,
    inbox: InboxDep,
    status: schemas.DeliveryStatusName | None = None,
    integration: schemas.IntegrationName | None = None,
    event_type: Annotated[
        str | None, Query(min_length=1, max_length=100, pattern=FILTER_PATTERN)
    ] = None,
    after: Annotated[int | None, Query(ge=0, le=MAX_POSITION, description="a cursor")] = None,
    limit: Annotated[int, Query(description="clamped, never refused")] = PAGE_DEFAULT,
) -> dict[str, Any]:
    size = max(1, min(limit, PAGE_MAX))

    def page() -> dict[str, Any]:
        found = inbox.find(
            status=DeliveryStatus(status) if status else None,
            integration=Integration(integration) if integration else None,
            event_type=event_type,
            after=after,
            limit=size + 1,
        )
        return {
            "items": [_summary(delivery) for delivery in found[:size]],
            "next_cursor": found[size - 1].id if len(found) > size else None,
            "counts": inbox.counts(),
        }

    return await run_in_threadpool(page)


@router.get(
    "/{delivery}",
    operation_id="getInboxDelivery",
    summary="One webhook delivery, with its headers and body",
    response_model=schemas.InboxDeliveryDetail,
    responses=problems(401, 403, 404, 422),
)
async def get_delivery(_admin: Admin, inbox: InboxDep, delivery: DeliveryId) -> dict[str, Any]:
    found = await run_in_threadpool(inbox.get, delivery)
    if found is None:
        raise ApiProblem(404, "not-found", f"no delivery {delivery} in the inbox")
    return _summary(found) | {"headers": found.headers, "payload": found.payload()}


@router.post(
    "/{delivery}/retry",
    operation_id="retryInboxDelivery",
    summary="Map a delivery again, after a configuration change",
    description="Whatever its status, the delivery is mapped again; commands it already "
    "recorded are recognised by their `source_ref` and not recorded twice. Answers once "
    "it is settled (200), or after 10 s with it still pending (202).",
    response_model=schemas.InboxDeliveryDetail,
    responses={
        202: {"model": schemas.InboxDeliveryDetail, "description": "still pending after 10 s"},
        **problems(401, 403, 404, 422),
    },
)
async def retry_delivery(
    _admin: Admin,
    resources: ResourcesDep,
    inbox: InboxDep,
    delivery: DeliveryId,
    response: Response,
) -> dict[str, Any]:
    reopened = await run_in_threadpool(
        inbox.reopen, delivery_ids=[delivery], statuses=tuple(DeliveryStatus)
    )
    if not reopened:
        raise ApiProblem(404, "not-found", f"no delivery {delivery} in the inbox")
    if resources.worker is not None:
        resources.worker.wake()
    deadline = time.monotonic() + RETRY_WAIT_SECONDS
    while True:
        found = await run_in_threadpool(inbox.get, delivery)
        assert found is not None  # deliveries are never deleted
        settled = found.status != DeliveryStatus.PENDING
        if settled or time.monotonic() >= deadline:
            break
        await asyncio.sleep(RETRY_POLL_SECONDS)
    if not settled:
        response.status_code = 202
    return _summary(found) | {"headers": found.headers, "payload": found.payload()}


def _summary(delivery: Delivery) -> dict[str, Any]:
    return {
        "id": delivery.id,
        "integration": str(delivery.integration),
        "delivery_key": delivery.delivery_key,
        "event_type": delivery.event_type,
        "received_at": delivery.received_at,
        "status": str(delivery.status),
        "reason": delivery.reason,
        "attempts": delivery.attempts,
        "next_attempt_at": delivery.next_attempt_at,
        "processed_at": delivery.processed_at,
        "positions": list(delivery.positions),
    }
