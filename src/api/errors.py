"""Every error as an RFC 9457 problem (``application/problem+json``).

A problem has ``type`` (a stable reference clients can switch on), ``title``, ``status``
and ``detail``; validation problems list each field in ``errors``, refused gate passes
list the unmet criteria in ``unmet``. Whatever a client sends ends in a 4xx: a 5xx
means the server or its database failed, and its detail never echoes internals.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from email.message import Message
from http import HTTPStatus
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from starlette.datastructures import Headers
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.responses import Response
from starlette.types import ASGIApp, Receive, Scope, Send
from starlette.types import Message as ASGIMessage

from api.responses import ProblemResponse
from ledger.exceptions import (
    ConcurrencyConflict,
    GateCriteriaUnmet,
    InvalidCommand,
    LedgerError,
    NotFound,
    RuleViolation,
)
from projections.schema import UNAVAILABLE_ERRORS

log = logging.getLogger(__name__)

PROBLEM_BASE = "/problems/"
MAX_BODY_BYTES = 1024 * 1024
RETRY_AFTER_SECONDS = 1


class ApiProblem(Exception):
    """A problem the API layer itself raises (credentials, roles, stale projections)."""

    def __init__(
        self,
        status: int,
        code: str,
        detail: str,
        *,
        title: str | None = None,
        headers: Mapping[str, str] | None = None,
    ) -> None:
        super().__init__(detail)
        self.status = status
        self.code = code
        self.detail = detail
        self.title = title or HTTPStatus(status).phrase
        self.headers = dict(headers or {})


def problem(
    status: int,
    code: str | None,
    detail: str,
    *,
    title: str | None = None,
    headers: Mapping[str, str] | None = None,
    **extra: Any,
) -> ProblemResponse:
    """A problem response; ``code`` None is a plain HTTP status (``about:blank``)."""
    body = {
        "type": PROBLEM_BASE + code if code else "about:blank",
        "title": title or HTTPStatus(status).phrase,
        "status": status,
        "detail": detail,
        **extra,
    }
    return ProblemResponse(body, status_code=status, headers=dict(headers or {}))


# ------------------------------------------------------------------- handlers


_LEDGER_STATUS: tuple[tuple[type[LedgerError], int, str], ...] = (
    (InvalidCommand, 422, "Invalid command"),
    (NotFound, 404, "Not found"),
    (GateCriteriaUnmet, 409, "Gate criteria unmet"),
    (ConcurrencyConflict, 409, "Concurrent change"),
    (RuleViolation, 409, "Refused by the ledger's rules"),
)


async def _ledger_error(request: Request, error: Exception) -> Response:
    assert isinstance(error, LedgerError)
    known = next(
        ((status, title) for family, status, title in _LEDGER_STATUS if isinstance(error, family)),
        None,
    )
    if known is None:
        # ConfigurationError, IntegrityViolation: the server's state, never the request.
        log.error("ledger error on %s %s: %s", request.method, request.url.path, error.detail)
        return problem(500, "internal-error", "the ledger failed to answer; see the server log")
    status, title = known
    extra: dict[str, Any] = {}
    if isinstance(error, InvalidCommand):
        extra["errors"] = [{"field": error.field, "message": error.detail, "type": "invalid"}]
    if isinstance(error, GateCriteriaUnmet):
        extra["unmet"] = error.unmet
    headers = {}
    if isinstance(error, ConcurrencyConflict):
        headers["Retry-After"] = str(RETRY_AFTER_SECONDS)  # the rivals will have finished
    return problem(status, error.code, error.detail, title=title, headers=headers, **extra)


def _is_json(content_type: str | None) -> bool:
    if not content_type:
        return False
    message = Message()
    message["content-type"] = content_type
    subtype = message.get_content_subtype()
    return message.get_content_maintype() == "application" and (
        subtype == "json" or subtype.endswith("+json")
    )


def _field(location: Sequence[Any]) -> str:
    return ".".join(str(part) for part in location[1:]) or str(location[0])


async def _validation_error(request: Request, error: Exception) -> Response:
    assert isinstance(error, RequestValidationError)
    errors = list(error.errors())
    malformed = next((e for e in errors if e.get("type") == "json_invalid"), None)
    if malformed is not None:
        reason = (malformed.get("ctx") or {}).get("error", "malformed JSON")
        position = malformed["loc"][-1] if len(malformed["loc"]) > 1 else None
        where = f" at character {position}" if isinstance(position, int) else ""
        return problem(400, "malformed-json", f"the body is not valid JSON: {reason}{where}")
    body_errors = [e for e in errors if tuple(e.get("loc", ()))[:1] == ("body",)]
    if body_errors and request.method in ("POST", "PUT", "PATCH"):
        content_type = request.headers.get("content-type")
        if content_type and not _is_json(content_type):
            return problem(
                415,
                "unsupported-media-type",
                f"the body must be JSON (Content-Type: application/json), not {content_type}",
            )
        if not content_type and isinstance(error.body, bytes) and error.body:
            return problem(
                415,
                "unsupported-media-type",
                "the body has no Content-Type: send it as application/json",
            )
    listed = [
        {
            "field": _field(e.get("loc", ("body",))),
            "in": str(e.get("loc", ("body",))[0]),
            "message": str(e.get("msg", "invalid")),
            "type": str(e.get("type", "invalid")),
        }
        for e in errors
    ]
    fields = ", ".join(dict.fromkeys(item["field"] for item in listed))
    return problem(
        422,
        "validation-error",
        f"the request is invalid: {fields}",
        title="Invalid request",
        errors=listed,
    )


async def _http_error(request: Request, error: Exception) -> Response:
    assert isinstance(error, StarletteHTTPException)
    status = error.status_code
    if status == 400:
        # FastAPI's own 400: the body did not decode (too deeply nested, a number with
        # thousands of digits, bytes that are not UTF-8).
        return problem(400, "malformed-json", "the body could not be read as JSON")
    if status == 404:
        detail = f"no resource at {request.method} {request.url.path}"
    elif status == 405:
        allowed = allowed_methods(request, error)
        detail = f"{request.method} is not allowed on {request.url.path}; allowed: {allowed}"
        return problem(status, None, detail, headers={**(error.headers or {}), "Allow": allowed})
    else:
        detail = str(error.detail)
    return problem(status, None, detail, headers=error.headers)


def allowed_methods(request: Request, error: StarletteHTTPException) -> str:
    """Every method the matched path takes, for ``Allow``.

    Starlette names only the methods of the route it matched first: ``/v1/trains`` has
    one route for GET and another for POST, and its 405 would say ``Allow: GET``. The app
    keeps each path's methods across its routes (``app.state.methods_by_path``).
    """
    path = getattr(request.scope.get("route"), "path_format", None)
    known: Mapping[str, str] = getattr(request.app.state, "methods_by_path", {})
    return known.get(path or "") or (error.headers or {}).get("Allow", "")


async def _api_problem(request: Request, error: Exception) -> Response:
    assert isinstance(error, ApiProblem)
    return problem(error.status, error.code, error.detail, title=error.title, headers=error.headers)


async def _unavailable(request: Request, error: Exception) -> Response:
    log.warning("database unavailable on %s %s: %s", request.method, request.url.path, error)
    return problem(
        503,
        "database-unavailable",
        "the database is unavailable or busy; try again shortly",
        headers={"Retry-After": str(RETRY_AFTER_SECONDS)},
    )


async def _internal_error(request: Request, error: Exception) -> Response:
    log.exception("unhandled error on %s %s", request.method, request.url.path, exc_info=error)
    return problem(500, "internal-error", "the server failed to answer; see the server log")


def install_error_handlers(app: FastAPI) -> None:
    """Make every error the app can meet a problem response."""
    app.add_exception_handler(LedgerError, _ledger_error)
    app.add_exception_handler(RequestValidationError, _validation_error)
    app.add_exception_handler(StarletteHTTPException, _http_error)
    app.add_exception_handler(ApiProblem, _api_problem)
    for unavailable in UNAVAILABLE_ERRORS:
        app.add_exception_handler(unavailable, _unavailable)
    app.add_exception_handler(Exception, _internal_error)


# ------------------------------------------------------------------ body limit


class BodySizeLimit:
    """Refuse request bodies over ``max_bytes`` with 413 before anything parses them.

    A declared ``Content-Length`` over the limit is refused without reading a byte; a
    body sent chunked (or lying about its length) is counted as it streams in. The
    body is buffered here, which costs nothing more: every route reads it whole.
    """

    def __init__(self, app: ASGIApp, max_bytes: int = MAX_BODY_BYTES) -> None:
        self.app = app
        self.max_bytes = max_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        declared = Headers(scope=scope).get("content-length")
        if declared is not None:
            declared = declared.strip()
            if not declared.isdigit():
                await self._refuse(scope, receive, send, 400, "Content-Length is not a number")
                return
            # Past 18 digits int() may refuse the text; it is over the limit anyway.
            if len(declared) > 18 or int(declared) > self.max_bytes:
                await self._too_large(scope, receive, send)
                return
        chunks: list[bytes] = []
        size = 0
        while True:
            message = await receive()
            if message["type"] == "http.disconnect":
                return  # the client left; there is no one to answer
            chunk = message.get("body", b"")
            size += len(chunk)
            if size > self.max_bytes:
                await self._too_large(scope, receive, send)
                return
            chunks.append(chunk)
            if not message.get("more_body", False):
                break
        await self.app(scope, replaying(b"".join(chunks), receive), send)

    async def _too_large(self, scope: Scope, receive: Receive, send: Send) -> None:
        await self._refuse(
            scope,
            receive,
            send,
            413,
            f"the request body is over the limit of {self.max_bytes:,} bytes",
            code="body-too-large",
        )

    @staticmethod
    async def _refuse(
        scope: Scope,
        receive: Receive,
        send: Send,
        status: int,
        detail: str,
        *,
        code: str = "bad-request",
    ) -> None:
        # The rest of the body stays unread: the server closes the connection after this.
        response = problem(status, code, detail, headers={"Connection": "close"})
        await response(scope, receive, send)


def replaying(body: bytes, receive: Receive) -> Receive:
    """A receive that gives ``body``, already read, as one message, then what ``receive``
    gives (past the body only a disconnect can come)."""
    replayed = False

    async def replay() -> ASGIMessage:
        nonlocal replayed
        if not replayed:
            replayed = True
            return {"type": "http.request", "body": body, "more_body": False}
        return await receive()

    return replay
