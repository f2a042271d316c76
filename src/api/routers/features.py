"""Features: where each stands now, and its whole journey across trains."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Path

from api import schemas
from api.deps import ProjectionReaderAt
from api.schemas import problems
from ledger.values import FEATURE_KEY_PATTERN

router = APIRouter(prefix="/v1/features", tags=["features"])

FeaturePath = Annotated[
    str,
    Path(
        pattern=FEATURE_KEY_PATTERN.pattern,
        description="a Jira key or a slug",
        examples=["DEDUP-7"],
    ),
]
READ_PROBLEMS = problems(401, 403, 404, 422, 503)


@router.get(
    "/{key}",
    operation_id="getFeature",
    summary="A feature: its current train, classification, status and customers",
    response_model=schemas.Feature,
    responses=READ_PROBLEMS,
)
def get_feature(reading: ProjectionReaderAt, key: FeaturePath) -> dict[str, Any]:
    return reading.queries.feature(key, reading.at)


@router.get(
    "/{key}/journey",
    operation_id="getFeatureJourney",
    summary="Every event about a feature in the order it occurred, with lateness",
    response_model=schemas.Journey,
    responses=READ_PROBLEMS,
)
def get_feature_journey(reading: ProjectionReaderAt, key: FeaturePath) -> dict[str, Any]:
    return {"feature": key, "items": reading.queries.journey(key, reading.at)}
