"""What routes depend on, as ``Annotated`` aliases: resources, principals, time points.

Authentication comes first in every alias that needs it, so an anonymous client never
makes the server wait on the projections or read anything.
"""

from __future__ import annotations

import functools
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Annotated, ParamSpec, TypeVar

from fastapi import Depends, Header, Query, Request
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from starlette.concurrency import run_in_threadpool

from api.errors import RETRY_AFTER_SECONDS, ApiProblem
from api.idempotency import (
    KEY_HEADER,
    KEY_PATTERN,
    MAX_KEY_LENGTH,
    IdempotentRequest,
    open_request,
)
from api.resources import Resources
from api.schemas import MAX_POSITION, Moment
from api.tokens import Principal, Role
from integrations.inbox import Inbox
from ledger.application import CommandContext, ReleaseLedger
from ledger.metadata import Source
from projections.projectors import PROJECTION_NAMES
from projections.queries import NOW, ProjectionQueries, TimePoint, parse_time_point
from projections.runner import wait_for_position

MIN_POSITION_TIMEOUT = 5.0
REALM = 'Bearer realm="release-ledger"'

P = ParamSpec("P")
T = TypeVar("T")

bearer = HTTPBearer(
    auto_error=False,
    description="a token from `ledger token create`; roles reader < writer < admin",
)


# Dependencies that never block are ``async def``: FastAPI runs a plain ``def`` dependency
# on the threadpool, and under load every such hop costs more than the work it wraps.


async def get_resources(request: Request) -> Resources:
    resources: Resources = request.app.state.resources
    return resources


ResourcesDep = Annotated[Resources, Depends(get_resources)]


async def get_ledger(resources: ResourcesDep) -> ReleaseLedger:
    return resources.ledger


async def get_queries(resources: ResourcesDep) -> ProjectionQueries:
    return resources.queries


async def get_inbox(resources: ResourcesDep) -> Inbox:
    return resources.inbox


LedgerDep = Annotated[ReleaseLedger, Depends(get_ledger)]
QueriesDep = Annotated[ProjectionQueries, Depends(get_queries)]
InboxDep = Annotated[Inbox, Depends(get_inbox)]


# ------------------------------------------------------------- authentication


async def authenticated(
    resources: Resources, credentials: HTTPAuthorizationCredentials | None
) -> Principal:
    """The principal of the request's bearer token, from memory when the token is
    remembered, else from the database (in the threadpool); 401 for anything else."""
    if credentials is None:
        raise ApiProblem(
            401,
            "unauthorized",
            "this needs a bearer token: Authorization: Bearer <token>",
            headers={"WWW-Authenticate": REALM},
        )
    token = credentials.credentials
    authenticator = resources.authenticator
    principal = authenticator.remembered(token) or await run_in_threadpool(
        authenticator.authenticate, token
    )
    if principal is None:
        raise ApiProblem(
            401,
            "unauthorized",
            "the bearer token is unknown, expired or revoked",
            headers={"WWW-Authenticate": f'{REALM}, error="invalid_token"'},
        )
    return principal


Credentials = Annotated[HTTPAuthorizationCredentials | None, Depends(bearer)]


def _check_role(principal: Principal, needed: Role) -> Principal:
    if not principal.may(needed):
        raise ApiProblem(
            403,
            "forbidden",
            f"token {principal.name} has the role {principal.role}; this needs {needed} or above",
        )
    return principal


# One dependency each (with the bearer scheme under it): FastAPI's cost grows with every
# dependency it solves, and these run on every request.


async def require_reader(request: Request, credentials: Credentials) -> Principal:
    return _check_role(await authenticated(request.app.state.resources, credentials), Role.READER)


async def require_writer(request: Request, credentials: Credentials) -> Principal:
    return _check_role(await authenticated(request.app.state.resources, credentials), Role.WRITER)


async def require_admin(request: Request, credentials: Credentials) -> Principal:
    return _check_role(await authenticated(request.app.state.resources, credentials), Role.ADMIN)


Reader = Annotated[Principal, Depends(require_reader)]
Writer = Annotated[Principal, Depends(require_writer)]
Admin = Annotated[Principal, Depends(require_admin)]


# ---------------------------------------------------------------- projections


MinPosition = Annotated[
    int | None,
    Query(
        ge=0,
        le=MAX_POSITION,
        description="answer only once the projections have applied this position "
        "(a write's `events[].position`); waits at most 5 s, then 503",
    ),
]
AsOf = Annotated[
    Moment | None,
    Query(description="valid time: the state as it was then, as known now (ISO 8601)"),
]
KnownAt = Annotated[
    Moment | None,
    Query(description="transaction time: only what the ledger had recorded by then"),
]


@dataclass(frozen=True)
class ProjectionRead:
    """A reader, the position the projections had reached for this read, the queries,
    and the time point the read is at (now, unless it took ``as_of``/``known_at``)."""

    principal: Principal
    min_position: int
    queries: ProjectionQueries
    at: TimePoint = NOW


async def read_projections(
    request: Request, credentials: Credentials, min_position: MinPosition = None
) -> ProjectionRead:
    """A reader whose read sees the projections at ``min_position`` or later."""
    # The reader is checked here rather than in a dependency of its own: FastAPI's cost is
    # per dependency, and reads are the most frequent requests.
    resources: Resources = request.app.state.resources
    principal = _check_role(await authenticated(resources, credentials), Role.READER)
    return await _reached(
        resources, ProjectionRead(principal, min_position or 0, resources.queries)
    )


async def read_projections_at(
    request: Request,
    credentials: Credentials,
    min_position: MinPosition = None,
    as_of: AsOf = None,
    known_at: KnownAt = None,
) -> ProjectionRead:
    """``read_projections`` at a time point, in the same single dependency."""
    resources: Resources = request.app.state.resources
    principal = _check_role(await authenticated(resources, credentials), Role.READER)
    at = parse_time_point(as_of, known_at)
    return await _reached(
        resources, ProjectionRead(principal, min_position or 0, resources.queries, at)
    )


async def _reached(resources: Resources, reading: ProjectionRead) -> ProjectionRead:
    """``reading`` once the projections applied its ``min_position`` (503 after a while)."""
    wanted = reading.min_position
    if not wanted or resources.projector.runner.position() >= wanted:
        # This process's projector committed that far, and positions only move on: no query.
        return reading
    if not await run_in_threadpool(
        wait_for_position, resources.engine, PROJECTION_NAMES, wanted, MIN_POSITION_TIMEOUT
    ):
        raise ApiProblem(
            503,
            "projections-behind",
            f"the projections did not reach position {wanted} "
            f"within {MIN_POSITION_TIMEOUT:g} s; retry",
            headers={"Retry-After": str(RETRY_AFTER_SECONDS)},
        )
    return reading


ProjectionReader = Annotated[ProjectionRead, Depends(read_projections)]
ProjectionReaderAt = Annotated[ProjectionRead, Depends(read_projections_at)]


# ---------------------------------------------------------------------- writes


@dataclass(frozen=True)
class WriteContext:
    """Who records a write through the API, and the ledger it goes to; ``at`` adds when it
    happened.

    With an Idempotency-Key, ``command_route`` has claimed the key before the command
    runs: a request that is not the key's first answers from there (see
    ``api.idempotency``), and ``at`` ties the command to the key.
    """

    principal: Principal
    ledger: ReleaseLedger
    correlation_id: str | None
    idempotency: IdempotentRequest | None = None

    def at(self, occurred_at: datetime | None) -> CommandContext:
        source_ref = None
        if self.idempotency is not None:
            if self.idempotency.lease is None:
                raise RuntimeError("a keyed write runs only once its key is claimed")
            source_ref = self.idempotency.source_ref
        return CommandContext(
            recorded_by=self.principal.name,
            source=Source.API,
            source_ref=source_ref,
            correlation_id=self.correlation_id,
            occurred_at=occurred_at,
        )


async def get_write_context(
    request: Request,
    principal: Writer,
    idempotency_key: Annotated[
        str | None,
        Header(
            alias=KEY_HEADER,
            max_length=MAX_KEY_LENGTH,
            pattern=KEY_PATTERN,
            description="retry safely: the same key and body answer as the first request "
            "did (header `Idempotent-Replayed: true`) and record nothing new; the same key "
            "with another body is 422. Keys are per token.",
            examples=["plan-5.6-2026-11-26"],
        ),
    ] = None,
    x_correlation_id: Annotated[
        str | None,
        Header(
            max_length=200,
            pattern=r"^[\x21-\x7e]+$",
            description="ties the events of one business action together; default: new",
        ),
    ] = None,
) -> WriteContext:
    resources: Resources = request.app.state.resources
    idempotency = None
    if idempotency_key is not None:
        body = await request.body()  # already read and cached by FastAPI for the body model
        idempotency = open_request(
            request.scope, resources.engine, principal.name, idempotency_key, body
        )
    return WriteContext(principal, resources.ledger, x_correlation_id, idempotency)


Write = Annotated[WriteContext, Depends(get_write_context)]


def command_route(route: Callable[P, T]) -> Callable[P, Awaitable[T]]:
    """A write route, run on anyio's threads (as FastAPI runs a plain ``def`` route) once
    a keyed write has claimed its Idempotency-Key: the claim waits on the event loop if the
    key's first request is still running, so retries never hold a thread.

    FastAPI reads the parameters through the wrapper, from ``route``'s own signature.
    """

    @functools.wraps(route)
    async def run(*args: P.args, **kwargs: P.kwargs) -> T:
        write = next(value for value in kwargs.values() if isinstance(value, WriteContext))
        if write.idempotency is not None:
            await write.idempotency.claim()
        return await run_in_threadpool(functools.partial(route, *args, **kwargs))

    return run
