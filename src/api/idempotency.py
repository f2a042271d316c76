"""``Idempotency-Key`` on every POST (SPEC §5): a retried request gets the first answer.

The first request with a key claims it (a ``pending`` row, inserted or nothing) just
before its command runs, and keeps the answer it gave. A later request with the same key
and the same body gets that answer again, with ``Idempotent-Replayed: true``, and records
nothing; the same key with another body is 422. A request that finds the key still
pending waits a few seconds for the answer, then gets 409 with ``Retry-After``.

Keys belong to a token name, so two clients never see each other's answers. The command
carries the ``source_ref`` ``api:<token name>:<key>``, which the ledger saves atomically
with the events: a claim left pending by a crashed server is taken over after
``STALE_AFTER`` and its command runs again without recording twice.

Only the command's own answers are kept: a 201, or a refusal (4xx). A 5xx, or an answer
that asks to be retried (``Retry-After``: a conflict between concurrent writers), releases
the claim so the same request may run again; the key stays bound to its body. A request
the API refuses before its command runs (credentials, validation) never claims the key.
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from enum import StrEnum

import orjson
import sqlalchemy.exc
from sqlalchemy import ColumnElement, Connection, Engine, and_, or_, select, update
from starlette.concurrency import run_in_threadpool
from starlette.responses import Response
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from api.errors import RETRY_AFTER_SECONDS, ApiProblem
from projections.tables import idempotency_keys, insert_into

log = logging.getLogger(__name__)

KEY_HEADER = "Idempotency-Key"
REPLAYED_HEADER = "Idempotent-Replayed"
MAX_KEY_LENGTH = 200
KEY_PATTERN = r"^[\x21-\x7e]+$"
STALE_AFTER = timedelta(seconds=30)
"""A claim this old without an answer belongs to a server that died: another may take it."""
WAIT_SECONDS = 5.0
POLL_SECONDS = 0.05
KEPT_HEADERS = ("content-type", "location")
"""What a replay repeats besides status and body: the rest is about the connection."""

SCOPE_KEY = "release_ledger.idempotency"


class ClaimStatus(StrEnum):
    PENDING = "pending"
    DONE = "done"
    FAILED = "failed"
    """Released after a server-side failure: the same request may claim it at once."""


def utc_now() -> datetime:
    return datetime.now(UTC)


def fingerprint(method: str, path: str, body: bytes) -> str:
    """SHA-256 of the request: JSON bodies canonically, so spacing and key order do not count."""
    try:
        canonical = orjson.dumps(orjson.loads(body), option=orjson.OPT_SORT_KEYS)
    except (orjson.JSONDecodeError, orjson.JSONEncodeError):
        canonical = body  # not JSON (the command will refuse it): its bytes as sent
    digest = hashlib.sha256()
    for part in (method.upper().encode(), path.encode(), canonical):
        digest.update(len(part).to_bytes(8, "big"))
        digest.update(part)
    return digest.hexdigest()


def source_ref(principal: str, key: str) -> str:
    """The ledger's idempotency reference for a key; token names never contain ``:``."""
    return f"api:{principal}:{key}"


@dataclass(frozen=True)
class StoredResponse:
    """An answer as first sent: status, the headers worth repeating, and the exact body."""

    status_code: int
    headers: dict[str, str]
    body: bytes
    asks_for_retry: bool = False
    """It carried ``Retry-After`` (not kept: a replay is never a request to retry)."""

    @classmethod
    def from_messages(cls, messages: list[Message]) -> StoredResponse:
        start = next(message for message in messages if message["type"] == "http.response.start")
        headers = {
            name.decode("latin-1").lower(): value.decode("latin-1")
            for name, value in start.get("headers", [])
        }
        return cls(
            status_code=int(start["status"]),
            headers={name: headers[name] for name in KEPT_HEADERS if name in headers},
            body=b"".join(
                message.get("body", b"")
                for message in messages
                if message["type"] == "http.response.body"
            ),
            asks_for_retry="retry-after" in headers,
        )

    @property
    def is_final(self) -> bool:
        """The command's own answer; not a failure or a request to try again later."""
        return self.status_code < 500 and not self.asks_for_retry

    def replay(self) -> Response:
        return Response(
            self.body, self.status_code, headers={**self.headers, REPLAYED_HEADER: "true"}
        )


@dataclass(frozen=True)
class Lease:
    """This request holds the key since ``claimed_at``: it runs the command and answers."""

    claimed_at: datetime


class IdempotencyKeys:
    """The ``idempotency_keys`` table: claims, the answers they gave, stale claims taken over."""

    def __init__(
        self,
        engine: Engine,
        *,
        stale_after: timedelta = STALE_AFTER,
        clock: Callable[[], datetime] = utc_now,
    ) -> None:
        self.engine = engine
        self.stale_after = stale_after
        self.clock = clock

    def claim(self, principal: str, key: str, fingerprint: str) -> Lease | StoredResponse | None:
        """Claim ``key`` for a request: a lease, the key's earlier answer, or None while
        another request holds it. The key used with another body is a 422 problem."""
        table = idempotency_keys
        now = self.clock()
        with self.engine.begin() as connection:
            if self._insert(connection, principal, key, fingerprint, now):
                return Lease(now)
        # Read, then write in a transaction of its own: a SQLite transaction that reads
        # first cannot wait for the write lock, it fails at once when another wrote.
        with self.engine.begin() as connection:
            row = connection.execute(
                select(table).where(table.c.principal == principal, table.c.key == key)
            ).one()
        if row.fingerprint != fingerprint:
            raise ApiProblem(
                422,
                "idempotency-key-reused",
                f"Idempotency-Key {key!r} was first used with another request "
                "(method, path or body); use a new key for a new request",
                title="Idempotency key reused",
            )
        if row.status == ClaimStatus.DONE:
            return StoredResponse(
                row.response_status,
                dict(row.response_headers or {}),
                (row.response_body or "").encode("utf-8"),
            )
        stale = now - self.stale_after
        if row.status == ClaimStatus.PENDING and row.claimed_at >= stale:
            return None
        with self.engine.begin() as connection:
            # Taking over is one conditional update, so of two takers one wins.
            taken = connection.execute(
                update(table)
                .where(
                    table.c.principal == principal,
                    table.c.key == key,
                    table.c.fingerprint == fingerprint,
                    or_(
                        table.c.status == ClaimStatus.FAILED,
                        and_(table.c.status == ClaimStatus.PENDING, table.c.claimed_at < stale),
                    ),
                )
                .values(status=ClaimStatus.PENDING, claimed_at=now)
                .returning(table.c.key)
            ).first()
        return Lease(now) if taken is not None else None

    def complete(self, principal: str, key: str, answer: StoredResponse) -> None:
        """Keep the first answer; a claim taken over may finish second and is ignored."""
        table = idempotency_keys
        with self.engine.begin() as connection:
            connection.execute(
                update(table)
                .where(
                    _pending(principal, key),
                )
                .values(
                    status=ClaimStatus.DONE,
                    response_status=answer.status_code,
                    response_headers=answer.headers,
                    response_body=answer.body.decode("utf-8"),
                    completed_at=self.clock(),
                )
            )

    def release(self, principal: str, key: str, lease: Lease) -> None:
        """Give up a claim that got no answer, unless another request has taken it over."""
        table = idempotency_keys
        with self.engine.begin() as connection:
            connection.execute(
                update(table)
                .where(
                    _pending(principal, key),
                    table.c.claimed_at == lease.claimed_at,
                )
                .values(status=ClaimStatus.FAILED)
            )

    @staticmethod
    def _insert(
        connection: Connection, principal: str, key: str, fingerprint: str, now: datetime
    ) -> bool:
        """Insert a pending claim, or nothing when the key exists: whether it was inserted."""
        statement = (
            insert_into(idempotency_keys, connection)
            .values(
                principal=principal,
                key=key,
                fingerprint=fingerprint,
                status=ClaimStatus.PENDING,
                created_at=now,
                claimed_at=now,
            )
            .on_conflict_do_nothing(index_elements=["principal", "key"])
            # rowcount is not reliable across drivers for an insert that did nothing.
            .returning(idempotency_keys.c.key)
        )
        return connection.execute(statement).first() is not None


class IdempotentReplay(Exception):
    """Raised where a command would run: the key already has its answer, sent instead."""

    def __init__(self, answer: StoredResponse) -> None:
        super().__init__(f"replaying a {answer.status_code} answer")
        self.answer = answer


@dataclass
class IdempotentRequest:
    """One POST carrying an ``Idempotency-Key``; ``claim`` right before its command runs
    (``deps.command_route`` does)."""

    keys: IdempotencyKeys
    principal: str
    key: str
    fingerprint: str
    lease: Lease | None = None
    answered: bool = field(default=False, init=False)

    @property
    def source_ref(self) -> str:
        return source_ref(self.principal, self.key)

    async def claim(self) -> None:
        """Hold the key, or raise: the earlier answer (IdempotentReplay), 422 for a key
        used with another body, 409 when its first request is still running.

        It waits on the event loop, not on a command thread: a burst of retries of a key
        whose first request is still running would otherwise hold every command thread
        and keep other writes waiting.
        """
        if self.lease is not None:
            return
        deadline = time.monotonic() + WAIT_SECONDS
        while True:
            outcome = await run_in_threadpool(
                self.keys.claim, self.principal, self.key, self.fingerprint
            )
            if isinstance(outcome, StoredResponse):
                raise IdempotentReplay(outcome)
            if isinstance(outcome, Lease):
                self.lease = outcome
                return
            if time.monotonic() >= deadline:
                raise ApiProblem(
                    409,
                    "idempotency-key-in-progress",
                    f"a request with Idempotency-Key {self.key!r} is still in progress; "
                    "retry to get its answer",
                    title="Request in progress",
                    headers={"Retry-After": str(RETRY_AFTER_SECONDS)},
                )
            await asyncio.sleep(POLL_SECONDS)

    def finish(self, answer: StoredResponse) -> None:
        """Keep the command's answer for the key, or release the key for a retry."""
        assert self.lease is not None, "only the request holding the key answers for it"
        self.answered = True
        try:
            if answer.is_final:
                self.keys.complete(self.principal, self.key, answer)
            else:
                self.keys.release(self.principal, self.key, self.lease)
        except (sqlalchemy.exc.SQLAlchemyError, UnicodeDecodeError) as error:
            # The answer still goes out; the claim stays pending and a retry takes it over
            # once stale, and the ledger's source_ref keeps that retry from recording twice.
            log.warning("could not keep the answer for an Idempotency-Key: %s", error)

    def abandon(self) -> None:
        """The request failed without an answer: release the key for a retry."""
        if self.lease is None or self.answered:
            return
        try:
            self.keys.release(self.principal, self.key, self.lease)
        except sqlalchemy.exc.SQLAlchemyError as error:
            log.warning("could not release an Idempotency-Key: %s", error)


@dataclass
class _Slot:
    """Where the route's dependency leaves the request's key for the middleware."""

    request: IdempotentRequest | None = None


def open_request(
    scope: Scope, engine: Engine, principal: str, key: str, body: bytes
) -> IdempotentRequest:
    """The keyed request being served in ``scope``, known to IdempotencyMiddleware."""
    slot = scope.get(SCOPE_KEY)
    if not isinstance(slot, _Slot):
        raise RuntimeError("Idempotency-Key needs IdempotencyMiddleware in the app")
    slot.request = IdempotentRequest(
        IdempotencyKeys(engine),
        principal,
        key,
        fingerprint(scope["method"], scope["path"], body),
    )
    return slot.request


class IdempotencyMiddleware:
    """Keeps the answer of each POST that claimed an Idempotency-Key, and sends replays.

    The answer is stored before it is sent, so a retry never arrives before the answer
    it should get. Exception handlers run inside this middleware: refusals arrive here
    as problem responses, bugs as exceptions.
    """

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["method"] != "POST":
            await self.app(scope, receive, send)
            return
        slot = _Slot()
        scope[SCOPE_KEY] = slot
        held: list[Message] = []

        async def hold(message: Message) -> None:
            request = slot.request
            if request is None or request.lease is None:
                await send(message)
                return
            held.append(message)
            if message["type"] == "http.response.body" and not message.get("more_body", False):
                await run_in_threadpool(request.finish, StoredResponse.from_messages(held))
                for kept in held:
                    await send(kept)
                held.clear()

        try:
            await self.app(scope, receive, hold)
        except IdempotentReplay as replay:
            await replay.answer.replay()(scope, receive, send)
        except Exception:
            if slot.request is not None:
                await run_in_threadpool(slot.request.abandon)
            raise


def _pending(principal: str, key: str) -> ColumnElement[bool]:
    """The claim of ``key`` by ``principal``, while it still waits for its answer."""
    table = idempotency_keys
    return and_(
        table.c.principal == principal, table.c.key == key, table.c.status == ClaimStatus.PENDING
    )
