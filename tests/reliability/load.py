"""Clients that keep writing for a bounded time, and what each write's client learned.

Every write carries an ``X-Correlation-Id`` of its own, which the ledger keeps on the
events it records: the audit finds a write's events by it. A write with an
``Idempotency-Key`` is retried, with the same key, whenever the API asks for it (409 or
503 with ``Retry-After``) or no answer came, as a careful client does; one without a key
is retried only after a conflict, which the API answers before anything is recorded.
"""

from __future__ import annotations

import os
import random
import threading
import time
import uuid
from collections import Counter
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any

import httpx

SCALE = {"ci": 1, "large": 10}[os.environ.get("LEDGER_RELIABILITY_SCALE", "ci")]
"""How much larger than the CI run a scenario is: ``LEDGER_RELIABILITY_SCALE=large``."""
PATIENCE_SECONDS = 90.0
"""How long a client keeps retrying one write before it gives up on it."""
ANSWER_TIMEOUT = httpx.Timeout(30.0, connect=5.0)
"""No request may hang past this: a hang is a failure of the scenario, not a wait."""
MAX_RETRY_PAUSE = 1.0


def scaled(size: float) -> float:
    return size * SCALE


@dataclass(frozen=True)
class Write:
    """One command as a client sends it."""

    path: str
    body: dict[str, Any]
    keyed: bool = True
    correlation_id: str = field(default_factory=lambda: uuid.uuid4().hex)
    idempotency_key: str = field(default_factory=lambda: f"rel-{uuid.uuid4().hex}")

    def headers(self, token: str) -> dict[str, str]:
        headers = {"Authorization": f"Bearer {token}", "X-Correlation-Id": self.correlation_id}
        if self.keyed:
            headers["Idempotency-Key"] = self.idempotency_key
        return headers


@dataclass
class Outcome:
    """What the client of one write learned: every answer, and the last one."""

    write: Write
    answers: list[int] = field(default_factory=list)
    """Each attempt's status; 0 where no answer came (refused, reset or timed out)."""
    answered_at: list[float] = field(default_factory=list)
    """When each attempt ended (``time.monotonic``)."""
    positions: tuple[int, ...] = ()
    """The positions a 2xx answer listed."""
    slowest: float = 0.0
    replayed: bool = False
    problem: str = ""
    """The last refusal's body, for the message of a failing check."""

    @property
    def status(self) -> int:
        return self.answers[-1] if self.answers else 0

    @property
    def acknowledged(self) -> bool:
        return 200 <= self.status < 300

    @property
    def refused(self) -> bool:
        return 400 <= self.status < 500

    @property
    def unresolved(self) -> bool:
        """No final answer: the write may or may not have been recorded."""
        return not (self.acknowledged or self.refused)


def retry_pause(response: httpx.Response | None) -> float | None:
    """How long to wait before sending again, or None when the answer is final."""
    if response is None:
        return MAX_RETRY_PAUSE
    if response.status_code in (409, 503) and "retry-after" in response.headers:
        return min(float(response.headers["retry-after"]), MAX_RETRY_PAUSE)
    return None


class Client:
    """One keep-alive connection's worth of writes, retried as the API asks."""

    def __init__(self, base_url: str, token: str) -> None:
        self.token = token
        self.http = httpx.Client(base_url=base_url, timeout=ANSWER_TIMEOUT, trust_env=False)

    def close(self) -> None:
        self.http.close()

    def send(self, write: Write, patience: float = PATIENCE_SECONDS) -> Outcome:
        outcome = Outcome(write)
        deadline = time.monotonic() + patience
        while True:
            started = time.monotonic()
            response: httpx.Response | None
            try:
                response = self.http.post(
                    write.path, json=write.body, headers=write.headers(self.token)
                )
            except httpx.TransportError:
                response = None
            ended = time.monotonic()
            outcome.slowest = max(outcome.slowest, ended - started)
            outcome.answers.append(response.status_code if response is not None else 0)
            outcome.answered_at.append(ended)
            if response is not None and response.is_error:
                outcome.problem = response.text[:500]
            if response is not None and response.is_success:
                outcome.positions = tuple(event["position"] for event in response.json()["events"])
                outcome.replayed = response.headers.get("idempotent-replayed") == "true"
            pause = retry_pause(response)
            conflict_only = response is not None and response.status_code == 409
            if pause is None or not (write.keyed or conflict_only):
                return outcome
            if time.monotonic() + pause > deadline:
                return outcome
            time.sleep(pause)


def keep_writing(
    base_url: str,
    token: str,
    clients: int,
    seconds: float,
    next_write: Callable[[random.Random], Write],
    seed: int = 7,
    stop: threading.Event | None = None,
    patience: float = PATIENCE_SECONDS,
) -> list[Outcome]:
    """``clients`` threads sending ``next_write``'s writes for ``seconds`` (or until
    ``stop``), each retried for up to ``patience`` seconds; every write they began, with
    its outcome."""
    deadline = time.monotonic() + seconds
    stop = stop or threading.Event()

    def one_client(number: int) -> list[Outcome]:
        rng = random.Random(seed * 1000 + number)
        client = Client(base_url, token)
        outcomes = []
        try:
            while time.monotonic() < deadline and not stop.is_set():
                outcomes.append(client.send(next_write(rng), patience))
        finally:
            client.close()
        return outcomes

    with ThreadPoolExecutor(clients) as pool:
        return [o for outcomes in pool.map(one_client, range(clients)) for o in outcomes]


@dataclass(frozen=True)
class Tally:
    """The figures of a run, as ``docs/reliability.md`` reports them."""

    requests: int
    writes: int
    acknowledged: int
    refused: int
    unresolved: int
    statuses: dict[int, int]
    slowest: float

    @classmethod
    def of(cls, outcomes: list[Outcome]) -> Tally:
        statuses = Counter(status for outcome in outcomes for status in outcome.answers)
        return cls(
            requests=sum(len(outcome.answers) for outcome in outcomes),
            writes=len(outcomes),
            acknowledged=sum(outcome.acknowledged for outcome in outcomes),
            refused=sum(outcome.refused for outcome in outcomes),
            unresolved=sum(outcome.unresolved for outcome in outcomes),
            statuses=dict(sorted(statuses.items())),
            slowest=max((outcome.slowest for outcome in outcomes), default=0.0),
        )

    def __str__(self) -> str:
        answers = ", ".join(f"{status or 'none'}: {n}" for status, n in self.statuses.items())
        return (
            f"{self.writes} writes in {self.requests} requests: {self.acknowledged} "
            f"acknowledged, {self.refused} refused, {self.unresolved} unresolved; answers "
            f"{answers}; slowest answer {self.slowest:.2f} s"
        )
