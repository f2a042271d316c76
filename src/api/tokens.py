"""Bearer tokens for the HTTP API: shown once when made, stored only as a SHA-256 hash.

A token is 256 random bits, so a plain SHA-256 of it cannot be reversed or guessed;
a slow password hash would only slow every request down. The lookup goes by hash, and
the stored hash is compared in constant time as well. A token may carry an expiry;
once past it, the token is refused exactly as an unknown or revoked one is.
"""

from __future__ import annotations

import hashlib
import hmac
import re
import secrets
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from enum import StrEnum

from sqlalchemy import Engine, insert, select, update
from sqlalchemy.exc import IntegrityError

from ledger.exceptions import InvalidCommand, NotFound, RuleViolation
from ledger.values import parse_enum
from projections.tables import api_tokens
from projections.watch import ChangeWatch

TOKEN_PREFIX = "rlt_"
MAX_TOKEN_LENGTH = 256
NAME_PATTERN = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.@-]{0,63}$")
# ASCII digits only: \d would also take other scripts' digits, which int() then accepts.
DURATION_PATTERN = re.compile(r"([0-9]{1,7})([mhd])")
DURATION_UNITS = {"m": timedelta(minutes=1), "h": timedelta(hours=1), "d": timedelta(days=1)}
# Far enough for any credential meant to expire; beyond it, a token should simply not expire.
MAX_LIFETIME = timedelta(days=3650)


class Role(StrEnum):
    READER = "reader"
    WRITER = "writer"
    ADMIN = "admin"

    @property
    def rank(self) -> int:
        return _RANKS[self]


_RANKS = {Role.READER: 1, Role.WRITER: 2, Role.ADMIN: 3}


@dataclass(frozen=True)
class Principal:
    """Who a valid token belongs to; its name becomes ``recorded_by`` on every event."""

    name: str
    role: Role

    def may(self, needed: Role) -> bool:
        return self.role.rank >= needed.rank


def token_hash(token: str) -> str:
    return hashlib.sha256(token.encode("utf-8")).hexdigest()


def check_name(name: str) -> str:
    if not isinstance(name, str) or not NAME_PATTERN.fullmatch(name):
        raise InvalidCommand(
            f"token name {name!r} must be a letter or digit, then up to 63 letters, "
            "digits, '_', '.', '@' or '-'",
            field="name",
        )
    return name


def parse_duration(value: str, *, field: str = "expires_in") -> timedelta:
    """A lifetime written as a whole number of minutes, hours or days: 30m, 12h, 90d.

    Nothing else is taken (no spaces, signs, fractions or other units), and it must be
    more than zero and at most ``MAX_LIFETIME``.
    """
    usage = f"{field} must be a whole number of minutes, hours or days, like 30m, 12h or 90d"
    match = DURATION_PATTERN.fullmatch(value) if isinstance(value, str) else None
    if match is None:
        raise InvalidCommand(f"{usage}, not {value!r}", field=field)
    duration = int(match[1]) * DURATION_UNITS[match[2]]
    if duration <= timedelta(0):
        raise InvalidCommand(f"{field} must be more than zero, not {value!r}", field=field)
    if duration > MAX_LIFETIME:
        raise InvalidCommand(
            f"{field} must be at most {MAX_LIFETIME.days}d, not {value!r}; "
            "leave it out for a token that never expires",
            field=field,
        )
    return duration


def create_token(
    engine: Engine, name: str, role: str, *, expires_at: datetime | None = None
) -> str:
    """Make a token for ``name`` with ``role``; the only time the token itself is seen.

    Names are never reused, even after a revocation, so ``recorded_by`` on an event
    always points at one credential. From ``expires_at`` on the token is refused;
    without it, the token lasts until revoked.
    """
    check_name(name)
    token_role = parse_enum(Role, role, field="role")
    if expires_at is not None and expires_at.utcoffset() is None:
        raise InvalidCommand("expires_at needs a UTC offset", field="expires_at")
    token = TOKEN_PREFIX + secrets.token_urlsafe(32)
    try:
        with engine.begin() as connection:
            connection.execute(
                insert(api_tokens).values(
                    name=name,
                    role=str(token_role),
                    token_hash=token_hash(token),
                    created_at=datetime.now(UTC),
                    expires_at=expires_at,
                    revoked_at=None,
                )
            )
    except IntegrityError:
        raise RuleViolation(f"a token named {name} already exists; choose another name") from None
    return token


def revoke_token(engine: Engine, name: str) -> bool:
    """Revoke the token named ``name``; False when it was already revoked."""
    check_name(name)
    with engine.begin() as connection:
        exists = connection.execute(
            select(api_tokens.c.name).where(api_tokens.c.name == name)
        ).first()
        if exists is None:
            raise NotFound(f"no token named {name}")
        changed = connection.execute(
            update(api_tokens)
            .where(api_tokens.c.name == name, api_tokens.c.revoked_at.is_(None))
            .values(revoked_at=datetime.now(UTC))
        ).rowcount
    return bool(changed)


@dataclass(frozen=True)
class TokenInfo:
    """What may be shown about a token: never the token, nor its hash."""

    name: str
    role: str
    created_at: datetime
    expires_at: datetime | None
    revoked_at: datetime | None

    def expired(self, now: datetime) -> bool:
        return _expired(self.expires_at, now)


def _expired(expires_at: datetime | None, now: datetime) -> bool:
    """A token is refused from its ``expires_at`` on; one without it never expires."""
    return expires_at is not None and expires_at <= now


def list_tokens(engine: Engine) -> list[TokenInfo]:
    """Every token ever made, oldest first, revoked and expired ones included."""
    with engine.connect() as connection:
        rows = connection.execute(
            select(
                api_tokens.c.name,
                api_tokens.c.role,
                api_tokens.c.created_at,
                api_tokens.c.expires_at,
                api_tokens.c.revoked_at,
            ).order_by(api_tokens.c.created_at, api_tokens.c.name)
        ).all()
    return [
        TokenInfo(row.name, row.role, row.created_at, row.expires_at, row.revoked_at)
        for row in rows
    ]


@dataclass(frozen=True)
class _Found:
    principal: Principal
    expires_at: datetime | None
    epoch: int

    def valid(self, now: datetime) -> bool:
        return not _expired(self.expires_at, now)


def _look_up(engine: Engine, token: str, epoch: int = 0) -> _Found | None:
    if not token or len(token) > MAX_TOKEN_LENGTH:
        return None
    digest = token_hash(token)
    with engine.connect() as connection:
        row = connection.execute(
            select(
                api_tokens.c.name,
                api_tokens.c.role,
                api_tokens.c.token_hash,
                api_tokens.c.expires_at,
            ).where(api_tokens.c.token_hash == digest, api_tokens.c.revoked_at.is_(None))
        ).first()
    if row is None or not hmac.compare_digest(row.token_hash, digest):
        return None
    try:
        role = Role(row.role)
    except ValueError:
        return None  # a row written by hand with a role we do not know grants nothing
    # Expiry is compared in Python rather than in SQL: SQLite keeps timestamps as text,
    # and UTCDateTime hands both backends' values back as aware UTC datetimes.
    return _Found(Principal(row.name, role), row.expires_at, epoch)


class Authenticator:
    """Who a bearer token belongs to, if it is valid, unrevoked and unexpired; remembering
    the tokens it found while ``watch`` hears every change of tokens (PostgreSQL), so that a
    request with a remembered token reads nothing. Without a watch it always asks.

    A revocation, a new expiry or any edit of ``api_tokens`` moves the watch's epoch on, and
    every remembered token is looked up again; so does a connection the watch lost. Expiry
    is checked on each request. Tokens not found are never remembered.
    """

    SIZE = 4096

    def __init__(self, engine: Engine, watch: ChangeWatch | None) -> None:
        self.engine = engine
        self.watch = watch
        self._known: dict[str, _Found] = {}

    def remembered(self, token: str) -> Principal | None:
        """The principal of ``token`` if it can be known without the database, else None."""
        watch = self.watch
        if watch is None or not watch.listening or len(token) > MAX_TOKEN_LENGTH:
            return None
        found = self._known.get(token_hash(token))
        if found is None or found.epoch != watch.token_epoch:
            return None
        return found.principal if found.valid(datetime.now(UTC)) else None

    def authenticate(self, token: str) -> Principal | None:
        """Look ``token`` up in the database (blocking), remembering it when that is safe."""
        watch = self.watch
        # The epoch is read before the lookup: a change heard meanwhile voids what is found.
        epoch = watch.token_epoch if watch is not None and watch.listening else None
        found = _look_up(self.engine, token, epoch or 0)
        if found is None or not found.valid(datetime.now(UTC)):
            return None
        if epoch is not None:
            if len(self._known) >= self.SIZE:
                self._known.clear()
            self._known[token_hash(token)] = found
        return found.principal
