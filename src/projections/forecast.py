"""The forecast of a train (SPEC §11): its undecided gates' dates, its golden run, the overlap.

The ledger holds every past train's first scheduled dates and the days its gates were
decided, so how late a gate ran on past trains of the same kind is the evidence of how late
it will run on this one. Nothing here is fitted or tuned: the past is resampled.

**Slips.** A past gate's slip is the UTC calendar day of its passing decision (``passed``
or ``conditional``; a failed or postponed gate is still to be decided) minus the date it was
first scheduled for, in days. The sample of gate N is that slip on every other train of the
same kind that passed gate N by ``as_of``; with fewer than ``MIN_SAMPLE`` trains the gate
gets no dates, only the reason.

**Trajectories.** ``DRAWS`` trajectories, each drawing one slip per undecided gate from its
sample (with replacement, gates independently). In a trajectory a decided gate's date is
the day it was decided, and an undecided gate's date is the latest of:

- its first scheduled date + the drawn slip. The sample's slips run from the first date,
  so they are added to this gate's first date: added to a target that already slipped
  they would count that slip twice;
- its current target: a gate the team moved later is not forecast before it (with too
  small a sample this is the gate's only date, a slip of nothing);
- the previous gate's date in the trajectory + the plan's spacing (this target minus the
  previous gate's): a late gate pushes the next one, and the earlier gates' drawn slips
  are carried forward. A gate without a target breaks the chain: the next gate has no
  spacing to keep;
- the ``as_of`` day: an undecided gate is not decided in the past.

**Quantiles.** Nearest rank on the sorted trajectory dates: Pp is the ⌈p·n/100⌉-th
smallest of the n dates (P50 of 10,000 is the 5,000th), always a date some trajectory
reached, never an interpolation between two.

**Golden run.** A past train's gain is its golden rate minus its phase-1 rate (percent
points), over the other trains of the same kind that have both. The probability is the
share of draws in which this train's phase-1 rate plus a drawn gain reaches the target.
A train whose golden run is recorded needs no forecast: 1.0 or 0.0 by its actual rate.

**Overlap alignment.** The seed's rule: the next major's gate 1 (scope review) falls inside
this major's code freeze, from its gate 3 to its gate 4, so the engineers freed at code
freeze have a scoped train to move to. Each of the three dates is the decided day, else
the forecast P50, else the scheduled date; the next major is the smallest major id above
this one, compared as version numbers (5.10 comes after 5.9).

**Determinism.** Every draw comes from ``random.Random(seed)`` in a fixed order (gates by
number, each sample in train order), so the same documents and ``as_of`` give the same
answer, byte for byte. The golden run has a generator of its own, from the same seed, so a
change in the gates' draws does not move it.
"""

from __future__ import annotations

import random
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from datetime import UTC, date, datetime
from typing import Any

from ledger.exceptions import NotFound
from ledger.values import PASSING_OUTCOMES, QACycle, TrainKind, TrainStatus
from projections.documents import TrainDocument
from projections.queries import ProjectionQueries, TimePoint

DRAWS = 10_000
SEED = 20_111_108
"""Any fixed number would do: fixed, the same ledger always gives the same forecast."""
MIN_SAMPLE = 3
"""Past trains a gate (or the golden run) needs before the forecast gives it dates."""
PERCENTILES = (50, 80, 95)
CODE_FREEZE_GATE, RELEASE_GATE, SCOPE_REVIEW_GATE = 3, 4, 1
_FIRST_DAY, _LAST_DAY = date.min.toordinal(), date.max.toordinal()


@dataclass(frozen=True)
class GateForecast:
    """An undecided gate's P50, P80 and P95 dates, and the past trains they came from."""

    gate: int
    name: str
    scheduled_for: date | None
    p50: date | None
    p80: date | None
    p95: date | None
    sample_trains: tuple[str, ...]
    sample_size: int
    reason: str | None
    """Why there are no dates; None when there are."""


@dataclass(frozen=True)
class GoldenForecast:
    """The probability that the golden run reaches the QA target."""

    probability: float | None  # 0..1
    phase1_rate: float | None  # percent, as the train's document has it
    target: float  # percent
    sample_trains: tuple[str, ...]
    sample_size: int
    reason: str | None


@dataclass(frozen=True)
class OverlapAlignment:
    """Whether the next major's scope review falls inside this major's code freeze."""

    next_major: str | None
    code_freeze_from: date | None  # this train's gate 3: decided, else P50, else scheduled
    code_freeze_until: date | None  # its gate 4, the same way
    next_gate1: date | None  # the next major's gate 1, the same way
    aligned: bool | None  # None when a date is missing
    detail: str


@dataclass(frozen=True)
class TrainForecast:
    """A train's forecast as of one moment, and the draws and seed it was made with."""

    train: str
    kind: str
    as_of: datetime
    gates: tuple[GateForecast, ...]  # undecided gates only
    golden: GoldenForecast
    overlap: OverlapAlignment | None  # majors only
    draws: int
    seed: int

    def as_dict(self) -> dict[str, Any]:
        """JSON-ready: dates and moments as ISO strings, tuples as lists."""
        ready: dict[str, Any] = _json_ready(asdict(self))
        return ready


def forecast(queries: ProjectionQueries, train: str, at: TimePoint) -> TrainForecast:
    """The forecast of ``train`` from the ledger as it stood at ``at`` (as of now by default)."""
    document = queries.train(train, at)  # an unknown train is not found here
    as_of = (at.as_of or datetime.now(UTC)).astimezone(UTC)
    others = [d for d in queries.trains(kind=document["kind"], at=at) if d["train"] != train]
    return forecast_from([document, *others], train, as_of, queries.policy.qa_target)


def open_forecasts(queries: ProjectionQueries, at: TimePoint) -> dict[str, TrainForecast]:
    """The forecast of every train not yet released, from one read of the trains (the
    timeline draws them all)."""
    as_of = (at.as_of or datetime.now(UTC)).astimezone(UTC)
    return open_forecasts_from(queries.trains(at=at), as_of, queries.policy.qa_target)


def open_forecasts_from(
    documents: Sequence[TrainDocument], as_of: datetime, qa_target: float
) -> dict[str, TrainForecast]:
    """``open_forecasts`` from train documents already read (as of ``as_of``)."""
    return {
        document["train"]: forecast_from(documents, document["train"], as_of, qa_target)
        for document in documents
        if document["status"] != TrainStatus.RELEASED
    }


def forecast_from(
    documents: Sequence[TrainDocument],
    train: str,
    as_of: datetime,
    qa_target: float,
    draws: int = DRAWS,
    seed: int = SEED,
) -> TrainForecast:
    """The forecast of ``train`` from train documents (its own among them) as of ``as_of``.

    The documents should be as of ``as_of`` too; whatever was decided or run after it is
    left out all the same.
    """
    if draws < 1:
        raise ValueError(f"a forecast needs at least one draw, not {draws}")
    subject = next((d for d in documents if d["train"] == train), None)
    if subject is None:
        raise NotFound(f"train {train} is not among the documents to forecast from")
    peers = [d for d in documents if d["kind"] == subject["kind"]]
    gates = _gate_forecasts(subject, peers, as_of, draws, seed)
    return TrainForecast(
        train=train,
        kind=subject["kind"],
        as_of=as_of,
        gates=tuple(gates.values()),
        golden=_golden(subject, peers, as_of, qa_target, draws, seed),
        overlap=(
            _overlap(subject, gates, peers, as_of, draws, seed)
            if subject["kind"] == TrainKind.MAJOR
            else None
        ),
        draws=draws,
        seed=seed,
    )


def version_key(train: str) -> tuple[tuple[int, ...], str]:
    """A train id as a version, for ordering: 5.9 < 5.10 < 6.0, and 5.1.7 < 5.1.7-hf2."""
    number, _, suffix = train.partition("-")
    return tuple(int(part) for part in number.split(".")), suffix


# ---------------------------------------------------------------------- gates


@dataclass(frozen=True)
class _GatePlan:
    """What the simulation needs of one gate of the train forecast."""

    gate: int
    name: str
    scheduled_for: date | None
    first_date: date | None
    decided_on: date | None
    sample: tuple[tuple[str, int], ...]  # (past train, slip in days), in train order

    @property
    def sampled(self) -> bool:
        return len(self.sample) >= MIN_SAMPLE


def _gate_forecasts(
    subject: TrainDocument,
    peers: Sequence[TrainDocument],
    as_of: datetime,
    draws: int,
    seed: int,
) -> dict[int, GateForecast]:
    """The forecast of each gate ``subject`` has not decided by ``as_of``, by gate number."""
    plans = [
        _GatePlan(
            gate["gate"],
            gate["name"],
            gate["scheduled_for"],
            gate["original_date"],
            decided_day(gate, as_of),
            _slips(peers, subject["train"], gate["gate"], as_of),
        )
        for gate in sorted(subject["gates"], key=lambda gate: gate["gate"])
    ]
    dates = _trajectories(plans, as_of.astimezone(UTC).date(), draws, random.Random(seed))
    return {
        plan.gate: _gate_forecast(plan, dates.get(plan.gate), subject["kind"], as_of)
        for plan in plans
        if plan.decided_on is None
    }


def decided_day(gate: dict[str, Any], as_of: datetime) -> date | None:
    """The UTC day a gate passed (or passed with conditions) by ``as_of``; None if it did not."""
    decided_at: datetime | None = gate["decided_at"]
    if gate["outcome"] not in PASSING_OUTCOMES or decided_at is None or decided_at > as_of:
        return None
    return decided_at.astimezone(UTC).date()


def _slips(
    peers: Sequence[TrainDocument], train: str, number: int, as_of: datetime
) -> tuple[tuple[str, int], ...]:
    """Gate ``number``'s slip on every other train that passed it by ``as_of``."""
    slips = []
    for peer in sorted(peers, key=lambda document: version_key(document["train"])):
        if peer["train"] == train:
            continue
        for gate in peer["gates"]:
            decided = decided_day(gate, as_of)
            if gate["gate"] == number and decided is not None and gate["original_date"]:
                slips.append((peer["train"], (decided - gate["original_date"]).days))
    return tuple(slips)


def _trajectories(
    plans: Sequence[_GatePlan], today: date, draws: int, rng: random.Random
) -> dict[int, list[int]]:
    """Each undecided, scheduled gate's date in every trajectory, as day ordinals."""
    # Ordinals, not dates: a far-off as_of plus a plan's spacing may pass the year 9999.
    floor = today.toordinal()
    dates: dict[int, list[int]] = {}
    previous: list[int] | None = None
    previous_target: int | None = None
    for plan in plans:
        target = plan.scheduled_for.toordinal() if plan.scheduled_for else None
        current: list[int] | None
        if plan.decided_on is not None:
            current = [plan.decided_on.toordinal()] * draws
        elif target is None:
            current = None
        else:
            current = [max(own, floor) for own in _own_dates(plan, target, draws, rng)]
            if previous is not None and previous_target is not None:
                spacing = target - previous_target
                current = [
                    max(mine, before + spacing)
                    for mine, before in zip(current, previous, strict=True)
                ]
            dates[plan.gate] = current
        previous, previous_target = current, target
    return dates


def _own_dates(plan: _GatePlan, target: int, draws: int, rng: random.Random) -> list[int]:
    """The gate's dates from its own sample alone: first date + drawn slip, not before target."""
    if not plan.sampled:
        return [target] * draws
    first = (plan.first_date or plan.scheduled_for or date.min).toordinal()
    slips = rng.choices([slip for _, slip in plan.sample], k=draws)
    return [max(first + slip, target) for slip in slips]


def _gate_forecast(
    plan: _GatePlan, dates: list[int] | None, kind: str, as_of: datetime
) -> GateForecast:
    trains = tuple(train for train, _ in plan.sample)
    reason = None
    if plan.scheduled_for is None:
        reason = f"gate {plan.gate} is not scheduled: there is no date to forecast from"
    elif not plan.sampled:
        reason = _too_few(len(trains), kind, f"passed gate {plan.gate}", as_of, trains)
    quantiles: list[date | None] = [None] * len(PERCENTILES)
    if reason is None and dates is not None:
        ordered = sorted(dates)
        quantiles = [_day(nearest_rank(ordered, p)) for p in PERCENTILES]
    p50, p80, p95 = quantiles
    return GateForecast(
        plan.gate,
        plan.name,
        plan.scheduled_for,
        p50,
        p80,
        p95,
        trains,
        len(trains),
        reason,
    )


def nearest_rank(ordered: Sequence[int], percentile: int) -> int:
    """The ⌈p·n/100⌉-th smallest value of a sorted, non-empty sequence."""
    rank = -(-percentile * len(ordered) // 100)
    return ordered[max(rank, 1) - 1]


def _day(ordinal: int) -> date:
    return date.fromordinal(min(max(ordinal, _FIRST_DAY), _LAST_DAY))


def _too_few(count: int, kind: str, what: str, as_of: datetime, trains: Sequence[str] = ()) -> str:
    when = as_of.astimezone(UTC).date().isoformat()
    if count == 0:
        found = f"no past {kind} train {what} by {when}"
    else:
        plural = "train" if count == 1 else "trains"
        found = f"only {count} past {kind} {plural} ({', '.join(trains)}) {what} by {when}"
    return f"{found}; a forecast needs at least {MIN_SAMPLE}"


# ----------------------------------------------------------------- golden run


def _golden(
    subject: TrainDocument,
    peers: Sequence[TrainDocument],
    as_of: datetime,
    target: float,
    draws: int,
    seed: int,
) -> GoldenForecast:
    phase1 = cycle_rate(subject, QACycle.PHASE1, as_of)
    golden = cycle_rate(subject, QACycle.GOLDEN, as_of)
    if golden is not None:
        reached = golden >= target
        return GoldenForecast(
            1.0 if reached else 0.0,
            phase1,
            target,
            (),
            0,
            f"golden run recorded: {golden:g} % against the {target:g} % target",
        )
    gains = _gains(peers, subject["train"], as_of)
    trains = tuple(train for train, _ in gains)
    if phase1 is None:
        reason = "no phase-1 run recorded yet: nothing to add the past gains to"
        return GoldenForecast(None, None, target, trains, len(trains), reason)
    if len(gains) < MIN_SAMPLE:
        what = "had both a phase-1 and a golden run"
        reason = _too_few(len(trains), subject["kind"], what, as_of, trains)
        return GoldenForecast(None, phase1, target, trains, len(trains), reason)
    drawn = random.Random(seed).choices([gain for _, gain in gains], k=draws)
    # Rates are hundredths; so is their sum, lest a float error put an exact hit under.
    hits = sum(1 for gain in drawn if round(phase1 + gain, 2) >= target)
    return GoldenForecast(round(hits / draws, 4), phase1, target, trains, len(trains), None)


def cycle_rate(document: TrainDocument, cycle: str, as_of: datetime) -> float | None:
    """A QA cycle's success rate (percent) as run by ``as_of``; None if it was not."""
    run = document["qa"]["cycles"].get(cycle)
    if run is None or run["occurred_at"] > as_of:
        return None
    rate: float | None = run["success_rate"]
    return rate


def _gains(peers: Sequence[TrainDocument], train: str, as_of: datetime) -> list[tuple[str, float]]:
    """Golden rate minus phase-1 rate of every other train that has both, in train order."""
    gains = []
    for peer in sorted(peers, key=lambda document: version_key(document["train"])):
        phase1 = cycle_rate(peer, QACycle.PHASE1, as_of)
        golden = cycle_rate(peer, QACycle.GOLDEN, as_of)
        if peer["train"] != train and phase1 is not None and golden is not None:
            gains.append((peer["train"], round(golden - phase1, 2)))
    return gains


# ------------------------------------------------------------ overlap alignment


def _overlap(
    subject: TrainDocument,
    gates: dict[int, GateForecast],
    majors: Sequence[TrainDocument],
    as_of: datetime,
    draws: int,
    seed: int,
) -> OverlapAlignment:
    train = subject["train"]
    later = [d for d in majors if version_key(d["train"]) > version_key(train)]
    freeze_from = _milestone(subject, gates, CODE_FREEZE_GATE, as_of)
    freeze_until = _milestone(subject, gates, RELEASE_GATE, as_of)
    if not later:
        return OverlapAlignment(
            None,
            freeze_from[0],
            freeze_until[0],
            None,
            None,
            f"no major after {train} is planned: nothing to align with its code freeze",
        )
    following = min(later, key=lambda document: version_key(document["train"]))
    next_major = following["train"]
    next_gates = _gate_forecasts(following, majors, as_of, draws, seed)
    gate1 = _milestone(following, next_gates, SCOPE_REVIEW_GATE, as_of)
    start, end, scope_review = freeze_from[0], freeze_until[0], gate1[0]
    if start is None or end is None or scope_review is None:
        missing = [
            what
            for what, day in (
                (f"gate 3 of {train}", start),
                (f"gate 4 of {train}", end),
                (f"gate 1 of {next_major}", scope_review),
            )
            if day is None
        ]
        return OverlapAlignment(
            next_major,
            start,
            end,
            scope_review,
            None,
            f"cannot tell: {' and '.join(missing)} {'has' if len(missing) == 1 else 'have'} "
            "no date",
        )
    freeze = f"{train}'s code freeze, {start} ({freeze_from[1]}) to {end} ({freeze_until[1]})"
    review = f"{next_major}'s gate 1 ({gate1[1]} {scope_review})"
    if start <= scope_review <= end:
        aligned, detail = True, f"{review} falls inside {freeze}"
    elif scope_review < start:
        days = (start - scope_review).days
        aligned, detail = False, f"{review} falls {_days(days)} before {freeze}"
    else:
        days = (scope_review - end).days
        aligned, detail = False, f"{review} falls {_days(days)} after {freeze}"
    return OverlapAlignment(next_major, start, end, scope_review, aligned, detail)


def _milestone(
    document: TrainDocument, gates: dict[int, GateForecast], number: int, as_of: datetime
) -> tuple[date | None, str]:
    """A gate's date for the overlap rule and what it is: decided, forecast P50 or scheduled."""
    gate = next((g for g in document["gates"] if g["gate"] == number), None)
    if gate is None:
        return None, "no such gate"
    decided = decided_day(gate, as_of)
    if decided is not None:
        return decided, "decided"
    forecast_gate = gates.get(number)
    if forecast_gate is not None and forecast_gate.p50 is not None:
        return forecast_gate.p50, "forecast P50"
    scheduled: date | None = gate["scheduled_for"]
    return scheduled, "scheduled"


def _days(count: int) -> str:
    return f"{count} day" if count == 1 else f"{count} days"


# ----------------------------------------------------------------------- JSON


def _json_ready(value: Any) -> Any:
    if isinstance(value, dict):
        return {key: _json_ready(item) for key, item in value.items()}
    if isinstance(value, list | tuple):
        return [_json_ready(item) for item in value]
    if isinstance(value, datetime):  # before date: a datetime is a date too
        return value.astimezone(UTC).isoformat()
    if isinstance(value, date):
        return value.isoformat()
    return value
