"""Export and import round-trip every event losslessly, and refuse what they cannot trust."""

from __future__ import annotations

import io

import orjson
import pytest

from ledger.exceptions import IntegrityViolation, InvalidCommand, RuleViolation
from ledger.transfer import export_lines, import_lines, write_export
from tests.conftest import event_count, open_ledger
from tests.scenarios import plan_scoped_train


def _export(url: str) -> bytes:
    ledger = open_ledger(url)
    out = io.BytesIO()
    write_export(ledger.event_log, out)
    ledger.close()
    return out.getvalue()


def _import(url: str, data: bytes) -> int:
    ledger = open_ledger(url)
    try:
        return import_lines(ledger.event_log, ledger.mapper, data.splitlines())
    finally:
        ledger.close()


@pytest.fixture
def recorded_sqlite_url(tmp_path) -> str:
    """A SQLite ledger holding a small history, including a move and a late decision."""
    url = f"sqlite:///{tmp_path / 'source.sqlite3'}"
    ledger = open_ledger(url)
    plan_scoped_train(ledger)
    ledger.plan_train("5.6", "major", "Ada Planner")
    ledger.decide("5.5", "SNAP-3", "move", "Grace Director", reason="slips to 5.6", to_train="5.6")
    ledger.close()
    return url


def test_export_then_import_then_export_is_byte_identical(
    recorded_sqlite_url: str, postgres_url: str, tmp_path
) -> None:
    """SQLite → PostgreSQL → SQLite keeps every position, time and metadata byte for byte."""
    first = _export(recorded_sqlite_url)
    assert _import(postgres_url, first) == 13
    second = _export(postgres_url)
    back_url = f"sqlite:///{tmp_path / 'back.sqlite3'}"
    _import(back_url, second)

    assert second == first
    assert _export(back_url) == first


def test_an_export_line_carries_position_both_times_and_metadata(recorded_sqlite_url: str) -> None:
    """Each line names its position, stream, version and topic, and the stored state in full."""
    line = orjson.loads(_export(recorded_sqlite_url).splitlines()[0])

    assert line["position"] == 1
    assert line["version"] == 1
    assert line["topic"] == "ledger.train:Train.Planned"
    assert line["state"]["timestamp"]["_type_"] == "datetime_iso"
    meta = line["state"]["meta"]["_data_"]
    assert meta["actor"] == "Ada Planner"
    assert meta["recorded_by"] == "test-token"
    assert meta["occurred_at"]["_type_"] == "datetime_iso"


def test_imported_history_behaves_like_the_original(
    recorded_sqlite_url: str, postgres_url: str
) -> None:
    """After an import the ledger loads the same state and takes new commands after it."""
    _import(postgres_url, _export(recorded_sqlite_url))
    original, imported = open_ledger(recorded_sqlite_url), open_ledger(postgres_url)

    assert imported.train("5.5") == original.train("5.5")
    result = imported.decide("5.6", "SNAP-3", "commit", "Grace Director")
    assert result.events[0].position == 14
    original.close()
    imported.close()


def test_import_keeps_gaps_in_positions(postgres_url: str, tmp_path) -> None:
    """Positions are restored as they were, gaps included, and new events follow the last."""
    source = open_ledger(f"sqlite:///{tmp_path / 'gappy.sqlite3'}")
    plan_scoped_train(source)
    lines = list(export_lines(source.event_log))
    source.close()
    gappy = [orjson.loads(line) for line in lines]
    for record in gappy:
        record["position"] += 100 if record["position"] > 4 else 0
    _import(postgres_url, b"\n".join(orjson.dumps(record) for record in gappy))

    ledger = open_ledger(postgres_url)
    positions = [raw.position for raw in ledger.event_log.read()]
    after = ledger.plan_train("5.6", "major", "Ada Planner").events[0].position
    ledger.close()

    assert positions == [1, 2, 3, 4, *range(105, 110)]
    assert after == 110


def test_import_refuses_a_tampered_file_and_writes_nothing(
    recorded_sqlite_url: str, postgres_url: str
) -> None:
    """A line whose content no longer matches its digest stops the import; nothing is kept."""
    data = _export(recorded_sqlite_url).replace(b"Globex", b"Initech")

    with pytest.raises(IntegrityViolation, match="does not match its digest"):
        _import(postgres_url, data)
    ledger = open_ledger(postgres_url)
    assert event_count(ledger) == 0
    ledger.close()


def test_import_refuses_a_malformed_line_naming_it(recorded_sqlite_url: str, tmp_path) -> None:
    """A line that is not an exported event is named, and nothing is written."""
    lines = _export(recorded_sqlite_url).splitlines()
    lines[3] = b'{"position": 4, "stream": "not-a-uuid"}'
    target = f"sqlite:///{tmp_path / 'target.sqlite3'}"

    with pytest.raises(InvalidCommand, match="line 4"):
        _import(target, b"\n".join(lines))
    ledger = open_ledger(target)
    assert event_count(ledger) == 0
    ledger.close()


def test_import_refuses_a_store_that_already_has_events(recorded_sqlite_url: str) -> None:
    """Importing into a ledger with history would mix two logs, so it is refused."""
    with pytest.raises(RuleViolation, match="empty event store"):
        _import(recorded_sqlite_url, _export(recorded_sqlite_url))
