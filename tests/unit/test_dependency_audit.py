"""The dependency audit: pip-audit's report becomes one verdict, offline included.

The verdict is judged on reports shaped as pip-audit 2.x writes them (``--format json``:
``{"dependencies": [{"name", "version", "vulns": [{"id", "fix_versions", "aliases",
"description"}]} | {"name", "skip_reason"}], "fixes": []}``). The last tests run the real
pip-audit against a fake vulnerability database on loopback (its OSV query API), since the
real databases cannot be reached from every build.
"""

from __future__ import annotations

import json
import socket
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from importlib.metadata import version
from pathlib import Path
from typing import Any

import pytest

from scripts.audit_dependencies import (
    AuditRun,
    MalformedReport,
    Verdict,
    judge,
    main,
    parse_report,
)

EDITABLE = {"name": "release-ledger", "skip_reason": "distribution marked as editable"}


def offline(name: str, installed: str) -> dict[str, str]:
    """A package as pip-audit reports it when the database answers nothing for it."""
    return {
        "name": name,
        "skip_reason": "Dependency not found on PyPI and could not be audited: "
        f"{name} ({installed})",
    }


def clean(name: str, installed: str) -> dict[str, Any]:
    return {"name": name, "version": installed, "vulns": []}


JINJA_ADVISORY = {
    "id": "GHSA-h5c8-rqwp-cp95",
    "fix_versions": ["3.1.3"],
    "aliases": ["CVE-2024-22195"],
    "description": "Jinja vulnerable to HTML attribute injection when passing user input "
    "as keys to xmlattr filter",
}


def report(*dependencies: dict[str, Any]) -> str:
    return json.dumps({"dependencies": list(dependencies), "fixes": []})


def audited(stdout: str, returncode: int = 0, stderr: str = "") -> Verdict:
    return judge(AuditRun(returncode, stdout, stderr))


# ================================================================ the verdict


def test_a_clean_report_passes_naming_how_many_were_audited() -> None:
    """Every package audited and none vulnerable: exit 0, the count, the editable left out."""
    verdict = audited(
        report(clean("alembic", "1.20.1"), clean("jinja2", "3.1.6"), EDITABLE),
        stderr="No known vulnerabilities found\n",
    )

    assert verdict == Verdict(0, ("no known vulnerabilities in 2 packages",))


def test_a_vulnerable_package_fails_with_its_version_id_and_fix() -> None:
    """Exit 1 listing package, version, advisory with its aliases, and the fixed versions."""
    verdict = audited(
        report(
            clean("alembic", "1.20.1"),
            {"name": "jinja2", "version": "3.1.2", "vulns": [JINJA_ADVISORY]},
            {
                "name": "orjson",
                "version": "3.9.10",
                "vulns": [{"id": "PYSEC-2099-1", "fix_versions": [], "aliases": []}],
            },
            EDITABLE,
        ),
        returncode=1,
        stderr="Found 2 known vulnerabilities in 2 packages\n",
    )

    assert verdict == Verdict(
        1,
        (
            "found 2 known vulnerabilities in 2 of 3 audited packages:",
            "  jinja2 3.1.2: GHSA-h5c8-rqwp-cp95 (CVE-2024-22195); fixed in 3.1.3",
            "  orjson 3.9.10: PYSEC-2099-1; no fix yet",
        ),
    )


def test_an_unreachable_database_warns_and_passes() -> None:
    """Every package skipped, as offline: exit 0 with a warning saying none was checked."""
    verdict = audited(
        report(offline("alembic", "1.20.1"), offline("anyio", "4.16.0"), EDITABLE),
        stderr="No known vulnerabilities found\n",
    )

    assert verdict == Verdict(
        0,
        (
            "warning: vulnerability database unreachable: "
            "2 of 2 packages could not be audited; none was checked",
        ),
    )


def test_a_partial_audit_warns_and_says_how_many_were_audited() -> None:
    """Some packages skipped, the rest clean: exit 0, the skipped and the audited counted."""
    verdict = audited(
        report(clean("alembic", "1.20.1"), clean("anyio", "4.16.0"), offline("rich", "14.1.0"))
    )

    assert verdict == Verdict(
        0,
        (
            "warning: vulnerability database unreachable: 1 of 3 packages could not be "
            "audited; the 2 audited have no known vulnerabilities",
        ),
    )


def test_vulnerabilities_fail_even_when_other_packages_were_skipped() -> None:
    """A finding is a failure whatever else could not be checked; the misses are noted."""
    verdict = audited(
        report(
            {"name": "jinja2", "version": "3.1.2", "vulns": [JINJA_ADVISORY]}, offline("a", "1")
        ),
        returncode=1,
    )

    assert verdict.exit_code == 1
    assert verdict.lines[-1] == (
        "warning: 1 more package could not be audited (vulnerability database unreachable)"
    )


NAME_RESOLUTION_FAILURE = """Traceback (most recent call last):
  File ".venv/lib/python3.11/site-packages/requests/adapters.py", line 729, in send
    raise ConnectionError(e, request=request)
requests.exceptions.ConnectionError: HTTPSConnectionPool(host='vulns.example', port=443): \
Max retries exceeded with url: /v1/query (Caused by NameResolutionError("HTTPSConnection(\
host='vulns.example', port=443): Failed to resolve 'vulns.example' ([Errno -2] Name or \
service not known)"))
"""
SERVICE_CONNECT_TIMEOUT = """Could not connect to OSV's vulnerability feed
Tip: your network may be blocking this service. Try another service with `-s SERVICE`
"""

SERVICE_DOWN = """requests.exceptions.HTTPError: 503 Server Error: Service Unavailable for url: \
https://vulns.example/v1/query
"""


@pytest.mark.parametrize("stderr", [NAME_RESOLUTION_FAILURE, SERVICE_CONNECT_TIMEOUT, SERVICE_DOWN])
def test_pip_audit_failing_on_the_network_warns_and_passes(stderr: str) -> None:
    """A connection error or a server error ending pip-audit is an unreachable database,
    quoted in one line."""
    verdict = audited("", returncode=1, stderr=stderr)

    assert verdict.exit_code == 0
    (line,) = verdict.lines
    assert line.startswith("warning: vulnerability database unreachable: pip-audit could not")
    assert stderr.strip().splitlines()[-1] in line


def test_pip_audit_out_of_time_warns_and_passes() -> None:
    """Stopped at the time limit, pip-audit audited nothing, and the warning says so."""
    verdict = judge(AuditRun(None, "", "pip-audit did not finish within 120 s"))

    assert verdict == Verdict(
        0,
        (
            "warning: vulnerability database unreachable: "
            "pip-audit did not finish within 120 s; no package was audited",
        ),
    )


@pytest.mark.parametrize(
    ("stdout", "returncode", "stderr", "summary"),
    [
        (
            "",
            1,
            "ERROR:pip_audit._cli:failed to list installed distributions\n",
            "pip-audit exited with 1",
        ),
        ("", 2, "pip-audit: error: unrecognized arguments: --bogus\n", "pip-audit exited with 2"),
        (
            report(clean("alembic", "1.20.1")),
            1,
            "requests.exceptions.JSONDecodeError: Expecting value\n",
            "pip-audit exited with 1",
        ),
        ("", 0, "", "pip-audit exited with 0 but it printed no report"),
        ("[1, 2]", 0, "", "its report was not understood (no 'dependencies' list)"),
    ],
)
def test_any_other_failure_of_pip_audit_is_an_error_showing_its_stderr(
    stdout: str, returncode: int, stderr: str, summary: str
) -> None:
    """Exit 2 with what went wrong and pip-audit's own standard error."""
    verdict = audited(stdout, returncode, stderr)

    assert verdict.exit_code == 2
    assert verdict.lines[0].startswith("error: the dependency audit failed: ")
    assert summary in verdict.lines[0]
    assert verdict.lines[1] == (stderr.strip() or "(nothing on standard error)")


@pytest.mark.parametrize(
    "text",
    [
        "not json",
        '{"fixes": []}',
        '{"dependencies": [{"name": "a"}]}',
        '{"dependencies": [{"name": "a", "version": "1", "vulns": [{"fix_versions": []}]}]}',
        '{"dependencies": [{"version": "1", "vulns": []}]}',
    ],
)
def test_a_report_of_another_shape_is_refused(text: str) -> None:
    """A report missing what the verdict reads is never taken for a clean one."""
    with pytest.raises(MalformedReport):
        parse_report(text)


# ================================================== the real pip-audit, on loopback


@dataclass
class FakeVulnerabilityDatabase:
    """An OSV-style query API on loopback: one POST per package, answers from ``advisories``."""

    advisories: dict[str, list[dict[str, Any]]] = field(default_factory=dict)
    garbled: bool = False
    asked: list[str] = field(default_factory=list)
    url: str = ""


@pytest.fixture
def database() -> Iterator[FakeVulnerabilityDatabase]:
    fake = FakeVulnerabilityDatabase()

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            query = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
            name = query["package"]["name"]
            fake.asked.append(name)
            vulns = fake.advisories.get(name)
            body = b"<html>" if fake.garbled else json.dumps({"vulns": vulns} if vulns else {})
            payload = body if isinstance(body, bytes) else body.encode()
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(payload)))
            self.end_headers()
            self.wfile.write(payload)

        def log_message(self, format: str, *args: Any) -> None:
            pass  # the test reads ``asked`` instead

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    fake.url = f"http://127.0.0.1:{server.server_address[1]}/v1/query"
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield fake
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=5)


def run_script(url: str, cache: Path, capsys: pytest.CaptureFixture[str]) -> tuple[int, str]:
    """The script on this environment against ``url``; its exit code and all it printed."""
    exit_code = main(
        ["--timeout", "60", "--", "-s", "osv", "--osv-url", url, "--cache-dir", str(cache)]
    )
    printed = capsys.readouterr()
    return exit_code, printed.out + printed.err


def test_the_real_pip_audit_finding_a_vulnerability_fails_the_audit(
    database: FakeVulnerabilityDatabase, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """An advisory for the installed jinja2 makes the script exit 1 naming it and its fix."""
    database.advisories["jinja2"] = [
        {
            "id": "GHSA-0000-0000-0000",
            "summary": "a test advisory",
            "aliases": ["CVE-2099-0001"],
            "affected": [
                {
                    "package": {"name": "jinja2", "ecosystem": "PyPI"},
                    "ranges": [
                        {"type": "ECOSYSTEM", "events": [{"introduced": "0"}, {"fixed": "99.0"}]}
                    ],
                }
            ],
        }
    ]

    exit_code, printed = run_script(database.url, tmp_path, capsys)

    assert exit_code == 1, printed
    assert f"found 1 known vulnerability in 1 of {len(database.asked)} audited packages" in printed
    # pip-audit puts the CVE first when the advisory has one.
    assert (
        f"  jinja2 {version('jinja2')}: CVE-2099-0001 (GHSA-0000-0000-0000); fixed in 99.0"
        in printed
    )


def test_the_real_pip_audit_finding_nothing_passes_counting_every_package(
    database: FakeVulnerabilityDatabase, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """Exit 0 and the number of packages the database was asked about, the project left out."""
    exit_code, printed = run_script(database.url, tmp_path, capsys)

    assert exit_code == 0, printed
    assert printed == f"no known vulnerabilities in {len(database.asked)} packages\n"
    assert "jinja2" in database.asked
    assert "release-ledger" not in database.asked


def test_the_real_pip_audit_without_a_database_warns_and_passes(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """Nothing listening on the database's port is an unreachable database: exit 0, warned."""
    with socket.socket() as unused:
        unused.bind(("127.0.0.1", 0))
        port = unused.getsockname()[1]

    exit_code, printed = run_script(f"http://127.0.0.1:{port}/v1/query", tmp_path, capsys)

    assert exit_code == 0, printed
    assert printed.startswith("warning: vulnerability database unreachable: pip-audit could not")
    assert printed.count("\n") == 1


def test_the_real_pip_audit_failing_otherwise_is_an_error(
    database: FakeVulnerabilityDatabase, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """A database answering garbage makes pip-audit fail: exit 2 with its traceback shown."""
    database.garbled = True

    exit_code, printed = run_script(database.url, tmp_path, capsys)

    assert exit_code == 2, printed
    assert printed.startswith("error: the dependency audit failed: pip-audit exited with 1:")
    assert "JSONDecodeError" in printed


def test_the_real_pip_audit_stopped_at_the_limit_warns_and_passes(
    capsys: pytest.CaptureFixture[str],
) -> None:
    """A limit shorter than pip-audit needs ends it; the audit warns and passes."""
    exit_code = main(["--timeout", "0.05"])

    assert exit_code == 0
    assert capsys.readouterr().out == (
        "warning: vulnerability database unreachable: "
        "pip-audit did not finish within 0.05 s; no package was audited\n"
    )
