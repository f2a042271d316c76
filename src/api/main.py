"""The ASGI application: ``create_app`` wires settings, lifespan, errors and routers.

``ledger serve`` runs it with uvicorn as a factory (``api.main:create_app``), so each
worker process opens its own resources from ``LEDGER_*`` settings.
"""

from __future__ import annotations

from typing import Any

from fastapi import FastAPI
from fastapi.telemetry import TelemetryConfig

from api.errors import MAX_BODY_BYTES, BodySizeLimit, install_error_handlers
from api.idempotency import IdempotencyMiddleware
from api.metrics import install_metrics
from api.resources import lifespan
from api.responses import PROBLEM_MEDIA_TYPE, ORJSONResponse
from api.routers import ROUTERS, dashboard, include_routers, methods_by_path
from api.routers.dashboard import install_dashboard
from api.security import SecurityHeaders, redact_access_log
from ledger.config import Settings

API_VERSION = "1.0.0"
NO_OPENTELEMETRY: TelemetryConfig = {"tracing": False, "metrics": False, "logs": False}
"""FastAPI's own OpenTelemetry hooks, off: the API's metrics are Prometheus (``/metrics``),
and with them on every request asks the environment for a provider no one configured."""
PROBLEM_SCHEMA = {"$ref": "#/components/schemas/Problem"}
DESCRIPTION = """\
Commands record immutable events; reads come from projections that catch up
asynchronously. After a write, pass its highest `events[].position` as `min_position`
to read your own write. Errors are RFC 9457 problems (`application/problem+json`).
"""


def create_app(settings: Settings | None = None) -> FastAPI:
    """A new API app; its resources open when it starts (its lifespan), not here."""
    app = FastAPI(
        title="Release Ledger",
        version=API_VERSION,
        description=DESCRIPTION,
        lifespan=lifespan,
        default_response_class=ORJSONResponse,
        telemetry=NO_OPENTELEMETRY,
    )
    app.state.settings = settings or Settings()
    redact_access_log()
    install_error_handlers(app)
    # Inside the size limit, outside the exception handlers: it keeps refusals' answers.
    app.add_middleware(IdempotencyMiddleware)
    app.add_middleware(BodySizeLimit, max_bytes=MAX_BODY_BYTES)
    app.add_middleware(SecurityHeaders)
    install_metrics(app)  # added last, so outermost: it times the refusals above too
    include_routers(app)
    install_dashboard(app)
    app.state.methods_by_path = methods_by_path(
        [*(module.router for module in ROUTERS), dashboard.router]
    )
    _document_problems(app)
    return app


def _document_problems(app: FastAPI) -> None:
    """Describe error responses as ``application/problem+json``, which is what is sent.

    FastAPI files an extra response's model under the route's JSON media type.
    """
    generate = app.openapi

    def openapi() -> dict[str, Any]:
        if app.openapi_schema is not None:
            return app.openapi_schema
        schema = generate()
        for path in schema.get("paths", {}).values():
            for operation in path.values():
                for response in operation.get("responses", {}).values():
                    content = response.get("content", {})
                    if content.get("application/json", {}).get("schema") == PROBLEM_SCHEMA:
                        moved = content.pop("application/json")
                        content[PROBLEM_MEDIA_TYPE] = moved | content.get(PROBLEM_MEDIA_TYPE, {})
        app.openapi_schema = schema
        return schema

    app.openapi = openapi  # type: ignore[method-assign]
