"""Liveness and readiness, for load balancers and orchestrators (no token needed)."""

from __future__ import annotations

import logging
from typing import Any

from fastapi import APIRouter, Response

from api import schemas
from api.deps import ResourcesDep

router = APIRouter(tags=["health"])
log = logging.getLogger(__name__)

MAX_READY_LAG = 1000
"""Events a projection may trail the log by and still take traffic."""
READY_TIMEOUT = 2.0
"""Seconds the check waits for the database: a probe must get its answer, even "no"."""


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
        positions = resources.positions.read(READY_TIMEOUT)
    except Exception as error:  # any failure to reach the database, or no answer in time
        log.warning("readiness check failed: %s", error or "no answer in time")
        response.status_code = 503
        return {
            "status": "not ready",
            "database": False,
            "head": None,
            "max_lag": MAX_READY_LAG,
            "projections": [],
            "detail": "the database is unreachable",
        }
    head, statuses = positions.head, positions.projections
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
