"""A real ``ledger serve`` process on PostgreSQL, made the way an operator makes one.

The database schema and the tokens come from ``ledger db upgrade`` and ``ledger token
create``; the tests then speak HTTP to the process on 127.0.0.1. The server's output goes
to a file under pytest's temporary directory, shown beneath any failing test of the
module (the hook is in ``tests/conftest.py``). The end-to-end and reliability suites
share these helpers; the reliability suite also kills and restarts the process.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import pytest

from ledger.application import ReleaseLedger
from ledger.config import Settings
from tests.api_client import ApiClient
from tests.conftest import SERVER_LOG, fresh_database
from tests.fakes.qtest import FakeQTest

WEBHOOK_SECRETS = {
    "LEDGER_JIRA_WEBHOOK_SECRET": "e2e-jira-secret-4f1c",
    "LEDGER_QTEST_WEBHOOK_SECRET": "e2e-qtest-secret-9b2d",
}
"""The integrations' own secrets: unsigned webhooks are refused, as in production."""
ROLES = ("reader", "writer", "admin")
STARTUP_TIMEOUT = 60.0
STOP_TIMEOUT = 15.0


def ledger_command() -> str:
    """The ``ledger`` console script installed beside the Python running the tests."""
    return str(Path(sys.executable).with_name("ledger"))


def start_ledger(*arguments: str, env: dict[str, str], cwd: Path) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [ledger_command(), *arguments],
        env=env,
        cwd=cwd,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def finish(process: subprocess.Popen[str]) -> str:
    """Wait for a ``ledger`` command that must succeed; its standard output."""
    stdout, stderr = process.communicate(timeout=120)
    assert process.returncode == 0, f"{' '.join(map(str, process.args))} failed:\n{stderr}"
    return stdout


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


def serve_ledger(
    env: dict[str, str], cwd: Path, log_path: Path, port: int | None = None
) -> tuple[subprocess.Popen[bytes], str]:
    """``ledger serve`` on ``port`` (else a free one) of 127.0.0.1, its output appended to
    ``log_path``; and its URL."""
    port = port or free_port()
    with log_path.open("ab") as log:
        process = subprocess.Popen(
            [ledger_command(), "serve", "--host", "127.0.0.1", "--port", str(port)],
            env=env,
            cwd=cwd,
            stdout=log,
            stderr=subprocess.STDOUT,
        )
    return process, f"http://127.0.0.1:{port}"


def wait_until_ready(process: subprocess.Popen[bytes], base_url: str, log_path: Path) -> None:
    deadline = time.monotonic() + STARTUP_TIMEOUT
    while time.monotonic() < deadline:
        if process.poll() is not None:
            pytest.fail(
                f"ledger serve exited with {process.returncode} before it was ready:\n"
                f"{log_path.read_text(errors='replace')}"
            )
        try:
            if httpx.get(f"{base_url}/readyz", timeout=2, trust_env=False).status_code == 200:
                return
        except httpx.TransportError:
            pass
        time.sleep(0.1)
    pytest.fail(f"ledger serve was not ready in {STARTUP_TIMEOUT:.0f} s:\n{log_path.read_text()}")


def stop(process: subprocess.Popen[bytes]) -> None:
    """SIGTERM for a clean shutdown, then SIGKILL if it does not come in time."""
    if process.poll() is not None:
        return
    process.send_signal(signal.SIGTERM)
    try:
        process.wait(timeout=STOP_TIMEOUT)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait(timeout=STOP_TIMEOUT)


@dataclass
class ServerProcess:
    """One ``ledger serve`` on a fixed port, which may be killed and started again there."""

    env: dict[str, str]
    workdir: Path
    log_path: Path
    port: int = field(default_factory=free_port)
    process: subprocess.Popen[bytes] | None = None

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> None:
        """Start the server and wait until it says it is ready."""
        self.process, _ = serve_ledger(self.env, self.workdir, self.log_path, self.port)
        wait_until_ready(self.process, self.base_url, self.log_path)

    def kill(self) -> None:
        """SIGKILL: no shutdown, no flushing, as when the machine loses power."""
        if self.process is not None and self.process.poll() is None:
            self.process.kill()
            self.process.wait(timeout=STOP_TIMEOUT)

    def stop(self) -> None:
        if self.process is not None:
            stop(self.process)


@dataclass
class Served(ApiClient):
    """A served API over HTTP: its URL, its database, its process and its output."""

    base_url: str
    database_url: str
    log_path: Path
    server: ServerProcess

    def head(self) -> int:
        """The last position in the log, by paging the event feed to its end."""
        position = 0
        while True:
            page = self.get("/v1/events", after=position, limit=1000)
            assert page.status_code == 200, page.text
            body = page.json()
            position = body["last_position"]
            if body["next_cursor"] is None:
                return int(position)

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")

    def drained_inbox(self, within: float) -> dict[str, int]:
        """The inbox's counts once nothing is pending, or after ``within`` seconds."""
        deadline = time.monotonic() + within
        while True:
            response = self.get("/v1/inbox", role="admin", limit=1)
            assert response.status_code == 200, response.text
            counts: dict[str, int] = response.json()["counts"]
            if counts["pending"] == 0 or time.monotonic() > deadline:
                return counts
            time.sleep(0.5)

    def qa_totals(self, train: str, cycle: str) -> dict[str, int]:
        """The counts of ``train``'s QA run that counts for ``cycle``, read from its stream."""
        ledger = ReleaseLedger.from_settings(Settings(database_url=self.database_url))
        try:
            run = ledger.train(train)["qa"][cycle]
        finally:
            ledger.close()
        return {name: run[name] for name in ("total", "passed", "failed", "blocked")}


@contextmanager
def serving(
    request: pytest.FixtureRequest,
    postgres_server: str,
    tmp_path_factory: pytest.TempPathFactory,
    settings: Mapping[str, str] | None = None,
) -> Iterator[Served]:
    """``ledger serve`` on a new database of ``postgres_server``; see ``serving_on``."""
    with (
        fresh_database(postgres_server) as database_url,
        serving_on(request, database_url, tmp_path_factory, settings) as served,
    ):
        yield served


@contextmanager
def serving_with_qtest(
    request: pytest.FixtureRequest,
    postgres_server: str,
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[tuple[Served, FakeQTest]]:
    """``ledger serve`` on a new database, enriching QTest deliveries from a fake QTest."""
    with FakeQTest() as qtest:
        settings = {"LEDGER_QTEST_BASE_URL": qtest.base_url, "LEDGER_QTEST_TOKEN": qtest.token}
        with serving(request, postgres_server, tmp_path_factory, settings) as served:
            yield served, qtest


@contextmanager
def serving_on(
    request: pytest.FixtureRequest,
    database_url: str,
    tmp_path_factory: pytest.TempPathFactory,
    settings: Mapping[str, str] | None = None,
) -> Iterator[Served]:
    """``ledger serve`` on the empty database ``database_url``, with a token per role and
    ``settings`` in its environment; on leaving, no token or webhook secret may be in its log."""
    workdir = tmp_path_factory.mktemp("ledger-serve")
    log_path = workdir / "serve.log"
    request.node.stash[SERVER_LOG] = log_path
    # The working directory keeps a developer's .env out of the served settings.
    env = {
        **os.environ,
        "LEDGER_DATABASE_URL": database_url,
        **WEBHOOK_SECRETS,
        **(settings or {}),
    }
    finish(start_ledger("db", "upgrade", env=env, cwd=workdir))
    # Each command spends its time importing, so the tokens and the server start
    # together: the server reads tokens per request, not at startup.
    creating = {
        role: start_ledger(
            "token", "create", "--name", f"e2e-{role}", "--role", role, env=env, cwd=workdir
        )
        for role in ROLES
    }
    server = ServerProcess(env, workdir, log_path)
    try:
        server.process, _ = serve_ledger(env, workdir, log_path, server.port)
        tokens = {role: finish(command).strip() for role, command in creating.items()}
        wait_until_ready(server.process, server.base_url, log_path)
        # trust_env off: straight to 127.0.0.1, whatever proxy the environment names.
        with httpx.Client(base_url=server.base_url, timeout=60, trust_env=False) as client:
            yield Served(client, tokens, server.base_url, database_url, log_path, server)
    finally:
        server.stop()
    # Every request carried one of these; none may reach the log.
    secrets = tokens | WEBHOOK_SECRETS
    leaked = [name for name, secret in secrets.items() if secret in log_path.read_text()]
    assert not leaked, f"the {', '.join(leaked)} secret appears in the server log {log_path}"


@pytest.fixture(scope="module")
def served(
    request: pytest.FixtureRequest,
    postgres_server: str,
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[Served]:
    """``ledger serve`` on a new PostgreSQL database, with a token per role (one per module)."""
    with serving(request, postgres_server, tmp_path_factory) as server:
        yield server
