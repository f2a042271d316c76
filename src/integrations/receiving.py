"""Receiving a webhook: verify it, find its identity, store it raw. Mapping comes later.

Jira deliveries are known by ``X-Atlassian-Webhook-Identifier``, which its retries
repeat. QTest sends no delivery id: a delivery is its event type, the test log it names
and its timestamp. A delivery without those is known by the SHA-256 of its body.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import queue
import threading
import unicodedata
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

import orjson

from integrations import signatures
from integrations.inbox import Arrival, Inbox, Integration
from projections.schema import UNAVAILABLE_ERRORS

JIRA_DELIVERY_HEADER = "x-atlassian-webhook-identifier"
JIRA_SIGNATURE_HEADER = "x-hub-signature"
QTEST_SIGNATURE_HEADER = "x-qtest-signature"
KEPT_HEADERS = (
    "content-type",
    "user-agent",
    JIRA_DELIVERY_HEADER,
    "x-atlassian-webhook-retry",
    "x-atlassian-webhook-flow",
)
"""What the inbox keeps of a delivery's headers besides how it was verified: never a secret."""
VERIFIED_HEADER = "x-ledger-verified"
MAX_KEY_LENGTH = 200
MAX_EVENT_TYPE_LENGTH = 100


class Unverified(Exception):
    """The delivery's signature or URL token is missing or wrong: nothing was stored."""


class MalformedDelivery(Exception):
    """The body is not JSON: nothing was stored."""


@dataclass(frozen=True)
class Received:
    """A delivery in the inbox: its id, its identity, and whether it was there already."""

    delivery: int
    delivery_key: str
    duplicate: bool


@dataclass(frozen=True)
class WebhookSecrets:
    """Each integration's own secret; None takes deliveries unsigned."""

    jira: str | None = None
    qtest: str | None = None


class Webhooks:
    """The door for Jira and QTest deliveries into the inbox.

    ``jira`` and ``qtest`` verify a delivery and say what it is (cheap, no I/O); ``stored``
    hands it to one writer thread that stores whatever has arrived meanwhile in one
    transaction (a group commit), so a burst costs one commit per batch, not per delivery.
    A delivery is acknowledged only once its batch is committed.
    """

    MAX_BATCH = 200

    def __init__(
        self,
        inbox: Inbox,
        secrets: WebhookSecrets,
        on_stored: Callable[[int], None] = lambda new: None,
    ) -> None:
        self.inbox = inbox
        self.secrets = secrets
        self.on_stored = on_stored
        self._arrivals: queue.SimpleQueue[tuple[Arrival, Waiting] | None] = queue.SimpleQueue()
        self._writer = threading.Thread(target=self._write, name="inbox-writer", daemon=True)
        self._writer.start()

    def close(self) -> None:
        """Store what has arrived, then stop the writer."""
        self._arrivals.put(None)
        self._writer.join()

    def jira(self, body: bytes, headers: Mapping[str, str]) -> Arrival:
        """A verified Jira delivery, known by its ``X-Atlassian-Webhook-Identifier``."""
        verified = "unsigned"
        if self.secrets.jira:
            if not signatures.verify_jira(
                self.secrets.jira, body, headers.get(JIRA_SIGNATURE_HEADER)
            ):
                raise Unverified(
                    "X-Hub-Signature is missing or is not sha256=<HMAC of the body> "
                    "under the configured Jira secret"
                )
            verified = "signature"
        payload = _json(body)
        event_type = _text(_field(payload, "webhookEvent"))
        key = headers.get(JIRA_DELIVERY_HEADER) or _body_key(body)
        return _arrival(Integration.JIRA, key, event_type, headers, verified, body)

    def qtest(self, body: bytes, headers: Mapping[str, str], url_token: str | None) -> Arrival:
        """A verified QTest delivery, known by its event type, test log and timestamp."""
        verified = "unsigned"
        if self.secrets.qtest:
            if signatures.verify_qtest(
                self.secrets.qtest, body, headers.get(QTEST_SIGNATURE_HEADER)
            ):
                verified = "signature"
            elif signatures.same_token(self.secrets.qtest, url_token):
                verified = "url-token"
            else:
                raise Unverified(
                    "x-qtest-signature is missing or is not the HMAC-SHA256 of the body under "
                    "the configured QTest secret, and no valid ?token= was given"
                )
        payload = _json(body)
        event_type = _text(_field(payload, "event_type"))
        testlog = _field(payload, "testlog")
        log_id = _field(testlog, "id")
        stamp = _field(payload, "event_timestamp")
        key = (
            f"{event_type}:{_text(log_id)}:{_text(stamp)}"
            if log_id is not None and stamp is not None
            else _body_key(body)
        )
        return _arrival(Integration.QTEST, key, event_type, headers, verified, body)

    async def stored(self, arrival: Arrival) -> Received:
        """The delivery, once the writer's next batch stored it (or the error that batch
        met). The writer wakes each event loop once per batch, not once per delivery."""
        loop = asyncio.get_running_loop()
        waiting: asyncio.Future[Received] = loop.create_future()
        self._arrivals.put((arrival, (loop, waiting)))
        return await waiting

    def _write(self) -> None:
        stopping = False
        while not stopping:
            first = self._arrivals.get()
            if first is None:
                break
            batch = [first]
            while len(batch) < self.MAX_BATCH:
                try:
                    item = self._arrivals.get_nowait()
                except queue.Empty:
                    break
                if item is None:
                    stopping = True
                    break
                batch.append(item)
            self._write_batch(batch)

    def _write_batch(self, batch: list[tuple[Arrival, Waiting]]) -> None:
        try:
            stored = self.inbox.receive([arrival for arrival, _ in batch])
        except Exception as error:
            if len(batch) > 1 and not isinstance(error, UNAVAILABLE_ERRORS):
                # One delivery the database refuses must not fail the others with it.
                for item in batch:
                    self._write_batch([item])
                return
            # The database failed: every waiting sender hears it.
            _answer([(waiting, error) for _, waiting in batch])
            return
        _answer(
            [
                (waiting, Received(delivery, arrival.delivery_key, duplicate=not new))
                for (arrival, waiting), (delivery, new) in zip(batch, stored, strict=True)
            ]
        )
        if new_deliveries := sum(new for _, new in stored):
            self.on_stored(new_deliveries)


Waiting = tuple[asyncio.AbstractEventLoop, "asyncio.Future[Received]"]
"""A sender waiting on its event loop for its delivery to be stored."""
Answer = Received | Exception


def _answer(answers: list[tuple[Waiting, Answer]]) -> None:
    """Tell each waiting sender how its delivery fared, waking each event loop once."""
    on_loops: dict[asyncio.AbstractEventLoop, list[tuple[asyncio.Future[Received], Answer]]] = {}
    for (loop, future), answer in answers:
        on_loops.setdefault(loop, []).append((future, answer))
    for loop, share in on_loops.items():
        with contextlib.suppress(RuntimeError):  # the loop is closed: no one is waiting
            loop.call_soon_threadsafe(_settle, share)


def _settle(share: list[tuple[asyncio.Future[Received], Answer]]) -> None:
    for future, answer in share:
        if future.done():
            continue  # the sender gave up waiting
        if isinstance(answer, Exception):
            future.set_exception(answer)
        else:
            future.set_result(answer)


def _arrival(
    integration: Integration,
    key: str,
    event_type: str,
    headers: Mapping[str, str],
    verified: str,
    body: bytes,
) -> Arrival:
    key, event_type = _printable(key), _printable(event_type)
    if len(key) > MAX_KEY_LENGTH:
        key = _body_key(key.encode())
    kept = {name: headers[name] for name in KEPT_HEADERS if name in headers}
    kept[VERIFIED_HEADER] = verified
    return Arrival(integration, key, event_type[:MAX_EVENT_TYPE_LENGTH] or "unknown", kept, body)


def _printable(text: str) -> str:
    """Control characters written as escapes: PostgreSQL refuses NUL in text, and an
    identity or event type is looked at and filtered on, never parsed."""
    if text.isprintable():  # no control character in it (the usual case, and cheap)
        return text
    return "".join(
        f"\\x{ord(char):02x}" if unicodedata.category(char) == "Cc" else char for char in text
    )


def _json(body: bytes) -> Any:
    try:
        return orjson.loads(body)
    except orjson.JSONDecodeError as error:
        raise MalformedDelivery(f"the body is not JSON: {error}") from None


def _field(value: Any, name: str) -> Any:
    return value.get(name) if isinstance(value, dict) else None


def _text(value: Any) -> str:
    """A scalar as text; ids arrive as numbers or strings, sometimes as neither."""
    if value is None or isinstance(value, dict | list):
        return ""
    return str(value)


def _body_key(body: bytes) -> str:
    return "sha256:" + hashlib.sha256(body).hexdigest()
