"""Install the ledger as a user does, from its wheel, and run it on PostgreSQL.

Builds the wheel from this source tree, installs it into a new virtualenv outside the tree
(dependencies from the package index, never the tree's own files), and then, on a new
database of the given PostgreSQL server: ``ledger db upgrade``, ``ledger demo``, ``ledger
verify``, ``ledger serve`` until ``/readyz`` answers 200, and one authenticated read of
the demo through the API and the dashboard's sign-in page (a template: package data).
Each step prints one line; a failing step prints its output and exits 1. The database and
the virtualenv are removed at the end.

Usage: python scripts/check_installed.py [--server URL] (default: $LEDGER_TEST_DATABASE_URL,
else postgresql://postgres@127.0.0.1:5432/postgres; a server where databases may be created).
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
import uuid
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

import psycopg

ROOT = Path(__file__).resolve().parents[1]
DEFAULT_SERVER = "postgresql://postgres@127.0.0.1:5432/postgres"
STEP_TIMEOUT = 600.0
READY_TIMEOUT = 120.0


class CheckFailed(Exception):
    """A step of the installed ledger failed; the message holds its output."""


def build_wheel(destination: Path) -> Path:
    """The wheel ``pip install .`` would install, built from this tree into ``destination``."""
    # setuptools copies into build/ and keeps what it finds there: a file since removed
    # from the tree would still ship.
    shutil.rmtree(ROOT / "build", ignore_errors=True)
    run(
        [sys.executable, "-m", "pip", "wheel", "--no-deps", "--quiet", "-w", str(destination), "."],
        cwd=ROOT,
    )
    wheels = sorted(destination.glob("release_ledger-*.whl"))
    if len(wheels) != 1:
        raise CheckFailed(f"expected one wheel in {destination}, found {wheels}")
    return wheels[0]


def install_wheel(wheel: Path, venv: Path) -> Path:
    """A new virtualenv at ``venv`` holding ``wheel`` and its dependencies; its ``ledger``."""
    run([sys.executable, "-m", "venv", str(venv)], cwd=venv.parent)
    run([str(venv / "bin" / "python"), "-m", "pip", "install", "--quiet", str(wheel)], cwd=venv)
    return venv / "bin" / "ledger"


def run(
    command: Sequence[str], cwd: Path, env: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    """Run ``command`` to the end; its output, or CheckFailed with everything it printed."""
    try:
        done = subprocess.run(
            command,
            cwd=cwd,
            env=env,
            capture_output=True,
            text=True,
            timeout=STEP_TIMEOUT,
            check=False,
        )
    except subprocess.TimeoutExpired as expired:
        raise CheckFailed(
            f"{' '.join(command)} did not finish in {STEP_TIMEOUT:.0f} s"
        ) from expired
    if done.returncode != 0:
        raise CheckFailed(
            f"{' '.join(command)} exited with {done.returncode}:\n{done.stdout}{done.stderr}"
        )
    return done


def user_environment(database_url: str) -> dict[str, str]:
    """The environment of a user's shell: the database URL, and nothing of this tree's."""
    env = {key: value for key, value in os.environ.items() if not key.startswith("LEDGER_")}
    env.pop("VIRTUAL_ENV", None)
    env.pop("PYTHONPATH", None)
    return env | {"LEDGER_DATABASE_URL": database_url}


def check_installed_ledger(ledger: Path, database_url: str, workdir: Path) -> None:
    """Upgrade, load the demo, verify and serve the empty database at ``database_url``."""
    env = user_environment(database_url)

    def step(*arguments: str) -> str:
        output = run([str(ledger), *arguments], cwd=workdir, env=env).stdout
        print(f"ok  ledger {' '.join(arguments)}", flush=True)
        return output

    step("db", "upgrade")
    step("demo")
    step("verify")
    token = step("token", "create", "--name", "installed-check", "--role", "reader").strip()
    serve_until_ready(ledger, env, workdir, token)


def serve_until_ready(ledger: Path, env: dict[str, str], workdir: Path, token: str) -> None:
    """``ledger serve`` answers /readyz 200, then a read of the demo and the sign-in page."""
    port = free_port()
    base_url = f"http://127.0.0.1:{port}"
    log_path = workdir / "serve.log"
    with log_path.open("wb") as log:
        server = subprocess.Popen(
            [str(ledger), "serve", "--port", str(port), "--no-login-link"],
            cwd=workdir,
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
        )
    try:
        wait_until_ready(server, base_url, log_path)
        print(f"ok  ledger serve: {base_url}/readyz answered 200", flush=True)
        # Ready means the projections are close to the log's head, not at it: read the
        # demo's train once they have applied the whole log, as a client reads its writes.
        head = json.loads(get(f"{base_url}/v1/events?after=0&limit=1", token))["last_position"]
        train = json.loads(
            read_when_caught_up(f"{base_url}/v1/trains/5.5?min_position={head}", token)
        )
        if train.get("train") != "5.5":
            raise CheckFailed(f"GET /v1/trains/5.5 answered {train}")
        if b"Sign in" not in get(f"{base_url}/login", token):
            raise CheckFailed("GET /login did not render the sign-in page")
        print("ok  GET /v1/trains/5.5, and the dashboard's sign-in page", flush=True)
    except CheckFailed as failed:
        raise CheckFailed(
            f"{failed}\nserver log:\n{log_path.read_text(errors='replace')}"
        ) from None
    finally:
        server.send_signal(signal.SIGTERM)
        try:
            server.wait(timeout=15)
        except subprocess.TimeoutExpired:
            server.kill()
            server.wait()


def wait_until_ready(server: subprocess.Popen[bytes], base_url: str, log_path: Path) -> None:
    deadline = time.monotonic() + READY_TIMEOUT
    while time.monotonic() < deadline:
        if server.poll() is not None:
            raise CheckFailed(f"ledger serve exited with {server.returncode} before it was ready")
        try:
            with urllib.request.urlopen(f"{base_url}/readyz", timeout=2):
                return
        except (urllib.error.URLError, ConnectionError, TimeoutError):
            time.sleep(0.2)
    raise CheckFailed(f"ledger serve was not ready in {READY_TIMEOUT:.0f} s")


def read_when_caught_up(url: str, token: str) -> bytes:
    """GET a read with ``min_position``, asking again while it answers 503 (not yet)."""
    deadline = time.monotonic() + READY_TIMEOUT
    while True:
        try:
            return get(url, token)
        except CheckFailed as failed:
            if " answered 503" not in str(failed) or time.monotonic() > deadline:
                raise


def get(url: str, token: str) -> bytes:
    request = urllib.request.Request(url, headers={"Authorization": f"Bearer {token}"})
    try:
        with urllib.request.urlopen(request, timeout=30) as response:
            body: bytes = response.read()
            return body
    except urllib.error.HTTPError as error:
        raise CheckFailed(f"GET {url} answered {error.code}: {error.read()[:500]!r}") from None


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


@contextmanager
def new_database(server: str) -> Iterator[str]:
    """The URL of a new, empty database on ``server``, dropped on leaving."""
    name = f"ledger_installed_{uuid.uuid4().hex[:12]}"
    with psycopg.connect(server, autocommit=True) as admin:
        admin.execute(f'CREATE DATABASE "{name}"')
    try:
        yield urlunsplit(urlsplit(server)._replace(path=f"/{name}"))
    finally:
        with psycopg.connect(server, autocommit=True) as admin:
            admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--server", default=os.environ.get("LEDGER_TEST_DATABASE_URL", DEFAULT_SERVER)
    )
    arguments = parser.parse_args(argv)
    started = time.monotonic()
    with tempfile.TemporaryDirectory(prefix="ledger-installed-") as temporary:
        outside = Path(temporary)
        try:
            wheel = build_wheel(outside / "dist")
            print(f"ok  built {wheel.name}", flush=True)
            ledger = install_wheel(wheel, outside / "venv")
            print(f"ok  installed it into {outside / 'venv'}", flush=True)
            with new_database(arguments.server) as database_url:
                check_installed_ledger(ledger, database_url, outside)
        except CheckFailed as failed:
            print(f"the installed ledger failed: {failed}", file=sys.stderr)
            return 1
    print(f"the installed ledger works on PostgreSQL ({time.monotonic() - started:.0f} s)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
