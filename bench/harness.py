"""What the HTTP benchmarks share: servers in child processes, a cheap HTTP/1.1 client, CPU.

``bench/api.py`` and ``bench/webhooks.py`` run their servers (``ledger serve`` and a trivial
FastAPI app) as child processes on free loopback ports that die with the benchmark, drive
them with ``RawConnection`` (HTTP/1.1 keep-alive over asyncio streams, the least client work
per request), and read CPU time of processes and database backends from ``/proc``.
"""

from __future__ import annotations

import asyncio
import contextlib
import http.client
import importlib.util
import os
import platform
import shutil
import signal
import socket
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import date
from importlib.metadata import version
from pathlib import Path
from types import ModuleType
from typing import Any
from urllib.parse import urlsplit

import psycopg
from rich.console import Console

from append import scrub_library_overrides, server_version

HOST = "127.0.0.1"
BENCH_DIR = Path(__file__).resolve().parent
START_TIMEOUT = 60.0
STOP_TIMEOUT = 15.0

console = Console(width=None if sys.stdout.isatty() else 120)


# ================================================================== processes

# Runs first in each server's process: it dies with this benchmark (even a SIGKILLed one),
# then becomes the server. PR_SET_PDEATHSIG (1) survives the exec.
TIED = (
    "import ctypes, os, signal, sys\n"
    "ctypes.CDLL(None, use_errno=True).prctl(1, signal.SIGTERM)\n"
    "if os.getppid() != int(sys.argv[1]): sys.exit(1)\n"
    "os.execv(sys.argv[2], sys.argv[2:])\n"
)
CLOCK_TICKS = os.sysconf("SC_CLK_TCK")


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind((HOST, 0))
        return int(probe.getsockname()[1])


def _stat_fields(pid: int) -> list[str] | None:
    try:
        text = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    return text.rpartition(")")[2].split()  # after the command name, which may hold spaces


def process_tree(root: int) -> list[int]:
    """``root`` and all its descendants (uvicorn's workers, with --workers > 1)."""
    children: dict[int, list[int]] = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit() and (fields := _stat_fields(int(entry.name))):
            children.setdefault(int(fields[1]), []).append(int(entry.name))
    found, todo = [], [root]
    while todo:
        pid = todo.pop()
        found.append(pid)
        todo.extend(children.get(pid, ()))
    return found


def cpu_seconds(pids: list[int]) -> dict[int, float]:
    """User + system CPU of each process (all its threads), from /proc."""
    seconds = {}
    for pid in pids:
        if fields := _stat_fields(pid):
            seconds[pid] = (int(fields[11]) + int(fields[12])) / CLOCK_TICKS
    return seconds


def http_get(port: int, path: str, token: str | None = None) -> tuple[int, bytes]:
    """One plain request, for the setup: not measured."""
    connection = http.client.HTTPConnection(HOST, port, timeout=10)
    try:
        headers = {"Authorization": f"Bearer {token}"} if token else {}
        connection.request("GET", path, headers=headers)
        response = connection.getresponse()
        return response.status, response.read()
    finally:
        connection.close()


class Server:
    """A server in a child process of this one, on a free loopback port, with its own log."""

    def __init__(
        self, label: str, command: list[str], workers: int, env: dict[str, str], work: Path
    ) -> None:
        self.label = label
        self.port = free_port()
        self.command = [
            *command, "--host", HOST, "--port", str(self.port), "--workers", str(workers),
        ]  # fmt: skip
        self.env = env
        self.work = work
        self.log_path = work / f"{label.replace(' ', '_')}.log"
        self.process: subprocess.Popen[bytes] | None = None

    def start(self, ready_path: str) -> Server:
        with self.log_path.open("wb") as log:
            self.process = subprocess.Popen(
                [sys.executable, "-c", TIED, str(os.getpid()), *self.command],
                stdout=log,
                stderr=subprocess.STDOUT,
                env=self.env,
                cwd=self.work,  # not the repository: no .env file there changes its settings
            )
        deadline = time.monotonic() + START_TIMEOUT
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(
                    f"{self.label} exited ({self.process.returncode}):\n{self.tail()}"
                )
            with contextlib.suppress(OSError):
                if http_get(self.port, ready_path)[0] == 200:
                    return self
            time.sleep(0.2)
        raise RuntimeError(
            f"{self.label} did not answer within {START_TIMEOUT:.0f} s:\n{self.tail()}"
        )

    def pids(self) -> list[int]:
        return process_tree(self.process.pid) if self.process else []

    def tail(self, lines: int = 15) -> str:
        try:
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return ""

    def stop(self) -> None:
        """SIGTERM (uvicorn's graceful shutdown, which stops the projector too), then SIGKILL."""
        process = self.process
        if process is None or process.poll() is not None:
            return
        tree = self.pids()
        process.terminate()
        try:
            process.wait(STOP_TIMEOUT)
        except subprocess.TimeoutExpired:
            console.print(f"[yellow]{self.label} did not stop in {STOP_TIMEOUT:.0f} s: killed")
        for pid in tree:  # workers left behind by a killed supervisor, too
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
        process.wait()


def ledger_command(*args: str) -> list[str]:
    script = Path(sys.executable).with_name("ledger")
    return [str(script) if script.exists() else shutil.which("ledger") or "ledger", *args]


def run_ledger(env: dict[str, str], work: Path, *args: str) -> str:
    done = subprocess.run(
        ledger_command(*args), env=env, cwd=work, capture_output=True, text=True, timeout=120
    )
    if done.returncode != 0:
        raise RuntimeError(f"ledger {' '.join(args)} failed:\n{done.stdout}{done.stderr}")
    return done.stdout


@contextlib.contextmanager
def running(server: Server, ready_path: str) -> Iterator[Server]:
    try:
        yield server.start(ready_path)
    finally:
        server.stop()


# ================================================================ the load


@dataclass(frozen=True)
class Request:
    method: str
    path: str
    body: bytes = b""
    headers: tuple[tuple[str, str], ...] = ()
    """Sent after the connection's own headers, for this request only."""


@dataclass
class Load:
    """What the connections of one phase saw, in the warm-up or the measured window."""

    latencies: list[float] = field(default_factory=list)
    statuses: Counter[int] = field(default_factory=Counter)
    failures: list[str] = field(default_factory=list)
    first_body: bytes | None = None
    finished: float = 0.0

    def record(self, latency: float, status: int, body: bytes, finished: float) -> None:
        self.latencies.append(latency)
        self.statuses[status] += 1
        self.finished = max(self.finished, finished)
        if 200 <= status < 300:
            if self.first_body is None:
                self.first_body = body
        elif len(self.failures) < 3:
            self.failures.append(f"{status} {body[:300]!r}")

    @property
    def errors(self) -> int:
        return sum(count for status, count in self.statuses.items() if not 200 <= status < 300)


class RawConnection:
    """HTTP/1.1 keep-alive over asyncio streams: the least client work per request."""

    def __init__(self, port: int, headers: dict[str, str]) -> None:
        self.port = port
        common = [f"Host: {HOST}:{port}", *(f"{name}: {value}" for name, value in headers.items())]
        self.head = "\r\n".join(common)
        self.encoded: dict[Request, bytes] = {}
        self.reader: asyncio.StreamReader | None = None
        self.writer: asyncio.StreamWriter | None = None

    def encode(self, request: Request) -> bytes:
        cached = self.encoded.get(request)
        if cached is None:
            length = f"\r\nContent-Length: {len(request.body)}" if request.body else ""
            extra = "".join(f"\r\n{name}: {value}" for name, value in request.headers)
            cached = (
                f"{request.method} {request.path} HTTP/1.1\r\n{self.head}{extra}{length}\r\n\r\n"
            ).encode() + request.body
            if not request.body:
                self.encoded[request] = cached  # the reads repeat one request
        return cached

    async def send(self, request: Request) -> tuple[int, bytes]:
        if self.writer is None:
            self.reader, self.writer = await asyncio.open_connection(HOST, self.port)
        assert self.reader is not None
        self.writer.write(self.encode(request))
        head = await self.reader.readuntil(b"\r\n\r\n")
        status = int(head[9:12])
        length, chunked, close = 0, False, False
        for line in head.split(b"\r\n")[1:]:
            name, _, value = line.partition(b":")
            name = name.strip().lower()
            if name == b"content-length":
                length = int(value)
            elif name == b"transfer-encoding":
                chunked = b"chunked" in value.lower()
            elif name == b"connection":
                close = b"close" in value.lower()
        body = await (self._chunks() if chunked else self.reader.readexactly(length))
        if close:
            self.close()
        return status, body

    async def _chunks(self) -> bytes:
        assert self.reader is not None
        parts = []
        while size := int((await self.reader.readuntil(b"\r\n")).split(b";")[0], 16):
            parts.append((await self.reader.readexactly(size + 2))[:-2])
        await self.reader.readuntil(b"\r\n")  # the empty line after the last chunk
        return b"".join(parts)

    def close(self) -> None:
        if self.writer is not None:
            self.writer.close()
        self.reader = self.writer = None


@dataclass(frozen=True)
class BenchDatabase:
    admin_url: str
    url: str

    @property
    def name(self) -> str:
        return urlsplit(self.url).path.lstrip("/")

    def backends(self) -> list[int]:
        with psycopg.connect(self.admin_url, autocommit=True, connect_timeout=5) as admin:
            rows = admin.execute(
                "SELECT pid FROM pg_stat_activity WHERE datname = %s", (self.name,)
            ).fetchall()
        return [int(row[0]) for row in rows]


class Snapshot:
    """CPU seconds of the client, the server's processes and the database's backends.

    Per process: one that ends in between (a pooled connection closed) is left out.
    """

    def __init__(self, server: Server, db: BenchDatabase) -> None:
        self.client = time.process_time()
        self.server = cpu_seconds(server.pids())
        self.backends = cpu_seconds(db.backends())

    def used_since(self, start: Snapshot) -> dict[str, float]:
        def grown(now: dict[int, float], then: dict[int, float]) -> float:
            return sum(seconds - then.get(pid, 0.0) for pid, seconds in now.items())

        return {
            "client": self.client - start.client,
            "server": grown(self.server, start.server),
            "PostgreSQL": grown(self.backends, start.backends),
        }


# ====================================================================== profile


def start_profiler(
    py_spy: str,
    server: Server,
    label: str,
    directory: Path,
    seconds: float,
    *,
    threads: bool = False,
) -> Any:
    """``py-spy record`` of the server (all threads, its workers too) for ``seconds``.

    With ``threads``, each stack starts with its thread, so shares can be told per thread.
    """
    output = directory / f"{label}.txt"
    command = [
        py_spy, "record", "--pid", str(server.process.pid if server.process else 0),
        "--duration", str(max(1, round(seconds))), "--rate", "200", "--format", "raw",
        "--subprocesses", "--nonblocking", "--output", str(output),
        *(["--threads"] if threads else []),
    ]  # fmt: skip
    return subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL), output


def top_of_profile(path: Path, count: int = 20) -> str:
    """Heaviest frames of a py-spy raw (collapsed) profile: by own samples and inclusive."""
    own: Counter[str] = Counter()
    inclusive: Counter[str] = Counter()
    total = 0
    for line in path.read_text().splitlines():
        stack, _, samples = line.rpartition(" ")
        if not samples.isdigit():
            continue
        n = int(samples)
        frames = [frame for frame in stack.split(";") if frame.strip()]
        total += n
        if frames:
            own[frames[-1]] += n
        for frame in set(frames[1:]):  # the first is the process or thread
            inclusive[frame] += n
    lines = [f"{total} samples; own:"]
    lines += [f"  {n / total:6.1%}  {frame}" for frame, n in own.most_common(count)]
    lines.append("inclusive:")
    lines += [f"  {n / total:6.1%}  {frame}" for frame, n in inclusive.most_common(count)]
    return "\n".join(lines)


def source_fingerprint() -> str:
    """bench/projections.py's short hash of src/ (migrations included), to tell runs apart."""
    spec = importlib.util.spec_from_file_location("bench_projections", BENCH_DIR / "projections.py")
    assert spec is not None
    assert spec.loader is not None
    module: ModuleType = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # its dataclasses look their module up there
    spec.loader.exec_module(module)
    return str(module.source_fingerprint())


# ================================================================== a run's setting


def isolate_run(profile: str | None) -> str | None:
    """Ready a benchmark run; the py-spy to profile with, when ``profile`` names a directory.

    A SIGTERM unwinds like Ctrl-C, so the servers stop and the database is dropped. Library
    and ledger settings from the environment are dropped, and said so: the servers get only
    what the benchmark gives them. Without py-spy, ``--profile`` exits with status 2.
    """
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    removed = scrub_library_overrides()
    settings = sorted(key for key in os.environ if key.startswith("LEDGER_"))
    ignored = [*removed, *(key for key in settings if key != "LEDGER_BENCH_DATABASE_URL")]
    if ignored:
        console.print(
            f"[yellow]ignoring library and ledger settings from the environment: {ignored}"
        )
    if not profile:
        return None
    py_spy = os.environ.get("PY_SPY") or shutil.which("py-spy")
    if py_spy is None:
        console.print("[red]--profile needs py-spy: .venv/bin/pip install py-spy")
        raise SystemExit(2)
    Path(profile).mkdir(parents=True, exist_ok=True)
    return py_spy


def run_context(admin_url: str) -> dict[str, str]:
    """What a run's figures depend on besides the code's own choices: for the record."""
    return {
        "date": date.today().isoformat(),
        "python": platform.python_version(),
        "fastapi": version("fastapi"),
        "uvicorn": version("uvicorn"),
        "eventsourcing": version("eventsourcing"),
        "PostgreSQL": server_version(admin_url).split()[0],
        "src": source_fingerprint(),
    }


def server_env(database_url: str) -> dict[str, str]:
    """This environment without any ``LEDGER_*`` setting, on ``database_url``."""
    env = {key: value for key, value in os.environ.items() if not key.startswith("LEDGER_")}
    env["LEDGER_DATABASE_URL"] = database_url
    return env
