"""One router per resource; ``api_router`` gathers them."""

from __future__ import annotations

from fastapi import APIRouter

from api.routers import audit, events, features, health, trains

api_router = APIRouter()
for module in (trains, features, audit, events, health):
    api_router.include_router(module.router)
