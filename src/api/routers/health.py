"""Liveness and readiness, for load balancers and orchestrators (no token needed)."""

from __future__ import annotations

import logging
from typing import Any

from fastapi import APIRouter, Response

from api import schemas
from api.deps import ResourcesDep
from projections.runner import projection_status

router = APIRouter(tags=["health"])
log = logging.getLogger(__name__)

MAX_READY_LAG = 1000
"""Events a projection may trail the log by and still take traffic."""


@router.get(
    "/healthz",
    operation_id="checkLiveness",
    summary="The process is up",
    response_model=schemas.Liveness,
)
def liveness() -> dict[str, Any]:
    return {"status": "ok"}


@router.get(
    "/readyz",
    operation_id="checkReadiness",
    summary="The database answers and the projections are close to the log's head",
    response_model=schemas.ReadinessCheck,
    responses={503: {"model": schemas.ReadinessCheck, "description": "not ready"}},
)
def readiness(resources: ResourcesDep, response: Response) -> dict[str, Any]:
    try:
        head = resources.ledger.event_log.last_position()
        statuses = projection_status(resources.engine, resources.ledger)
    except Exception as error:  # any failure to reach the database means "not ready"
        log.warning("readiness check failed: %s", error)
        response.status_code = 503
        return {
            "status": "not ready",
            "database": False,
            "head": None,
            "max_lag": MAX_READY_LAG,
            "projections": [],
            "detail": "the database is unreachable",
        }
    lagging = [status.name for status in statuses if status.lag > MAX_READY_LAG]
    if lagging:
        response.status_code = 503
    return {
        "status": "not ready" if lagging else "ready",
        "database": True,
        "head": head,
        "max_lag": MAX_READY_LAG,
        "projections": [
            {"name": status.name, "position": status.position, "lag": status.lag}
            for status in statuses
        ],
        "detail": f"projections behind: {', '.join(lagging)}" if lagging else None,
    }
