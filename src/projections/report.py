"""The weekly status report of one train, assembled from the projections as plain data.

The HTTP route, the dashboard and ``ledger report`` all call ``weekly_report`` and only
render what it returns (Markdown or HTML templates), so the three never disagree.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time, timedelta
from typing import Any

from ledger.exceptions import NotFound
from ledger.values import IN_SCOPE_STATUSES, Classification, ScopeStatus
from projections.forecast import TrainForecast, forecast
from projections.queries import AUDIT_PAGE_MAX, ProjectionQueries, TimePoint

REPORT_WINDOW = timedelta(days=7)
CYCLE_LABELS = {"phase1": "Phase 1", "phase2": "Phase 2", "golden": "Golden"}


@dataclass(frozen=True)
class GateLine:
    gate: int
    name: str
    scheduled_for: date | None
    original_date: date | None
    slips: list[dict[str, Any]]
    outcome: str | None
    decided_at: datetime | None
    conditions: str | None

    @property
    def slipped(self) -> bool:
        return bool(self.slips)


@dataclass(frozen=True)
class QALine:
    cycle: str
    label: str
    build: str
    total: int
    passed: int
    failed: int
    blocked: int
    rate: float | None
    week_before: float | None
    """The cycle's rate at the start of the report's week; None when it was not run yet."""

    @property
    def change(self) -> float | None:
        if self.rate is None or self.week_before is None:
            return None
        return round(self.rate - self.week_before, 2)

    @property
    def trend(self) -> str:
        change = self.change
        if change is None:
            return "new" if self.week_before is None else "n/a"
        if change > 0:
            return "up"
        return "down" if change < 0 else "flat"


@dataclass(frozen=True)
class Risk:
    kind: str  # stretched, proposed-after-gate-2, anchor-without-beta, qa-blocked
    subject: str  # a feature key or a QA cycle
    title: str | None
    detail: str


@dataclass(frozen=True)
class WeeklyReport:
    train: str
    title: str | None
    kind: str
    parent: str | None
    status: str
    support: str | None
    as_of: datetime
    since: datetime
    is_now: bool
    gates: list[GateLine]
    next_gate: GateLine | None
    next_gate_unmet: list[str]
    changes: list[dict[str, Any]]
    qa: list[QALine]
    effective_rate: float | None
    qa_target: float
    risks: list[Risk]
    beta_drops: list[dict[str, Any]]
    anchors_with_beta: dict[str, list[str]] = field(default_factory=dict)
    forecast: TrainForecast | None = None

    @property
    def qa_trend(self) -> str:
        """Phase 1, then the effective rate after phase 2, then golden: is QA converging?"""
        by_cycle = {line.cycle: line.rate for line in self.qa}
        rates = [
            rate
            for rate in (by_cycle.get("phase1"), self.effective_rate, by_cycle.get("golden"))
            if rate is not None
        ]
        if len(rates) < 2:
            return "not enough cycles yet"
        return "improving" if rates[-1] >= rates[0] else "declining"


def end_of_day(day: date) -> datetime:
    """The last moment of a day in UTC: "as of Nov 8" includes all of Nov 8."""
    return datetime.combine(day, time.max, tzinfo=UTC)


def weekly_report(
    queries: ProjectionQueries,
    train: str,
    as_of: datetime | None = None,
) -> WeeklyReport:
    """The train's report as of ``as_of`` (default now): its week is the 7 days before."""
    is_now = as_of is None
    moment = datetime.now(UTC) if as_of is None else as_of.astimezone(UTC)
    at = TimePoint() if is_now else TimePoint(as_of=moment)
    document = queries.train(train, at)
    since = moment - REPORT_WINDOW

    gates = [
        GateLine(
            g["gate"],
            g["name"],
            g["scheduled_for"],
            g["original_date"],
            list(g["slips"]),
            g["outcome"],
            g["decided_at"],
            g["conditions"],
        )
        for g in document["gates"]
    ]
    next_gate = next((g for g in gates if g.outcome not in ("passed", "conditional")), None)
    unmet = (
        [c.description for c in queries.readiness(train, next_gate.gate, at) if not c.met]
        if next_gate is not None and document["status"] != "released"
        else []
    )

    changes = _decisions(queries, train, since, moment, at)
    qa = _qa_lines(queries, train, document, since)
    titles = {
        entry["feature"]: _title(queries, entry["feature"], at) for entry in document["scope"]
    }
    beta: dict[str, set[str]] = {}
    for drop in document["beta_drops"]:
        for key in drop["features"]:
            beta.setdefault(key, set()).update(drop["customers"])
    risks = _risks(document, titles, beta)
    anchors = {
        entry["feature"]: sorted(beta.get(entry["feature"], ()))
        for entry in document["scope"]
        if entry["classification"] == Classification.ANCHOR and entry["status"] in IN_SCOPE_STATUSES
    }
    return WeeklyReport(
        train=document["train"],
        title=document["title"],
        kind=document["kind"],
        parent=document["parent"],
        status=document["status"],
        support=document["support"],
        as_of=moment,
        since=since,
        is_now=is_now,
        gates=gates,
        next_gate=next_gate if document["status"] != "released" else None,
        next_gate_unmet=unmet,
        changes=changes,
        qa=qa,
        effective_rate=document["qa"]["effective_phase2_rate"],
        qa_target=queries.policy.qa_target,
        risks=risks,
        beta_drops=list(document["beta_drops"]),
        anchors_with_beta=anchors,
        forecast=forecast(queries, train, at) if document["status"] != "released" else None,
    )


def _decisions(
    queries: ProjectionQueries, train: str, since: datetime, until: datetime, at: TimePoint
) -> list[dict[str, Any]]:
    """Every change-management decision about the train that occurred in the window."""
    rows: list[dict[str, Any]] = []
    cursor: int | None = None
    while True:
        page, cursor = queries.audit(
            train=train, since=since, until=until, after=cursor, limit=AUDIT_PAGE_MAX, at=at
        )
        rows.extend(page)
        if cursor is None:
            return sorted(rows, key=lambda row: (row["occurred_at"], row["position"]))


def _qa_lines(
    queries: ProjectionQueries, train: str, document: dict[str, Any], since: datetime
) -> list[QALine]:
    try:
        before = queries.train(train, TimePoint(as_of=since))["qa"]["cycles"]
    except NotFound:
        before = {}
    order = list(CYCLE_LABELS)
    cycles = sorted(document["qa"]["cycles"].items(), key=lambda item: order.index(item[0]))
    return [
        QALine(
            cycle,
            CYCLE_LABELS[cycle],
            run["build"],
            run["total"],
            run["passed"],
            run["failed"],
            run["blocked"],
            run["success_rate"],
            before[cycle]["success_rate"] if cycle in before else None,
        )
        for cycle, run in cycles
    ]


def _title(queries: ProjectionQueries, key: str, at: TimePoint) -> str | None:
    try:
        title: str | None = queries.feature(key, at)["title"]
    except NotFound:
        return None
    return title


def _risks(
    document: dict[str, Any], titles: dict[str, str | None], beta: dict[str, set[str]]
) -> list[Risk]:
    risks: list[Risk] = []
    gate_2_passed = any(
        g["gate"] == 2 and g["outcome"] in ("passed", "conditional") for g in document["gates"]
    )
    for entry in document["scope"]:
        key, status = entry["feature"], entry["status"]
        if status == ScopeStatus.STRETCHED:
            risks.append(Risk("stretched", key, titles.get(key), "stretched: may not make it"))
        if status == ScopeStatus.PROPOSED and gate_2_passed:
            risks.append(
                Risk("proposed", key, titles.get(key), "still proposed after gate 2 passed")
            )
        if (
            entry["classification"] == Classification.ANCHOR
            and status in IN_SCOPE_STATUSES
            and not beta.get(key)
        ):
            risks.append(
                Risk("anchor-without-beta", key, titles.get(key), "anchor without a beta customer")
            )
    # QA results are per cycle, not per feature: blocked tests are the train's risk.
    for cycle, run in document["qa"]["cycles"].items():
        if run["blocked"]:
            risks.append(
                Risk(
                    "qa-blocked",
                    CYCLE_LABELS.get(cycle, cycle),
                    None,
                    f"{run['blocked']:,} of {run['total']:,} tests blocked in QA",
                )
            )
    return risks
