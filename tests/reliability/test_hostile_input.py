"""Hostile input against ``ledger serve``: each request gets its 4xx and records nothing.

Malformed and truncated JSON, wrong types, huge numbers, deep nesting, 10 MiB bodies,
unicode edge cases and control characters, path traversal and SQL fragments in ids and
filters, dates out of range, forged and replayed webhook signatures, wrong credentials
and roles. After each request the event log's head and the webhook inbox are as they
were and ``/healthz`` answers; at the end a valid write is recorded and read back, the
hash chains verify and the projections equal their rebuild.

Every request that should be refused is otherwise a request the server accepts (see
``test_the_requests_the_cases_vary_are_accepted_as_they_are``), so a guard that let it
through would show as a write. Each goes out on a connection of its own, so an answer
that closes the connection cannot disturb the next case.
"""

from __future__ import annotations

import base64
import json
import socket
import subprocess
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any, Literal

import httpx
import pytest

from integrations.signatures import signature
from ledger.application import ReleaseLedger
from ledger.config import Settings
from tests.api_client import assert_problem, at, plan_scoped_train
from tests.reliability.audit import check_projections, verify_log
from tests.served import WEBHOOK_SECRETS, Served, finish, start_ledger

pytestmark = [pytest.mark.e2e, pytest.mark.postgres]

JIRA_SECRET = WEBHOOK_SECRETS["LEDGER_JIRA_WEBHOOK_SECRET"]
QTEST_SECRET = WEBHOOK_SECRETS["LEDGER_QTEST_WEBHOOK_SECRET"]
JIRA_SIGNATURE = "X-Hub-Signature"
QTEST_SIGNATURE = "x-qtest-signature"
JSON = "application/json"
TEN_MIB = 10 * 1024 * 1024
RAW_TIMEOUT = 5.0
"""Seconds a raw-socket exchange may wait for the server before the test fails."""

# The answers, as (status, problem type code); None is a plain ``about:blank`` problem.
Answer = tuple[int, str | None]
MALFORMED: Answer = (400, "malformed-json")
UNAUTHORIZED: Answer = (401, "unauthorized")
UNVERIFIED: Answer = (401, "unverified-webhook")
FORBIDDEN: Answer = (403, "forbidden")
NOT_FOUND: Answer = (404, "not-found")
NO_ROUTE: Answer = (404, None)
NO_METHOD: Answer = (405, None)
TOO_LARGE: Answer = (413, "body-too-large")
NOT_JSON: Answer = (415, "unsupported-media-type")
INVALID: Answer = (422, "validation-error")
"""Refused by the request schema: types, ranges, patterns, required fields."""
REFUSED_TEXT: Answer = (422, "invalid-command")
"""Refused by the ledger's own checks of a command: control characters, empty names."""
KEY_REUSED: Answer = (422, "idempotency-key-reused")

# The routes; 5.5 is planned and scoped, 5.6 planned (see the ``arena`` fixture).
TRAINS = "/v1/trains"
SCOPE_55 = "/v1/trains/5.5/scope"
DECISIONS_55 = "/v1/trains/5.5/decisions"
QA_55 = "/v1/trains/5.5/qa-runs"
SCHEDULE_55 = "/v1/trains/5.5/gates/1/schedule"
DECIDE_GATE_55 = "/v1/trains/5.5/gates/1/decision"
BETA_55 = "/v1/trains/5.5/beta-drops"
JIRA = "/v1/webhooks/jira"
QTEST = "/v1/webhooks/qtest"


def encode(value: Any) -> bytes:
    """JSON as a client would send it; ``ensure_ascii`` escapes surrogates and controls."""
    return json.dumps(value).encode()


# Bodies the server accepts: each hostile case changes one thing.
PLAN = {"train": "7.0", "kind": "major", "title": "Tiering", "actor": "Mallory"}
SCOPE = {"feature": "EVIL-1", "classification": "stretch", "actor": "Mallory"}
DECIDE = {"feature": "SNAP-3", "action": "commit", "actor": "Mallory"}
GATE = {"outcome": "failed", "actor": "Grace"}
QA_RUN = {
    "cycle": "phase1",
    "build": "5.5.0-b1",
    "total": 100,
    "passed": 90,
    "failed": 10,
    "actor": "Quinn",
}
SCHEDULE = {"date": "2027-03-15", "actor": "Ada"}
BETA = {"build": "5.5.0-b1", "customers": ["Globex"], "features": ["DEDUP-7"], "actor": "Bea"}
SUPPORT = {"status": "eol", "eol_date": "2027-06-30", "reason": "major minus two", "actor": "Ada"}
JIRA_IGNORED = encode(
    {
        "timestamp": 1764151200000,
        "webhookEvent": "jira:worklog_updated",
        "user": {"displayName": "Maria Lopez"},
        "issue": {"key": "OBJ-603"},
    }
)
"""A Jira delivery that maps to no event, so a stored one shows only in the inbox."""
JIRA_GENUINE = JIRA_IGNORED.replace(b"OBJ-603", b"OBJ-604")
JIRA_GENUINE_ID = "hostile-genuine-1"
JIRA_GENUINE_HEADERS = {
    JIRA_SIGNATURE: "sha256=" + signature(JIRA_SECRET, JIRA_GENUINE),
    "X-Atlassian-Webhook-Identifier": JIRA_GENUINE_ID,
    "Content-Type": JSON,
}
QTEST_LOG = encode(
    {
        "event_timestamp": 1764151200000,
        "event_type": "testlog_submitted",
        "testlog": {"id": 90001, "project_id": 12, "testrun_id": 5501},
    }
)
TEN_MIB_BODY = b'{"title": "' + b"x" * TEN_MIB + b'"}'
DEEP_LIST = b'{"actor": ' + b"[" * 10_000 + b"]" * 10_000 + b"}"
FIVE_THOUSAND_DIGITS = "9" * 5000
"""Past Python's 4300-digit limit for turning text into an int."""


def plan(**changes: Any) -> bytes:
    return encode(PLAN | changes)


def scope(**changes: Any) -> bytes:
    return encode(SCOPE | changes)


def qa_run(raw_fields: str) -> bytes:
    """A QA run whose counts are raw JSON text (literals ``json.dumps`` would not write)."""
    return b'{"cycle": "phase1", "build": "b1", "actor": "Quinn", ' + raw_fields.encode() + b"}"


@dataclass(frozen=True)
class Hostile:
    """One hostile request and the problem it must be refused with.

    ``authorization`` and the text values of ``headers`` and ``params`` are templates over
    ``Arena.tokens`` (``{writer}``, ``{revoked}``, ...), filled in when it is sent.
    """

    name: str
    path: str
    answer: Answer
    content: bytes = field(default=b"", repr=False)
    method: str = "POST"
    role: str | None = "writer"
    authorization: str | None = None
    content_type: str | None = JSON
    headers: Mapping[str, str | bytes] = field(default_factory=dict)
    params: Mapping[str, str] = field(default_factory=dict)
    sign: Literal["jira", "qtest"] | None = None
    chunked: bool = False

    @property
    def status(self) -> int:
        return self.answer[0]

    @property
    def type(self) -> str:
        code = self.answer[1]
        return f"/problems/{code}" if code else "about:blank"

    def send(self, client: httpx.Client, tokens: Mapping[str, str]) -> httpx.Response:
        headers: dict[str, str | bytes] = {}
        if self.role is not None:
            headers["Authorization"] = f"Bearer {tokens[self.role]}"
        if self.authorization is not None:
            headers["Authorization"] = self.authorization.format_map(tokens)
        if self.content_type is not None and self.method == "POST":
            headers["Content-Type"] = self.content_type
        if self.sign == "jira":
            headers[JIRA_SIGNATURE] = "sha256=" + signature(JIRA_SECRET, self.content)
        elif self.sign == "qtest":
            headers[QTEST_SIGNATURE] = signature(QTEST_SECRET, self.content)
        for name, value in self.headers.items():
            headers[name] = value.format_map(tokens) if isinstance(value, str) else value
        # Bytes on the wire: some cases send header values that are not ASCII.
        wire = {
            name.encode(): value if isinstance(value, bytes) else value.encode()
            for name, value in headers.items()
        }
        params = {name: value.format_map(tokens) for name, value in self.params.items()}
        if self.method == "GET":
            return client.get(self.path, params=params, headers=wire)
        content: bytes | Iterator[bytes] = self.content
        if self.chunked:  # no Content-Length: the server counts the bytes as they arrive
            content = (self.content[i : i + 65536] for i in range(0, len(self.content), 65536))
        return client.request(self.method, self.path, params=params, content=content, headers=wire)

    def param(self) -> Any:
        return pytest.param(self, id=self.name)


def read(name: str, path: str, answer: Answer, role: str = "reader", **params: str) -> Hostile:
    """A hostile GET."""
    return Hostile(name, path, answer, method="GET", role=role, params=params)


REFUSED = [
    # ------------------------------------------------------------ malformed JSON
    Hostile("truncated-json", TRAINS, MALFORMED, b'{"train": "7.0", "kind": '),
    Hostile("single-quoted-json", TRAINS, MALFORMED, b"{'train': '7.0'}"),
    Hostile("trailing-garbage", TRAINS, MALFORMED, plan() + b"}{"),
    Hostile("invalid-utf8-bytes", TRAINS, MALFORMED, plan(actor="Mallory").replace(b"ll", b"\xff")),
    Hostile("nesting-10000-deep", TRAINS, MALFORMED, DEEP_LIST),
    Hostile("empty-body", TRAINS, INVALID, b""),
    Hostile("json-null-body", TRAINS, INVALID, b"null"),
    Hostile("json-array-instead-of-object", TRAINS, INVALID, encode([PLAN])),
    Hostile(
        "duplicate-key-last-one-invalid",
        TRAINS,
        INVALID,
        b'{"train": "7.0", "kind": "major", "kind": "giant", "actor": "Mallory"}',
    ),
    # --------------------------------------------------------------- wrong types
    Hostile("kind-is-a-number", TRAINS, INVALID, plan(kind=5)),
    Hostile("actor-is-an-operator-object", TRAINS, INVALID, plan(actor={"$ne": None})),
    Hostile("exception-flag-is-2", DECISIONS_55, INVALID, encode(DECIDE | {"exception": 2})),
    Hostile(
        "conditions-is-a-list",
        DECIDE_GATE_55,
        INVALID,
        encode(GATE | {"outcome": "conditional", "conditions": ["beta customer named"]}),
    ),
    Hostile("beta-customers-is-one-string", BETA_55, INVALID, encode(BETA | {"customers": "G"})),
    Hostile(
        "customer-note-is-a-nested-object",
        SCOPE_55,
        INVALID,
        scope(customers=[{"name": "Globex", "weight": 1, "note": {"a": {"b": 1}}}]),
    ),
    Hostile("gate-in-path-is-1e3", "/v1/trains/5.5/gates/1e3/decision", INVALID, encode(GATE)),
    # -------------------------------------------------------------- huge numbers
    Hostile("qa-total-2**64", QA_55, INVALID, encode(QA_RUN | {"total": 2**64})),
    Hostile("qa-total-1e309", QA_55, INVALID, qa_run('"total": 1e309, "passed": 9, "failed": 1')),
    Hostile(
        "qa-blocked-nan",
        QA_55,
        INVALID,
        qa_run('"total": 100, "passed": 90, "failed": 10, "blocked": NaN'),
    ),
    Hostile(
        "qa-failed-minus-infinity",
        QA_55,
        INVALID,
        qa_run('"total": 100, "passed": 90, "failed": -Infinity'),
    ),
    Hostile(
        "qa-total-5000-digits",
        QA_55,
        MALFORMED,
        qa_run(f'"total": {FIVE_THOUSAND_DIGITS}, "passed": 90, "failed": 10'),
    ),
    Hostile(
        "customer-weight-minus-zero",
        SCOPE_55,
        INVALID,
        scope(customers=[{"name": "Globex", "weight": -0.0}]),
    ),
    Hostile(
        "customer-weights-overflow-to-infinity",
        "/v1/trains/5.6/scope",
        INVALID,
        scope(
            feature="HUGE-1",
            customers=[{"name": "Globex", "weight": 1e308}, {"name": "Initech", "weight": 1e308}],
        ),
    ),
    Hostile(
        "gate-2**64-in-path",
        "/v1/trains/5.5/gates/18446744073709551616/decision",
        NOT_FOUND,
        encode(GATE),
    ),
    read("events-after-2**63", "/v1/events", INVALID, after=str(2**63)),
    read("min-position-2**63", "/v1/trains/5.5", INVALID, min_position=str(2**63)),
    Hostile("inbox-delivery-2**64", "/v1/inbox/18446744073709551616/retry", INVALID, role="admin"),
    # --------------------------------------------------------------------- sizes
    Hostile("ten-mib-body", TRAINS, TOO_LARGE, TEN_MIB_BODY),
    Hostile("ten-mib-body-chunked", TRAINS, TOO_LARGE, TEN_MIB_BODY, chunked=True),
    Hostile("ten-mib-jira-delivery-unsigned", JIRA, TOO_LARGE, TEN_MIB_BODY, role=None),
    Hostile(
        "ten-mib-qtest-delivery-chunked", QTEST, TOO_LARGE, TEN_MIB_BODY, role=None, chunked=True
    ),
    Hostile(
        "one-mb-string-in-reason",
        DECISIONS_55,
        INVALID,
        encode(DECIDE | {"action": "drop", "reason": "r" * 1_000_000}),
    ),
    Hostile(
        "1001-customers",
        SCOPE_55,
        INVALID,
        scope(customers=[{"name": f"C{n}", "weight": 1} for n in range(1001)]),
    ),
    # ------------------------------------------------------------- content types
    Hostile(
        "form-encoded-body",
        TRAINS,
        NOT_JSON,
        b"train=7.0&kind=major&actor=Mallory",
        content_type="application/x-www-form-urlencoded",
    ),
    Hostile("json-sent-as-text-plain", TRAINS, NOT_JSON, plan(), content_type="text/plain"),
    Hostile("json-sent-without-content-type", TRAINS, NOT_JSON, plan(), content_type=None),
    # ------------------------------------------- unicode and control characters
    Hostile("nul-in-actor", TRAINS, REFUSED_TEXT, plan(actor="Mall\x00ory")),
    Hostile("escape-sequence-in-actor", TRAINS, REFUSED_TEXT, plan(actor="\x1b[31mMallory")),
    Hostile("bell-in-title", TRAINS, REFUSED_TEXT, plan(title="Tiering\x07")),
    Hostile("only-spaces-in-actor", TRAINS, REFUSED_TEXT, plan(actor="\u00a0 \t ")),
    Hostile("lone-surrogate-escape", TRAINS, INVALID, plan(actor="Mal\ud800")),
    Hostile("nul-in-beta-customer", BETA_55, REFUSED_TEXT, encode(BETA | {"customers": ["G\x00"]})),
    Hostile("unicode-hyphen-in-feature-key", SCOPE_55, INVALID, scope(feature="EVIL\u20101")),
    Hostile(
        "del-in-actor",
        TRAINS,
        REFUSED_TEXT,
        plan(train="7.21", actor="Mallory\x7f"),
    ),
    Hostile(
        "c1-control-in-actor",
        TRAINS,
        REFUSED_TEXT,
        plan(train="7.22", actor="\x9b31mMallory"),
    ),
    Hostile(
        "newline-in-actor",
        TRAINS,
        REFUSED_TEXT,
        plan(train="7.23", actor="Mallory\nApproved-by: Grace"),
    ),
    # ------------------------------------------- path traversal and SQL fragments
    Hostile("train-id-path-traversal", TRAINS, INVALID, plan(train="../../etc/passwd")),
    Hostile("train-path-encoded-dot-dot", "/v1/trains/%2E%2E/scope", INVALID, scope()),
    Hostile("train-path-encoded-slashes", "/v1/trains/..%2F5.5/scope", NO_ROUTE, scope()),
    Hostile(
        "to-train-path-traversal",
        DECISIONS_55,
        INVALID,
        encode(DECIDE | {"action": "move", "to_train": "../5.6", "reason": "capacity"}),
    ),
    Hostile(
        "feature-id-sql-fragment",
        SCOPE_55,
        INVALID,
        scope(feature="X'; DROP TABLE stored_events;--"),
    ),
    Hostile("parent-sql-fragment", TRAINS, INVALID, plan(kind="minor", parent="5.5' OR '1'='1")),
    read("feature-path-sql-fragment", "/v1/features/A'%20OR%20'1'='1/journey", INVALID),
    read("audit-actor-nul", "/v1/audit", INVALID, actor="Ada\x00"),
    read("report-format-path-traversal", "/v1/trains/5.5/report", INVALID, format="../../x"),
    Hostile(
        "inbox-event-type-nul",
        "/v1/inbox",
        INVALID,
        method="GET",
        role="admin",
        params={"event_type": "jira:\x00"},
    ),
    # ------------------------------------------------------- dates out of range
    Hostile("occurred-at-year-0", TRAINS, INVALID, plan(occurred_at="0000-01-01T00:00:00Z")),
    Hostile("occurred-at-1899", TRAINS, INVALID, plan(occurred_at="1899-12-31T23:59:59Z")),
    Hostile(
        "occurred-at-9999-minus-14h",
        TRAINS,
        INVALID,
        plan(occurred_at="9999-12-31T23:59:59-14:00"),
    ),
    Hostile("occurred-at-without-offset", TRAINS, INVALID, plan(occurred_at="2026-01-01T00:00")),
    Hostile(
        "occurred-at-offset-25h", TRAINS, INVALID, plan(occurred_at="2026-01-01T00:00:00+25:00")
    ),
    Hostile("occurred-at-year-9000", TRAINS, REFUSED_TEXT, plan(occurred_at="9000-01-01T00:00Z")),
    Hostile(
        "gate-date-february-30", SCHEDULE_55, INVALID, encode(SCHEDULE | {"date": "2027-02-30"})
    ),
    Hostile("gate-date-year-0", SCHEDULE_55, INVALID, encode(SCHEDULE | {"date": "0000-01-01"})),
    Hostile(
        "gate-date-9999-12-31",
        "/v1/trains/5.6/gates/1/schedule",
        INVALID,
        encode(SCHEDULE | {"date": "9999-12-31"}),
    ),
    Hostile(
        "eol-date-year-0",
        "/v1/trains/5.5/support",
        INVALID,
        encode(SUPPORT | {"eol_date": "0000-01-01"}),
    ),
    read("as-of-year-10000", "/v1/trains/5.5", INVALID, as_of="10000-01-01T00:00:00+00:00"),
    read("audit-since-is-not-a-date", "/v1/audit", INVALID, since="last tuesday"),
    # ------------------------------------------------------------------ webhooks
    Hostile("jira-unsigned", JIRA, UNVERIFIED, JIRA_IGNORED, role=None),
    Hostile(
        "jira-signature-forged",
        JIRA,
        UNVERIFIED,
        JIRA_IGNORED,
        role=None,
        headers={JIRA_SIGNATURE: "sha256=" + signature("a-guessed-secret", JIRA_IGNORED)},
    ),
    Hostile(
        "jira-delivery-replayed-with-other-body",
        JIRA,
        UNVERIFIED,
        JIRA_GENUINE.replace(b"worklog_updated", b"issue_deleted"),
        role=None,
        headers=JIRA_GENUINE_HEADERS,
    ),
    Hostile(
        "jira-signature-sha1-prefix",
        JIRA,
        UNVERIFIED,
        JIRA_IGNORED,
        role=None,
        headers={JIRA_SIGNATURE: "sha1=" + signature(JIRA_SECRET, JIRA_IGNORED)},
    ),
    Hostile(
        "jira-signature-not-ascii",
        JIRA,
        UNVERIFIED,
        JIRA_IGNORED,
        role=None,
        headers={JIRA_SIGNATURE: "sha256=\u00e9\u20ac".encode()},
    ),
    Hostile("admin-token-instead-of-jira-signature", JIRA, UNVERIFIED, JIRA_IGNORED, role="admin"),
    Hostile(
        "jira-signed-truncated-json", JIRA, MALFORMED, JIRA_IGNORED[:-20], role=None, sign="jira"
    ),
    Hostile("jira-signed-nesting-10000-deep", JIRA, MALFORMED, DEEP_LIST, role=None, sign="jira"),
    Hostile(
        "jira-signed-lone-surrogate",
        JIRA,
        MALFORMED,
        b'{"webhookEvent": "jira:\\ud800"}',
        role=None,
        sign="jira",
    ),
    Hostile("qtest-unsigned", QTEST, UNVERIFIED, QTEST_LOG, role=None),
    Hostile(
        "qtest-signature-forged",
        QTEST,
        UNVERIFIED,
        QTEST_LOG,
        role=None,
        headers={QTEST_SIGNATURE: signature("a-guessed-secret", QTEST_LOG)},
    ),
    Hostile(
        "qtest-token-wrong", QTEST, UNVERIFIED, QTEST_LOG, role=None, params={"token": "guessed"}
    ),
    Hostile(
        "qtest-token-is-the-jira-secret",
        QTEST,
        UNVERIFIED,
        QTEST_LOG,
        role=None,
        params={"token": JIRA_SECRET},
    ),
    Hostile(
        "qtest-signed-with-the-jira-secret",
        QTEST,
        UNVERIFIED,
        QTEST_LOG,
        role=None,
        headers={QTEST_SIGNATURE: signature(JIRA_SECRET, QTEST_LOG)},
    ),
    Hostile(
        "qtest-token-257-chars", QTEST, INVALID, QTEST_LOG, role=None, params={"token": "t" * 257}
    ),
    # ----------------------------------------------------- credentials and roles
    Hostile("no-token", TRAINS, UNAUTHORIZED, plan(), role=None),
    Hostile(
        "basic-auth-with-a-valid-token", TRAINS, UNAUTHORIZED, plan(), authorization="Basic {basic}"
    ),
    Hostile(
        "token-10-kib-long", TRAINS, UNAUTHORIZED, plan(), authorization="Bearer " + "A" * 10240
    ),
    Hostile("token-sql-fragment", TRAINS, UNAUTHORIZED, plan(), authorization="Bearer ' OR '1'='1"),
    Hostile(
        "token-missing-its-last-character",
        TRAINS,
        UNAUTHORIZED,
        plan(),
        authorization="Bearer {truncated}",
    ),
    Hostile("revoked-token", TRAINS, UNAUTHORIZED, plan(), role="revoked"),
    Hostile(
        "token-in-query-string",
        TRAINS,
        UNAUTHORIZED,
        plan(),
        role=None,
        params={"access_token": "{misplaced}"},
    ),
    Hostile(
        "token-in-session-cookie",
        TRAINS,
        UNAUTHORIZED,
        plan(),
        role=None,
        headers={"Cookie": "ledger_session={writer}"},
    ),
    Hostile("reader-posts-a-decision", DECISIONS_55, FORBIDDEN, encode(DECIDE), role="reader"),
    Hostile("reader-records-a-qa-run", QA_55, FORBIDDEN, encode(QA_RUN), role="reader"),
    read("writer-lists-the-inbox", "/v1/inbox", FORBIDDEN, role="writer"),
    Hostile("writer-retries-a-delivery", "/v1/inbox/1/retry", FORBIDDEN, role="writer"),
    Hostile("admin-deletes-a-train", "/v1/trains/5.5", NO_METHOD, method="DELETE", role="admin"),
    # --------------------------------------------------- idempotency and headers
    Hostile(
        "idempotency-key-reused-with-other-body",
        TRAINS,
        KEY_REUSED,
        plan(),
        headers={"Idempotency-Key": "plan-5.6"},
    ),
    Hostile(
        "idempotency-key-with-a-space",
        TRAINS,
        INVALID,
        plan(),
        headers={"Idempotency-Key": "plan 7.0"},
    ),
    Hostile(
        "idempotency-key-201-chars", TRAINS, INVALID, plan(), headers={"Idempotency-Key": "k" * 201}
    ),
    Hostile(
        "idempotency-key-not-ascii",
        TRAINS,
        INVALID,
        plan(),
        headers={"Idempotency-Key": "cl\u00e9-7.0".encode("latin-1")},
    ),
    Hostile(
        "correlation-id-with-a-space",
        TRAINS,
        INVALID,
        plan(),
        headers={"X-Correlation-Id": "one two"},
    ),
]


# ======================================================================= arena


@dataclass
class Arena:
    """The served ledger with trains, an audit entry and a stored Jira delivery, and the
    credentials the cases use by name."""

    served: Served
    tokens: dict[str, str]
    position: int

    def inbox_total(self) -> int:
        response = self.served.get("/v1/inbox", role="admin", limit=1)
        assert response.status_code == 200, response.text
        return sum(response.json()["counts"].values())

    def state(self) -> tuple[int, int]:
        """What a write would change: the log's head and the number of stored deliveries."""
        return self.served.head(), self.inbox_total()

    def healthy(self) -> bool:
        return self.served.client.get("/healthz").status_code == 200

    @contextmanager
    def connection(self) -> Iterator[httpx.Client]:
        """A client on a connection of its own, to 127.0.0.1 whatever the environment says."""
        with httpx.Client(base_url=self.served.base_url, timeout=30, trust_env=False) as client:
            yield client


def ledger(served: Served, *arguments: str) -> subprocess.Popen[str]:
    """A ``ledger`` command against the served database, as its operator would run it."""
    return start_ledger(*arguments, env=served.server.env, cwd=served.server.workdir)


@pytest.fixture(scope="module")
def arena(served: Served) -> Arena:
    """5.5 planned and scoped with DEDUP-7 committed, 5.6 planned under an Idempotency-Key,
    one genuine Jira delivery stored, and a revoked and a spare writer token."""
    creating = {
        name: ledger(served, "token", "create", "--name", f"hostile-{name}", "--role", "writer")
        for name in ("revoked", "misplaced")
    }
    plan_scoped_train(served)
    served.write(
        DECISIONS_55,
        {"feature": "DEDUP-7", "action": "commit", "actor": "Grace", "occurred_at": at(50)},
    )
    keyed = served.client.post(
        TRAINS,
        json={"train": "5.6", "kind": "major", "actor": "Ada", "occurred_at": at(40)},
        headers={**served.auth("writer"), "Idempotency-Key": "plan-5.6"},
    )
    assert keyed.status_code == 201, keyed.text
    genuine = served.client.post(JIRA, content=JIRA_GENUINE, headers=JIRA_GENUINE_HEADERS)
    assert genuine.status_code == 202, genuine.text
    extra = {name: finish(command).strip() for name, command in creating.items()}
    finish(ledger(served, "token", "revoke", "--name", "hostile-revoked"))
    writer = served.tokens["writer"]
    tokens = served.tokens | extra
    tokens["basic"] = base64.b64encode(f"e2e-writer:{writer}".encode()).decode()
    tokens["truncated"] = writer[:-1]
    return Arena(served, tokens, served.head())


# ====================================================================== tests


@pytest.mark.parametrize("case", [case.param() for case in REFUSED])
def test_hostile_input_is_refused_and_records_nothing(arena: Arena, case: Hostile) -> None:
    """The request gets its documented 4xx problem; log and inbox are unchanged; /healthz is 200."""
    before = arena.state()

    with arena.connection() as client:
        response = case.send(client, arena.tokens)

    problem = assert_problem(response, case.status)
    assert problem["type"] == case.type, problem
    assert arena.state() == before
    assert arena.healthy()


def raw_request(arena: Arena, headers: bytes, body: bytes) -> bytes:
    """A writer's POST /v1/trains as bytes on the wire, with ``headers`` (CRLF-ended lines)."""
    return (
        f"POST {TRAINS} HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n"
        f"Content-Type: {JSON}\r\nAuthorization: Bearer {arena.tokens['writer']}\r\n".encode()
        + headers
        + b"\r\n"
        + body
    )


def connect(arena: Arena) -> socket.socket:
    """A new TCP connection to the server on loopback, whose reads time out."""
    url = httpx.URL(arena.served.base_url)
    assert url.host == "127.0.0.1", "raw sockets go to loopback only"
    return socket.create_connection((url.host, url.port or 80), timeout=RAW_TIMEOUT)


def exchange(arena: Arena, request: bytes, *, half_close: bool = False) -> bytes:
    """``request`` sent raw on a new connection; every byte answered until the server closes.

    A server that neither answers nor closes within ``RAW_TIMEOUT`` fails the test.
    """
    with connect(arena) as connection:
        connection.sendall(request)
        if half_close:
            connection.shutdown(socket.SHUT_WR)
        answer = b""
        while chunk := connection.recv(65536):
            answer += chunk
    return answer


PLAN_BYTES = plan(train="7.30")
"""A valid plan: a request the parser wrongly accepted would record it."""


def chunked(body: bytes) -> bytes:
    return b"%x\r\n%s\r\n0\r\n\r\n" % (len(body), body)


UNFRAMEABLE = [
    pytest.param(b"Content-Length: ten\r\n", PLAN_BYTES, id="content-length-not-a-number"),
    pytest.param(b"Content-Length: -1\r\n", PLAN_BYTES, id="content-length-negative"),
    pytest.param(
        b"Content-Length: %d\r\nContent-Length: 2\r\n" % len(PLAN_BYTES),
        PLAN_BYTES,
        id="two-content-lengths",
    ),
    pytest.param(
        b"Content-Length: %d\r\nTransfer-Encoding: chunked\r\n" % len(chunked(PLAN_BYTES)),
        chunked(PLAN_BYTES),
        id="content-length-and-chunked-both",
    ),
    pytest.param(
        b"Transfer-Encoding: chunked\r\n",
        b"zz\r\n" + PLAN_BYTES + b"\r\n0\r\n\r\n",
        id="chunk-size-not-hex",
    ),
    pytest.param(
        b"Content-Length: %d\r\nIdempotency-Key: plan-7.30\rX-Injected: 1\r\n" % len(PLAN_BYTES),
        PLAN_BYTES,
        id="cr-injected-in-idempotency-key",
    ),
    pytest.param(
        b"Content-Length: %d\r\nIdempotency-Key: plan-7.30\nX-Injected: 1\r\n" % len(PLAN_BYTES),
        PLAN_BYTES,
        id="lf-injected-in-idempotency-key",
    ),
    pytest.param(
        b"Content-Length: %d\r\nIdempotency-Key: plan\x00-7.30\r\n" % len(PLAN_BYTES),
        PLAN_BYTES,
        id="nul-in-idempotency-key",
    ),
]


@pytest.mark.parametrize(("headers", "body"), UNFRAMEABLE)
def test_a_request_the_http_parser_cannot_frame_is_400_and_records_nothing(
    arena: Arena, headers: bytes, body: bytes
) -> None:
    """Smuggling-shaped framing and raw CR, LF or NUL in a header are refused with 400.

    uvicorn's parser refuses these before the app sees them, so the answer is its plain
    400 and not a problem document.
    """
    before = arena.state()

    answer = exchange(arena, raw_request(arena, headers, body))

    assert answer.split(b"\r\n", 1)[0] == b"HTTP/1.1 400 Bad Request", answer[:300]
    assert arena.state() == before
    assert arena.healthy()


def test_a_body_shorter_than_its_content_length_is_never_run(arena: Arena) -> None:
    """A client that declares 100 more bytes than it sends, then closes, gets no answer and
    records nothing."""
    before = arena.state()
    declared = b"Content-Length: %d\r\n" % (len(PLAN_BYTES) + 100)

    answer = exchange(arena, raw_request(arena, declared, PLAN_BYTES), half_close=True)

    assert answer == b""
    assert arena.state() == before
    assert arena.healthy()


def test_a_client_stalled_mid_body_holds_up_no_one(arena: Arena) -> None:
    """While one connection waits for body bytes that never come, others are served; when it
    goes, nothing was recorded."""
    before = arena.state()
    declared = b"Content-Length: %d\r\n" % (len(PLAN_BYTES) + 100)

    with connect(arena) as stalled:
        stalled.sendall(raw_request(arena, declared, PLAN_BYTES))
        assert arena.healthy()
        read = arena.served.get("/v1/trains/5.5", min_position=arena.position)
        assert read.status_code == 200, read.text
        stalled.settimeout(0.5)
        with pytest.raises(TimeoutError):
            stalled.recv(1)  # still waiting for the rest: no answer, no close

    assert arena.state() == before


def test_a_replayed_jira_delivery_is_acknowledged_as_a_duplicate(arena: Arena) -> None:
    """The genuine delivery sent again, byte for byte, is 202 with duplicate: true and stored
    once."""
    before = arena.state()

    with arena.connection() as client:
        response = client.post(JIRA, content=JIRA_GENUINE, headers=JIRA_GENUINE_HEADERS)

    assert response.status_code == 202, response.text
    assert response.json()["duplicate"] is True
    assert response.json()["delivery_key"] == JIRA_GENUINE_ID
    assert arena.state() == before


@pytest.mark.parametrize(
    ("path", "body", "header", "secret"),
    [
        pytest.param(
            JIRA,
            b'{"webhookEvent": "jira:\\u0000issue_updated"}',
            JIRA_SIGNATURE,
            JIRA_SECRET,
            id="jira-nul-in-webhook-event",
        ),
        pytest.param(
            QTEST,
            b'{"event_timestamp": 1764151200000, "event_type": "testlog_submitted", '
            b'"testlog": {"id": "9\\u0000", "project_id": 12, "testrun_id": 5501}}',
            QTEST_SIGNATURE,
            QTEST_SECRET,
            id="qtest-nul-in-test-log-id",
        ),
    ],
)
def test_a_signed_delivery_with_a_nul_in_its_identity_is_stored_not_a_500(
    arena: Arena, path: str, body: bytes, header: str, secret: str
) -> None:
    """Signed, well-formed JSON is stored raw and acknowledged (SPEC §6), whatever its text
    holds."""
    head, stored = arena.state()
    prefix = "sha256=" if header == JIRA_SIGNATURE else ""

    with arena.connection() as client:
        response = client.post(
            path, content=body, headers={header: prefix + signature(secret, body)}
        )

    assert response.status_code == 202, response.text
    assert arena.state() == (head, stored + 1)
    assert arena.healthy()


def test_a_token_misplaced_in_the_query_string_stays_out_of_the_log(arena: Arena) -> None:
    """A live token sent as ?access_token= is refused, and the access log does not keep it."""
    token = arena.tokens["misplaced"]

    with arena.connection() as client:
        response = client.get(TRAINS, params={"access_token": token})

    assert_problem(response, 401, "unauthorized")
    assert "GET /v1/trains?access_token=" in arena.served.log()
    assert token not in arena.served.log()


FILTERS = [
    pytest.param("/v1/audit", "reader", {"actor": "' OR '1'='1"}, id="audit-actor-sql-fragment"),
    pytest.param("/v1/audit", "reader", {"feature": "DEDUP-7' --"}, id="audit-feature-sql-comment"),
    pytest.param(
        "/v1/audit", "reader", {"train": "../../etc/passwd"}, id="audit-train-path-traversal"
    ),
    pytest.param(
        "/v1/inbox", "admin", {"event_type": "x' OR 'a'='a"}, id="inbox-event-type-sql-fragment"
    ),
]


@pytest.mark.parametrize(("path", "role", "params"), FILTERS)
def test_sql_fragments_in_a_filter_match_nothing(
    arena: Arena, path: str, role: str, params: dict[str, str]
) -> None:
    """A filter is a value, never SQL: the fragment matches nothing where the listing has items."""
    seen = {"min_position": arena.position} if path == "/v1/audit" else {}
    everything = arena.served.get(path, role=role, **seen)
    assert everything.status_code == 200, everything.text
    assert everything.json()["items"], "the unfiltered listing must not be empty"

    filtered = arena.served.get(path, role=role, **seen, **params)

    assert filtered.status_code == 200, filtered.text
    assert filtered.json()["items"] == []


@pytest.mark.parametrize(
    ("train", "title"),
    [
        pytest.param("7.11", "Inline dedup \u202e(reversed)\u202c", id="rtl-override-in-title"),
        pytest.param("7.12", "Cafe\u0301 sync", id="combining-accent-kept-unnormalised"),
        pytest.param(
            "7.13",
            "\U0001f469\u200d\U0001f469\u200d\U0001f467 \U0001d518\U0001d52b",
            id="astral-plane-and-zero-width-joiner",
        ),
    ],
)
def test_unusual_but_legal_unicode_is_recorded_exactly_as_sent(
    arena: Arena, train: str, title: str
) -> None:
    """Text outside the controls is kept code point for code point: nothing normalised or lost."""
    position = arena.served.write(
        TRAINS, {"train": train, "kind": "major", "title": title, "actor": "Zo\u00eb"}
    )

    read = arena.served.read(f"/v1/trains/{train}", position)

    assert read["title"] == title
    assert arena.healthy()


@pytest.mark.parametrize(
    ("path", "body", "sign", "status"),
    [
        pytest.param(TRAINS, encode(PLAN), None, 201, id="plan"),
        pytest.param(SCOPE_55, encode(SCOPE), None, 201, id="scope"),
        pytest.param(DECISIONS_55, encode(DECIDE), None, 201, id="decision"),
        pytest.param(QA_55, encode(QA_RUN), None, 201, id="qa-run"),
        pytest.param(SCHEDULE_55, encode(SCHEDULE), None, 201, id="gate-schedule"),
        pytest.param(DECIDE_GATE_55, encode(GATE), None, 201, id="gate-decision"),
        pytest.param(JIRA, JIRA_IGNORED, "jira", 202, id="jira-delivery"),
        pytest.param(QTEST, QTEST_LOG, "qtest", 202, id="qtest-delivery"),
    ],
)
def test_the_requests_the_cases_vary_are_accepted_as_they_are(
    arena: Arena, path: str, body: bytes, sign: Literal["jira", "qtest"] | None, status: int
) -> None:
    """Unaltered, each request the cases start from is recorded, so a refusal above is about
    the one thing its case changed.

    Beta drops and support changes are left out: 5.5 has not passed gate 2 nor been
    released, so their cases would otherwise be a 409, which their assertions tell apart.
    """
    role = None if sign else "writer"
    request = Hostile("baseline", path, (status, None), body, role=role, sign=sign)
    head, stored = arena.state()

    with arena.connection() as client:
        response = request.send(client, arena.tokens)

    assert response.status_code == status, response.text
    after_head, after_stored = arena.state()
    if sign:
        assert (after_head, after_stored) == (head, stored + 1)
    else:
        assert (after_head > head, after_stored) == (True, stored)


def test_after_the_hostile_input_a_valid_write_is_recorded_and_read_back(arena: Arena) -> None:
    """The same process still records and reads, its hash chains verify, and its projections
    equal their rebuild."""
    served = arena.served
    process = served.server.process
    assert process is not None
    assert process.poll() is None, "the server process exited or was replaced"

    position = served.write(
        TRAINS, {"train": "7.99", "kind": "major", "title": "Still here", "actor": "Ada"}
    )

    train = served.read("/v1/trains/7.99", position)
    assert (train["train"], train["title"], train["status"]) == ("7.99", "Still here", "planning")
    assert served.client.get("/readyz").status_code == 200
    verify_log(served.database_url)
    application = ReleaseLedger.from_settings(Settings(database_url=served.database_url))
    try:
        check_projections(application, served.database_url)
    finally:
        application.close()
