"""Webhook senders that behave as Jira and QTest do: they sign each delivery and send it
again whenever it was not acknowledged (no answer, or a 5xx), for a bounded time."""

from __future__ import annotations

import threading
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import cast

import httpx

from integrations.signatures import signature
from ledger.application import ReleaseLedger
from ledger.config import Settings
from tests.conftest import at
from tests.reliability.load import ANSWER_TIMEOUT
from tests.served import WEBHOOK_SECRETS, Served

RESEND_PAUSE = 0.5
PATIENCE_SECONDS = 120.0
DRAIN_SECONDS = 300.0


@dataclass(frozen=True)
class Delivery:
    integration: str
    body: bytes

    def headers(self) -> dict[str, str]:
        if self.integration == "jira":
            secret = WEBHOOK_SECRETS["LEDGER_JIRA_WEBHOOK_SECRET"]
            return {"X-Hub-Signature": f"sha256={signature(secret, self.body)}"}
        secret = WEBHOOK_SECRETS["LEDGER_QTEST_WEBHOOK_SECRET"]
        return {"x-qtest-signature": signature(secret, self.body)}


@dataclass
class Sent:
    """Every answer one sending of a delivery got, the last one final."""

    delivery: Delivery
    answers: list[int] = field(default_factory=list)
    duplicate: bool = False

    @property
    def acknowledged(self) -> bool:
        return bool(self.answers) and self.answers[-1] == 202


def send_all(served: Served, deliveries: list[Delivery], senders: int) -> list[Sent]:
    """Send each delivery in the order given, from ``senders`` threads (a keep-alive
    connection each), resending each until it is acknowledged or refused."""
    local = threading.local()
    opened: list[httpx.Client] = []

    def client() -> httpx.Client:
        if not hasattr(local, "client"):
            local.client = httpx.Client(
                base_url=served.base_url, timeout=ANSWER_TIMEOUT, trust_env=False
            )
            opened.append(local.client)
        return cast(httpx.Client, local.client)

    def send(delivery: Delivery) -> Sent:
        sent = Sent(delivery)
        deadline = time.monotonic() + PATIENCE_SECONDS
        while True:
            try:
                response = client().post(
                    f"/v1/webhooks/{delivery.integration}",
                    content=delivery.body,
                    headers=delivery.headers(),
                )
            except httpx.TransportError:
                sent.answers.append(0)
            else:
                sent.answers.append(response.status_code)
                if response.status_code < 500:
                    sent.duplicate = response.status_code == 202 and response.json()["duplicate"]
                    return sent
            if time.monotonic() > deadline:
                return sent
            time.sleep(RESEND_PAUSE)

    try:
        with ThreadPoolExecutor(senders) as pool:
            return list(pool.map(send, deliveries))
    finally:
        for each in opened:
            each.close()


def plan_moves(served: Served, source: str, target: str, features: list[str]) -> None:
    """``source`` and ``target`` planned, ``features`` proposed on ``source``: ready for
    Jira to move them."""
    ledger = ReleaseLedger.from_settings(Settings(database_url=served.database_url))
    try:
        for train in (source, target):
            ledger.plan_train(train, "major", "Ada Planner", context=at(90))
        for feature in features:
            ledger.propose_scope(source, feature, "committed", "Ada Planner", context=at(80))
    finally:
        ledger.close()
