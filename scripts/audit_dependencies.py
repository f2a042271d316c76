"""Audit the installed packages for known vulnerabilities with pip-audit, offline-tolerant.

Runs pip-audit on the environment of the Python that runs this script (the project's own
editable install is left out) and turns its JSON report into one verdict:

- exit 1: a package has a known vulnerability; each is listed with the versions that fix it;
- exit 0: none found; a warning when the vulnerability database could not be reached
  (no network, a blocked service, or no answer in time), saying how many packages were
  audited all the same, so an offline build still passes and still says it was not checked;
- exit 2: pip-audit failed for any other reason; its standard error is shown.

pip-audit alone would not do: offline it reports every package as skipped and then
"No known vulnerabilities found", which reads like a pass.

Usage: python scripts/audit_dependencies.py [--timeout SECONDS] [-- PIP_AUDIT_OPTION ...]
(after ``--``, options for pip-audit itself, such as ``-s osv`` for another database).
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import os
import re
import signal
import subprocess
import sys
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

DEFAULT_TIMEOUT = 120.0
PIP_AUDIT = ("--format", "json", "--progress-spinner", "off", "--skip-editable")
EDITABLE = "marked as editable"  # pip-audit's skip reason for --skip-editable: not a miss
# What requests, urllib3 and pip-audit itself say when the service cannot be reached, or
# answers with a server error: either way nothing was checked, and CI should not fail on it.
NETWORK_ERROR = re.compile(
    r"ConnectionError|NameResolutionError|Failed to resolve|Name or service not known"
    r"|Temporary failure in name resolution|Max retries exceeded|Connection refused"
    r"|Network is unreachable|ConnectTimeout|ReadTimeout|timed out|Could not connect"
    r"|network may be blocking|5[0-9][0-9] Server Error",
    re.IGNORECASE,
)

CLEAN, VULNERABLE, FAILED = 0, 1, 2


@dataclass(frozen=True)
class AuditRun:
    """What pip-audit left behind; ``returncode`` is None when it was stopped at the limit."""

    returncode: int | None
    stdout: str
    stderr: str


@dataclass(frozen=True)
class Finding:
    package: str
    version: str
    id: str
    aliases: tuple[str, ...]
    fix_versions: tuple[str, ...]

    def line(self) -> str:
        also = f" ({', '.join(self.aliases)})" if self.aliases else ""
        fixed = f"fixed in {', '.join(self.fix_versions)}" if self.fix_versions else "no fix yet"
        return f"  {self.package} {self.version}: {self.id}{also}; {fixed}"


@dataclass(frozen=True)
class Report:
    """pip-audit's JSON report, reduced to what the verdict needs."""

    audited: tuple[str, ...]
    not_audited: tuple[str, ...]
    findings: tuple[Finding, ...]


@dataclass(frozen=True)
class Verdict:
    exit_code: int
    lines: tuple[str, ...]


class MalformedReport(ValueError):
    """The report is not the JSON pip-audit documents."""


def parse_report(text: str) -> Report:
    """The packages audited, those that could not be, and each vulnerability found."""
    try:
        document = json.loads(text)
    except json.JSONDecodeError as error:
        raise MalformedReport(f"not JSON: {error}") from None
    if not isinstance(document, dict) or not isinstance(document.get("dependencies"), list):
        raise MalformedReport("no 'dependencies' list")
    audited: list[str] = []
    not_audited: list[str] = []
    findings: list[Finding] = []
    for dependency in document["dependencies"]:
        name = _text(dependency, "name")
        if "skip_reason" in dependency:
            if EDITABLE not in _text(dependency, "skip_reason"):
                not_audited.append(name)
            continue
        version = _text(dependency, "version")
        vulns = dependency.get("vulns")
        if not isinstance(vulns, list):
            raise MalformedReport(f"{name}: neither 'vulns' nor 'skip_reason'")
        audited.append(name)
        findings.extend(
            Finding(
                name,
                version,
                _text(vuln, "id"),
                tuple(str(alias) for alias in vuln.get("aliases", [])),
                tuple(str(fixed) for fixed in vuln.get("fix_versions", [])),
            )
            for vuln in vulns
        )
    return Report(tuple(audited), tuple(not_audited), tuple(findings))


def _text(entry: Any, key: str) -> str:
    if not isinstance(entry, dict) or not isinstance(entry.get(key), str):
        raise MalformedReport(f"an entry without a string {key!r}: {entry!r}")
    value: str = entry[key]
    return value


def judge(run: AuditRun) -> Verdict:
    """The verdict on one pip-audit run: clean, unreachable, vulnerable or failed."""
    if run.returncode is None:
        return _unreachable(f"{run.stderr.strip()}; no package was audited")
    report: Report | None = None
    problem = "it printed no report"
    if run.stdout.strip():
        try:
            report = parse_report(run.stdout)
        except MalformedReport as error:
            problem = f"its report was not understood ({error})"
    if report is not None and report.findings:
        return _vulnerable(report)
    if run.returncode != 0:
        if NETWORK_ERROR.search(run.stderr):
            return _unreachable(f"pip-audit could not connect ({_last_line(run.stderr)})")
        return _failed(f"pip-audit exited with {run.returncode}", run.stderr)
    if report is None:
        return _failed(f"pip-audit exited with 0 but {problem}", run.stderr)
    if report.not_audited:
        return _unreachable(_coverage(report))
    return Verdict(
        CLEAN, (f"no known vulnerabilities in {_count(len(report.audited), 'package')}",)
    )


def _coverage(report: Report) -> str:
    total = len(report.audited) + len(report.not_audited)
    missed = f"{len(report.not_audited)} of {total} packages could not be audited"
    if not report.audited:
        return f"{missed}; none was checked"
    return f"{missed}; the {len(report.audited)} audited have no known vulnerabilities"


def _vulnerable(report: Report) -> Verdict:
    packages = {finding.package for finding in report.findings}
    lines = [
        f"found {_count(len(report.findings), 'known vulnerability', 'known vulnerabilities')} "
        f"in {len(packages)} of {_count(len(report.audited), 'audited package')}:",
        *(finding.line() for finding in report.findings),
    ]
    if report.not_audited:
        lines.append(
            f"warning: {_count(len(report.not_audited), 'more package')} could not be audited "
            "(vulnerability database unreachable)"
        )
    return Verdict(VULNERABLE, tuple(lines))


def _unreachable(detail: str) -> Verdict:
    return Verdict(CLEAN, (f"warning: vulnerability database unreachable: {detail}",))


def _failed(summary: str, stderr: str) -> Verdict:
    shown = stderr.strip() or "(nothing on standard error)"
    return Verdict(FAILED, (f"error: the dependency audit failed: {summary}:", shown))


def _count(number: int, one: str, many: str | None = None) -> str:
    return f"{number} {one if number == 1 else (many or one + 's')}"


def _last_line(text: str) -> str:
    lines = [line.strip() for line in text.splitlines() if line.strip()]
    return lines[-1] if lines else ""


def run_pip_audit(
    arguments: Sequence[str] = (), *, timeout: float = DEFAULT_TIMEOUT, python: str = sys.executable
) -> AuditRun:
    """pip-audit on ``python``'s environment, stopped after ``timeout`` seconds."""
    command = [python, "-m", "pip_audit", *PIP_AUDIT, *arguments]
    # A session of its own, so that the limit also ends the pip that pip-audit runs.
    with subprocess.Popen(
        command,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        start_new_session=True,
    ) as process:
        try:
            stdout, stderr = process.communicate(timeout=timeout)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            process.communicate()
            return AuditRun(None, "", f"pip-audit did not finish within {timeout:g} s")
    return AuditRun(process.returncode, stdout, stderr)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--timeout",
        type=float,
        default=DEFAULT_TIMEOUT,
        help=f"seconds to wait for pip-audit before calling the database unreachable "
        f"(default {DEFAULT_TIMEOUT:g})",
    )
    parser.add_argument(
        "pip_audit_options",
        nargs="*",
        metavar="PIP_AUDIT_OPTION",
        help="given to pip-audit after its own (put them after --)",
    )
    options = parser.parse_args(argv)
    if importlib.util.find_spec("pip_audit") is None:
        print(
            f"error: pip-audit is not installed for {sys.executable}: run pip install -e '.[dev]'",
            file=sys.stderr,
        )
        return FAILED
    verdict = judge(run_pip_audit(options.pip_audit_options, timeout=options.timeout))
    stream = sys.stderr if verdict.exit_code == FAILED else sys.stdout
    for line in verdict.lines:
        print(line, file=stream)
    return verdict.exit_code


if __name__ == "__main__":
    sys.exit(main())
