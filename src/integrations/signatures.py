"""Webhook signatures: an HMAC-SHA256 of the raw body, compared in constant time.

Jira sends ``X-Hub-Signature: sha256=<hex>`` (WebSub style); QTest sends
``x-qtest-signature: <hex>``, and some senders prefix it with ``sha256=`` too.
"""

from __future__ import annotations

import hashlib
import hmac

PREFIX = "sha256="


def signature(secret: str, body: bytes) -> str:
    """The lowercase hex HMAC-SHA256 of ``body`` under ``secret``."""
    return hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()


def _matches(secret: str, body: bytes, given: str) -> bool:
    expected = signature(secret, body).encode()
    return hmac.compare_digest(expected, given.strip().lower().encode("ascii", "replace"))


def verify_jira(secret: str, body: bytes, header: str | None) -> bool:
    """Whether ``X-Hub-Signature`` is ``sha256=`` and the body's HMAC under ``secret``."""
    if header is None or not header.lower().startswith(PREFIX):
        return False
    return _matches(secret, body, header[len(PREFIX) :])


def verify_qtest(secret: str, body: bytes, header: str | None) -> bool:
    """Whether ``x-qtest-signature`` is the body's HMAC under ``secret``, prefixed or not."""
    if header is None:
        return False
    given = header[len(PREFIX) :] if header.lower().startswith(PREFIX) else header
    return _matches(secret, body, given)


def same_token(expected: str, given: str | None) -> bool:
    """Whether a URL token equals the configured one, in constant time."""
    if given is None:
        return False
    return hmac.compare_digest(expected.encode(), given.encode("utf-8", "replace"))
