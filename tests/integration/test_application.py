"""What the application service promises every caller: results, metadata, idempotency, retries."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import pytest

from ledger.application import CommandContext, ReleaseLedger
from ledger.config import Settings
from ledger.exceptions import ConcurrencyConflict, RuleViolation
from ledger.metadata import Source
from ledger.values import feature_stream_id
from tests.conftest import at, days_ago, event_count, open_ledger
from tests.scenarios import plan_scoped_train


def test_a_command_returns_its_events_with_positions_and_the_new_state(
    ledger: ReleaseLedger,
) -> None:
    """A recorded command answers with each event's position, type and both times, and the state."""
    occurred = days_ago(3)
    before = ledger.clock()
    result = ledger.plan_train(
        "5.5", "major", "Ada Planner", context=CommandContext(occurred_at=occurred)
    )

    (event,) = result.events
    assert event.type == "Planned"
    assert event.position == 1
    assert event.occurred_at == occurred
    assert before <= event.recorded_at <= ledger.clock()
    assert result.state["train"] == "5.5"
    assert result.state["status"] == "planning"
    assert result.last_position == 1


def test_every_event_carries_who_recorded_it_through_which_door_and_why(
    ledger: ReleaseLedger,
) -> None:
    """Actor, recorded_by, source, source_ref, correlation id and reason are on each event."""
    plan_scoped_train(ledger)
    ledger.plan_train("5.6", "major", "Ada Planner", context=at(40))
    context = CommandContext(
        recorded_by="jira-integration",
        source=Source.JIRA,
        source_ref="10042:881",
        correlation_id="corr-7",
        occurred_at=days_ago(2),
    )
    result = ledger.decide(
        "5.5",
        "SNAP-3",
        "move",
        "Grace Director",
        reason="storage team is on DEDUP-7",
        to_train="5.6",
        requested_by="Globex",
        context=context,
    )

    assert [event.type for event in result.events] == [
        "FeatureMovedOut",
        "FeatureMovedIn",
        "MovedBetweenTrains",
    ]
    for recorded in result.events:
        (stored,) = ledger.events.get(
            recorded.stream, gt=recorded.version - 1, lte=recorded.version
        )
        assert stored.meta.actor == "Grace Director"
        assert stored.meta.recorded_by == "jira-integration"
        assert stored.meta.source == "jira"
        assert stored.meta.source_ref == "10042:881"
        assert stored.meta.correlation_id == "corr-7"
        assert stored.meta.occurred_at == context.occurred_at
        assert stored.reason == "storage team is on DEDUP-7"
        assert stored.requested_by == "Globex"


def test_a_known_source_ref_records_nothing_and_returns_the_earlier_result(
    ledger: ReleaseLedger,
) -> None:
    """A retried integration command is answered from the log instead of being recorded twice."""
    plan_scoped_train(ledger)
    context = CommandContext(recorded_by="jira", source=Source.JIRA, source_ref="delivery-1")
    first = ledger.decide("5.5", "DEDUP-7", "commit", "Grace Director", context=context)
    count = event_count(ledger)

    again = ledger.decide("5.5", "DEDUP-7", "commit", "Grace Director", context=context)

    assert again.replayed
    assert not first.replayed
    assert again.events == first.events
    assert event_count(ledger) == count
    assert again.state["scope"] == first.state["scope"]


def test_commands_without_a_source_ref_are_each_recorded(ledger: ReleaseLedger) -> None:
    """Two identical QA summaries without a source_ref are two runs, both recorded."""
    plan_scoped_train(ledger)
    for _ in range(2):
        ledger.record_qa_run("5.5", "phase1", "b101", 21000, 19000, 2000, "Quinn QA")

    assert [run["build"] for run in [ledger.train("5.5")["qa"]["phase1"]]] == ["b101"]
    assert event_count(ledger) == 11


class CrowdedLedger(ReleaseLedger):
    """A ledger whose saves are preceded by another writer's command, as under real load."""

    name = ReleaseLedger.name

    def __init__(self, *args: Any, rival: ReleaseLedger, rival_command: Any, **kwargs: Any):
        super().__init__(*args, **kwargs)
        self.rival = rival
        self.rival_command = rival_command
        self.interruptions = 0
        self.limit = 1

    def save(self, *objs: Any, **kwargs: Any) -> Any:
        if self.interruptions < self.limit:
            self.interruptions += 1
            self.rival_command(self.rival, self.interruptions)
        return super().save(*objs, **kwargs)


def _crowded(url: str, rival: ReleaseLedger, rival_command: Any) -> CrowdedLedger:
    crowded = CrowdedLedger.from_settings(
        Settings(database_url=url), rival=rival, rival_command=rival_command
    )
    assert isinstance(crowded, CrowdedLedger)
    return crowded


@pytest.fixture
def shared_url(request: pytest.FixtureRequest, tmp_path) -> str:
    """A database two ledgers can share (in-memory stores are private to one ledger)."""
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'shared.sqlite3'}"
    url: str = request.getfixturevalue("postgres_url")
    return url


@pytest.mark.parametrize("shared_url", ["sqlite", "postgres"], indirect=True)
def test_a_conflicting_command_is_revalidated_on_fresh_state(shared_url: str) -> None:
    """When a rival drops the feature first, a retried commit sees the drop and is refused."""
    rival = open_ledger(shared_url)
    plan_scoped_train(rival)

    def rival_drops(ledger: ReleaseLedger, _: int) -> None:
        ledger.decide("5.5", "SNAP-3", "drop", "Rita Rival", reason="budget cut")

    crowded = _crowded(shared_url, rival, rival_drops)
    crowded.train("5.5")  # warm the cache, so the stale copy is what the command starts from
    count = event_count(rival)

    with pytest.raises(RuleViolation, match=r"SNAP-3 is dropped from the scope of 5\.5"):
        crowded.decide("5.5", "SNAP-3", "commit", "Grace Director")

    assert crowded.interruptions == 1
    assert event_count(rival) == count + 2
    crowded.close()
    rival.close()


@pytest.mark.parametrize("shared_url", ["sqlite", "postgres"], indirect=True)
def test_a_conflicting_command_that_still_holds_is_recorded_after_a_retry(shared_url: str) -> None:
    """A rival's unrelated change to the same train costs a retry, not the command."""
    rival = open_ledger(shared_url)
    plan_scoped_train(rival)

    def rival_schedules(ledger: ReleaseLedger, attempt: int) -> None:
        ledger.schedule_gate("5.5", 2, datetime(2027, 1, attempt, tzinfo=UTC).date(), "Rita Rival")

    crowded = _crowded(shared_url, rival, rival_schedules)
    crowded.limit = 3
    result = crowded.decide("5.5", "DEDUP-7", "commit", "Grace Director")

    assert crowded.interruptions == 3
    assert [event.type for event in result.events] == ["FeatureCommitted", "CommittedToTrain"]
    assert result.state["gates"][1]["scheduled_for"].isoformat() == "2027-01-03"
    assert crowded.feature("DEDUP-7")["status"] == "committed"
    crowded.close()
    rival.close()


@pytest.mark.parametrize("shared_url", ["sqlite"], indirect=True)
def test_a_command_gives_up_after_bounded_retries(shared_url: str) -> None:
    """A stream that never stops changing ends in ConcurrencyConflict with nothing recorded."""
    rival = open_ledger(shared_url)
    plan_scoped_train(rival)

    def rival_reschedules(ledger: ReleaseLedger, attempt: int) -> None:
        ledger.schedule_gate("5.5", 2, datetime(2027, 2, attempt, tzinfo=UTC).date(), "Rita Rival")

    crowded = _crowded(shared_url, rival, rival_reschedules)
    crowded.limit = 100

    with pytest.raises(ConcurrencyConflict, match="kept conflicting"):
        crowded.decide("5.5", "DEDUP-7", "commit", "Grace Director")

    assert crowded.interruptions == ReleaseLedger.MAX_ATTEMPTS
    assert rival.feature("DEDUP-7")["status"] == "proposed"
    assert len(list(rival.events.get(feature_stream_id("DEDUP-7")))) == 3
    crowded.close()
    rival.close()


@pytest.mark.parametrize("shared_url", ["sqlite", "postgres"], indirect=True)
def test_a_stale_cache_never_refuses_what_the_log_allows(shared_url: str) -> None:
    """A server whose cached train predates another server's proposal still commits it."""
    first, second = open_ledger(shared_url), open_ledger(shared_url)
    plan_scoped_train(first)
    first.plan_train("5.6", "major", "Ada Planner", context=at(30))
    second.train("5.6")  # second server caches 5.6 before the proposal below
    first.propose_scope("5.6", "TIER-9", "anchor", "Ada Planner", context=at(20))

    result = second.decide("5.6", "TIER-9", "commit", "Grace Director")

    assert [event.type for event in result.events] == ["FeatureCommitted", "CommittedToTrain"]
    ((feature, status),) = [(e["feature"], e["status"]) for e in first.train("5.6")["scope"]]
    assert (feature, status) == ("TIER-9", "committed")
    first.close()
    second.close()


@pytest.mark.parametrize("shared_url", ["sqlite", "postgres"], indirect=True)
def test_queries_read_what_other_servers_recorded(shared_url: str) -> None:
    """Reading a train returns events another ledger recorded after this one cached it."""
    first, second = open_ledger(shared_url), open_ledger(shared_url)
    plan_scoped_train(first)
    assert second.train("5.5")["gates"][1]["scheduled_for"] is None

    first.schedule_gate("5.5", 2, datetime(2027, 3, 1, tzinfo=UTC).date(), "Ada Planner")

    assert second.train("5.5")["gates"][1]["scheduled_for"].isoformat() == "2027-03-01"
    first.close()
    second.close()
