"""The two busiest requests, answered before FastAPI routes them.

Dashboards poll trains, and a Jira or QTest burst is nothing but deliveries. For both,
FastAPI's routing and dependency solving cost more than the answer itself, so
``Shortcuts`` answers them when it can decide them from what the process already holds:

- ``GET /v1/trains/{train}`` (no query but ``min_position``) with a token the
  ``Authenticator`` remembers, whose train document the queries hold at the state the
  ``ChangeWatch`` last heard: the same pre-rendered body the route sends.
- ``POST /v1/webhooks/jira`` and ``/qtest`` (no query but QTest's ``token``) that verify:
  stored through the same ``Webhooks`` door and answered with the same receipt.
- A train command (``POST /v1/trains/{train}/qa-runs`` and the other routes that take just
  the train, a JSON body and the write context) with a remembered writer's token, a body
  the route's model accepts, and no ``Idempotency-Key``, ``X-Correlation-Id`` or query:
  the route's own function runs it, its answer is serialized through the route's
  ``response_model``, and a refusal is answered by the app's own exception handler.

Everything else, and everything it cannot decide (a token not yet remembered, a document
not cached, a delivery that fails verification or does not parse), passes through to the
app untouched, body included: the routes stay the one place that validates, refuses and
documents. The shortcuts sit inside the metrics, security-header and body-size layers, so
their answers are counted, carry the same headers, and never see a body over the limit.
"""

from __future__ import annotations

import inspect
import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, get_type_hints
from urllib.parse import unquote_plus

import orjson
from fastapi.routing import APIRoute
from pydantic import BaseModel, ValidationError
from starlette.datastructures import Headers
from starlette.requests import Request
from starlette.responses import Response
from starlette.types import ASGIApp, Receive, Scope, Send

from api.deps import WriteContext
from api.errors import ApiProblem, problem, replaying
from api.responses import ORJSONResponse
from api.routers import trains
from api.routers.trains import train_body
from api.routers.webhooks import accepted, receipt
from api.tokens import Principal, Role
from ledger.values import TRAIN_ID_PATTERN

if TYPE_CHECKING:
    from api.resources import Resources

TRAIN_PATH = re.compile(r"/v1/trains/([^/]+)")
TRAIN_COMMAND_PATH = re.compile(r"/v1/trains/([^/]+)(/[a-z-]+)")
MIN_POSITION_QUERY = re.compile(rb"min_position=(\d{1,18})")
QTEST_TOKEN_QUERY = re.compile(rb"token=([^&;]{1,768})")
WEBHOOK_PATHS = {"/v1/webhooks/jira": "jira", "/v1/webhooks/qtest": "qtest"}
MAX_URL_TOKEN_LENGTH = 256
"""The route's own limit on QTest's ``?token=``; a longer one is the route's to refuse."""


@dataclass(frozen=True)
class RouteTemplate:
    """What the metrics read off a matched route: its template, never the raw path."""

    path_format: str


TRAIN_ROUTE = RouteTemplate("/v1/trains/{train}")
WEBHOOK_ROUTES = {path: RouteTemplate(path) for path in WEBHOOK_PATHS}
COMMAND_PARAMETERS = ["train", "body", "write"]
MAX_TRAIN_LENGTH = 64
"""``TrainPath``'s ``max_length``: a longer train id is the route's to refuse."""


@dataclass(frozen=True)
class TrainCommand:
    """A write route that takes the train, a JSON body and the write context, and nothing
    else: what the shortcut needs to run it as FastAPI would."""

    route: APIRoute
    body: type[BaseModel]
    response: type[BaseModel]
    status: int

    @classmethod
    def of(cls, route: APIRoute) -> TrainCommand | None:
        parameters = inspect.signature(route.endpoint).parameters
        if route.methods != {"POST"} or list(parameters) != COMMAND_PARAMETERS:
            return None
        body = get_type_hints(inspect.unwrap(route.endpoint))["body"]
        return cls(route, body, route.response_model, route.status_code or 200)


TRAIN_COMMANDS = {
    route.path_format.removeprefix(trains.router.prefix + "/{train}"): command
    for route in trains.router.routes
    if isinstance(route, APIRoute) and (command := TrainCommand.of(route)) is not None
}
"""By the path after ``/v1/trains/{train}``: ``/qa-runs``, ``/decisions``, ..."""


class Shortcuts:
    """Answer a remembered train read, a verified webhook delivery or a plain train
    command; pass the rest on."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        resources: Resources | None = (
            getattr(scope["app"].state, "resources", None) if scope["type"] == "http" else None
        )
        if resources is not None:
            method, path = scope["method"], scope["path"]
            if method == "GET" and (match := TRAIN_PATH.fullmatch(path)):
                if await self._train(resources, match[1], scope, receive, send):
                    return
            elif method == "POST" and path in WEBHOOK_PATHS:
                await self._delivery(resources, WEBHOOK_PATHS[path], scope, receive, send)
                return
            elif method == "POST" and (match := TRAIN_COMMAND_PATH.fullmatch(path)):
                command = TRAIN_COMMANDS.get(match[2])
                if command is not None:
                    await self._command(resources, command, match[1], scope, receive, send)
                    return
        await self.app(scope, receive, send)

    async def _train(
        self, resources: Resources, train: str, scope: Scope, receive: Receive, send: Send
    ) -> bool:
        """Send the train's document if it is known without asking anyone; else False."""
        query = scope["query_string"]
        min_position = 0
        if query:
            found = MIN_POSITION_QUERY.fullmatch(query)
            if found is None:
                return False  # as_of, known_at or anything else: the route's to read
            min_position = int(found[1])
        if _remembered(resources, _bearer(scope), Role.READER) is None:
            return False
        body = resources.queries.train_remembered(train, train_body, min_position)
        if body is None:
            return False
        scope["route"] = TRAIN_ROUTE
        await Response(body, media_type="application/json")(scope, receive, send)
        return True

    async def _delivery(
        self, resources: Resources, integration: str, scope: Scope, receive: Receive, send: Send
    ) -> None:
        """Store a verified delivery and send its receipt; hand anything else to the route."""
        body, replay = await _read_body(receive)
        webhooks = resources.webhooks
        headers = Headers(scope=scope)
        try:
            if integration == "jira":
                arrival = webhooks.jira(body, headers)
            else:
                arrival = webhooks.qtest(body, headers, _url_token(scope["query_string"]))
        except Exception:
            # Unverified, malformed, a query the route reads, or whatever else: the route
            # meets the same and answers with the problem the API documents for it.
            await self.app(scope, replay, send)
            return
        scope["route"] = WEBHOOK_ROUTES[scope["path"]]
        try:
            stored = await accepted(webhooks, arrival)
        except ApiProblem as refusal:
            answer = problem(
                refusal.status,
                refusal.code,
                refusal.detail,
                title=refusal.title,
                headers=refusal.headers,
            )
            await answer(scope, receive, send)
            return
        except Exception:
            # The database failed: the route stores it again (a delivery is stored once,
            # whoever tries) and answers with the app's problem for what went wrong.
            await self.app(scope, replay, send)
            return
        # What FastAPI makes of the route's response_model, by the same call.
        content = receipt(stored).model_dump(mode="json", by_alias=True)
        await ORJSONResponse(content, status_code=202)(scope, receive, send)

    async def _command(
        self,
        resources: Resources,
        command: TrainCommand,
        train: str,
        scope: Scope,
        receive: Receive,
        send: Send,
    ) -> None:
        """Run a train command the route would accept; hand anything else to the route."""
        writer = _remembered(resources, _plain_write(scope, train), Role.WRITER)
        if writer is None:
            await self.app(scope, receive, send)
            return
        body, replay = await _read_body(receive)
        try:
            model = command.body.model_validate(orjson.loads(body))
        except (orjson.JSONDecodeError, ValidationError):
            # The route meets the same and answers with the problem the API documents.
            await self.app(scope, replay, send)
            return
        scope["route"] = command.route
        write = WriteContext(writer, resources.ledger, resources.commands, None)
        try:
            result = await command.route.endpoint(train=train, body=model, write=write)
        except Exception as error:
            handler = _handler(scope, error)
            if handler is None:
                raise
            answer = handler(Request(scope, replay), error)
            if inspect.isawaitable(answer):
                answer = await answer
        else:
            # What FastAPI makes of the route's response_model.
            content = command.response.model_validate(result).model_dump(mode="json", by_alias=True)
            answer = ORJSONResponse(content, status_code=command.status)
        await answer(scope, receive, send)


class _PassOn(Exception):
    """The request is the route's to answer."""


def _bearer(scope: Scope) -> str | None:
    for name, value in scope["headers"]:
        if name == b"authorization":
            scheme, _, token = value.decode("latin-1").partition(" ")
            return token if scheme.lower() == "bearer" and token else None
    return None


def _remembered(resources: Resources, token: str | None, role: Role) -> Principal | None:
    """The principal the ``Authenticator`` remembers for ``token``, if it has ``role``."""
    if token is None:
        return None
    principal = resources.authenticator.remembered(token)
    return principal if principal is not None and principal.may(role) else None


def _plain_write(scope: Scope, train: str) -> str | None:
    """The bearer token of a command with nothing the route must read itself (a query, a
    content type other than JSON, an idempotency key, a correlation id, an unusual train
    id); else None."""
    if scope["query_string"] or len(train) > MAX_TRAIN_LENGTH:
        return None
    if not TRAIN_ID_PATTERN.fullmatch(train):
        return None
    content_type = None
    for name, value in scope["headers"]:
        if name == b"content-type" and content_type is None:  # the first, as the route reads
            content_type = value.lower()
        elif name in (b"idempotency-key", b"x-correlation-id"):
            return None
    return _bearer(scope) if content_type == b"application/json" else None


def _handler(scope: Scope, error: Exception) -> Callable[[Request, Exception], Any] | None:
    """The app's handler for ``error``, as its exception middleware would choose it; None
    for what only the server error middleware answers (a 500)."""
    handlers = scope["app"].exception_handlers
    for kind in type(error).__mro__:
        if kind is Exception:
            return None
        if kind in handlers:
            handler: Callable[[Request, Exception], Any] = handlers[kind]
            return handler
    return None


def _url_token(query: bytes) -> str | None:
    """QTest's ``?token=``; ``_PassOn`` for any other query, which the route validates."""
    if not query:
        return None
    found = QTEST_TOKEN_QUERY.fullmatch(query)
    if found is None:
        raise _PassOn
    token = unquote_plus(found[1].decode("latin-1"))
    if not token or len(token) > MAX_URL_TOKEN_LENGTH:
        raise _PassOn
    return token


async def _read_body(receive: Receive) -> tuple[bytes, Receive]:
    """The whole body (the size limit outside has bounded it), and a receive replaying it."""
    chunks = []
    while True:
        message = await receive()
        if message["type"] != "http.request":
            break  # the client left; the route will find that out too
        chunks.append(message.get("body", b""))
        if not message.get("more_body", False):
            break
    body = b"".join(chunks)
    return body, replaying(body, receive)
