"""Jira and QTest webhooks (SPEC §6): verified, stored in the inbox, answered 202.

The answer only says the delivery is safely stored; the inbox worker maps it to ledger
commands afterwards (``GET /v1/inbox`` shows what became of it).
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Annotated, Any

from fastapi import APIRouter, Query, Request

from api import schemas
from api.errors import RETRY_AFTER_SECONDS, ApiProblem
from api.schemas import problems
from integrations.inbox import Arrival
from integrations.receiving import MalformedDelivery, Received, Unverified, Webhooks

router = APIRouter(prefix="/v1/webhooks", tags=["webhooks"])

STORE_TIMEOUT_SECONDS = 10.0
"""How long a sender waits for its delivery to be stored before hearing 503."""


def _body(description: str, example: dict[str, Any]) -> dict[str, Any]:
    """The OpenAPI request body of a route that reads its raw bytes (to verify them)."""
    return {
        "requestBody": {
            "required": True,
            "description": description,
            "content": {"application/json": {"schema": {"type": "object"}, "example": example}},
        }
    }


JIRA_EXAMPLE = {
    "timestamp": 1764151200000,
    "webhookEvent": "jira:issue_updated",
    "user": {"displayName": "Maria Lopez"},
    "issue": {"key": "OBJ-603", "fields": {"summary": "Object lock"}},
    "changelog": {
        "id": "10105",
        "items": [
            {"fieldId": "fixVersions", "fromString": "5.5", "from": "10001", "to": None},
            {"fieldId": "fixVersions", "toString": "5.6", "to": "10002", "from": None},
        ],
    },
}
QTEST_EXAMPLE = {
    "event_timestamp": 1764151200000,
    "event_type": "testlog_submitted",
    "testlog": {"id": 90001, "project_id": 12, "testrun_id": 5501},
}


def _webhooks(request: Request) -> Webhooks:
    # Not a dependency: FastAPI's cost is per dependency, and a burst is all deliveries.
    webhooks: Webhooks = request.app.state.resources.webhooks
    return webhooks


async def accepted(webhooks: Webhooks, arrival: Arrival) -> Received:
    """``arrival`` once it is stored (or found stored); 503 if that takes too long."""
    try:
        async with asyncio.timeout(STORE_TIMEOUT_SECONDS):
            return await webhooks.stored(arrival)
    except TimeoutError:
        raise ApiProblem(
            503,
            "inbox-unavailable",
            f"the delivery was not stored within {STORE_TIMEOUT_SECONDS:g} s; send it again",
            headers={"Retry-After": str(RETRY_AFTER_SECONDS)},
        ) from None


def receipt(received: Received) -> schemas.DeliveryReceipt:
    return schemas.DeliveryReceipt(
        delivery=received.delivery,
        delivery_key=received.delivery_key,
        duplicate=received.duplicate,
    )


@contextmanager
def _refusals() -> Iterator[None]:
    """A delivery that fails verification is 401; one that is not JSON, 400."""
    try:
        yield
    except Unverified as error:
        raise ApiProblem(401, "unverified-webhook", str(error)) from None
    except MalformedDelivery as error:
        raise ApiProblem(400, "malformed-json", str(error)) from None


@router.post(
    "/jira",
    operation_id="receiveJiraWebhook",
    summary="A Jira Cloud or Data Center webhook delivery",
    description="Verified with `X-Hub-Signature: sha256=<HMAC>` when a Jira secret is "
    "configured; deduplicated on `X-Atlassian-Webhook-Identifier`. 202 once stored, even "
    "when the event maps to nothing; a retry of a stored delivery is 202 with "
    "`duplicate: true` and records nothing.",
    status_code=202,
    response_model=schemas.DeliveryReceipt,
    responses=problems(400, 401, 413, 503),
    openapi_extra=_body("the webhook's JSON, exactly as Jira sent it", JIRA_EXAMPLE),
)
async def receive_jira(request: Request) -> schemas.DeliveryReceipt:
    webhooks = _webhooks(request)
    body = await request.body()
    with _refusals():
        arrival = webhooks.jira(body, request.headers)
    return receipt(await accepted(webhooks, arrival))


@router.post(
    "/qtest",
    operation_id="receiveQTestWebhook",
    summary="A QTest webhook delivery",
    description="Verified with `x-qtest-signature` (hex HMAC-SHA256 of the body) or the "
    "URL token `?token=` when a QTest secret is configured; deduplicated on event type, "
    "test log id and timestamp. 202 once stored.",
    status_code=202,
    response_model=schemas.DeliveryReceipt,
    responses=problems(400, 401, 413, 422, 503),
    openapi_extra=_body("the webhook's JSON, exactly as QTest sent it", QTEST_EXAMPLE),
)
async def receive_qtest(
    request: Request,
    token: Annotated[
        str | None,
        Query(max_length=256, description="the integration's URL token, instead of a signature"),
    ] = None,
) -> schemas.DeliveryReceipt:
    webhooks = _webhooks(request)
    body = await request.body()
    with _refusals():
        arrival = webhooks.qtest(body, request.headers, token)
    return receipt(await accepted(webhooks, arrival))
