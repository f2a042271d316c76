"""One router per resource; ``api_router`` gathers them."""

from __future__ import annotations

from fastapi import APIRouter

from api.routers import audit, events, features, health, metrics, report, trains

api_router = APIRouter()
for module in (trains, report, features, audit, events, health, metrics):
    api_router.include_router(module.router)
