"""``ledger verify``: recompute every stream's hash chain and name the first broken event."""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any
from uuid import UUID

from eventsourcing.persistence import Mapper

from ledger.chain import DIGEST_FIELD, GENESIS, PREV_HASH_FIELD, event_digest
from ledger.event_log import RawEvent


@dataclass(frozen=True)
class BrokenEvent:
    """The first event whose stored form does not match the chain, and why."""

    position: int
    stream: UUID
    version: int
    topic: str
    problem: str

    def describe(self) -> str:
        event_type = self.topic.rsplit(":", 1)[-1]
        return (
            f"event at position {self.position} (stream {self.stream}, version "
            f"{self.version}, {event_type}): {self.problem}"
        )


@dataclass(frozen=True)
class VerificationReport:
    events: int
    streams: int
    broken: BrokenEvent | None

    @property
    def ok(self) -> bool:
        return self.broken is None


class ChainChecker:
    """Checks stored events, in position order, against their streams' chains."""

    def __init__(self, mapper: Mapper[Any]) -> None:
        self.mapper = mapper
        self.heads: dict[UUID, tuple[int, str]] = {}

    def check(self, raw: RawEvent) -> BrokenEvent | None:
        """``None`` when ``raw`` extends its stream's chain; else what is wrong with it."""
        problem, digest = self._problem(raw)
        if problem is None:
            self.heads[raw.originator_id] = (raw.originator_version, digest)
            return None
        return BrokenEvent(
            raw.position, raw.originator_id, raw.originator_version, raw.topic, problem
        )

    def _problem(self, raw: RawEvent) -> tuple[str | None, str]:
        try:
            state: dict[str, Any] = self.mapper.transcoder.decode(raw.state)
        except Exception as error:  # undecodable bytes are a finding, not a crash
            return f"its stored state cannot be decoded ({error})", ""
        # The chain covers the event as it was written, before any later upcasting.
        state.pop("class_version", None)
        digest = str(state.get(DIGEST_FIELD))
        previous_version, previous_digest = self.heads.get(raw.originator_id, (0, GENESIS))
        if raw.originator_version != previous_version + 1:
            return f"version {previous_version + 1} of its stream is missing", digest
        if state.get(PREV_HASH_FIELD) != previous_digest:
            return "its prev_hash does not match the digest of the event before it", digest
        if event_digest(raw.topic, raw.originator_id, raw.originator_version, state) != digest:
            return "its content does not match its digest (altered after it was recorded)", digest
        return None, digest


def verify_events(
    events: Iterable[RawEvent],
    mapper: Mapper[Any],
    progress: Callable[[int], None] | None = None,
) -> VerificationReport:
    """Check every event in position order; stop at the first broken one."""
    checker = ChainChecker(mapper)
    count = 0
    for raw in events:
        count += 1
        if progress is not None:
            progress(raw.position)
        broken = checker.check(raw)
        if broken is not None:
            return VerificationReport(count, len(checker.heads), broken)
    return VerificationReport(count, len(checker.heads), None)
