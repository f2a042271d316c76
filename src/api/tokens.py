"""Bearer tokens for the HTTP API: shown once when made, stored only as a SHA-256 hash.

A token is 256 random bits, so a plain SHA-256 of it cannot be reversed or guessed;
a slow password hash would only slow every request down. The lookup goes by hash, and
the stored hash is compared in constant time as well.
"""

from __future__ import annotations

import hashlib
import hmac
import re
import secrets
from dataclasses import dataclass
from datetime import UTC, datetime
from enum import StrEnum

from sqlalchemy import Engine, insert, select, update
from sqlalchemy.exc import IntegrityError

from ledger.exceptions import InvalidCommand, NotFound, RuleViolation
from ledger.values import parse_enum
from projections.tables import api_tokens

TOKEN_PREFIX = "rlt_"
MAX_TOKEN_LENGTH = 256
NAME_PATTERN = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.@-]{0,63}$")


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


def create_token(engine: Engine, name: str, role: str) -> str:
    """Make a token for ``name`` with ``role``; the only time the token itself is seen.

    Names are never reused, even after a revocation, so ``recorded_by`` on an event
    always points at one credential.
    """
    check_name(name)
    token_role = parse_enum(Role, role, field="role")
    token = TOKEN_PREFIX + secrets.token_urlsafe(32)
    try:
        with engine.begin() as connection:
            connection.execute(
                insert(api_tokens).values(
                    name=name,
                    role=str(token_role),
                    token_hash=token_hash(token),
                    created_at=datetime.now(UTC),
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


def authenticate(engine: Engine, token: str) -> Principal | None:
    """The principal of a valid, unrevoked token; None for anything else."""
    if not token or len(token) > MAX_TOKEN_LENGTH:
        return None
    digest = token_hash(token)
    with engine.connect() as connection:
        row = connection.execute(
            select(api_tokens.c.name, api_tokens.c.role, api_tokens.c.token_hash).where(
                api_tokens.c.token_hash == digest, api_tokens.c.revoked_at.is_(None)
            )
        ).first()
    if row is None or not hmac.compare_digest(row.token_hash, digest):
        return None
    try:
        role = Role(row.role)
    except ValueError:
        return None  # a row written by hand with a role we do not know grants nothing
    return Principal(row.name, role)
