"""Webhook intake of the Release Ledger: Jira and QTest deliveries, as ratios to a trivial POST.

One run, in one process tree, against 127.0.0.1 only, on a fresh database:

0. setup    -- ``ledger db upgrade``, an admin token (``ledger token create``), trains 5.5
               (gate 1 passed, 256 committed features) and 5.6 (taking proposals) recorded
               through ``ReleaseLedger``; a fake QTest (``tests/fakes/qtest.py``) in this
               process with "Release 5.5" and its cycles "Phase 1" and "Golden"; ``ledger
               serve --no-login-link`` with the webhook secrets and the fake QTest's URL and
               token, and the trivial server.
1. trivial  -- an ``async def`` POST that reads the body and answers 202 with a small JSON
               receipt, served by uvicorn exactly as ``ledger serve`` serves the real app:
               the baseline. It runs for half a window before each webhook phase.
2. Jira     -- ``POST /v1/webhooks/jira`` signed (``X-Hub-Signature: sha256=...``), each
               with its own ``X-Atlassian-Webhook-Identifier``: three in four move a feature's
               fixVersions between 5.5 and 5.6 (distinct changelog ids; each sender owns its
               features, so one feature's moves arrive in order), one in four maps to
               nothing (``comment_created``, a status change); every 25th is a retry of the
               sender's previous delivery (same id: stored once).
3. QTest    -- ``POST /v1/webhooks/qtest`` signed (``x-qtest-signature``), each a new test
               log that the sender submits to the fake QTest just before: every run of both
               cycles executed once, then retests; every 25th a retry, as in 2.

Each webhook phase is followed by its drain: the time from the last accepted delivery until
``GET /v1/inbox`` shows nothing pending, while the server's inbox worker maps the deliveries
(Jira ones to decisions, QTest ones enriched through the fake QTest into per-cycle QA runs).
Then the checks: no delivery failed, each feature ended in the train its last move named,
and 5.5's QA runs for phase 1 and golden equal ``FakeQTest.cycle_totals``. A failed check
makes the exit status 1.

32 senders on keep-alive HTTP/1.1 connections from this process (asyncio on uvloop, the
raw client of ``bench/api.py``); every phase is bounded by ``--seconds`` and
``--max-deliveries``, every drain by ``--drain-timeout``. Servers run as child processes
that die with this one; the database is dropped at the end, even on failure, Ctrl-C or
SIGTERM. Usage: ``.venv/bin/python bench/webhooks.py [--quick] [--seconds S]``
(``make bench-webhooks``).
"""

from __future__ import annotations

import sys
from pathlib import Path

# Run as a script, this file's directory comes first on sys.path, where ``api.py`` would
# shadow the ``api`` package: look in that directory last (``append`` and ``harness`` are
# still found there). The repository's root comes last too, for the fake QTest in ``tests``.
sys.path.sort(key=lambda entry: Path(entry or ".").resolve() == Path(__file__).resolve().parent)
sys.path.append(str(Path(__file__).resolve().parent.parent))

import argparse
import asyncio
import contextlib
import os
import platform
import random
import signal
import subprocess
import tempfile
import time
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import orjson
import psycopg
from fastapi import FastAPI
from fastapi import Request as HttpRequest
from rich.table import Table

from api.main import NO_OPENTELEMETRY
from api.responses import ORJSONResponse
from append import (
    fresh_databases,
    on_loopback_server,
    open_ledger,
)
from harness import (
    TIED,
    BenchDatabase,
    Load,
    RawConnection,
    Request,
    Server,
    Snapshot,
    console,
    http_get,
    isolate_run,
    ledger_command,
    run_context,
    run_ledger,
    running,
    server_env,
    start_profiler,
    top_of_profile,
)
from integrations.signatures import signature
from ledger.application import CustomerAsk, ReleaseLedger
from ledger.values import IN_SCOPE_STATUSES
from tests.fakes.qtest import FakeQTest

SENDERS = 32
DEFAULT_SECONDS = 5.0
DEFAULT_WARMUP = 1.0
# Enough for a full window at ~2,500 deliveries/s, few enough for a Jira drain (~80 mapped/s)
# to end within its timeout.
DEFAULT_MAX_DELIVERIES = 20_000
DEFAULT_DRAIN_TIMEOUT = 300.0
QUICK = {"seconds": 3.0, "warmup": 0.5, "max_deliveries": 3000, "drain_timeout": 120.0}
MAX_SECONDS = 30.0
PHASE_GRACE = 60.0  # beyond warm-up + window, a phase whose server stopped answering fails
POLL_SECONDS = 0.2
PROGRESS_SECONDS = 5.0
RATIO_GOAL = 0.3

OLD_TRAIN, NEW_TRAIN = "5.5", "5.6"
FEATURES = 256  # per sender: 8, so one feature's moves are ~250 deliveries apart
UNMAPPED_EVERY = 4  # the sender's n-th delivery maps to nothing when n % 4 == 3
RETRY_EVERY = 25  # and is a retry of its previous one when n % 25 == 24
RUNS_PER_CYCLE = 3_000
QTEST_CYCLES = ("Phase 1", "Golden")
LEDGER_CYCLES = {"Phase 1": "phase1", "Golden": "golden"}
SEED = 20261126

JIRA_SECRET = "bench-jira-webhook-secret"
QTEST_SECRET = "bench-qtest-webhook-secret"
ADMIN_TOKEN_NAME = "bench-inbox-admin"
PLANNER, MANAGER, DIRECTOR = "Priya Raman", "Marta Okafor", "Hiroshi Tanaka"
CUSTOMERS = ("Helios Bank", "Orion Telecom", "Bluefin Health", "Kestrel Media")
JIRA_USERS = ("Maria Lopez", "Kenji Watanabe", "Amara Nwosu", "Lars Eriksen")
JIRA_VERSION_IDS = {OLD_TRAIN: "10105", NEW_TRAIN: "10106"}
JIRA_HEADERS = {"Content-Type": "application/json", "User-Agent": "Atlassian Webhook HTTP Client"}
QTEST_HEADERS = {"Content-Type": "application/json", "User-Agent": "qTest-Webhook"}
DESCRIPTION = (
    "As a storage administrator I want object lock retention to follow the bucket's "
    "compliance mode, so that legal holds survive a replication failover. Acceptance: "
    "retention is enforced on both sites; a failover does not shorten any hold; the audit "
    "log names who changed a retention period and when. "
) * 3  # Jira sends the whole issue with every event: a few KB is typical


# ================================================================ the trivial app


def trivial_app() -> FastAPI:
    """The baseline: a POST that reads its body and answers 202, as a webhook route does."""
    app = FastAPI(
        title="trivial", default_response_class=ORJSONResponse, telemetry=NO_OPENTELEMETRY
    )

    @app.post("/v1/webhooks/trivial", status_code=202)
    async def receive(request: HttpRequest) -> dict[str, Any]:
        body = await request.body()
        return {"delivery": len(body), "delivery_key": "trivial", "duplicate": False}

    @app.get("/v1/ping")
    async def ping() -> dict[str, str]:
        return {"status": "ok", "service": "trivial"}

    return app


def serve_trivial(host: str, port: int, workers: int) -> int:
    """Serve ``trivial_app`` with the very ``uvicorn.run`` call of ``ledger serve``."""
    import uvicorn

    # ``__main__`` is this file, also in the workers uvicorn spawns for --workers > 1.
    uvicorn.run("__main__:trivial_app", factory=True, host=host, port=port, workers=workers)
    return 0


# ================================================================== the data


def seed(ledger: ReleaseLedger, count: int) -> list[str]:
    """5.5 past gate 1 with its features committed, 5.6 still taking proposals."""
    today = datetime.now(UTC).date()
    ledger.plan_train(OLD_TRAIN, "major", PLANNER, title="Objects 5.5")
    for gate, days in ((1, -30), (2, 20), (3, 60), (4, 100)):
        ledger.schedule_gate(OLD_TRAIN, gate, today + timedelta(days=days), PLANNER)
    ledger.plan_train(NEW_TRAIN, "major", PLANNER, title="Objects 5.6")
    for gate, days in ((1, 40), (2, 90), (3, 150), (4, 200)):
        ledger.schedule_gate(NEW_TRAIN, gate, today + timedelta(days=days), PLANNER)
    features = [f"OBJ-{2000 + i}" for i in range(count)]
    for i, key in enumerate(features):
        classification = ("anchor", "committed", "committed", "stretch")[i % 4]
        asks = [CustomerAsk(CUSTOMERS[i % len(CUSTOMERS)], 1 + i % 9)]
        ledger.propose_scope(
            OLD_TRAIN, key, classification, MANAGER, title=title_of(key), customers=asks
        )
    ledger.decide_gate(OLD_TRAIN, 1, "passed", PLANNER)
    for key in features:
        ledger.decide(OLD_TRAIN, key, "commit", DIRECTOR)
    return features


def title_of(feature: str) -> str:
    return f"Object lock retention, part {feature.rsplit('-', 1)[1]}"


@dataclass
class QTestPlan:
    """The fake QTest's 5.5 cycles and their runs, executed one delivery at a time."""

    fake: FakeQTest
    cycles: dict[str, int]  # QTest cycle name -> id
    runs: dict[str, list[int]]
    rng: random.Random = field(default_factory=lambda: random.Random(SEED))
    executed: int = 0

    @classmethod
    def create(cls, fake: FakeQTest) -> QTestPlan:
        release = fake.add_release(f"Release {OLD_TRAIN}")
        cycles = {name: fake.add_cycle(name, release=release) for name in QTEST_CYCLES}
        runs = {
            name: [fake.add_test_run(cycle) for _ in range(RUNS_PER_CYCLE)]
            for name, cycle in cycles.items()
        }
        return cls(fake, cycles, runs)

    def next_log(self) -> int:
        """Execute the next run: each run of both cycles once, then retests, in turn."""
        n = self.executed
        self.executed += 1
        name = QTEST_CYCLES[n % len(QTEST_CYCLES)]
        rerun, index = divmod(n // len(QTEST_CYCLES), RUNS_PER_CYCLE)
        if rerun == 0:
            outcomes, weights, build = (
                ["Passed", "Failed", "Blocked", "Incomplete"],
                [94, 3, 1, 2],
                7,
            )
        else:
            outcomes, weights, build = ["Passed", "Failed"], [85, 15], 7 + rerun
        status = self.rng.choices(outcomes, weights)[0]
        return self.fake.submit_log(
            self.runs[name][index], status, build=f"{OLD_TRAIN}.0-rc{build}"
        )


# ================================================================ the traffic


@dataclass
class Traffic:
    """Deliveries made for one phase, by kind; retries of the sender's previous one."""

    kinds: Counter[str] = field(default_factory=Counter)
    previous: dict[int, Request] = field(default_factory=dict)

    def request(self, sender: int, n: int) -> Request:
        """The sender's n-th delivery."""
        raise NotImplementedError

    def retry_or(self, sender: int, n: int, make: Callable[[], Request]) -> Request:
        last = self.previous.get(sender)
        if n % RETRY_EVERY == RETRY_EVERY - 1 and last is not None:
            self.kinds["retry"] += 1
            return last
        request = self.previous[sender] = make()
        return request


class JiraTraffic(Traffic):
    """Jira Cloud deliveries: fixVersions moves between 5.5 and 5.6, and unmapped events."""

    def __init__(self, features: list[str], senders: int) -> None:
        super().__init__()
        self.place = dict.fromkeys(features, OLD_TRAIN)
        self.owned = [features[i::senders] for i in range(senders)]
        self.turns = [0] * senders

    def request(self, sender: int, n: int) -> Request:
        return self.retry_or(sender, n, lambda: self._new(sender, n))

    def _new(self, sender: int, n: int) -> Request:
        delivery_id = f"bench-{sender:02d}-{n:06d}"
        changelog_id = str(1_000_000 * (sender + 1) + n)
        user = {"displayName": JIRA_USERS[n % len(JIRA_USERS)], "accountId": f"5b10a2844c{n}"}
        if n % UNMAPPED_EVERY == UNMAPPED_EVERY - 1:
            feature = self.owned[sender][n % len(self.owned[sender])]
            payload = self._unmapped(feature, n, changelog_id, user)
            self.kinds["unmapped"] += 1
        else:
            owned = self.owned[sender]
            feature = owned[self.turns[sender] % len(owned)]
            self.turns[sender] += 1
            source = self.place[feature]
            target = NEW_TRAIN if source == OLD_TRAIN else OLD_TRAIN
            self.place[feature] = target
            payload = {
                "timestamp": now_ms(),
                "webhookEvent": "jira:issue_updated",
                "issue_event_type_name": "issue_generic",
                "user": user,
                "issue": jira_issue(feature, target),
                "changelog": {
                    "id": changelog_id,
                    "items": [
                        fix_version_item(source, removed=True),
                        fix_version_item(target, removed=False),
                    ],
                },
            }
            self.kinds["move"] += 1
        body = orjson.dumps(payload)
        headers = (
            ("X-Atlassian-Webhook-Identifier", delivery_id),
            ("X-Hub-Signature", f"sha256={signature(JIRA_SECRET, body)}"),
        )
        return Request("POST", "/v1/webhooks/jira", body, headers)

    def _unmapped(
        self, feature: str, n: int, changelog_id: str, user: dict[str, str]
    ) -> dict[str, Any]:
        issue = jira_issue(feature, self.place[feature])
        if n % (2 * UNMAPPED_EVERY) == UNMAPPED_EVERY - 1:
            return {
                "timestamp": now_ms(),
                "webhookEvent": "comment_created",
                "comment": {
                    "id": changelog_id,
                    "author": user,
                    "body": "Retested on the failover rig: holds survive. Moving on.",
                    "created": datetime.now(UTC).isoformat(),
                },
                "issue": issue,
            }
        return {
            "timestamp": now_ms(),
            "webhookEvent": "jira:issue_updated",
            "issue_event_type_name": "issue_generic",
            "user": user,
            "issue": issue,
            "changelog": {
                "id": changelog_id,
                "items": [
                    {
                        "field": "status",
                        "fieldtype": "jira",
                        "fieldId": "status",
                        "from": "3",
                        "fromString": "In Progress",
                        "to": "10001",
                        "toString": "In Review",
                    }
                ],
            },
        }


def now_ms() -> int:
    return int(time.time() * 1000)


def fix_version_item(train: str, *, removed: bool) -> dict[str, Any]:
    version_id = JIRA_VERSION_IDS[train]
    return {
        "field": "Fix Version",
        "fieldtype": "jira",
        "fieldId": "fixVersions",
        "from": version_id if removed else None,
        "fromString": train if removed else None,
        "to": None if removed else version_id,
        "toString": None if removed else train,
    }


def jira_issue(feature: str, train: str) -> dict[str, Any]:
    """The issue as Jira sends it with every event, in the fix version ``train``."""
    number = int(feature.rsplit("-", 1)[1])
    return {
        "id": str(30_000 + number),
        "key": feature,
        "self": f"https://jira.example.invalid/rest/api/2/issue/{30_000 + number}",
        "fields": {
            "summary": title_of(feature),
            "project": {"id": "10010", "key": "OBJ", "name": "Objects"},
            "issuetype": {"id": "10000", "name": "Epic"},
            "status": {"id": "3", "name": "In Progress"},
            "priority": {"id": "3", "name": "Major"},
            "labels": ["objects", "compliance"],
            "components": [{"id": "10200", "name": "Object Lock"}],
            "assignee": {"displayName": "Kenji Watanabe", "accountId": "5b10a2844c20165700ede21g"},
            "reporter": {"displayName": "Maria Lopez", "accountId": "5b10ac8d82e05b22cc7d4ef5"},
            "fixVersions": [{"id": JIRA_VERSION_IDS[train], "name": train}],
            "description": DESCRIPTION,
        },
    }


class QTestTraffic(Traffic):
    """QTest ``testlog_submitted`` deliveries, each for a test log submitted just before."""

    def __init__(self, plan: QTestPlan) -> None:
        super().__init__()
        self.plan = plan

    def request(self, sender: int, n: int) -> Request:
        return self.retry_or(sender, n, self._new)

    def _new(self) -> Request:
        body = self.plan.fake.webhook_body(self.plan.next_log())
        self.kinds["test log"] += 1
        headers = (("x-qtest-signature", signature(QTEST_SECRET, body)),)
        return Request("POST", "/v1/webhooks/qtest", body, headers)


def trivial_request(body: bytes) -> Callable[[int, int], Request]:
    request = Request("POST", "/v1/webhooks/trivial", body)
    return lambda _sender, _n: request


# ================================================================== the load


@dataclass(frozen=True)
class Sent:
    """What one phase's senders saw: the warm-up, the measured window, CPU over the window."""

    label: str
    warm: Load
    measured: Load
    window: float
    last_accepted: float  # perf_counter() when the last 2xx answer arrived
    duplicates: int
    cpu: dict[str, float]

    @property
    def rate(self) -> float:
        return (len(self.measured.latencies) - self.measured.errors) / self.window

    @property
    def errors(self) -> int:
        return self.warm.errors + self.measured.errors

    @property
    def answered(self) -> int:
        return len(self.warm.latencies) + len(self.measured.latencies)

    def percentile_ms(self, percent: int) -> float:
        latencies = sorted(self.measured.latencies)
        if not latencies:
            return float("nan")
        return latencies[min(len(latencies) - 1, int(len(latencies) * percent / 100))] * 1000

    def cpu_ms(self, part: str) -> float:
        return self.cpu[part] / max(len(self.measured.latencies), 1) * 1000


async def drive(
    label: str,
    server: Server,
    db: BenchDatabase,
    make: Callable[[int, int], Request],
    headers: dict[str, str],
    *,
    senders: int,
    warmup: float,
    seconds: float,
    max_deliveries: int,
) -> Sent:
    """``senders`` connections each sending one request at a time, until time or count ends."""
    warm, measured = Load(), Load()
    start = time.perf_counter()
    measure_from = start + warmup
    stop_at = measure_from + seconds
    made = 0
    last_accepted = 0.0
    duplicates = 0
    cpu_start: list[Snapshot] = []
    broken: list[BaseException] = []

    async def one(index: int) -> None:
        nonlocal made, last_accepted, duplicates
        connection = RawConnection(server.port, headers)
        clock = time.perf_counter
        n = 0
        try:
            while (began := clock()) < stop_at and made < max_deliveries:
                made += 1
                request = make(index, n)
                try:
                    status, body = await connection.send(request)
                except (OSError, asyncio.IncompleteReadError, asyncio.LimitOverrunError) as error:
                    connection.close()
                    status, body = 0, repr(error).encode()
                    if len(broken) > 100:
                        raise RuntimeError(f"{label}: connections keep failing") from error
                    broken.append(error)
                finished = clock()
                if 200 <= status < 300:
                    last_accepted = max(last_accepted, finished)
                    duplicates += bool(orjson.loads(body).get("duplicate"))
                (warm if began < measure_from else measured).record(
                    finished - began, status, body, finished
                )
                n += 1
        finally:
            connection.close()

    async def at_window() -> None:
        await asyncio.sleep(max(0.0, measure_from - time.perf_counter()))
        cpu_start.append(Snapshot(server, db))

    async def everything() -> None:
        await asyncio.gather(at_window(), *(one(i) for i in range(senders)))

    try:
        await asyncio.wait_for(everything(), warmup + seconds + PHASE_GRACE)
    except TimeoutError:
        raise RuntimeError(
            f"{label}: no end after {warmup + seconds + PHASE_GRACE:.0f} s; server log:\n"
            + server.tail()
        ) from None
    used = Snapshot(server, db).used_since(cpu_start[0])
    window = max(measured.finished - measure_from, 1e-9)
    sent = Sent(label, warm, measured, window, last_accepted, duplicates, used)
    if sent.errors:
        failures = measured.failures or warm.failures
        console.print(f"[red]  {label}: {sent.errors} non-2xx answers, e.g. {failures[:1]}")
    if not measured.latencies:
        raise RuntimeError(f"{label}: nothing sent in the measured window (--max-deliveries?)")
    return sent


def send(
    label: str,
    server: Server,
    db: BenchDatabase,
    make: Callable[[int, int], Request],
    headers: dict[str, str],
    args: argparse.Namespace,
    *,
    seconds: float,
    max_deliveries: int,
) -> Sent:
    run = drive(
        label,
        server,
        db,
        make,
        headers,
        senders=args.senders,
        warmup=args.warmup,
        seconds=seconds,
        max_deliveries=max_deliveries,
    )
    try:
        import uvloop
    except ImportError:  # pragma: no cover - uvicorn[standard] brings it
        return asyncio.run(run)
    with asyncio.Runner(loop_factory=uvloop.new_event_loop) as runner:
        return runner.run(run)


# ================================================================= the drain


@dataclass(frozen=True)
class Drained:
    """How long the inbox took to have nothing pending after the last accepted delivery."""

    label: str
    seconds: float
    counts: dict[str, int]
    deliveries: int  # stored by the phase: what the worker had to map
    timed_out: bool
    cpu: dict[str, float]

    @property
    def rate(self) -> float:
        return self.deliveries / self.seconds if self.seconds > 0 else float("inf")

    def cpu_ms(self, part: str) -> float:
        return self.cpu[part] / max(self.deliveries, 1) * 1000


def inbox_counts(server: Server, token: str) -> dict[str, int]:
    status, body = http_get(server.port, "/v1/inbox?limit=1", token)
    if status != 200:
        raise RuntimeError(f"GET /v1/inbox answered {status}: {body[:300]!r}")
    counts: dict[str, int] = orjson.loads(body)["counts"]
    return counts


def drain(
    label: str,
    server: Server,
    db: BenchDatabase,
    token: str,
    sent: Sent,
    stored: int,
    timeout: float,
) -> Drained:
    """Poll ``GET /v1/inbox`` until nothing is pending, or ``timeout`` after the last 202."""
    cpu_start = Snapshot(server, db)
    next_progress = time.perf_counter() + PROGRESS_SECONDS
    while True:
        counts = inbox_counts(server, token)
        now = time.perf_counter()
        waited = now - sent.last_accepted
        if counts["pending"] == 0 or waited > timeout:
            used = Snapshot(server, db).used_since(cpu_start)
            return Drained(label, waited, counts, stored, counts["pending"] > 0, used)
        if now >= next_progress:
            console.print(f"[dim]  {waited:5.1f} s: {counts['pending']:,} pending[/dim]")
            next_progress = now + PROGRESS_SECONDS
        time.sleep(POLL_SECONDS)


# ================================================================== the checks


@dataclass
class Checks:
    lines: list[tuple[bool, str]] = field(default_factory=list)

    def add(self, ok: bool, text: str) -> None:
        self.lines.append((ok, text))

    @property
    def ok(self) -> bool:
        return all(ok for ok, _ in self.lines)


def inbox_by_integration(db: BenchDatabase) -> dict[str, Counter[str]]:
    with psycopg.connect(db.url, connect_timeout=5) as connection:
        rows = connection.execute(
            "SELECT integration, status, count(*) FROM webhook_deliveries GROUP BY 1, 2"
        ).fetchall()
    found: dict[str, Counter[str]] = {"jira": Counter(), "qtest": Counter()}
    for integration, status, count in rows:
        found.setdefault(integration, Counter())[status] = count
    return found


def failure_reasons(db: BenchDatabase, integration: str, count: int = 3) -> list[str]:
    """A few reasons the worker gave for deliveries it settled ``failed``."""
    with psycopg.connect(db.url, connect_timeout=5) as connection:
        rows = connection.execute(
            "SELECT reason FROM webhook_deliveries WHERE integration = %s AND status = 'failed' "
            "ORDER BY id LIMIT %s",
            (integration, count),
        ).fetchall()
    return [str(row[0]) for row in rows]


def check_everything(
    db: BenchDatabase,
    jira: JiraTraffic,
    qtest: QTestTraffic,
    sent: list[Sent],
    drains: list[Drained],
) -> Checks:
    checks = Checks()
    errors = sum(phase.errors for phase in sent)
    checks.add(errors == 0, f"{errors} non-2xx answers")
    for drained in drains:
        checks.add(
            not drained.timed_out,
            f"{drained.label} inbox drained ({drained.counts['pending']} pending at the end)",
        )
    inbox = inbox_by_integration(db)
    expected_jira = Counter({"applied": jira.kinds["move"], "ignored": jira.kinds["unmapped"]})
    expected_qtest = Counter({"applied": qtest.kinds["test log"]})
    for name, expected in (("jira", expected_jira), ("qtest", expected_qtest)):
        found = inbox[name]
        failures = failure_reasons(db, name) if found["failed"] else []
        checks.add(
            found == expected,
            f"{name} inbox {dict(found)}, expected {dict(expected)}"
            + "".join(f"\n     failed: {reason}" for reason in failures),
        )
    # A new ledger: the setup's own has the trains cached as they were before the webhooks.
    ledger = open_ledger(db.url)
    try:
        old, new = ledger.train(OLD_TRAIN), ledger.train(NEW_TRAIN)
        in_scope = {
            train: {
                entry["feature"]
                for entry in document["scope"]
                if entry["status"] in IN_SCOPE_STATUSES
            }
            for train, document in ((OLD_TRAIN, old), (NEW_TRAIN, new))
        }
        misplaced = [
            feature
            for feature, train in jira.place.items()
            if feature not in in_scope[train]
            or any(feature in features for other, features in in_scope.items() if other != train)
        ]
        checks.add(
            not misplaced,
            f"features where their last move put them: {len(jira.place) - len(misplaced)} of "
            f"{len(jira.place)} ({len(in_scope[NEW_TRAIN])} in {NEW_TRAIN})"
            + (f"; misplaced e.g. {misplaced[:3]}" if misplaced else ""),
        )
        for name, cycle_id in qtest.plan.cycles.items():
            truth = qtest.plan.fake.cycle_totals(cycle_id)
            run = old["qa"].get(LEDGER_CYCLES[name]) or {}
            recorded = {key: run.get(key) for key in truth}
            checks.add(
                recorded == truth,
                f"{OLD_TRAIN} {LEDGER_CYCLES[name]} QA run {recorded} vs QTest {name!r} {truth}",
            )
    finally:
        ledger.close()
    return checks


# ====================================================================== report


def report(
    trivial: Sent,
    sent: list[Sent],
    drains: list[Drained],
    checks: Checks,
    context: dict[str, str],
    seconds: float,
) -> None:
    table = Table(title="Release Ledger webhooks on 127.0.0.1, ratios to a trivial POST")
    for column in ("line", "answered", "non-2xx", "dup", "accepted/s", "p50 ms", "p99 ms"):
        table.add_column(column, justify="left" if column == "line" else "right")
    for column in ("client", "server", "PG"):
        table.add_column(f"cpu {column}", justify="right")
    table.add_column("x baseline", justify="right")
    for phase in (trivial, *sent):
        table.add_row(
            phase.label,
            f"{phase.answered:,}",
            str(phase.errors),
            "-" if phase is trivial else f"{phase.duplicates:,}",
            f"{phase.rate:,.0f}",
            f"{phase.percentile_ms(50):,.1f}",
            f"{phase.percentile_ms(99):,.1f}",
            *(f"{phase.cpu_ms(part):.2f}" for part in ("client", "server", "PostgreSQL")),
            f"{phase.rate / trivial.rate:.2f}",
        )
    console.print(" · ".join(f"{key} {value}" for key, value in context.items()))
    console.print(table)
    drain_table = Table(title="Inbox drain: from the last accepted delivery to nothing pending")
    for column in ("phase", "deliveries", "drained after s", "deliveries/s"):
        drain_table.add_column(column, justify="left" if column == "phase" else "right")
    for column in ("client", "server", "PG"):
        drain_table.add_column(f"cpu {column}", justify="right")
    drain_table.add_column("inbox counts")
    for drained in drains:
        drain_table.add_row(
            drained.label,
            f"{drained.deliveries:,}",
            f"{drained.seconds:,.1f}" + (" (timed out)" if drained.timed_out else ""),
            f"{drained.rate:,.0f}",
            *(f"{drained.cpu_ms(part):.2f}" for part in ("client", "server", "PostgreSQL")),
            " ".join(f"{key} {value:,}" for key, value in drained.counts.items()),
        )
    console.print(drain_table)
    console.print(
        "[dim]answered: every request, warm-up included; accepted/s: 2xx answers in the "
        "measured window over its length; p50/p99: per request, from write to the last byte of "
        "the answer. dup: answers saying duplicate (retries). cpu: CPU ms per request (per "
        "delivery in the drain) of this process (the senders and, in the drain, the fake "
        "QTest), of the server's processes (the inbox worker included, as it maps deliveries "
        "while they arrive) and of the database's backends. x baseline: over the trivial "
        "POST, which ran before each webhook phase.[/dim]"
    )
    for phase in sent:
        ratio = phase.rate / trivial.rate
        good = ratio >= RATIO_GOAL and phase.errors == 0
        console.print(
            f"goal {phase.label} >= {RATIO_GOAL} x trivial: "
            f"{'[green]MET' if good else '[red]NOT MET'}[/] ({ratio:.3f}, p99 "
            f"{phase.percentile_ms(99):.0f} ms)"
        )
    for ok, text in checks.lines:
        console.print(f"{'[green]ok  ' if ok else '[red]FAIL'}[/] {text}", highlight=False)
    console.print(f"[dim]total wall time {seconds:.0f} s[/dim]")


def share_by_thread(path: Path) -> str:
    """A py-spy ``--threads`` profile's samples per thread, busiest first."""
    threads: Counter[str] = Counter()
    for line in path.read_text().splitlines():
        stack, _, samples = line.rpartition(" ")
        if samples.isdigit():
            frames = stack.split(";")
            threads[frames[1] if len(frames) > 1 else frames[0]] += int(samples)
    total = threads.total() or 1
    return "\n".join(f"  {n / total:6.1%}  {thread}" for thread, n in threads.most_common(8))


# ======================================================================== main


def cpu_model() -> str:
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.partition(":")[2].strip()
    return platform.machine()


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n\n", 1)[0])
    parser.add_argument(
        "--quick",
        action="store_true",
        help="a smoke run of about 30 s: "
        + ", ".join(f"--{key.replace('_', '-')} {value:g}" for key, value in QUICK.items()),
    )
    parser.add_argument(
        "--seconds",
        type=float,
        help=f"measured window of each webhook phase (default {DEFAULT_SECONDS:g}, 1 to "
        f"{MAX_SECONDS:g}); the trivial baseline runs half of it before each",
    )
    parser.add_argument(
        "--warmup", type=float, help=f"unmeasured seconds before each window (default "
        f"{DEFAULT_WARMUP:g}, 0 to 5)",
    )  # fmt: skip
    parser.add_argument(
        "--max-deliveries",
        type=int,
        help=f"deliveries per webhook phase at most, warm-up included (default "
        f"{DEFAULT_MAX_DELIVERIES:,}, 100 to 100,000)",
    )
    parser.add_argument(
        "--drain-timeout",
        type=float,
        help=f"seconds a drain may take before the run fails (default "
        f"{DEFAULT_DRAIN_TIMEOUT:g}, 10 to 900)",
    )
    parser.add_argument(
        "--senders",
        type=int,
        default=SENDERS,
        help=f"concurrent senders, one keep-alive connection each (default {SENDERS}, 1 to 128)",
    )
    parser.add_argument(
        "--features",
        type=int,
        default=FEATURES,
        help=f"features the Jira deliveries move, shared out among the senders (default "
        f"{FEATURES}, --senders to 4,096); fewer put one feature's moves closer together",
    )
    parser.add_argument(
        "--workers",
        type=int,
        default=1,
        help="uvicorn workers of both servers (default 1, as ledger serve; 1 to 4)",
    )
    parser.add_argument(
        "--separate-worker",
        action="store_true",
        help="map deliveries in `ledger inbox run`, with LEDGER_INBOX_WORKER=false on the "
        "server, instead of in the server's own process (the default, as ledger serve)",
    )
    parser.add_argument(
        "--profile",
        metavar="DIR",
        help="record the ledger server with py-spy (on PATH, or PY_SPY) into DIR in each "
        "webhook phase and drain, and print the heaviest frames and threads",
    )
    parser.add_argument("--serve-trivial", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--host", default="127.0.0.1", help=argparse.SUPPRESS)
    parser.add_argument("--port", type=int, default=0, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.serve_trivial:
        return args
    defaults = {
        "seconds": DEFAULT_SECONDS,
        "warmup": DEFAULT_WARMUP,
        "max_deliveries": DEFAULT_MAX_DELIVERIES,
        "drain_timeout": DEFAULT_DRAIN_TIMEOUT,
    }
    for key, default in defaults.items():
        if getattr(args, key) is None:
            setattr(args, key, type(default)(QUICK[key]) if args.quick else default)
    if not 1 <= args.seconds <= MAX_SECONDS:
        parser.error(f"--seconds must be from 1 to {MAX_SECONDS:g}")
    if not 0 <= args.warmup <= 5:
        parser.error("--warmup must be from 0 to 5")
    if not 100 <= args.max_deliveries <= 100_000:
        parser.error("--max-deliveries must be from 100 to 100,000")
    if not 10 <= args.drain_timeout <= 900:
        parser.error("--drain-timeout must be from 10 to 900")
    if not 1 <= args.senders <= 128:
        parser.error("--senders must be from 1 to 128")
    if not 1 <= args.workers <= 4:
        parser.error("--workers must be from 1 to 4")
    if not args.senders <= args.features <= 4_096:
        parser.error("--features must be from --senders to 4,096")
    return args


@contextlib.contextmanager
def inbox_worker_process(env: dict[str, str], work: Path) -> Iterator[None]:
    """``ledger inbox run`` as a child process tied to this one, stopped on leaving."""
    with (work / "inbox_run.log").open("wb") as log:
        process = subprocess.Popen(
            [sys.executable, "-c", TIED, str(os.getpid()), *ledger_command("inbox", "run")],
            stdout=log,
            stderr=subprocess.STDOUT,
            env=env,
            cwd=work,
        )
    try:
        yield
    finally:
        process.terminate()
        try:
            process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            process.kill()


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    if args.serve_trivial:
        return serve_trivial(args.host, args.port, args.workers)
    return on_loopback_server(lambda admin_url: run(args, admin_url))


class Profiler:
    """py-spy on the ledger server for one phase or drain, when ``--profile`` asks for it."""

    def __init__(self, py_spy: str | None, directory: Path | None, server: Server) -> None:
        self.py_spy = py_spy
        self.directory = directory
        self.server = server
        self.outputs: list[tuple[str, Path]] = []

    @contextlib.contextmanager
    def recording(self, label: str, seconds: float) -> Iterator[None]:
        if self.py_spy is None or self.directory is None:
            yield
            return
        process, output = start_profiler(
            self.py_spy, self.server, label, self.directory, seconds, threads=True
        )
        self.outputs.append((label, output))
        try:
            yield
        finally:
            if process.poll() is None:
                process.send_signal(signal.SIGINT)  # py-spy writes what it has on Ctrl-C
            process.wait(30)


def run(args: argparse.Namespace, admin_url: str) -> int:
    py_spy = isolate_run(args.profile)
    started = time.perf_counter()
    context = {
        **run_context(admin_url),
        "cpu": f"{os.cpu_count()} x {cpu_model()}",
        "workers": str(args.workers),
        "senders": str(args.senders),
        # The host is shared: what else ran shows in the absolute rates, less in the ratios.
        "load at start": " ".join(f"{value:.1f}" for value in os.getloadavg()),
    }
    console.print(
        f"[bold]bench/webhooks.py[/bold]: {args.senders} senders, {args.warmup:g} s warm-up + "
        f"{args.seconds:g} s per webhook phase, at most {args.max_deliveries:,} deliveries each, "
        f"{args.workers} worker(s)"
    )
    with (
        fresh_databases(admin_url, ("webhooks",)) as urls,
        tempfile.TemporaryDirectory(prefix="ledger_bench_webhooks_") as scratch,
        FakeQTest() as fake,
        contextlib.ExitStack() as stack,
    ):
        url = urls["webhooks"]
        db = BenchDatabase(admin_url, url)
        work = Path(scratch)
        env = server_env(url)
        env.update(
            {
                "LEDGER_JIRA_WEBHOOK_SECRET": JIRA_SECRET,
                "LEDGER_QTEST_WEBHOOK_SECRET": QTEST_SECRET,
                "LEDGER_QTEST_BASE_URL": fake.base_url,
                "LEDGER_QTEST_TOKEN": fake.token,
            }
        )
        console.print("[dim]0/4 setup: schema, admin token, trains 5.5 and 5.6, QTest...[/dim]")
        run_ledger(env, work, "db", "upgrade")
        created = run_ledger(
            env, work, "token", "create", "--name", ADMIN_TOKEN_NAME, "--role", "admin"
        )
        token = created.strip().splitlines()[0]
        ledger = stack.enter_context(contextlib.closing(open_ledger(url)))
        features = seed(ledger, args.features)
        plan = QTestPlan.create(fake)
        console.print(
            f"[dim]  {ledger.event_log.last_position():,} events recorded, "
            f"{len(QTEST_CYCLES) * RUNS_PER_CYCLE:,} QTest runs; starting the servers...[/dim]"
        )
        trivial_server = stack.enter_context(
            running(
                Server(
                    "trivial",
                    [sys.executable, __file__, "--serve-trivial"],
                    args.workers,
                    env,
                    work,
                ),
                "/v1/ping",
            )
        )
        if args.separate_worker:
            env["LEDGER_INBOX_WORKER"] = "false"
            stack.enter_context(inbox_worker_process(env, work))
        served = stack.enter_context(
            running(
                Server(
                    "ledger serve",
                    ledger_command("serve", "--no-login-link"),
                    args.workers,
                    env,
                    work,
                ),
                "/healthz",
            )
        )
        profiler = Profiler(py_spy, Path(args.profile) if args.profile else None, served)
        jira = JiraTraffic(features, args.senders)
        qtest = QTestTraffic(plan)
        # The trivial POST carries a Jira-sized body, like the deliveries it is compared with.
        baseline_body = JiraTraffic(features, 1).request(0, 0).body
        trivial_parts: list[Sent] = []
        sent: list[Sent] = []
        drains: list[Drained] = []
        stored = 0
        phases = (
            ("Jira", "jira: POST …/jira", jira, JIRA_HEADERS),
            ("QTest", "qtest: POST …/qtest", qtest, QTEST_HEADERS),
        )
        for number, (name, label, traffic, headers) in enumerate(phases, start=1):
            console.print(
                f"[dim]{number * 2 - 1}/4 trivial POST {args.seconds / 2:g} s, then {name} "
                f"{args.seconds:g} s, {args.senders} senders...[/dim]"
            )
            trivial_parts.append(
                send(
                    "trivial: POST 202",
                    trivial_server,
                    db,
                    trivial_request(baseline_body),
                    JIRA_HEADERS,
                    args,
                    seconds=args.seconds / 2,
                    max_deliveries=1_000_000,
                )
            )
            with profiler.recording(name.lower(), args.warmup + args.seconds):
                phase = send(
                    label,
                    served,
                    db,
                    traffic.request,
                    headers,
                    args,
                    seconds=args.seconds,
                    max_deliveries=args.max_deliveries,
                )
            sent.append(phase)
            new = phase.answered - phase.errors - phase.duplicates
            stored += new
            console.print(
                f"[dim]  trivial {trivial_parts[-1].rate:,.0f}/s · {name} {phase.rate:,.0f}/s, "
                f"{new:,} stored ({dict(traffic.kinds)}); "
                f"{number * 2}/4 draining the inbox...[/dim]"
            )
            with profiler.recording(f"{name.lower()}-drain", args.drain_timeout):
                drained = drain(
                    f"{name} ({new:,} new)",
                    served,
                    db,
                    token,
                    phase,
                    new,
                    args.drain_timeout,
                )
            drains.append(drained)
            console.print(f"[dim]  drained after {drained.seconds:.1f} s: {drained.counts}[/dim]")
        checks = check_everything(db, jira, qtest, sent, drains)
    context["load at end"] = " ".join(f"{value:.1f}" for value in os.getloadavg())
    trivial = merged_trivial(trivial_parts)
    report(trivial, sent, drains, checks, context, time.perf_counter() - started)
    for label, output in profiler.outputs:
        if output.exists():
            console.print(f"[bold]profile: {label}[/bold] ({output})")
            console.print("by thread:\n" + share_by_thread(output), markup=False)
            console.print(top_of_profile(output), markup=False)
    if not checks.ok:
        console.print("[red bold]the webhook benchmark's checks FAILED (above)")
        return 1
    return 0


def merged_trivial(parts: list[Sent]) -> Sent:
    """The baseline's runs as one: all answers and latencies, windows and CPU summed."""
    warm, measured = Load(), Load()
    for part in parts:
        for source, target in ((part.warm, warm), (part.measured, measured)):
            target.latencies.extend(source.latencies)
            target.statuses.update(source.statuses)
            target.failures.extend(source.failures)
    return Sent(
        parts[0].label,
        warm,
        measured,
        sum(part.window for part in parts),
        max(part.last_accepted for part in parts),
        sum(part.duplicates for part in parts),
        {key: sum(part.cpu[key] for part in parts) for key in parts[0].cpu},
    )


if __name__ == "__main__":
    sys.exit(main())
