"""A fake QTest Manager: a real HTTP server on loopback speaking the API v3 shapes we read.

It serves ``GET /api/v3/projects/{p}/`` ``test-runs/{id}``, ``test-runs/{id}/test-logs/last-run``,
``test-cycles/{id}``, ``test-suites/{id}`` and ``releases/{id}`` as the qTest documentation
shows them (ids, names, ``pid``, ``links``, ``parentId``/``parentType`` on runs and suites,
``links`` with ``parent-test-cycle`` or ``release`` on cycles, ``status: {id, name}`` on logs),
checks ``Authorization: Bearer <token>`` (401 otherwise) and answers 404 for unknown ids.

Tests build the project tree with ``add_release``/``add_cycle``/``add_suite``/``add_test_run``,
execute runs with ``submit_log`` (logs only grow; last-run is the newest), get the webhook a
log would trigger with ``webhook_body``, and read the truth with ``cycle_totals``. Faults:
``delay_seconds``, ``fail_next`` and a seeded ``failure_rate``; ``requests`` counts what was
asked. Every request is O(1), so a golden run's burst of ~21,000 is served quickly.
"""

from __future__ import annotations

import random
import sys
import threading
from collections import Counter
from dataclasses import dataclass, field
from datetime import UTC, datetime
from http import HTTPStatus
from http.server import ThreadingHTTPServer
from itertools import count
from socketserver import StreamRequestHandler, TCPServer
from types import TracebackType
from typing import Any

import orjson

Ref = tuple[str, int]
"""A container: ``("release", id)``, ``("test-cycle", id)``, ``("test-suite", id)``."""

MAX_LINE = 65_536
COUNTED_STATUSES = frozenset({"passed", "failed", "blocked"})
STATUS_IDS = {"Passed": 601, "Failed": 602, "Incomplete": 603, "Blocked": 604, "Unexecuted": 605}


@dataclass(frozen=True)
class _Answer:
    status: int
    document: dict[str, Any]
    headers: dict[str, str] = field(default_factory=dict)

    def encode(self, keep_alive: bool) -> bytes:
        body = orjson.dumps(self.document)
        head = [
            f"HTTP/1.1 {self.status} {HTTPStatus(self.status).phrase}",
            "Content-Type: application/json",
            f"Content-Length: {len(body)}",
            f"Connection: {'keep-alive' if keep_alive else 'close'}",
            *(f"{name}: {value}" for name, value in self.headers.items()),
        ]
        return ("\r\n".join(head) + "\r\n\r\n").encode("latin-1") + body


@dataclass
class _Container:
    kind: str
    id: int
    project_id: int
    name: str
    parent: Ref | None
    order: int
    created: datetime
    target_release: int | None = None
    children: list[Ref] = field(default_factory=list)
    runs: list[int] = field(default_factory=list)


@dataclass
class _Log:
    id: int
    test_run_id: int
    status_name: str
    build: str | None
    executed_at: datetime
    submitted_at: datetime


@dataclass
class _Run:
    id: int
    project_id: int
    name: str
    parent: Ref | None
    order: int
    created: datetime
    logs: list[_Log] = field(default_factory=list)


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    request_queue_size = 256  # a burst opens many connections at once
    fake: FakeQTest

    def server_bind(self) -> None:
        # HTTPServer.server_bind resolves the host name, which can stall on a sandbox's DNS.
        TCPServer.server_bind(self)
        host, port = self.server_address[:2]
        self.server_name, self.server_port = str(host), int(port)

    def handle_error(self, request: Any, client_address: Any) -> None:
        if isinstance(sys.exc_info()[1], ConnectionError):
            return  # a client that timed out and hung up: expected under delay_seconds
        super().handle_error(request, client_address)


class _Handler(StreamRequestHandler):
    """HTTP/1.1 with keep-alive, parsed by hand: ``http.server``'s parsing costs more than
    everything else a request does, and a golden run's burst is ~21,000 of them."""

    disable_nagle_algorithm = True
    server: _Server

    def handle(self) -> None:
        while self._answer_one():
            pass

    def _answer_one(self) -> bool:
        """Answer one request; whether the connection stays open for another."""
        request_line = self.rfile.readline(MAX_LINE)
        if not request_line.strip():
            return False
        headers: dict[bytes, bytes] = {}
        while (line := self.rfile.readline(MAX_LINE)) not in (b"\r\n", b"\n", b""):
            name, _, value = line.partition(b":")
            headers[name.strip().lower()] = value.strip()
        method, target, version = [*request_line.split(), b"", b""][:3]
        length = headers.get(b"content-length", b"0")
        if length.isdigit() and int(length):
            self.rfile.read(int(length))
        answer = self.server.fake._answer(
            method.decode("latin-1"),
            target.decode("latin-1"),
            headers.get(b"authorization", b"").decode("latin-1"),
        )
        keep_alive = version == b"HTTP/1.1" and headers.get(b"connection", b"").lower() != b"close"
        self.wfile.write(answer.encode(keep_alive))
        return keep_alive


class FakeQTest:
    """A fake QTest server for tests; ``start()`` it or use it as a context manager."""

    def __init__(self, *, token: str = "fake-qtest-token", seed: int = 1) -> None:
        self.token = token
        self.delay_seconds = 0.0
        self.failure_rate = 0.0
        self.requests: Counter[str] = Counter()
        self._random = random.Random(seed)
        self._fail_next: list[tuple[int, str | None]] = []
        self._lock = threading.Lock()
        self._stopping = threading.Event()
        self._ids = {
            kind: count(start)
            for kind, start in (
                ("project", 10),
                ("release", 1_000),
                ("test-cycle", 100_000),
                ("test-suite", 300_000),
                ("test-run", 1_000_000),
                ("test-log", 5_000_000),
            )
        }
        self._projects: dict[int, str] = {}
        self._containers: dict[Ref, _Container] = {}
        self._runs: dict[int, _Run] = {}
        self._logs: dict[int, _Log] = {}
        self._order = count(1)
        self._server: _Server | None = None
        self._thread: threading.Thread | None = None
        self.project_id = self.add_project("Objects")

    # ------------------------------------------------------------------ lifecycle

    def start(self) -> FakeQTest:
        server = _Server(("127.0.0.1", 0), _Handler)
        server.fake = self
        self._server = server
        self._thread = threading.Thread(
            target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
        )
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stopping.set()
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
        if self._thread is not None:
            self._thread.join(timeout=5)

    def __enter__(self) -> FakeQTest:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.stop()

    @property
    def base_url(self) -> str:
        if self._server is None:
            raise RuntimeError("start the fake QTest first")
        return f"http://127.0.0.1:{self._server.server_port}"

    @property
    def request_count(self) -> int:
        """Every request received, faults and refusals included."""
        with self._lock:
            return self.requests.total()

    # ----------------------------------------------------------------------- data

    def add_project(self, name: str) -> int:
        with self._lock:
            project_id = next(self._ids["project"])
            self._projects[project_id] = name
            return project_id

    def add_release(self, name: str, *, project: int | None = None) -> int:
        return self._add_container("release", name, None, project)

    def add_cycle(
        self,
        name: str,
        *,
        release: int | None = None,
        parent: int | None = None,
        project: int | None = None,
        target_release: int | None = None,
    ) -> int:
        """A test cycle in ``release``, in the ``parent`` cycle, or (neither) under the root."""
        if release is not None and parent is not None:
            raise ValueError("a test cycle sits in a release or in a parent cycle, not both")
        where = ("release", release) if release is not None else None
        where = ("test-cycle", parent) if parent is not None else where
        return self._add_container("test-cycle", name, where, project, target_release)

    def add_suite(self, name: str, cycle: int) -> int:
        return self._add_container("test-suite", name, ("test-cycle", cycle), None)

    def add_test_run(
        self,
        cycle: int | None = None,
        *,
        suite: int | None = None,
        release: int | None = None,
        name: str | None = None,
        project: int | None = None,
    ) -> int:
        """A test run in a cycle, a suite or a release (one of them), or under the root."""
        places = [
            (kind, ref_id)
            for kind, ref_id in (("test-cycle", cycle), ("test-suite", suite), ("release", release))
            if ref_id is not None
        ]
        if len(places) > 1:
            raise ValueError("a test run sits in one cycle, suite or release")
        where = places[0] if places else None
        with self._lock:
            project_id = self._project_of(where, project)
            run_id = next(self._ids["test-run"])
            self._runs[run_id] = _Run(
                id=run_id,
                project_id=project_id,
                name=name or f"Test run {run_id}",
                parent=where,
                order=next(self._order),
                created=datetime.now(UTC),
            )
            if where is not None:
                self._containers[where].runs.append(run_id)
            return run_id

    def submit_log(
        self,
        test_run_id: int,
        status_name: str,
        *,
        build: str | None = None,
        executed_at: datetime | None = None,
    ) -> int:
        """Execute a test run: a new test log, which becomes the run's last run."""
        with self._lock:
            run = self._runs[test_run_id]
            now = datetime.now(UTC)
            test_log = _Log(
                id=next(self._ids["test-log"]),
                test_run_id=test_run_id,
                status_name=status_name,
                build=build,
                executed_at=executed_at or now,
                submitted_at=now,
            )
            run.logs.append(test_log)
            self._logs[test_log.id] = test_log
            return test_log.id

    def webhook_body(self, test_log_id: int, event_type: str = "testlog_submitted") -> bytes:
        """The body QTest would POST to a webhook for this test log."""
        with self._lock:
            test_log = self._logs[test_log_id]
            project_id = self._runs[test_log.test_run_id].project_id
        return orjson.dumps(
            {
                "event_timestamp": int(test_log.submitted_at.timestamp() * 1000),
                "event_type": event_type,
                "testlog": {
                    "id": test_log.id,
                    "project_id": project_id,
                    "testrun_id": test_log.test_run_id,
                },
            }
        )

    def cycle_totals(self, cycle_id: int) -> dict[str, int]:
        """Runs in the cycle and below it that have a log, each once at its latest status."""
        totals = {"total": 0, "passed": 0, "failed": 0, "blocked": 0}
        with self._lock:
            pending: list[Ref] = [("test-cycle", cycle_id)]
            while pending:
                container = self._containers[pending.pop()]
                pending.extend(container.children)
                for run_id in container.runs:
                    logs = self._runs[run_id].logs
                    if not logs:
                        continue
                    totals["total"] += 1
                    status = logs[-1].status_name.casefold()
                    if status in COUNTED_STATUSES:
                        totals[status] += 1
        return totals

    # --------------------------------------------------------------------- faults

    def fail_next(self, n: int, status: int = 503, *, retry_after: str | None = None) -> None:
        """Answer the next ``n`` requests with ``status`` (and ``Retry-After``, if given)."""
        with self._lock:
            self._fail_next.extend([(status, retry_after)] * n)

    # -------------------------------------------------------------------- serving

    def _answer(self, method: str, target: str, authorization: str) -> _Answer:
        """The answer to one request, after the configured delay and faults."""
        path = target.split("?", 1)[0]
        parts = path.strip("/").split("/")
        with self._lock:
            self.requests[_kind_of(parts)] += 1
            fault = self._fail_next.pop(0) if self._fail_next else None
            if fault is None and self.failure_rate and self._random.random() < self.failure_rate:
                fault = (503, None)
        if self.delay_seconds:
            self._stopping.wait(self.delay_seconds)
        if fault is not None:
            status, retry_after = fault
            headers = {"Retry-After": retry_after} if retry_after is not None else {}
            return _Answer(status, {"message": "Service Unavailable (fake fault)"}, headers)
        scheme, _, given = authorization.partition(" ")
        if scheme.casefold() != "bearer" or given.strip() != self.token:
            return _Answer(401, {"error": "invalid_token", "error_description": "Invalid token"})
        if method != "GET":
            return _Answer(405, {"message": "the fake QTest serves GET only"})
        with self._lock:
            document = self._route(parts)
        if document is None:
            return _Answer(404, {"message": f"{path} was not found"})
        return _Answer(200, document)

    def _route(self, parts: list[str]) -> dict[str, Any] | None:
        """The document at ``api/v3/projects/{p}/{kind}/{id}[/test-logs/last-run]``."""
        if len(parts) < 6 or parts[:3] != ["api", "v3", "projects"]:
            return None
        if not (parts[3].isdigit() and parts[5].isdigit()):
            return None
        project_id, kind, object_id, rest = int(parts[3]), parts[4], int(parts[5]), parts[6:]
        if kind == "test-runs":
            run = self._runs.get(object_id)
            if run is None or run.project_id != project_id:
                return None
            if rest == ["test-logs", "last-run"]:
                return self._log_document(run) if run.logs else None
            return self._run_document(run) if not rest else None
        container = self._containers.get((kind.removesuffix("s"), object_id))
        if container is None or container.project_id != project_id or rest:
            return None
        return self._container_document(container)

    # ----------------------------------------------------------------- documents

    def _href(self, project_id: int, tail: str) -> str:
        return f"{self.base_url}/api/v3/projects/{project_id}/{tail}"

    def _web_url(self, project_id: int, tab: str, object_type: int, object_id: int) -> str:
        return (
            f"{self.base_url}/p/{project_id}/portal/project#tab={tab}"
            f"&object={object_type}&id={object_id}"
        )

    def _run_document(self, run: _Run) -> dict[str, Any]:
        parent_type, parent_id = run.parent or ("root", 0)
        document: dict[str, Any] = {
            "links": [
                {"rel": "self", "href": self._href(run.project_id, f"test-runs/{run.id}")},
                {
                    "rel": "test-logs",
                    "href": self._href(run.project_id, f"test-runs/{run.id}/test-logs"),
                },
            ],
            "id": run.id,
            "name": run.name,
            "order": run.order,
            "pid": f"TR-{run.id}",
            "created_date": _stamp(run.created),
            "last_modified_date": _stamp(run.logs[-1].submitted_at if run.logs else run.created),
            "properties": [],
            "parentId": parent_id,
            "parentType": parent_type,
            "web_url": self._web_url(run.project_id, "testexecution", 3, run.id),
            "test_case_version_id": run.id + 7,
            "creator_id": 5202,
        }
        if run.logs:
            latest = run.logs[-1]
            document["latest_test_log"] = {
                "id": latest.id,
                "status": latest.status_name,
                "exe_start_date": _stamp(latest.executed_at),
                "exe_end_date": _stamp(latest.executed_at),
            }
        return document

    def _log_document(self, run: _Run) -> dict[str, Any]:
        latest = run.logs[-1]
        document: dict[str, Any] = {
            "links": [
                {
                    "rel": "self",
                    "href": self._href(run.project_id, f"test-runs/{run.id}/test-logs/{latest.id}"),
                },
                {"rel": "test-run", "href": self._href(run.project_id, f"test-runs/{run.id}")},
            ],
            "id": latest.id,
            "test_case_version_id": run.id + 7,
            "exe_start_date": _stamp(latest.executed_at),
            "exe_end_date": _stamp(latest.executed_at),
            "note": "",
            "name": run.name,
            "properties": [],
            "status": {
                "links": [],
                "id": STATUS_IDS.get(latest.status_name, 700),
                "name": latest.status_name,
                "is_default": latest.status_name == "Unexecuted",
                "color": "#0cdda8",
                "active": True,
            },
            "result_number": len(run.logs),
            "test_run_id": run.id,
            "test_step_logs": [],
        }
        if latest.build is not None:
            document["build_number"] = latest.build
        return document

    def _container_document(self, container: _Container) -> dict[str, Any]:
        project_id, object_id = container.project_id, container.id
        plural = f"{container.kind}s"
        links = [{"rel": "self", "href": self._href(project_id, f"{plural}/{object_id}")}]
        document: dict[str, Any] = {
            "links": links,
            "id": object_id,
            "name": container.name,
            "order": container.order,
            "created_date": _stamp(container.created),
            "last_modified_date": _stamp(container.created),
        }
        if container.kind == "release":
            document |= {
                "pid": f"RL-{object_id}",
                "properties": [],
                "web_url": self._web_url(project_id, "testplan", 8, object_id),
                "start_date": _stamp(container.created),
                "end_date": _stamp(container.created),
            }
            links += [
                {
                    "rel": "test-cycles",
                    "href": self._href(
                        project_id, f"test-cycles?parentId={object_id}&parentType=release"
                    ),
                }
            ]
            return document
        if container.kind == "test-suite":
            parent_type, parent_id = container.parent or ("root", 0)
            document |= {
                "pid": f"TS-{object_id}",
                "parentId": parent_id,
                "parentType": parent_type,
                "properties": [],
                "web_url": self._web_url(project_id, "testexecution", 2, object_id),
            }
        else:
            document |= {
                "pid": f"CL-{object_id}",
                "description": "",
                "web_url": self._web_url(project_id, "testexecution", 4, object_id),
            }
            if container.target_release is not None:
                document["target_release_id"] = container.target_release
            if container.parent is not None:
                parent_kind, parent_id = container.parent
                rel = "parent-test-cycle" if parent_kind == "test-cycle" else "release"
                links.append(
                    {"rel": rel, "href": self._href(project_id, f"{parent_kind}s/{parent_id}")}
                )
        parent_query = f"parentId={object_id}&parentType={container.kind}"
        links.append(
            {"rel": "test-runs", "href": self._href(project_id, f"test-runs?{parent_query}")}
        )
        return document

    # -------------------------------------------------------------------- helpers

    def _add_container(
        self,
        kind: str,
        name: str,
        where: Ref | None,
        project: int | None,
        target_release: int | None = None,
    ) -> int:
        with self._lock:
            project_id = self._project_of(where, project)
            container_id = next(self._ids[kind])
            self._containers[kind, container_id] = _Container(
                kind=kind,
                id=container_id,
                project_id=project_id,
                name=name,
                parent=where,
                order=next(self._order),
                created=datetime.now(UTC),
                target_release=target_release,
            )
            if where is not None:
                self._containers[where].children.append((kind, container_id))
            return container_id

    def _project_of(self, where: Ref | None, project: int | None) -> int:
        if where is None:
            project_id = project if project is not None else self.project_id
            if project_id not in self._projects:
                raise KeyError(f"no project {project_id} in the fake QTest")
            return project_id
        if where not in self._containers:
            raise KeyError(f"no {where[0]} {where[1]} in the fake QTest")
        return self._containers[where].project_id


def _kind_of(parts: list[str]) -> str:
    """What a request asked for, for ``FakeQTest.requests``."""
    if parts[-2:] == ["test-logs", "last-run"]:
        return "last-run"
    if len(parts) == 6 and parts[4] in ("test-runs", "test-cycles", "test-suites", "releases"):
        return parts[4].removesuffix("s")
    return "other"


def _stamp(moment: datetime) -> str:
    return moment.astimezone(UTC).isoformat(timespec="seconds")
