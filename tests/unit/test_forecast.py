"""The forecast (SPEC §11) on hand-made train documents with known answers, no database."""

from __future__ import annotations

from datetime import UTC, date, datetime, time, timedelta
from typing import Any

import orjson
import pytest

from ledger.exceptions import NotFound
from projections.documents import TrainDocument, gate_document, qa_document
from projections.forecast import (
    DRAWS,
    MIN_SAMPLE,
    SEED,
    GateForecast,
    TrainForecast,
    forecast_from,
    nearest_rank,
    version_key,
)

AS_OF = datetime(2030, 6, 1, 12, 0, tzinfo=UTC)
TARGET = 96.0
DAY = timedelta(days=1)


def moment(day: date) -> datetime:
    """Three in the afternoon, UTC: a gate board's time."""
    return datetime.combine(day, time(15, 0), tzinfo=UTC)


def gate(
    number: int,
    scheduled: date | None,
    *,
    first: date | None = None,
    decided_on: date | None = None,
    outcome: str = "passed",
) -> dict[str, Any]:
    """A gate as the train document has it: first scheduled ``first``, now ``scheduled``."""
    slips = (
        [{"from": first, "to": scheduled, "reason": "late"}]
        if first is not None and first != scheduled
        else []
    )
    decided_at = moment(decided_on) if decided_on is not None else None
    return gate_document(
        number,
        scheduled,
        slips,
        outcome if decided_on is not None else None,
        None,
        None,
        decided_at,
        [],
    )


def slipped(number: int, first: date, days: int) -> dict[str, Any]:
    """A past gate first scheduled for ``first``, moved ``days`` later and passed that day."""
    decided = first + days * DAY
    return gate(number, decided, first=first, decided_on=decided)


def train(
    train_id: str,
    *gates: dict[str, Any],
    kind: str = "major",
    qa: dict[str, float] | None = None,
    qa_on: date = date(2030, 1, 10),
) -> TrainDocument:
    """A train document; ``qa`` maps a cycle to its success rate, run on ``qa_on``."""
    runs = {
        cycle: {
            "build": f"{train_id}-{cycle}",
            "total": 10_000,
            "passed": round(rate * 100),
            "failed": 10_000 - round(rate * 100),
            "blocked": 0,
            "occurred_at": moment(qa_on),
        }
        for cycle, rate in (qa or {}).items()
    }
    return {
        "train": train_id,
        "kind": kind,
        "parent": None,
        "title": None,
        "status": "planning",
        "support": None,
        "eol_date": None,
        "planned_at": moment(date(2028, 1, 3)),
        "gates": list(gates),
        "scope": [],
        "qa": qa_document(runs),
        "beta_drops": [],
        "version": 1,
    }


def past_gate_1(*slips: int) -> list[TrainDocument]:
    """Past majors 4.1, 4.2, … whose gate 1 slipped by each of ``slips`` days."""
    return [train(f"4.{n}", slipped(1, date(2029, n, 1), days)) for n, days in enumerate(slips, 1)]


def only_gate(result: TrainForecast, number: int) -> GateForecast:
    (found,) = [g for g in result.gates if g.gate == number]
    return found


# ====================================================================== gates


def test_every_past_gate_1_slipping_14_days_puts_all_three_quantiles_14_days_late() -> None:
    """4.1 to 4.3 each passed gate 1 two weeks late: 4.4's July 1 gate 1 is forecast July 15."""
    subject = train("4.4", gate(1, date(2030, 7, 1)))

    result = forecast_from([*past_gate_1(14, 14, 14), subject], "4.4", AS_OF, TARGET)

    forecast_gate = only_gate(result, 1)
    assert (forecast_gate.p50, forecast_gate.p80, forecast_gate.p95) == (date(2030, 7, 15),) * 3
    assert forecast_gate.sample_trains == ("4.1", "4.2", "4.3")
    assert forecast_gate.sample_size == 3
    assert forecast_gate.reason is None
    assert forecast_gate.scheduled_for == date(2030, 7, 1)
    assert forecast_gate.name == "scope review"


def test_two_past_trains_give_no_dates_and_say_how_many_there_were() -> None:
    """With only 4.1 and 4.2 behind it, 4.4's gate 1 has no dates and the reason names 2."""
    subject = train("4.4", gate(1, date(2030, 7, 1)))

    result = forecast_from([*past_gate_1(14, 14), subject], "4.4", AS_OF, TARGET)

    forecast_gate = only_gate(result, 1)
    assert (forecast_gate.p50, forecast_gate.p80, forecast_gate.p95) == (None, None, None)
    assert forecast_gate.sample_trains == ("4.1", "4.2")
    assert forecast_gate.sample_size == 2
    assert forecast_gate.reason == (
        "only 2 past major trains (4.1, 4.2) passed gate 1 by 2030-06-01; "
        f"a forecast needs at least {MIN_SAMPLE}"
    )


def test_an_as_of_before_the_history_has_no_sample() -> None:
    """On New Year's Day 2029 no past train had passed gate 1 yet: an empty sample, no dates."""
    subject = train("4.4", gate(1, date(2030, 7, 1)))
    before = datetime(2029, 1, 1, tzinfo=UTC)

    result = forecast_from([*past_gate_1(14, 14, 14), subject], "4.4", before, TARGET)

    forecast_gate = only_gate(result, 1)
    assert forecast_gate.sample_size == 0
    assert forecast_gate.sample_trains == ()
    assert forecast_gate.p50 is None
    assert forecast_gate.reason == (
        f"no past major train passed gate 1 by 2029-01-01; a forecast needs at least {MIN_SAMPLE}"
    )


def test_four_trains_on_time_and_one_a_month_late_put_p50_on_the_date_and_p95_a_month_on() -> None:
    """Slips 0, 0, 0, 0 and 30 days: P50 is the scheduled July 1, P95 is July 31."""
    subject = train("4.6", gate(1, date(2030, 7, 1)))

    result = forecast_from([*past_gate_1(0, 0, 0, 0, 30), subject], "4.6", AS_OF, TARGET)

    forecast_gate = only_gate(result, 1)
    assert forecast_gate.p50 == date(2030, 7, 1)
    assert forecast_gate.p95 == date(2030, 7, 31)


def test_quantiles_are_the_nearest_rank_of_the_sorted_draws() -> None:
    """Of the numbers 1 to 100, P50 is 50, P80 80, P95 95; of 10,000 draws P50 is the 5,000th."""
    hundred = list(range(1, 101))
    assert [nearest_rank(hundred, p) for p in (50, 80, 95)] == [50, 80, 95]
    assert nearest_rank(list(range(DRAWS)), 50) == 4_999
    assert nearest_rank([7], 95) == 7


def test_decided_gates_are_left_out_and_the_next_one_is_forecast() -> None:
    """4.4 passed gate 1 in May: its forecast lists gate 2 only."""
    subject = train(
        "4.4",
        gate(1, date(2030, 5, 10), decided_on=date(2030, 5, 10)),
        gate(2, date(2030, 6, 9)),
    )

    result = forecast_from([subject], "4.4", AS_OF, TARGET)

    assert [g.gate for g in result.gates] == [2]


def test_a_gate_passed_after_as_of_is_still_forecast() -> None:
    """Gate 1 passed on June 20, but as of June 1 it was undecided: it is forecast."""
    subject = train("4.4", gate(1, date(2030, 6, 20), decided_on=date(2030, 6, 20)))

    result = forecast_from([*past_gate_1(14, 14, 14), subject], "4.4", AS_OF, TARGET)

    assert only_gate(result, 1).p50 == date(2030, 7, 4)


def test_a_failed_gate_is_not_a_decision_in_the_sample_nor_in_the_train_forecast() -> None:
    """4.3 failed its gate 1 and has not passed it: two trains remain, and 4.4's failed gate 1
    is still forecast."""
    failed = train("4.3", gate(1, date(2029, 3, 1), decided_on=date(2029, 3, 1), outcome="failed"))
    subject = train(
        "4.4", gate(1, date(2030, 7, 1), decided_on=date(2030, 5, 30), outcome="failed")
    )

    result = forecast_from([*past_gate_1(14, 14), failed, subject], "4.4", AS_OF, TARGET)

    assert only_gate(result, 1).sample_trains == ("4.1", "4.2")


def test_a_conditional_pass_counts_as_a_decision() -> None:
    """4.3 passed gate 1 with conditions 14 days late: it is in the sample like a pass."""
    conditional = train(
        "4.3",
        gate(
            1,
            date(2029, 3, 15),
            first=date(2029, 3, 1),
            decided_on=date(2029, 3, 15),
            outcome="conditional",
        ),
    )
    subject = train("4.4", gate(1, date(2030, 7, 1)))

    result = forecast_from([*past_gate_1(14, 14), conditional, subject], "4.4", AS_OF, TARGET)

    assert only_gate(result, 1).sample_trains == ("4.1", "4.2", "4.3")
    assert only_gate(result, 1).p50 == date(2030, 7, 15)


def test_only_trains_of_the_same_kind_are_sampled() -> None:
    """Minors 4.0.1 to 4.0.3 released a week late; a major's gate 4 does not learn from them."""
    minors = [train(f"4.0.{n}", slipped(4, date(2029, n, 1), 7), kind="minor") for n in (1, 2, 3)]
    major = train("4.4", gate(4, date(2030, 9, 1)))
    minor = train("4.4.1", gate(4, date(2030, 9, 1)), kind="minor")

    for_major = forecast_from([*minors, major, minor], "4.4", AS_OF, TARGET)
    for_minor = forecast_from([*minors, major, minor], "4.4.1", AS_OF, TARGET)

    assert only_gate(for_major, 4).sample_size == 0
    assert only_gate(for_minor, 4).p50 == date(2030, 9, 8)
    assert for_minor.overlap is None


def test_an_unscheduled_gate_has_no_dates_and_says_so() -> None:
    """4.4 never scheduled its gate 1: no dates, whatever the history."""
    subject = train("4.4", gate(1, None))

    result = forecast_from([*past_gate_1(14, 14, 14), subject], "4.4", AS_OF, TARGET)

    assert only_gate(result, 1).p50 is None
    assert only_gate(result, 1).reason == (
        "gate 1 is not scheduled: there is no date to forecast from"
    )


# ------------------------------------------------------------ carrying forward


def past_gates_1_and_2(gate_2_slip: int) -> list[TrainDocument]:
    """4.1 to 4.3: gate 1 two weeks late, gate 2 ``gate_2_slip`` days late."""
    return [
        train(
            f"4.{n}",
            slipped(1, date(2029, n, 1), 14),
            slipped(2, date(2029, n, 1) + 30 * DAY, gate_2_slip),
        )
        for n in (1, 2, 3)
    ]


def test_a_late_gate_1_pushes_an_on_time_gate_2_by_as_much() -> None:
    """Gate 2 never slipped, but gate 1 is two weeks late: July 31 becomes August 14."""
    subject = train("4.4", gate(1, date(2030, 7, 1)), gate(2, date(2030, 7, 31)))

    result = forecast_from([*past_gates_1_and_2(0), subject], "4.4", AS_OF, TARGET)

    assert only_gate(result, 2).p50 == date(2030, 8, 14)
    assert only_gate(result, 2).p95 == date(2030, 8, 14)


def test_a_gate_slipping_more_than_it_is_pushed_keeps_its_own_slip() -> None:
    """Gate 2 slips three weeks on its own, more than gate 1's two: July 31 becomes August 21."""
    subject = train("4.4", gate(1, date(2030, 7, 1)), gate(2, date(2030, 7, 31)))

    result = forecast_from([*past_gates_1_and_2(21), subject], "4.4", AS_OF, TARGET)

    assert only_gate(result, 2).p50 == date(2030, 8, 21)


def test_a_gate_passed_late_pushes_the_next_by_its_actual_day() -> None:
    """Gate 1, due May 10, passed May 20: gate 2, due 30 days after it, is forecast June 19."""
    subject = train(
        "4.4",
        gate(1, date(2030, 5, 10), decided_on=date(2030, 5, 20)),
        gate(2, date(2030, 6, 9)),
    )

    result = forecast_from([*past_gates_1_and_2(0), subject], "4.4", AS_OF, TARGET)

    assert only_gate(result, 2).p50 == date(2030, 6, 19)


def test_a_gate_with_too_small_a_sample_still_carries_its_delay_forward() -> None:
    """Gate 1, due May 1 and still open on June 1, has two past trains and so no dates; gate 2,
    due 30 days after it on May 31, is forecast 30 days after June 1."""
    history = [
        train(f"4.{n}", *([slipped(1, date(2029, n, 1), 14)] if n < 3 else []), slipped(2, d, 0))
        for n, d in ((1, date(2029, 2, 1)), (2, date(2029, 3, 1)), (3, date(2029, 4, 1)))
    ]
    subject = train("4.4", gate(1, date(2030, 5, 1)), gate(2, date(2030, 5, 31)))

    result = forecast_from([*history, subject], "4.4", AS_OF, TARGET)

    assert only_gate(result, 1).p50 is None
    assert only_gate(result, 2).p50 == date(2030, 7, 1)


def test_a_slip_already_taken_is_not_counted_twice() -> None:
    """Gate 1 moved from July 1 to July 8, and past trains slipped a week: July 8, not July 15."""
    subject = train("4.4", gate(1, date(2030, 7, 8), first=date(2030, 7, 1)))

    week_late = forecast_from([*past_gate_1(7, 7, 7), subject], "4.4", AS_OF, TARGET)
    on_time = forecast_from([*past_gate_1(0, 0, 0), subject], "4.4", AS_OF, TARGET)

    assert only_gate(week_late, 1).p50 == date(2030, 7, 8)
    assert only_gate(on_time, 1).p50 == date(2030, 7, 8)


def test_an_overdue_gate_is_not_forecast_in_the_past() -> None:
    """Gate 1 was due May 1 and is still open on June 1: the forecast is June 1, not May."""
    subject = train("4.4", gate(1, date(2030, 5, 1)))

    result = forecast_from([*past_gate_1(0, 0, 0), subject], "4.4", AS_OF, TARGET)

    assert only_gate(result, 1).p50 == date(2030, 6, 1)


# ============================================================== determinism


def spread_history() -> list[TrainDocument]:
    """Five majors with gates 1 and 2 slipping 0 to 21 days, and QA gains of 4 to 8 points."""
    return [
        train(
            f"4.{n}",
            slipped(1, date(2029, n, 1), slip),
            slipped(2, date(2029, n, 20), slip // 2),
            qa={"phase1": 88.0 + n / 10, "golden": 92.0 + n},
        )
        for n, slip in zip(range(1, 6), (0, 3, 7, 14, 21), strict=True)
    ]


def test_the_same_documents_give_the_same_answer_byte_for_byte() -> None:
    """Two forecasts of 4.6 from the same history are equal, down to their JSON bytes."""
    subject = train(
        "4.6", gate(1, date(2030, 7, 1)), gate(2, date(2030, 7, 31)), qa={"phase1": 90.0}
    )
    documents = [*spread_history(), subject]

    first = forecast_from(documents, "4.6", AS_OF, TARGET)
    second = forecast_from(documents, "4.6", AS_OF, TARGET)
    shuffled = forecast_from(list(reversed(documents)), "4.6", AS_OF, TARGET)

    assert first.as_dict() == second.as_dict() == shuffled.as_dict()
    assert orjson.dumps(first.as_dict()) == orjson.dumps(second.as_dict())
    assert (first.draws, first.seed) == (DRAWS, SEED)


def test_the_answer_is_ready_for_json() -> None:
    """Dates go out as YYYY-MM-DD, as_of with its offset, samples as lists."""
    subject = train("4.4", gate(1, date(2030, 7, 1)))

    answer = forecast_from([*past_gate_1(14, 14, 14), subject], "4.4", AS_OF, TARGET).as_dict()

    assert answer["as_of"] == "2030-06-01T12:00:00+00:00"
    assert answer["gates"][0]["p50"] == "2030-07-15"
    assert answer["gates"][0]["sample_trains"] == ["4.1", "4.2", "4.3"]
    assert orjson.loads(orjson.dumps(answer)) == answer


def test_an_unknown_train_is_not_found() -> None:
    """Asking for 9.9 among 4.1 to 4.3 is a NotFound, as the HTTP API's 404."""
    with pytest.raises(NotFound):
        forecast_from(past_gate_1(14, 14, 14), "9.9", AS_OF, TARGET)


# ================================================================ golden run


def qa_history(*rates: tuple[float, float]) -> list[TrainDocument]:
    """Past majors 4.1, 4.2, … with each (phase-1, golden) pair of success rates."""
    return [
        train(f"4.{n}", qa={"phase1": phase1, "golden": golden})
        for n, (phase1, golden) in enumerate(rates, 1)
    ]


def test_golden_odds_are_the_share_of_past_gains_that_reach_the_target() -> None:
    """Gains of 8, 6 and 4 points on a 90 % phase 1: two of three reach 96 %."""
    subject = train("4.4", qa={"phase1": 90.0})

    golden = forecast_from(
        [*qa_history((88.0, 96.0), (89.0, 95.0), (91.0, 95.0)), subject], "4.4", AS_OF, TARGET
    ).golden

    assert golden.probability is not None
    assert golden.probability == pytest.approx(2 / 3, abs=0.02)
    assert golden.phase1_rate == 90.0
    assert golden.target == TARGET
    assert golden.sample_trains == ("4.1", "4.2", "4.3")
    assert golden.reason is None


def test_golden_odds_are_certain_when_every_gain_or_none_reaches_the_target() -> None:
    """Gains of 6.4 reach 96 % from 89.6 exactly (1.0); gains of 5 points never do (0.0)."""
    subject = train("4.4", qa={"phase1": 89.6})
    exact = qa_history((90.0, 96.4), (89.0, 95.4), (88.5, 94.9))
    short = qa_history((90.0, 95.0), (89.0, 94.0), (88.5, 93.5))

    assert forecast_from([*exact, subject], "4.4", AS_OF, TARGET).golden.probability == 1.0
    assert forecast_from([*short, subject], "4.4", AS_OF, TARGET).golden.probability == 0.0


def test_golden_odds_need_three_past_trains_and_a_phase_1_run() -> None:
    """Two past trains give no odds and say so; so does a train without phase 1."""
    two = qa_history((88.0, 96.0), (89.0, 95.0))
    with_phase1 = train("4.4", qa={"phase1": 90.0})
    without = train("4.4")

    few = forecast_from([*two, with_phase1], "4.4", AS_OF, TARGET).golden
    three = qa_history((88.0, 96.0), (89.0, 95.0), (91.0, 95.0))
    none = forecast_from([*three, without], "4.4", AS_OF, TARGET).golden

    assert few.probability is None
    assert few.reason == (
        "only 2 past major trains (4.1, 4.2) had both a phase-1 and a golden run by "
        f"2030-06-01; a forecast needs at least {MIN_SAMPLE}"
    )
    assert none.probability is None
    assert none.phase1_rate is None
    assert none.reason == "no phase-1 run recorded yet: nothing to add the past gains to"


def test_a_recorded_golden_run_is_certain_by_its_rate() -> None:
    """Golden at 96.62 % reached the 96 % target (1.0); at 95.41 % it did not (0.0)."""
    history = qa_history((88.0, 96.0), (89.0, 95.0), (91.0, 95.0))
    reached = train("4.4", qa={"phase1": 90.0, "golden": 96.62})
    missed = train("4.4", qa={"phase1": 90.0, "golden": 95.41})

    golden = forecast_from([*history, reached], "4.4", AS_OF, TARGET).golden
    assert golden.probability == 1.0
    assert golden.reason == "golden run recorded: 96.62 % against the 96 % target"
    assert forecast_from([*history, missed], "4.4", AS_OF, TARGET).golden.probability == 0.0


def test_a_golden_run_after_as_of_is_not_yet_recorded() -> None:
    """4.4's golden run of July 1 does not exist on June 1: its odds are forecast instead."""
    history = qa_history((88.0, 96.0), (89.0, 95.0), (91.0, 95.0))
    subject = train("4.4", qa={"phase1": 90.0, "golden": 96.62}, qa_on=date(2030, 7, 1))
    earlier = train("4.4", qa={"phase1": 90.0, "golden": 96.62}, qa_on=date(2030, 5, 1))

    assert forecast_from([*history, subject], "4.4", AS_OF, TARGET).golden.reason is not None
    assert forecast_from([*history, subject], "4.4", AS_OF, TARGET).golden.phase1_rate is None
    assert forecast_from([*history, earlier], "4.4", AS_OF, TARGET).golden.probability == 1.0


# ========================================================== overlap alignment


def freeze(train_id: str, code_freeze: date, release: date) -> TrainDocument:
    return train(train_id, gate(3, code_freeze), gate(4, release))


def test_the_next_majors_gate_1_inside_the_code_freeze_is_aligned() -> None:
    """4.5's scope review on July 20 falls in 4.4's freeze, July 1 to August 15."""
    current = freeze("4.4", date(2030, 7, 1), date(2030, 8, 15))
    following = train("4.5", gate(1, date(2030, 7, 20)))

    overlap = forecast_from([current, following], "4.4", AS_OF, TARGET).overlap

    assert overlap is not None
    assert overlap.next_major == "4.5"
    assert (overlap.code_freeze_from, overlap.code_freeze_until, overlap.next_gate1) == (
        date(2030, 7, 1),
        date(2030, 8, 15),
        date(2030, 7, 20),
    )
    assert overlap.aligned is True
    assert overlap.detail == (
        "4.5's gate 1 (scheduled 2030-07-20) falls inside 4.4's code freeze, "
        "2030-07-01 (scheduled) to 2030-08-15 (scheduled)"
    )


def test_a_scope_review_after_the_release_is_flagged_with_the_dates() -> None:
    """4.5's scope review on August 25 comes 10 days after 4.4's release on August 15."""
    current = freeze("4.4", date(2030, 7, 1), date(2030, 8, 15))
    following = train("4.5", gate(1, date(2030, 8, 25)))

    overlap = forecast_from([current, following], "4.4", AS_OF, TARGET).overlap

    assert overlap is not None
    assert overlap.aligned is False
    assert overlap.detail == (
        "4.5's gate 1 (scheduled 2030-08-25) falls 10 days after 4.4's code freeze, "
        "2030-07-01 (scheduled) to 2030-08-15 (scheduled)"
    )


def test_the_forecast_flags_a_scope_review_the_plan_still_aligns() -> None:
    """Planned for August 1, inside the freeze, 4.5's gate 1 slips a month like 4.1 to 4.3's:
    its P50 of August 31 lands after 4.4's release."""
    current = freeze("4.4", date(2030, 7, 1), date(2030, 8, 15))
    following = train("4.5", gate(1, date(2030, 8, 1)))

    overlap = forecast_from(
        [*past_gate_1(30, 30, 30), current, following], "4.4", AS_OF, TARGET
    ).overlap

    assert overlap is not None
    assert overlap.next_gate1 == date(2030, 8, 31)
    assert overlap.aligned is False
    assert "4.5's gate 1 (forecast P50 2030-08-31) falls 16 days after" in overlap.detail


def test_a_scope_review_before_the_freeze_is_flagged() -> None:
    """4.5's scope review on June 21 comes 10 days before 4.4's freeze on July 1."""
    current = freeze("4.4", date(2030, 7, 1), date(2030, 8, 15))
    following = train("4.5", gate(1, date(2030, 6, 21)))

    overlap = forecast_from([current, following], "4.4", AS_OF, TARGET).overlap

    assert overlap is not None
    assert overlap.aligned is False
    assert "falls 10 days before 4.4's code freeze" in overlap.detail


def test_the_next_major_is_the_next_version_number_not_the_next_string() -> None:
    """After 4.9 comes 4.10, not 5.0, though "4.10" sorts before "4.9" as text."""
    current = freeze("4.9", date(2030, 7, 1), date(2030, 8, 15))
    documents = [
        train("4.2", gate(1, date(2030, 7, 5))),
        current,
        train("5.0", gate(1, date(2030, 9, 1))),
        train("4.10", gate(1, date(2030, 7, 20))),
    ]

    overlap = forecast_from(documents, "4.9", AS_OF, TARGET).overlap

    assert overlap is not None
    assert overlap.next_major == "4.10"
    assert overlap.aligned is True
    assert version_key("4.10") > version_key("4.9")
    assert version_key("5.1.7-hf2") > version_key("5.1.7")


def test_without_a_next_major_there_is_nothing_to_align() -> None:
    """4.4 is the newest major: no next major, no verdict, and the reason."""
    current = freeze("4.4", date(2030, 7, 1), date(2030, 8, 15))

    overlap = forecast_from([current], "4.4", AS_OF, TARGET).overlap

    assert overlap is not None
    assert (overlap.next_major, overlap.aligned, overlap.next_gate1) == (None, None, None)
    assert overlap.code_freeze_from == date(2030, 7, 1)
    assert overlap.detail == "no major after 4.4 is planned: nothing to align with its code freeze"


def test_an_unscheduled_scope_review_cannot_be_judged() -> None:
    """4.5 has not scheduled gate 1: no verdict, and the detail says which date is missing."""
    current = freeze("4.4", date(2030, 7, 1), date(2030, 8, 15))
    following = train("4.5", gate(1, None))

    overlap = forecast_from([current, following], "4.4", AS_OF, TARGET).overlap

    assert overlap is not None
    assert overlap.aligned is None
    assert overlap.detail == "cannot tell: gate 1 of 4.5 has no date"


def test_a_far_future_as_of_stops_at_the_last_day_of_the_calendar() -> None:
    """As of the year 9998, a gate due a century after the last is forecast on 9999-12-31."""
    subject = train("4.4", gate(1, date(2030, 7, 1)), gate(2, date(2130, 7, 1)))
    far = datetime(9998, 12, 31, 23, 0, tzinfo=UTC)

    result = forecast_from([*past_gates_1_and_2(0), subject], "4.4", far, TARGET)

    assert only_gate(result, 1).p50 == date(9998, 12, 31)
    assert only_gate(result, 2).p50 == date.max
