"""Prometheus metrics, for a scraper inside the network (no token needed, like /healthz)."""

from __future__ import annotations

from fastapi import APIRouter, Request, Response

from api.metrics import ApiMetrics

router = APIRouter(tags=["health"])


# Left out of the OpenAPI document: it is a scraper's text format, not a JSON resource
# for a client generator.
@router.get(
    "/metrics",
    operation_id="getMetrics",
    summary="Prometheus metrics; no token needed, so keep it inside the network",
    response_class=Response,
    include_in_schema=False,
)
def metrics(request: Request) -> Response:
    # A plain def: the projections' positions are read from the database, off the loop.
    api_metrics: ApiMetrics = request.app.state.metrics
    body, content_type = api_metrics.exposition(request.headers.get("accept", ""))
    return Response(body, media_type=content_type)
