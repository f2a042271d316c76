"""One router per resource, each included in the app by ``include_routers``."""

from __future__ import annotations

from fastapi import FastAPI

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
