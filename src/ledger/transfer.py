"""``ledger export`` and ``ledger import``: the whole log as JSON lines, losslessly.

One line per event, in position order: its position, stream, version, topic and
stored state (as the JSON object the event store holds). Both times and all
metadata live in the state, so an import restores every event exactly where it was.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable, Iterator
from typing import IO, Any
from uuid import UUID

import orjson
from eventsourcing.persistence import Mapper

from ledger.event_log import EventLog, RawEvent
from ledger.exceptions import IntegrityViolation, InvalidCommand, RuleViolation
from ledger.integrity import ChainChecker

FIELDS = ("position", "stream", "version", "topic", "state")

# The same encoding the event store's JSON transcoder writes.
_STATE_ENCODER = json.JSONEncoder(separators=(",", ":"), ensure_ascii=False)


def export_lines(log: EventLog) -> Iterator[bytes]:
    """Every stored event as one JSON line."""
    for raw in log.read():
        yield (
            orjson.dumps(
                {
                    "position": raw.position,
                    "stream": str(raw.originator_id),
                    "version": raw.originator_version,
                    "topic": raw.topic,
                    "state": orjson.loads(raw.state),
                }
            )
            + b"\n"
        )


def parse_line(line: bytes | str, number: int) -> RawEvent:
    """One exported line back into a stored event, or ``InvalidCommand`` naming the line."""
    try:
        record: Any = orjson.loads(line)
        if not isinstance(record, dict) or set(record) != set(FIELDS):
            raise ValueError(f"expected exactly the fields {', '.join(FIELDS)}")
        position, version = record["position"], record["version"]
        if not (isinstance(position, int) and position > 0 and isinstance(version, int)):
            raise ValueError("position and version must be positive whole numbers")
        if not isinstance(record["state"], dict) or not isinstance(record["topic"], str):
            raise ValueError("topic must be text and state an object")
        return RawEvent(
            position=position,
            originator_id=UUID(record["stream"]),
            originator_version=version,
            topic=record["topic"],
            state=_STATE_ENCODER.encode(record["state"]).encode("utf-8"),
        )
    except (ValueError, TypeError, orjson.JSONDecodeError) as error:
        raise InvalidCommand(f"line {number}: {error}") from None


def import_lines(
    log: EventLog,
    mapper: Mapper[Any],
    lines: Iterable[bytes | str],
    progress: Callable[[int], None] | None = None,
) -> int:
    """Append exported events at their original positions into an empty log.

    Every line is parsed and its hash chain checked before it is written, all in one
    transaction: a malformed or tampered file is refused whole and nothing is written.
    """
    if log.last_position() != 0:
        raise RuleViolation("import needs an empty event store; this one already has events")
    checker = ChainChecker(mapper)
    count = 0

    def checked_events() -> Iterator[RawEvent]:
        nonlocal count
        last_position = 0
        for number, line in enumerate(lines, start=1):
            if not line.strip():
                continue
            raw = parse_line(line, number)
            if raw.position <= last_position:
                raise InvalidCommand(f"line {number}: positions must increase")
            broken = checker.check(raw)
            if broken is not None:
                raise IntegrityViolation(f"line {number}: {broken.describe()}")
            last_position = raw.position
            count += 1
            if progress is not None:
                progress(count)
            yield raw

    log.append_at_positions(checked_events())
    return count


def write_export(log: EventLog, out: IO[bytes]) -> int:
    """Write the whole log to ``out``; the number of events written."""
    count = 0
    for line in export_lines(log):
        out.write(line)
        count += 1
    return count
