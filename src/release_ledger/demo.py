"""``ledger demo``: a realistic, fictional history of release trains 5.1 to 5.6 (SPEC §8).

Arcstone Systems, a fictional storage vendor, ships Arcstone OS in release trains. The
history is a script: one list of dated steps per train, each step one public command of
the ledger. ``load_demo`` merges the lists, orders them by date and runs them.

Days are counted relative to ``today`` (negative is the past), so the demo always looks
current: 5.4 shipped a few weeks ago, 5.5 heads for code freeze, 5.6 is being planned.
Every step carries the source reference ``demo:<n>``, its place in that order; the ledger
answers a known reference with the earlier result, so loading the demo again records
nothing and an interrupted load resumes where it stopped. Changing the script renumbers
the steps after the change, so a ledger holding an older demo wants a fresh database.

Every company, customer and person here is invented.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta

from ledger.application import CommandContext, CommandResult, CustomerAsk, ReleaseLedger
from ledger.exceptions import LedgerError
from ledger.metadata import Source
from ledger.values import TrainKind

__all__ = ["DemoRefused", "DemoSummary", "demo_steps", "load_demo"]

RECORDED_BY = "demo"

# The working day a demo day is laid out on: the first step of a day happens at 08:00
# UTC and each further step of that day ten minutes later, so no two events of the
# history share a moment and the latest one (yesterday) is always in the past.
WORKDAY_START = time(8, 0)
STEP_INTERVAL = timedelta(minutes=10)

# Where a kind of step falls in its working day, so same-day steps happen in the order
# a team works: plan, schedule, collect scope, decide it, ship betas, test, hold the
# gate board, and change support once a release is out.
PLAN, SCHEDULE, SCOPE, DECISION, BETA, QA, MILESTONE, GATE, SUPPORT = range(9)

# ------------------------------------------------------------------------- people

PRIYA = "Priya Raman"  # release program manager, chairs the gate board
MARTA = "Marta Okafor"  # product manager, data services
DANIEL = "Daniel Brandt"  # product manager, platform
HIROSHI = "Hiroshi Tanaka"  # director of engineering
INGRID = "Ingrid Solberg"  # QA lead
LEO = "Leo Fontaine"  # beta program manager
GRACE = "Grace Liu"  # sustaining engineering lead: minors, hotfixes, support
AMARA = "Amara Nwosu"  # CTO, the only one who grants an exception after code freeze
JONAS = "Jonas Weber"  # account executive for Helios Bank

# ---------------------------------------------------------------------- customers

HELIOS = "Helios Bank"
ORION = "Orion Telecom"
BLUEFIN = "Bluefin Health"
KESTREL = "Kestrel Media"
GRANITE = "Granite Mutual Insurance"
LUMEN = "Lumen Genomics"
POLARIS = "Polaris Retail Group"
TIDEWATER = "Tidewater Energy"
RIDGEVIEW = "Ridgeview University"
MERIDIAN = "Meridian Pharma"
VANTAGE = "Vantage Federal Credit Union"
SABLE = "Sable Logistics"


# ------------------------------------------------------------------------- steps

Command = Callable[[ReleaseLedger, CommandContext, date], CommandResult]


@dataclass(frozen=True)
class Step:
    """One dated command of the demo history."""

    day: int  # relative to today; negative is the past
    moment: int  # where in its working day this kind of step happens (PLAN … SUPPORT)
    description: str
    run: Command  # given the ledger, the step's context and today
    plans_kind: str | None = None  # the kind of train a planning step plans
    feature: str | None = None  # the feature a scope step names


def _on(today: date, day: int) -> date:
    return today + timedelta(days=day)


def ask(customer: str, weight: float, note: str | None = None) -> CustomerAsk:
    """A customer's demand; ``weight`` is the account's temperature from 1 (mild) to 10."""
    return CustomerAsk(customer, weight, note)


def plan(
    day: int,
    train: str,
    kind: TrainKind,
    *,
    title: str,
    gates: dict[int, int],
    parent: str | None = None,
    by: str = PRIYA,
) -> list[Step]:
    """Plan a train and schedule its gates (``gates`` maps gate number to target day)."""

    def run(ledger: ReleaseLedger, context: CommandContext, today: date) -> CommandResult:
        return ledger.plan_train(train, kind, by, parent=parent, title=title, context=context)

    steps = [Step(day, PLAN, f"plan {kind} {train}", run, plans_kind=str(kind))]
    steps += [schedule(day, train, gate, target, by=by) for gate, target in gates.items()]
    return steps


def schedule(day: int, train: str, gate: int, target: int, *, by: str = PRIYA) -> Step:
    def run(ledger: ReleaseLedger, context: CommandContext, today: date) -> CommandResult:
        return ledger.schedule_gate(train, gate, _on(today, target), by, context=context)

    return Step(day, SCHEDULE, f"schedule gate {gate} of {train}", run)


def slip(day: int, train: str, gate: int, *, to: int, reason: str, by: str = PRIYA) -> Step:
    """Reschedule a gate to day ``to``: the slip is recorded with its reason."""

    def run(ledger: ReleaseLedger, context: CommandContext, today: date) -> CommandResult:
        return ledger.schedule_gate(train, gate, _on(today, to), by, reason=reason, context=context)

    return Step(day, SCHEDULE, f"reschedule gate {gate} of {train}", run)


def gate(
    day: int,
    train: str,
    number: int,
    outcome: str,
    *,
    conditions: str | None = None,
    notes: str | None = None,
    by: str = PRIYA,
) -> Step:
    def run(ledger: ReleaseLedger, context: CommandContext, today: date) -> CommandResult:
        return ledger.decide_gate(
            train, number, outcome, by, conditions=conditions, notes=notes, context=context
        )

    return Step(day, GATE, f"decide gate {number} of {train} {outcome}", run)


def propose(
    day: int,
    train: str,
    feature: str,
    classification: str,
    title: str,
    *customers: CustomerAsk,
    by: str = MARTA,
) -> Step:
    def run(ledger: ReleaseLedger, context: CommandContext, today: date) -> CommandResult:
        return ledger.propose_scope(
            train, feature, classification, by, title=title, customers=customers, context=context
        )

    return Step(day, SCOPE, f"propose {feature} for {train}", run, feature=feature)


def demand(day: int, feature: str, customer: CustomerAsk, *, by: str = MARTA) -> Step:
    def run(ledger: ReleaseLedger, context: CommandContext, today: date) -> CommandResult:
        return ledger.record_customer_demand(
            feature, customer.name, customer.weight, by, note=customer.note, context=context
        )

    return Step(day, SCOPE, f"record {customer.name}'s demand for {feature}", run, feature=feature)


def add(
    day: int,
    train: str,
    feature: str,
    title: str,
    *customers: CustomerAsk,
    reason: str,
    by: str,
    requested_by: str | None = None,
    exception: bool = False,
) -> Step:
    """A late addition after gate 1; after code freeze only as an ``exception``."""

    def run(ledger: ReleaseLedger, context: CommandContext, today: date) -> CommandResult:
        return ledger.decide(
            train,
            feature,
            "add",
            by,
            reason=reason,
            requested_by=requested_by,
            exception=exception,
            title=title,
            customers=customers,
            context=context,
        )

    return Step(day, SCOPE, f"add {feature} to {train}", run, feature=feature)


def commit(
    day: int, train: str, *features: str, by: str = HIROSHI, reason: str | None = None
) -> list[Step]:
    """Commit each of ``features`` to ``train``, one decision each."""

    def committing(feature: str) -> Step:
        def run(ledger: ReleaseLedger, context: CommandContext, today: date) -> CommandResult:
            return ledger.decide(train, feature, "commit", by, reason=reason, context=context)

        return Step(day, DECISION, f"commit {feature} to {train}", run, feature=feature)

    return [committing(feature) for feature in features]


def _decision(
    day: int,
    action: str,
    train: str,
    feature: str,
    *,
    reason: str,
    by: str,
    requested_by: str | None,
    to_train: str | None = None,
) -> Step:
    def run(ledger: ReleaseLedger, context: CommandContext, today: date) -> CommandResult:
        return ledger.decide(
            train,
            feature,
            action,
            by,
            reason=reason,
            to_train=to_train,
            requested_by=requested_by,
            context=context,
        )

    where = f"{train} to {to_train}" if to_train else train
    return Step(day, DECISION, f"{action} {feature} in {where}", run, feature=feature)


def stretch(
    day: int, train: str, feature: str, *, reason: str, by: str, requested_by: str | None = None
) -> Step:
    return _decision(
        day, "stretch", train, feature, reason=reason, by=by, requested_by=requested_by
    )


def drop(
    day: int, train: str, feature: str, *, reason: str, by: str, requested_by: str | None = None
) -> Step:
    return _decision(day, "drop", train, feature, reason=reason, by=by, requested_by=requested_by)


def move(
    day: int,
    train: str,
    feature: str,
    *,
    to: str,
    reason: str,
    by: str,
    requested_by: str | None = None,
) -> Step:
    return _decision(
        day, "move", train, feature, reason=reason, by=by, requested_by=requested_by, to_train=to
    )


def beta(
    day: int, train: str, build: str, customers: list[str], features: list[str], *, by: str = LEO
) -> Step:
    def run(ledger: ReleaseLedger, context: CommandContext, today: date) -> CommandResult:
        return ledger.ship_beta_drop(train, build, customers, features, by, context=context)

    return Step(day, BETA, f"ship beta drop {build} of {train}", run)


@dataclass(frozen=True)
class QACounts:
    """The counts of one QA run."""

    total: int
    passed: int
    failed: int
    blocked: int

    @property
    def failures(self) -> int:
        return self.failed + self.blocked


def results(total: int, *, passing: float, blocked_share: float = 0.15) -> QACounts:
    """Counts of a run of ``total`` tests of which the share ``passing`` passed.

    Some of what did not pass was blocked (an environment or dependency problem)
    rather than failed, as in any real QA report.
    """
    passed = round(total * passing)
    blocked = round((total - passed) * blocked_share)
    return QACounts(total, passed, total - passed - blocked, blocked)


def rerun(phase1: QACounts, *, fixed: float) -> QACounts:
    """Phase 2: only phase 1's failures run again, and the share ``fixed`` now pass."""
    return results(phase1.failures, passing=fixed)


def qa(
    day: int, train: str, cycle: str, build: str, run_counts: QACounts, *, by: str = INGRID
) -> Step:
    def run(ledger: ReleaseLedger, context: CommandContext, today: date) -> CommandResult:
        return ledger.record_qa_run(
            train,
            cycle,
            build,
            run_counts.total,
            run_counts.passed,
            run_counts.failed,
            by,
            blocked=run_counts.blocked,
            context=context,
        )

    return Step(day, QA, f"record QA {cycle} of {train} on {build}", run)


def milestone(
    day: int, feature: str, train: str, name: str, *, note: str, by: str = HIROSHI
) -> Step:
    def run(ledger: ReleaseLedger, context: CommandContext, today: date) -> CommandResult:
        return ledger.deliver_milestone(feature, train, name, by, note=note, context=context)

    return Step(day, MILESTONE, f"deliver {name!r} of {feature} in {train}", run, feature=feature)


def support(
    day: int,
    train: str,
    status: str,
    *,
    reason: str,
    eol: int | None = None,
    by: str = GRACE,
) -> Step:
    """Move a released train's support on; ``eol`` is the day its end of life takes effect."""

    def run(ledger: ReleaseLedger, context: CommandContext, today: date) -> CommandResult:
        eol_date = None if eol is None else _on(today, eol)
        return ledger.change_support(train, status, by, reason, eol_date=eol_date, context=context)

    return Step(day, SUPPORT, f"change support of {train} to {status}", run)


MAJOR, MINOR, HOTFIX = TrainKind.MAJOR, TrainKind.MINOR, TrainKind.HOTFIX
ANCHOR, COMMITTED, STRETCH = "anchor", "committed", "stretch"


# ====================================================================== majors
#
# Each script reads as the train's story, one command per paragraph; "fmt: skip" keeps
# the formatter from spreading every argument over a line of its own.


def andesite_5_1() -> list[Step]:
    """5.1, released long ago; since 5.4 shipped it gets hotfixes only."""
    phase1 = results(21_020, passing=0.902)
    return [
        *plan(-445, "5.1", MAJOR, title="Andesite", gates={1: -420, 2: -389, 3: -340, 4: -295}),
        propose(-443, "5.1", "STOR-101", ANCHOR, "NVMe-oF target for block volumes",
                ask(ORION, 8, "NVMe-oF is a must-have for the 5G core rollout"),
                ask(KESTREL, 5)),
        propose(-443, "5.1", "REPL-105", ANCHOR, "Asynchronous replication to a second site",
                ask(TIDEWATER, 5, "Disaster-recovery site required by the grid regulator"),
                ask(GRANITE, 6)),
        propose(-440, "5.1", "SNAP-102", COMMITTED, "Snapshot schedules per volume group",
                by=DANIEL),
        propose(-440, "5.1", "NAS-103", COMMITTED, "SMB 3.1.1 multichannel", ask(POLARIS, 4)),
        propose(-438, "5.1", "MGMT-104", STRETCH, "Capacity forecasting dashboard",
                ask(RIDGEVIEW, 2), by=DANIEL),
        slip(-425, "5.1", 1, to=-413,
             reason="Orion Telecom's NVMe-oF requirements workshop moved by a week; the "
             "scope review waits for it"),
        gate(-413, "5.1", 1, "passed", notes="Two anchors, both with named customers."),
        *commit(-392, "5.1", "STOR-101", "REPL-105", "SNAP-102", "NAS-103"),
        drop(-390, "5.1", "MGMT-104", by=DANIEL,
             reason="No UX designer until the third quarter and no deal depends on it; back "
             "to the product backlog"),
        gate(-389, "5.1", 2, "passed"),
        beta(-375, "5.1", "5.1.0-b1", [ORION], ["STOR-101"]),
        beta(-361, "5.1", "5.1.0-b2", [ORION, TIDEWATER], ["STOR-101", "REPL-105"]),
        qa(-355, "5.1", "phase1", "5.1.0-b3", phase1),
        qa(-347, "5.1", "phase2", "5.1.0-b4", rerun(phase1, fixed=0.83)),
        gate(-340, "5.1", 3, "passed"),
        qa(-298, "5.1", "golden", "5.1.0-rc2", results(21_040, passing=0.9652)),
        gate(-295, "5.1", 4, "passed", notes="Generally available."),
        support(-25, "5.1", "hotfix_only",
                reason="Major minus two: 5.4 is generally available, so 5.1 receives security "
                "and data-integrity hotfixes only"),
    ]  # fmt: skip


def basalt_5_2() -> list[Step]:
    """5.2: the release gate is postponed once for a golden run below target."""
    phase1 = results(21_105, passing=0.887)
    return [
        *plan(-355, "5.2", MAJOR, title="Basalt", gates={1: -327, 2: -299, 3: -250, 4: -209}),
        propose(-352, "5.2", "OBJ-201", ANCHOR, "S3-compatible object gateway",
                ask(LUMEN, 4, "Sequencer output lands in S3 buckets"),
                ask(MERIDIAN, 7, "Replacing a public-cloud archive")),
        propose(-352, "5.2", "SEC-202", COMMITTED, "External key manager (KMIP) integration",
                ask(HELIOS, 9, "The regulator requires keys held outside the array")),
        propose(-350, "5.2", "STOR-203", COMMITTED,
                "Space reclamation (UNMAP) for VMware datastores", ask(SABLE, 5), by=DANIEL),
        propose(-350, "5.2", "NAS-204", STRETCH, "NFSv4.2 server-side copy",
                ask(RIDGEVIEW, 3, "Research clusters copy multi-terabyte data sets")),
        propose(-348, "5.2", "MGMT-205", COMMITTED, "REST API v2 with an OpenAPI description",
                by=DANIEL),
        gate(-327, "5.2", 1, "passed"),
        demand(-320, "OBJ-201", ask(KESTREL, 5, "Wants an archive tier for finished footage")),
        *commit(-300, "5.2", "OBJ-201", "SEC-202", "STOR-203", "MGMT-205"),
        stretch(-300, "5.2", "NAS-204", by=HIROSHI,
                reason="Depends on the kernel NFS server upgrade, which lands late in the train"),
        gate(-299, "5.2", 2, "passed"),
        beta(-285, "5.2", "5.2.0-b1", [LUMEN, MERIDIAN], ["OBJ-201"]),
        qa(-270, "5.2", "phase1", "5.2.0-b3", phase1),
        qa(-262, "5.2", "phase2", "5.2.0-b4", rerun(phase1, fixed=0.79)),
        move(-258, "5.2", "NAS-204", to="5.3", by=HIROSHI, requested_by=RIDGEVIEW,
             reason="The kernel NFS upgrade slipped past 5.2 code freeze; 5.3 picks it up "
             "together with the new kernel"),
        gate(-250, "5.2", 3, "passed"),
        qa(-212, "5.2", "golden", "5.2.0-rc2", results(21_130, passing=0.9541)),
        gate(-209, "5.2", 4, "postponed",
             notes="Golden run below the 96 % target: three multipart-upload regressions in "
             "the object gateway. Release after the fix and a golden re-run."),
        slip(-208, "5.2", 4, to=-205,
             reason="Object gateway fix verified; golden re-run scheduled"),
        qa(-207, "5.2", "golden", "5.2.0-rc3", results(21_130, passing=0.9662)),
        gate(-205, "5.2", 4, "passed", notes="Generally available."),
    ]  # fmt: skip


def cobalt_5_3() -> list[Step]:
    """5.3: a conditional scope review, and a failed code freeze before it passed."""
    phase1 = results(21_180, passing=0.881)
    return [
        *plan(-265, "5.3", MAJOR, title="Cobalt", gates={1: -237, 2: -209, 3: -160, 4: -115}),
        propose(-262, "5.3", "REPL-301", ANCHOR, "Synchronous replication (metro cluster)",
                ask(HELIOS, 10, "Zero data loss required for the payments platform"),
                ask(ORION, 8)),
        propose(-262, "5.3", "SNAP-302", ANCHOR, "Immutable snapshots against ransomware"),
        propose(-260, "5.3", "STOR-303", COMMITTED, "Inline compression for all-flash pools",
                ask(SABLE, 5, "Expects 2:1 on its warehouse-management databases"), by=DANIEL),
        propose(-260, "5.3", "MGMT-304", STRETCH, "Multi-tenant role-based access control",
                ask(POLARIS, 5), by=DANIEL),
        propose(-255, "5.3", "OBJ-305", COMMITTED, "Object lock (WORM) for S3 buckets",
                ask(MERIDIAN, 7, "GxP records retention")),
        gate(-237, "5.3", 1, "conditional",
             conditions="SNAP-302 has no named customer yet: product brings one by gate 2, or "
             "it stops being an anchor",
             notes="The board keeps SNAP-302 as an anchor: three prospects asked for it this "
             "quarter."),
        demand(-225, "SNAP-302",
               ask(BLUEFIN, 7, "A peer hospital was hit by ransomware; their board asks for "
                   "immutable backups")),
        demand(-221, "SNAP-302", ask(GRANITE, 6)),
        drop(-215, "5.3", "MGMT-304", by=HIROSHI, requested_by="Security architecture board",
             reason="Security review: tenants need their own encryption keys, which the design "
             "lacks; restarted as SEC-401 for 5.4"),
        *commit(-210, "5.3", "REPL-301", "SNAP-302", "STOR-303", "NAS-204"),
        stretch(-210, "5.3", "OBJ-305", by=HIROSHI,
                reason="Needs the S3 versioning rework first; best effort in 5.3"),
        gate(-209, "5.3", 2, "passed"),
        beta(-195, "5.3", "5.3.0-b1", [HELIOS, ORION], ["REPL-301"]),
        beta(-182, "5.3", "5.3.0-b2", [BLUEFIN, GRANITE], ["SNAP-302"]),
        qa(-175, "5.3", "phase1", "5.3.0-b5", phase1),
        *commit(-170, "5.3", "OBJ-305",
                reason="The S3 versioning rework merged; object lock is in"),
        qa(-167, "5.3", "phase2", "5.3.0-b6", rerun(phase1, fixed=0.45)),
        gate(-160, "5.3", 3, "failed",
             notes="Effective rate after phase 2 is about 93 %: the metro-cluster failover "
             "suite is still red. Fix, then re-run phase 2."),
        slip(-159, "5.3", 3, to=-153,
             reason="Gate 3 failed; one week to fix metro-cluster failover and re-run phase 2"),
        qa(-156, "5.3", "phase2", "5.3.0-b8", rerun(phase1, fixed=0.84)),
        gate(-153, "5.3", 3, "passed", notes="Failover suite green after the fix."),
        qa(-118, "5.3", "golden", "5.3.0-rc1", results(21_190, passing=0.9628)),
        gate(-115, "5.3", 4, "passed", notes="Generally available."),
    ]  # fmt: skip


def dolomite_5_4() -> list[Step]:
    """5.4, shipped recently: a frozen train takes a big-deal feature by exception."""
    phase1 = results(21_240, passing=0.893)
    return [
        *plan(-175, "5.4", MAJOR, title="Dolomite", gates={1: -147, 2: -119, 3: -77, 4: -25}),
        propose(-172, "5.4", "SEC-401", ANCHOR, "Multi-tenant RBAC with per-tenant keys",
                ask(HELIOS, 9),
                ask(POLARIS, 6, "Runs each franchise as a tenant")),
        propose(-172, "5.4", "STOR-402", ANCHOR, "Inline deduplication v2",
                ask(KESTREL, 5), ask(SABLE, 5), ask(TIDEWATER, 4)),
        propose(-170, "5.4", "REPL-403", COMMITTED, "Replication bandwidth schedules",
                ask(TIDEWATER, 5, "Shares a 1 Gbit/s link with SCADA traffic")),
        propose(-170, "5.4", "NAS-404", COMMITTED, "SMB continuous availability for Hyper-V",
                ask(POLARIS, 6)),
        propose(-168, "5.4", "OBJ-405", STRETCH, "S3 bucket replication", ask(LUMEN, 4)),
        propose(-168, "5.4", "MGMT-406", COMMITTED, "Ansible collection for day-2 operations",
                by=DANIEL),
        propose(-165, "5.4", "STOR-408", COMMITTED, "QLC flash capacity tier", ask(KESTREL, 3),
                by=DANIEL),
        gate(-147, "5.4", 1, "passed"),
        add(-135, "5.4", "NAS-409", "Kerberos constrained delegation for SMB",
            ask(BLUEFIN, 7, "Audit finding; blocks a 2,000-seat VDI rollout"),
            by=MARTA, requested_by=BLUEFIN,
            reason="Bluefin Health's auditors flagged unconstrained delegation; their VDI "
            "rollout waits for it"),
        drop(-121, "5.4", "STOR-408", by=HIROSHI,
             reason="QLC drive qualification with the supplier slipped to next year; nothing "
             "to ship on"),
        *commit(-120, "5.4", "SEC-401", "STOR-402", "REPL-403", "NAS-404"),
        stretch(-120, "5.4", "MGMT-406", by=DANIEL,
                reason="Documentation and certification are not staffed this train"),
        stretch(-120, "5.4", "OBJ-405", by=HIROSHI,
                reason="The object team lost two engineers to metro-cluster escalations"),
        gate(-119, "5.4", 2, "passed"),
        beta(-104, "5.4", "5.4.0-b1", [HELIOS, POLARIS], ["SEC-401"]),
        beta(-92, "5.4", "5.4.0-b2", [KESTREL, SABLE], ["STOR-402", "SEC-401"]),
        slip(-85, "5.4", 3, to=-70,
             reason="Phase 1 starts a week late: the QA lab moved racks"),
        qa(-84, "5.4", "phase1", "5.4.0-b3", phase1),
        move(-80, "5.4", "OBJ-405", to="5.5", by=HIROSHI,
             reason="Not ready for code freeze; 5.5 takes it with cloud tiering, which shares "
             "its replication engine"),
        qa(-76, "5.4", "phase2", "5.4.0-b4", rerun(phase1, fixed=0.78)),
        gate(-70, "5.4", 3, "passed", notes="Code freeze. Engineers move to 5.5."),
        add(-62, "5.4", "SNAP-430", "Legal hold on immutable snapshots",
            ask(HELIOS, 10, "Expansion deal of $4.2M signed on condition of legal hold in 5.4"),
            by=AMARA, requested_by=JONAS, exception=True,
            reason="Helios Bank's expansion depends on legal hold before its regulator's "
            "audit; exception to code freeze granted, delivered in three milestones"),
        milestone(-55, "SNAP-430", "5.4", "M1: legal-hold API and CLI",
                  note="In beta build 5.4.0-b5 for Helios Bank"),
        beta(-52, "5.4", "5.4.0-b5", [HELIOS], ["SNAP-430", "SEC-401"]),
        milestone(-42, "SNAP-430", "5.4", "M2: audit log and compliance report",
                  note="Helios Bank's compliance office reviewed the report format"),
        milestone(-31, "SNAP-430", "5.4", "M3: management UI and documentation",
                  note="Helios Bank accepted the beta; ready for release"),
        move(-28, "5.4", "MGMT-406", to="5.5", by=DANIEL,
             reason="The Ansible collection was not certified in time for 5.4; it ships with 5.5"),
        qa(-27, "5.4", "golden", "5.4.0-rc2", results(21_265, passing=0.9637)),
        gate(-25, "5.4", 4, "passed", notes="Generally available."),
    ]  # fmt: skip


def emerald_5_5() -> list[Step]:
    """5.5, heading for code freeze: gates 1 and 2 passed, gate 3 slipped once."""
    phase1 = results(21_310, passing=0.896)
    return [
        *plan(-85, "5.5", MAJOR, title="Emerald", gates={1: -60, 2: -29, 3: 2, 4: 55}),
        propose(-83, "5.5", "STOR-501", ANCHOR, "NVMe/TCP host connectivity",
                ask(ORION, 8, "Standardising on NVMe/TCP in every data centre"),
                ask(KESTREL, 6)),
        propose(-83, "5.5", "REPL-502", ANCHOR, "Cloud tiering to object storage",
                ask(TIDEWATER, 5), ask(LUMEN, 4, "Cold sequencing runs to cheap storage")),
        propose(-81, "5.5", "SEC-503", COMMITTED, "FIPS 140-3 validated crypto module",
                ask(VANTAGE, 4, "Federal examiners require FIPS validation"),
                ask(MERIDIAN, 7)),
        propose(-81, "5.5", "NAS-504", COMMITTED, "NFS over RDMA", ask(RIDGEVIEW, 3)),
        propose(-79, "5.5", "MGMT-505", STRETCH, "Predictive drive-failure alerts", by=DANIEL),
        propose(-78, "5.5", "STOR-506", COMMITTED, "Erasure coding 8+3 for capacity pools",
                ask(SABLE, 5), by=DANIEL),
        slip(-64, "5.5", 1, to=-57,
             reason="The cloud-tiering design review needs one more week"),
        gate(-57, "5.5", 1, "passed"),
        demand(-50, "REPL-502", ask(HELIOS, 7, "Wants cold snapshots in its private cloud")),
        add(-45, "5.5", "SEC-507", "SAML single sign-on for the management UI",
            ask(POLARIS, 6, "Renewal in the fourth quarter"),
            by=MARTA, requested_by=POLARIS,
            reason="Polaris Retail Group's security team requires SSO before it renews"),
        drop(-35, "5.5", "NAS-504", by=HIROSHI,
             reason="RDMA NIC drivers are not in the 5.5 kernel and no customer has a date; "
             "re-proposed for 5.6"),
        *commit(-30, "5.5", "STOR-501", "REPL-502", "SEC-503", "OBJ-405"),
        stretch(-30, "5.5", "MGMT-505", by=DANIEL,
                reason="The data-science team staffs cloud tiering first"),
        gate(-29, "5.5", 2, "conditional",
             conditions="STOR-506 is still proposed: the storage team sizes EC 8+3 within two "
             "weeks, then it is committed or moved",
             notes="Everything else is committed, stretched or dropped."),
        beta(-20, "5.5", "5.5.0-b1", [ORION], ["STOR-501"]),
        slip(-12, "5.5", 3, to=9,
             reason="Beta 1 found NVMe/TCP reconnect stalls under load; the driver fix needs "
             "a week before freeze"),
        move(-10, "5.5", "STOR-506", to="5.6", by=HIROSHI,
             reason="Sized at two quarters of work; EC 8+3 builds on the new layout of 5.6"),
        beta(-8, "5.5", "5.5.0-b2", [ORION, KESTREL, TIDEWATER], ["STOR-501", "REPL-502"]),
        qa(-6, "5.5", "phase1", "5.5.0-b3", phase1),
        qa(-2, "5.5", "phase2", "5.5.0-b4", rerun(phase1, fixed=0.74)),
    ]  # fmt: skip


def feldspar_5_6() -> list[Step]:
    """5.6, in planning: proposals collected for its scope review."""
    return [
        *plan(-14, "5.6", MAJOR, title="Feldspar", gates={1: 20, 2: 48, 3: 95, 4: 140}),
        propose(-13, "5.6", "STOR-601", ANCHOR, "Scale-out with disaggregated controllers",
                ask(ORION, 8), ask(HELIOS, 9, "Consolidating four data centres into two")),
        propose(-12, "5.6", "SNAP-602", ANCHOR, "Cyber vault: air-gapped snapshot copies",
                ask(BLUEFIN, 7), ask(GRANITE, 6),
                ask(HELIOS, 8, "Regulator's operational-resilience rules")),
        propose(-9, "5.6", "OBJ-603", COMMITTED, "S3 Select pushdown", ask(LUMEN, 4)),
        propose(-7, "5.6", "MGMT-604", STRETCH, "Power and carbon reporting", ask(POLARIS, 3),
                by=DANIEL),
        propose(-4, "5.6", "NAS-504", COMMITTED, "NFS over RDMA",
                ask(LUMEN, 3, "GPU cluster ingest")),
        demand(-3, "STOR-601", ask(TIDEWATER, 4)),
    ]  # fmt: skip


# ============================================================ minors and hotfixes


def minors_5_3() -> list[Step]:
    first, second = results(21_200, passing=0.912), results(21_220, passing=0.915)
    return [
        *plan(-100, "5.3.1", MINOR, parent="5.3", title="5.3 maintenance 1", gates={4: -72},
              by=GRACE),
        propose(-98, "5.3.1", "STOR-311", COMMITTED, "Faster drive rebuild for 20 TB drives",
                ask(SABLE, 4), by=GRACE),
        propose(-97, "5.3.1", "REPL-312", COMMITTED, "Metro-cluster witness as a virtual machine",
                ask(HELIOS, 8, "No third site for a physical witness"), by=GRACE),
        *commit(-90, "5.3.1", "STOR-311", "REPL-312", by=GRACE),
        qa(-84, "5.3.1", "phase1", "5.3.1-b1", first),
        qa(-80, "5.3.1", "phase2", "5.3.1-b2", rerun(first, fixed=0.86)),
        slip(-76, "5.3.1", 4, to=-70, by=GRACE,
             reason="Waiting for the supplier's firmware for the 20 TB drives"),
        qa(-74, "5.3.1", "golden", "5.3.1-rc1", results(21_200, passing=0.9641)),
        gate(-70, "5.3.1", 4, "passed", by=GRACE),
        *plan(-45, "5.3.2", MINOR, parent="5.3", title="5.3 maintenance 2", gates={4: -15},
              by=GRACE),
        propose(-44, "5.3.2", "NAS-321", COMMITTED,
                "SMB durable handles survive controller failover", ask(POLARIS, 5), by=GRACE),
        propose(-43, "5.3.2", "OBJ-322", COMMITTED, "Object-lock retention report export",
                ask(MERIDIAN, 6), by=GRACE),
        *commit(-38, "5.3.2", "NAS-321", "OBJ-322", by=GRACE),
        qa(-30, "5.3.2", "phase1", "5.3.2-b1", second),
        qa(-26, "5.3.2", "phase2", "5.3.2-b2", rerun(second, fixed=0.88)),
        qa(-18, "5.3.2", "golden", "5.3.2-rc1", results(21_220, passing=0.9655)),
        gate(-15, "5.3.2", 4, "passed", by=GRACE),
        support(-15, "5.3.1", "hotfix_only",
                reason="Superseded by 5.3.2; fixes for 5.3.1 only as hotfixes"),
    ]  # fmt: skip


def minors_5_4() -> list[Step]:
    first, second = results(21_265, passing=0.921), results(21_270, passing=0.908)
    return [
        *plan(-20, "5.4.1", MINOR, parent="5.4", title="5.4 maintenance 1", gates={4: -6},
              by=GRACE),
        propose(-19, "5.4.1", "STOR-411", COMMITTED, "Deduplication metadata compaction",
                ask(KESTREL, 5, "Metadata growth filled a pool at a post-production studio"),
                by=GRACE),
        propose(-19, "5.4.1", "SEC-412", COMMITTED, "Per-tenant key rotation schedule",
                ask(HELIOS, 8), by=GRACE),
        *commit(-17, "5.4.1", "STOR-411", "SEC-412", by=GRACE),
        qa(-15, "5.4.1", "phase1", "5.4.1-b1", first),
        qa(-12, "5.4.1", "phase2", "5.4.1-b2", rerun(first, fixed=0.87)),
        qa(-8, "5.4.1", "golden", "5.4.1-rc1", results(21_265, passing=0.9648)),
        gate(-6, "5.4.1", 4, "passed", by=GRACE),
        *plan(-10, "5.4.2", MINOR, parent="5.4", title="5.4 maintenance 2", gates={4: 9},
              by=GRACE),
        propose(-9, "5.4.2", "NAS-421", COMMITTED,
                "SMB continuous-availability failover under 10 seconds", ask(POLARIS, 6),
                by=GRACE),
        propose(-8, "5.4.2", "MGMT-422", COMMITTED, "Call-home through an HTTPS proxy",
                ask(VANTAGE, 3, "Branch sites reach the internet only through a proxy"),
                by=GRACE),
        *commit(-5, "5.4.2", "NAS-421", "MGMT-422", by=GRACE),
        qa(-3, "5.4.2", "phase1", "5.4.2-b1", second),
    ]  # fmt: skip


def hotfixes() -> list[Step]:
    return [
        *plan(-80, "5.1.7-hf1", HOTFIX, parent="5.1", title="5.1.7 hotfix 1", gates={4: -70},
              by=GRACE),
        propose(-80, "5.1.7-hf1", "STOR-171", COMMITTED,
                "Fix: controller panic on an NVMe-oF reconnect storm",
                ask(ORION, 8, "Two outages in one week on the 5G core"), by=GRACE),
        qa(-72, "5.1.7-hf1", "golden", "5.1.7-hf1-rc1", results(21_020, passing=0.9681)),
        gate(-70, "5.1.7-hf1", 4, "passed", by=GRACE),
        *plan(-50, "5.2.4-hf1", HOTFIX, parent="5.2", title="5.2.4 hotfix 1", gates={4: -40},
              by=GRACE),
        propose(-50, "5.2.4-hf1", "OBJ-241", COMMITTED,
                "Fix: multipart uploads over 5 GiB lose their last part",
                ask(LUMEN, 4, "Lost two sequencing runs"), by=GRACE),
        qa(-43, "5.2.4-hf1", "golden", "5.2.4-hf1-rc1", results(21_130, passing=0.9661)),
        gate(-40, "5.2.4-hf1", 4, "passed", by=GRACE),
        *plan(-18, "5.1.7-hf2", HOTFIX, parent="5.1", title="5.1.7 hotfix 2", gates={4: -11},
              by=GRACE),
        propose(-18, "5.1.7-hf2", "SEC-172",  COMMITTED,
                "Fix: TLS renegotiation flaw in the management service (advisory ARC-SA-41)",
                by=GRACE),
        qa(-13, "5.1.7-hf2", "golden", "5.1.7-hf2-rc1", results(21_020, passing=0.9672)),
        gate(-11, "5.1.7-hf2", 4, "passed", by=GRACE),
        support(-11, "5.1.7-hf1", "eol", eol=-11,
                reason="Superseded by 5.1.7-hf2, which contains its fix"),
    ]  # fmt: skip


# ======================================================================= loading


def demo_steps() -> list[Step]:
    """Every step of the demo, in the order they happen (and are numbered)."""
    script = [
        *andesite_5_1(),
        *basalt_5_2(),
        *cobalt_5_3(),
        *dolomite_5_4(),
        *emerald_5_5(),
        *feldspar_5_6(),
        *minors_5_3(),
        *minors_5_4(),
        *hotfixes(),
    ]
    # sorted() is stable: steps of the same day and moment keep their script order.
    return sorted(script, key=lambda step: (step.day, step.moment))


@dataclass(frozen=True)
class DemoSummary:
    """What loading the demo did: ``recorded`` new events, ``replayed`` known commands."""

    commands: int
    recorded: int
    replayed: int
    trains: int
    majors: int
    minors: int
    hotfixes: int
    features: int

    @property
    def already_loaded(self) -> bool:
        return self.recorded == 0 and self.replayed == self.commands

    def describe(self) -> str:
        """One line for people."""
        if self.already_loaded:
            return "demo history already loaded: nothing new recorded"
        line = (
            f"demo history: {self.recorded:,} events recorded in {self.majors} majors, "
            f"{self.minors} minors, {self.hotfixes} hotfixes, {self.features} features"
        )
        if self.replayed:
            line += f" ({self.replayed:,} of {self.commands:,} commands were already loaded)"
        return line


class DemoRefused(LedgerError):
    """The ledger refused a demo step, most likely because it already holds other history."""

    code = "demo-refused"


def load_demo(
    ledger: ReleaseLedger,
    today: date | None = None,
    progress: Callable[[int, int], None] | None = None,
) -> DemoSummary:
    """Record the demo history into ``ledger``; steps it already holds are not recorded again.

    ``progress`` is called with (steps done, steps in all) after every step.
    """
    today = today or ledger.clock().astimezone(UTC).date()
    steps = demo_steps()
    moments = list(_occurrences(steps, today))
    if moments and moments[-1] > ledger.clock():
        raise DemoRefused(
            f"the demo history would end at {moments[-1].isoformat()}, in the future; "
            "lay it out relative to today or an earlier day"
        )
    recorded = replayed = 0
    for number, (step, occurred_at) in enumerate(zip(steps, moments, strict=True), start=1):
        context = CommandContext(
            recorded_by=RECORDED_BY,
            source=Source.DEMO,
            source_ref=f"demo:{number}",
            occurred_at=occurred_at,
        )
        try:
            result = step.run(ledger, context, today)
        except LedgerError as error:
            raise DemoRefused(
                f"demo step {number} ({step.description}) was refused: {error.detail}"
            ) from error
        if result.replayed:
            replayed += 1
        else:
            recorded += len(result.events)
        if progress is not None:
            progress(number, len(steps))
    kinds = [step.plans_kind for step in steps if step.plans_kind is not None]
    return DemoSummary(
        commands=len(steps),
        recorded=recorded,
        replayed=replayed,
        trains=len(kinds),
        majors=kinds.count(TrainKind.MAJOR),
        minors=kinds.count(TrainKind.MINOR),
        hotfixes=kinds.count(TrainKind.HOTFIX),
        features=len({step.feature for step in steps if step.feature is not None}),
    )


def _occurrences(steps: list[Step], today: date) -> list[datetime]:
    """When each step happened: its day, at the next free slot of that working day."""
    moments = []
    slot, previous_day = 0, None
    for step in steps:
        slot = slot + 1 if step.day == previous_day else 0
        previous_day = step.day
        start = datetime.combine(_on(today, step.day), WORKDAY_START, tzinfo=UTC)
        moments.append(start + slot * STEP_INTERVAL)
    return moments
