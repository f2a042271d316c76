"""One router per resource, each included in the app by ``include_routers``."""

from __future__ import annotations

from collections.abc import Iterable

from fastapi import APIRouter, FastAPI
from fastapi.routing import APIRoute

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

# The busiest first: a request is matched against each router in turn.
ROUTERS = (trains, webhooks, features, audit, events, report, inbox, health, metrics)


def include_routers(app: FastAPI) -> None:
    """Each resource's router straight into the app: FastAPI matches a request through
    every level of nesting, so one level is cheaper than two."""
    for module in ROUTERS:
        app.include_router(module.router)


def methods_by_path(routers: Iterable[APIRouter]) -> dict[str, str]:
    """Each path template with every method some route of ``routers`` takes on it."""
    methods: dict[str, set[str]] = {}
    for router in routers:
        for route in router.routes:
            if isinstance(route, APIRoute):
                methods.setdefault(route.path_format, set()).update(route.methods or ())
    return {path: ", ".join(sorted(taken)) for path, taken in methods.items()}
