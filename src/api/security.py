"""Headers every answer carries, and no secret in the access log.

The API sets no CORS headers at all, so browsers keep other sites' pages from reading it
(CORS is off unless a deployment adds it in front). The dashboard is never to be framed
(clickjacking), answers are never sniffed as another type, and no page leaks its address
to the sites it links to.
"""

from __future__ import annotations

import logging
import re

from starlette.types import ASGIApp, Message, Receive, Scope, Send

SECURITY_HEADERS: tuple[tuple[bytes, bytes], ...] = (
    (b"x-content-type-options", b"nosniff"),
    (b"x-frame-options", b"DENY"),
    (b"content-security-policy", b"frame-ancestors 'none'"),
    (b"referrer-policy", b"no-referrer"),
)


class SecurityHeaders:
    """Add ``SECURITY_HEADERS`` to every HTTP answer that does not set them itself."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return

        async def send_with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = list(message.get("headers", []))
                present = {name.lower() for name, _ in headers}
                headers.extend(pair for pair in SECURITY_HEADERS if pair[0] not in present)
                message = {**message, "headers": headers}
            await send(message)

        await self.app(scope, receive, send_with_headers)


SECRET_QUERY = re.compile(
    r"(?i)((?:^|[?&;])[^=&;\s]*(?:token|secret|password|signature|key)[^=&;\s]*)=[^&;\s]*"
)
"""A query parameter whose name says it carries a credential: ``token``, ``access_token``,
``api_key``, ``client_secret``, ... (clients put them in URLs by mistake, too)."""
ACCESS_LOGGER = "uvicorn.access"


class RedactSecrets(logging.Filter):
    """Mask credentials in URLs (QTest's ``?token=``, a misplaced ``?access_token=``) in
    access log lines, which print the query."""

    def filter(self, record: logging.LogRecord) -> bool:
        if isinstance(record.args, tuple):
            record.args = tuple(
                SECRET_QUERY.sub(r"\1=***", item) if isinstance(item, str) and "=" in item else item
                for item in record.args
            )
        return True


def redact_access_log() -> None:
    """Put ``RedactSecrets`` on the access logger, once per process."""
    logger = logging.getLogger(ACCESS_LOGGER)
    if not any(isinstance(known, RedactSecrets) for known in logger.filters):
        logger.addFilter(RedactSecrets())
