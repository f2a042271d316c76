"""QTest (Tricentis qTest Manager, API v3): webhook deliveries, their enrichment, and the mapping.

A ``testlog_submitted`` webhook carries only ids (SPEC §6)::

    {"event_timestamp": 1718000000000, "event_type": "testlog_submitted",
     "testlog": {"id": 77, "project_id": 12, "testrun_id": 345}}

``parse_delivery`` reads that; ``QTestClient.test_run_result`` asks the REST API what the
test run is now: ``GET /api/v3/projects/{p}/test-runs/{id}`` (its ``parentId`` and
``parentType``) and ``GET …/test-runs/{id}/test-logs/last-run`` (``status.name``,
``exe_start_date``, ``exe_end_date``, ``build_number``). The latest log, not the one the
webhook names, is the truth: deliveries arrive late and out of order.

Finding the release. A test run sits in a test cycle or a test suite (or, rarely, directly
under a release or the root); suites sit in cycles, cycles nest in cycles, and the outermost
cycle sits in a release or the root. The client walks up one container at a time with
``GET …/test-suites/{id}``, ``GET …/test-cycles/{id}`` and ``GET …/releases/{id}``. The
documented ``TestCycleResource`` has no parent field, so a container's parent is read, first
match wins, from:

1. ``parentId`` / ``parentType`` when the response has them (suites and runs do);
2. its ``links``: ``rel: parent-test-cycle``, else ``rel: release`` (the href ends in the id);
3. ``target_release_id``, the cycle's Target Release, for a cycle without either link;
4. otherwise it is under the root: the run's cycles are under no release.

``expand=descendants`` was not used: it walks down, and the cycle tree of a release can be
thousands of objects. Cycles, suites and release names rarely change, so they are cached in
memory (bounded, with a time to live); runs and logs are asked every time.

The mapping: a release becomes a train by an explicit ``releases`` entry, else by the train
id in its name (``Release 5.5`` is 5.5); a test cycle becomes ``phase1``, ``phase2`` or
``golden`` by case-insensitive patterns. ``cycle_for_any`` tries the run's cycle and then each
enclosing one, for runs kept in sub-cycles of a phase.
"""

from __future__ import annotations

import email.utils
import logging
import random
import re
import threading
import time
from collections import OrderedDict
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import UTC, datetime
from types import TracebackType
from typing import Any, Generic, Literal, TypeVar

import httpx
import orjson
from pydantic import BaseModel, ConfigDict, Field, field_validator

from ledger.values import TRAIN_ID_PATTERN, QACycle

log = logging.getLogger(__name__)

RunStatus = Literal["passed", "failed", "blocked", "other"]
ContainerKind = Literal["root", "release", "test-cycle", "test-suite"]

MAX_NESTING = 32
"""Containers walked up from a test run before the tree is declared broken (a loop)."""

_TRAIN_ID_BODY = TRAIN_ID_PATTERN.pattern.removeprefix("^").removesuffix("$")
# A train id standing alone in a name: not glued to letters, digits or dots on either side
# (a "v" prefix is allowed), so "v15.5x" and "5.5.1.2.3" name no train instead of a wrong one.
_TRAIN_IN_NAME = re.compile(
    rf"(?<![0-9A-Za-z.])[vV]?(?P<train>{_TRAIN_ID_BODY})(?![0-9A-Za-z-]|\.[0-9])"
)
_STATUS_BY_NAME: dict[str, RunStatus] = {
    "passed": "passed",
    "pass": "passed",
    "failed": "failed",
    "fail": "failed",
    "blocked": "blocked",
}
_EPOCH_MILLISECONDS_FROM = 100_000_000_000
"""Epoch numbers this large are milliseconds: as seconds they would be after the year 5000."""


# ----------------------------------------------------------------------------- mapping


def _check_pattern(pattern: str) -> str:
    if not pattern:
        raise ValueError("an empty pattern would match every test cycle")
    try:
        re.compile(pattern)
    except re.error as error:
        raise ValueError(f"{pattern!r} is not a regular expression: {error}") from None
    return pattern


class QTestCyclePatterns(BaseModel):
    """Regular expressions searched, case-insensitively, in a test cycle's name."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    phase1: str = r"phase ?1"
    phase2: str = r"phase ?2"
    golden: str = r"golden"

    @field_validator("phase1", "phase2", "golden")
    @classmethod
    def _compiles(cls, pattern: str) -> str:
        return _check_pattern(pattern)

    def in_order(self) -> tuple[tuple[QACycle, str], ...]:
        return (
            (QACycle.PHASE1, self.phase1),
            (QACycle.PHASE2, self.phase2),
            (QACycle.GOLDEN, self.golden),
        )


class QTestMapping(BaseModel):
    """How QTest releases become trains and test cycles become QA cycles (``[qtest]``).

    Defaults, which need no file: a release whose name holds a train id is that train
    (``5.5``, ``Release 5.5``, ``Objects 5.5 GA``); a cycle whose name matches ``phase ?1``,
    ``phase ?2`` or ``golden`` is phase 1, phase 2 or the golden run. ``releases`` maps
    release names (exactly, else ignoring case and surrounding blanks) to train ids first.
    """

    model_config = ConfigDict(frozen=True, extra="forbid")

    releases: dict[str, str] = Field(default_factory=dict)
    cycles: QTestCyclePatterns = Field(default_factory=QTestCyclePatterns)

    @field_validator("releases")
    @classmethod
    def _trains_are_train_ids(cls, releases: dict[str, str]) -> dict[str, str]:
        for name, train in releases.items():
            if not TRAIN_ID_PATTERN.fullmatch(train):
                raise ValueError(
                    f"release {name!r} maps to {train!r}, not a train id like 5.5 or 5.4.1"
                )
        return releases

    def train_for(self, release_name: str) -> str | None:
        """The train a QTest release stands for, or None when its name names none."""
        explicit = self.releases.get(release_name)
        if explicit is not None:
            return explicit
        folded = release_name.strip().casefold()
        for name, train in self.releases.items():
            if name.strip().casefold() == folded:
                return train
        found = _TRAIN_IN_NAME.search(release_name)
        return found.group("train") if found else None

    def cycle_for(self, cycle_name: str) -> QACycle | None:
        """The QA cycle a QTest test cycle's name matches, the first of phase1/phase2/golden."""
        for cycle, pattern in self.cycles.in_order():
            if re.search(pattern, cycle_name, re.IGNORECASE):
                return cycle
        return None

    def cycle_for_any(self, cycle_names: Iterable[str]) -> QACycle | None:
        """The QA cycle of the nearest of ``cycle_names`` (innermost first) that maps to one."""
        for name in cycle_names:
            cycle = self.cycle_for(name)
            if cycle is not None:
                return cycle
        return None


# ---------------------------------------------------------------------------- deliveries


class QTestPayloadError(ValueError):
    """A webhook body that is not a QTest test-log delivery; the message says why."""


@dataclass(frozen=True)
class TestLogDelivery:
    """What a QTest test-log webhook says: which log of which test run, and when."""

    __test__ = False  # not a pytest test class, despite the name

    event_type: str
    event_timestamp: datetime | None
    project_id: int
    test_run_id: int
    test_log_id: int | None


def parse_delivery(payload: Any) -> TestLogDelivery:
    """The ids in a QTest webhook body (parsed JSON, or its bytes or text), or why not."""
    if isinstance(payload, bytes | bytearray | str):
        try:
            payload = orjson.loads(payload)
        except orjson.JSONDecodeError as error:
            raise QTestPayloadError(f"QTest delivery is not JSON: {error}") from None
    if not isinstance(payload, dict):
        raise QTestPayloadError(f"QTest delivery is a JSON {type(payload).__name__}, not an object")
    event_type = payload.get("event_type")
    if not isinstance(event_type, str) or not event_type.strip():
        raise QTestPayloadError("QTest delivery has no event_type")
    event_type = event_type.strip()
    testlog = payload.get("testlog")
    if not isinstance(testlog, dict):
        raise QTestPayloadError(f"QTest {event_type} delivery has no testlog object")
    log_id = testlog.get("id")
    return TestLogDelivery(
        event_type=event_type,
        event_timestamp=_event_time(payload.get("event_timestamp"), event_type),
        project_id=_payload_id(testlog.get("project_id"), f"{event_type} testlog.project_id"),
        test_run_id=_payload_id(testlog.get("testrun_id"), f"{event_type} testlog.testrun_id"),
        test_log_id=None if log_id is None else _payload_id(log_id, f"{event_type} testlog.id"),
    )


def _payload_id(value: Any, what: str) -> int:
    number = _as_id(value)
    if number is None:
        raise QTestPayloadError(f"QTest {what} is {value!r}, not a positive integer id")
    return number


def _as_id(value: Any) -> int | None:
    """A positive id given as a JSON number or a string of digits, else None."""
    if isinstance(value, bool):
        return None
    if isinstance(value, str) and value.strip().isdigit():
        value = int(value.strip())
    if isinstance(value, float) and value.is_integer():
        value = int(value)
    return value if isinstance(value, int) and value > 0 else None


def _event_time(value: Any, event_type: str) -> datetime | None:
    if value is None:
        return None
    moment = _moment(value)
    if moment is None:
        raise QTestPayloadError(
            f"QTest {event_type} event_timestamp {value!r} is neither epoch time nor ISO 8601"
        )
    return moment


def _moment(value: Any) -> datetime | None:
    """Epoch seconds or milliseconds (number or digits) or ISO 8601 (UTC if naive)."""
    if isinstance(value, str):
        text = value.strip()
        if re.fullmatch(r"-?[0-9]+(\.[0-9]+)?", text):
            value = float(text)
        else:
            try:
                moment = datetime.fromisoformat(text)
            except ValueError:
                return None
            return moment if moment.tzinfo else moment.replace(tzinfo=UTC)
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    seconds = value / 1000 if abs(value) >= _EPOCH_MILLISECONDS_FROM else value
    try:
        return datetime.fromtimestamp(seconds, UTC)
    except (OverflowError, OSError, ValueError):
        return None


# ------------------------------------------------------------------------------- results


@dataclass(frozen=True)
class TestRunResult:
    """A QTest test run as QTest tells it at the moment we asked: its latest log, its place.

    ``cycle_id``/``cycle_name`` is the innermost test cycle holding the run (through its
    suite, if any); ``cycle_names`` is that cycle's name and each enclosing cycle's, innermost
    first. ``release_id`` is None when the cycles are under the root, not a release.
    """

    __test__ = False  # not a pytest test class, despite the name

    project_id: int
    test_run_id: int
    test_log_id: int
    status: RunStatus
    status_name: str
    executed_at: datetime | None
    build: str | None
    cycle_id: int
    cycle_name: str
    release_id: int | None
    release_name: str | None
    cycle_names: tuple[str, ...] = ()


def normalize_status(status_name: str) -> RunStatus:
    """``passed``, ``failed`` or ``blocked`` for QTest's names of those; ``other`` otherwise.

    Incomplete, Unexecuted, Skipped and custom statuses count in a cycle's total only.
    """
    return _STATUS_BY_NAME.get(status_name.strip().casefold(), "other")


class QTestError(Exception):
    """QTest could not tell us what we asked; the message says what and why."""


class QTestUnavailable(QTestError):
    """Transient: QTest unreachable, too slow, rate-limiting or failing, after our retries."""


class QTestNotFound(QTestError):
    """Permanent for this delivery: no such run, no log yet, or no test cycle around it."""


class QTestUnauthorized(QTestError):
    """QTest refused the configured token (401/403): fix ``LEDGER_QTEST_TOKEN``."""


# --------------------------------------------------------------------------------- client

K = TypeVar("K")
V = TypeVar("V")


class _RecentCache(Generic[K, V]):
    """A thread-safe map that forgets the least recently used entries and stale ones."""

    def __init__(self, max_entries: int, ttl: float, clock: Callable[[], float]) -> None:
        self._entries: OrderedDict[K, tuple[float, V]] = OrderedDict()
        self._max_entries = max_entries
        self._ttl = ttl
        self._clock = clock
        self._lock = threading.Lock()

    def get(self, key: K) -> V | None:
        with self._lock:
            entry = self._entries.get(key)
            if entry is None:
                return None
            stored_at, value = entry
            if self._clock() - stored_at > self._ttl:
                del self._entries[key]
                return None
            self._entries.move_to_end(key)
            return value

    def put(self, key: K, value: V) -> None:
        with self._lock:
            self._entries[key] = (self._clock(), value)
            self._entries.move_to_end(key)
            while len(self._entries) > self._max_entries:
                self._entries.popitem(last=False)


@dataclass(frozen=True)
class _Parent:
    kind: ContainerKind
    id: int

    def __str__(self) -> str:
        return "the root" if self.kind == "root" else f"{self.kind} {self.id}"


_ROOT = _Parent("root", 0)
_PARENT_LINKS: tuple[tuple[str, ContainerKind], ...] = (
    ("parent-test-cycle", "test-cycle"),
    ("release", "release"),
)


@dataclass(frozen=True)
class _Container:
    """A test cycle or test suite, as much as walking up the tree needs."""

    kind: ContainerKind
    id: int
    name: str
    parent: _Parent


class QTestClient:
    """Asks the QTest REST API (v3) what a test run is now; safe to share between threads.

    Transient failures (connection errors, timeouts, 429, 5xx) are retried up to
    ``attempts`` requests in all, with exponential backoff from ``backoff`` seconds and
    jitter, or after ``Retry-After`` (at most ``max_retry_after`` seconds), then raise
    ``QTestUnavailable``. Cycles, suites and release names are kept for ``cache_ttl``
    seconds, at most ``cache_entries`` of each.
    """

    def __init__(
        self,
        base_url: str,
        token: str,
        *,
        timeout: float = 10.0,
        attempts: int = 4,
        backoff: float = 0.2,
        transport: httpx.BaseTransport | None = None,
        max_retry_after: float = 30.0,
        cache_entries: int = 10_000,
        cache_ttl: float = 300.0,
    ) -> None:
        if not base_url.startswith(("http://", "https://")):
            raise ValueError(f"QTest base URL {base_url!r} is not an http(s) URL")
        if attempts < 1:
            raise ValueError(f"attempts must be at least 1, not {attempts}")
        self.base_url = base_url.rstrip("/")
        self.attempts = attempts
        self.backoff = backoff
        self.max_retry_after = max_retry_after
        self._http = httpx.Client(
            base_url=self.base_url,
            headers={
                "Authorization": f"Bearer {token}",
                "Accept": "application/json",
                "User-Agent": "release-ledger",
            },
            timeout=timeout,
            transport=transport,
        )
        self._jitter = random.Random()
        self._containers: _RecentCache[tuple[int, ContainerKind, int], _Container] = _RecentCache(
            cache_entries, cache_ttl, time.monotonic
        )
        self._release_names: _RecentCache[tuple[int, int], str] = _RecentCache(
            cache_entries, cache_ttl, time.monotonic
        )

    def __enter__(self) -> QTestClient:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.close()

    def close(self) -> None:
        self._http.close()

    # ------------------------------------------------------------------ the question

    def test_run_result(self, project_id: int, test_run_id: int) -> TestRunResult:
        """The test run's latest log, its innermost test cycle and that cycle's release."""
        run_path = f"/api/v3/projects/{project_id}/test-runs/{test_run_id}"
        log_path = f"{run_path}/test-logs/last-run"
        run = self._get(run_path, missing=f"test run {test_run_id} in project {project_id}")
        last_log = self._get(log_path, missing=f"test log of test run {test_run_id} yet")
        if not last_log:
            raise QTestNotFound(f"QTest has no test log of test run {test_run_id} yet")
        cycles, release_id = self._place(project_id, test_run_id, _parent_of(run, run_path))
        innermost = cycles[0]
        status_name = _status_name(last_log, log_path)
        return TestRunResult(
            project_id=project_id,
            test_run_id=test_run_id,
            test_log_id=_required_id(last_log, "id", log_path),
            status=normalize_status(status_name),
            status_name=status_name,
            executed_at=_executed_at(last_log, log_path),
            build=_build(last_log),
            cycle_id=innermost.id,
            cycle_name=innermost.name,
            release_id=release_id,
            release_name=None if release_id is None else self._release_name(project_id, release_id),
            cycle_names=tuple(cycle.name for cycle in cycles),
        )

    def _place(
        self, project_id: int, test_run_id: int, parent: _Parent
    ) -> tuple[list[_Container], int | None]:
        """The test cycles around a run, innermost first, and the release above them."""
        cycles: list[_Container] = []
        for _ in range(MAX_NESTING):
            if parent.kind in ("root", "release"):
                break
            container = self._container(project_id, parent)
            if container.kind == "test-cycle":
                cycles.append(container)
            parent = container.parent
        else:
            raise QTestError(
                f"QTest containers above test run {test_run_id} nest deeper than "
                f"{MAX_NESTING} levels; is there a loop at {parent}?"
            )
        if not cycles:
            raise QTestNotFound(f"QTest test run {test_run_id} is in no test cycle: under {parent}")
        return cycles, parent.id if parent.kind == "release" else None

    def _container(self, project_id: int, ref: _Parent) -> _Container:
        key = (project_id, ref.kind, ref.id)
        cached = self._containers.get(key)
        if cached is not None:
            return cached
        path = f"/api/v3/projects/{project_id}/{ref.kind}s/{ref.id}"
        document = self._get(path, missing=f"{ref} in project {project_id}")
        container = _Container(
            kind=ref.kind,
            id=ref.id,
            name=_required_text(document, "name", path),
            parent=_parent_of(document, path),
        )
        self._containers.put(key, container)
        return container

    def _release_name(self, project_id: int, release_id: int) -> str:
        cached = self._release_names.get((project_id, release_id))
        if cached is not None:
            return cached
        path = f"/api/v3/projects/{project_id}/releases/{release_id}"
        document = self._get(path, missing=f"release {release_id} in project {project_id}")
        name = _required_text(document, "name", path)
        self._release_names.put((project_id, release_id), name)
        return name

    # ------------------------------------------------------------------------- HTTP

    def _get(self, path: str, *, missing: str) -> dict[str, Any]:
        """The JSON object at ``path``; an empty body is an empty object."""
        response = self._send(path)
        if response.status_code == 404:
            raise QTestNotFound(f"QTest has no {missing}: 404 from GET {path}")
        if response.status_code in (401, 403):
            raise QTestUnauthorized(
                f"QTest refused the configured token (HTTP {response.status_code} from GET "
                f"{path}): check LEDGER_QTEST_TOKEN"
            )
        if response.status_code not in (200, 204):
            raise QTestError(
                f"QTest answered GET {path} with HTTP {response.status_code}: {_excerpt(response)}"
            )
        if response.status_code == 204 or not response.content.strip():
            return {}
        try:
            document = orjson.loads(response.content)
        except orjson.JSONDecodeError:
            raise QTestError(
                f"QTest answered GET {path} with a body that is not JSON: {_excerpt(response)}"
            ) from None
        if not isinstance(document, dict):
            raise QTestError(
                f"QTest answered GET {path} with a JSON {type(document).__name__}, not an object"
            )
        return document

    def _send(self, path: str) -> httpx.Response:
        """The first response that is not transient, or ``QTestUnavailable`` after retries."""
        reason = ""
        for attempt in range(1, self.attempts + 1):
            retry_after: float | None = None
            try:
                response = self._http.get(path)
            except httpx.TransportError as error:
                reason = f"{type(error).__name__}: {error}" if str(error) else type(error).__name__
            else:
                if not _is_transient(response.status_code):
                    return response
                reason = f"HTTP {response.status_code}"
                retry_after = _retry_after(response.headers.get("Retry-After"))
            if attempt < self.attempts:
                pause = self._pause(attempt, retry_after)
                log.info("QTest GET %s: %s; retry %d in %.2f s", path, reason, attempt, pause)
                time.sleep(pause)
        raise QTestUnavailable(f"GET {path} failed {self.attempts} times, last: {reason}")

    def _pause(self, attempt: int, retry_after: float | None) -> float:
        if retry_after is not None:
            return min(retry_after, self.max_retry_after)
        exponential = self.backoff * 2.0 ** (attempt - 1)
        return exponential / 2 + self._jitter.uniform(0, exponential / 2)


def _is_transient(status_code: int) -> bool:
    return status_code == 429 or status_code >= 500


def _retry_after(header: str | None) -> float | None:
    """Seconds to wait as ``Retry-After`` says (delta seconds or an HTTP date), else None."""
    if header is None:
        return None
    text = header.strip()
    if text.isdigit():
        return float(text)
    try:
        when = email.utils.parsedate_to_datetime(text)
    except (TypeError, ValueError):
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    return max(0.0, (when - datetime.now(UTC)).total_seconds())


def _excerpt(response: httpx.Response) -> str:
    text = response.text.strip().replace("\n", " ")
    return (text[:200] + "…") if len(text) > 200 else text or "(empty body)"


# ------------------------------------------------------------------- reading documents


def _parent_of(document: dict[str, Any], path: str) -> _Parent:
    """Where a run, suite or cycle sits; see the module docstring for the order of clues."""
    parent_type = document.get("parentType")
    parent_id = _as_id(document.get("parentId"))
    if parent_type in ("release", "test-cycle", "test-suite") and parent_id is not None:
        return _Parent(parent_type, parent_id)
    if parent_type == "root" or document.get("parentId") == 0:
        return _ROOT
    if parent_type is not None:
        raise QTestError(
            f"QTest answered GET {path} with parentType {parent_type!r} and parentId "
            f"{document.get('parentId')!r}, which name no container"
        )
    links = _links(document)
    for rel, kind in _PARENT_LINKS:
        linked = _as_id(links.get(rel, "").rsplit("/", 1)[-1].split("?", 1)[0])
        if linked is not None:
            return _Parent(kind, linked)
    target_release = _as_id(document.get("target_release_id"))
    return _Parent("release", target_release) if target_release is not None else _ROOT


def _links(document: dict[str, Any]) -> dict[str, str]:
    links = document.get("links")
    if not isinstance(links, list):
        return {}
    return {
        link["rel"]: link["href"]
        for link in links
        if isinstance(link, dict) and isinstance(link.get("rel"), str)
        if isinstance(link.get("href"), str)
    }


def _required_id(document: dict[str, Any], field: str, path: str) -> int:
    number = _as_id(document.get(field))
    if number is None:
        raise QTestError(f"QTest answered GET {path} without a numeric {field}")
    return number


def _required_text(document: dict[str, Any], field: str, path: str) -> str:
    text = document.get(field)
    if not isinstance(text, str):
        raise QTestError(f"QTest answered GET {path} without a {field}")
    return text


def _status_name(test_log: dict[str, Any], path: str) -> str:
    """``status.name`` of a manual log, or the plain string status of an automation log."""
    status = test_log.get("status")
    name = status.get("name") if isinstance(status, dict) else status
    if not isinstance(name, str) or not name.strip():
        raise QTestError(f"QTest answered GET {path} without a status name")
    return name.strip()


def _executed_at(test_log: dict[str, Any], path: str) -> datetime | None:
    """When the execution ended, or began when the end is missing."""
    for field in ("exe_end_date", "exe_start_date"):
        value = test_log.get(field)
        if value in (None, ""):
            continue
        moment = _moment(value)
        if moment is None:
            raise QTestError(f"QTest answered GET {path} with {field} {value!r}, not a date")
        return moment
    return None


def _build(test_log: dict[str, Any]) -> str | None:
    build = test_log.get("build_number")
    if isinstance(build, bool) or not isinstance(build, str | int):
        return None
    text = str(build).strip()
    return text or None
