"""One router per resource; ``api_router`` gathers them."""

from __future__ import annotations

from fastapi import APIRouter

from api.routers import (
    audit,
    events,
    features,
    health,
    inbox,
    metrics,
    report,
    trains,
    webhooks,
)

api_router = APIRouter()
for module in (trains, report, features, audit, events, webhooks, inbox, health, metrics):
    api_router.include_router(module.router)
