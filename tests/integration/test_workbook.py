"""The timeline workbook (``format=xlsx``, ``ledger report --format xlsx``) on the demo
history, opened with openpyxl and checked against ``GET /v1/trains``."""

from __future__ import annotations

import io
from collections.abc import Iterator
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from openpyxl import load_workbook
from typer.testing import CliRunner

from api.office import XLSX
from release_ledger.cli import app
from tests.integration.dashboard_fixtures import demo_api
from tests.integration.test_api import Api

HEADER = [
    "Train",
    "Kind",
    "Parent",
    "Status",
    "Gate",
    "Gate name",
    "Scheduled for",
    "First scheduled",
    "Slip days",
    "Slips",
    "Outcome",
    "Decided on",
    "Forecast P50",
    "Forecast P80",
    "Forecast P95",
    "Forecast basis",
]
DATE_COLUMNS = ("Scheduled for", "First scheduled", "Decided on", *HEADER[12:15])


@pytest.fixture(scope="module")
def demo(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Api]:
    """The app holding the demo, projected; shared, since workbooks only read."""
    yield from demo_api(tmp_path_factory)


def days_back(days: float) -> datetime:
    return (datetime.now(UTC) - timedelta(days=days)).replace(microsecond=0)


def workbook_response(api: Api, **params: Any) -> Any:
    response = api.get("/v1/trains/5.5/report", format="xlsx", **params)
    assert response.status_code == 200, response.text
    assert response.headers["content-type"] == XLSX
    return response


def open_workbook(api: Api, as_of: datetime | None = None) -> Any:
    params = {} if as_of is None else {"as_of": as_of.isoformat()}
    return load_workbook(io.BytesIO(workbook_response(api, **params).content))


def rows_of(book: Any) -> list[dict[str, Any]]:
    """The Timeline sheet's rows as dicts by header."""
    header, *rows = book["Timeline"].iter_rows(values_only=True)
    assert list(header) == HEADER
    return [dict(zip(HEADER, row, strict=True)) for row in rows]


def trains_of(api: Api, as_of: datetime | None = None) -> list[dict[str, Any]]:
    params = {} if as_of is None else {"as_of": as_of.isoformat()}
    items: list[dict[str, Any]] = api.read("/v1/trains", api.last_position(), **params)["items"]
    return items


def expected_rows(trains: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """What the sheet's first twelve columns should say of each (train, gate) of the API."""

    def day(value: str | None) -> date | None:
        if value is None:
            return None
        return date.fromisoformat(value[:10]) if len(value) == 10 else _utc_day(value)

    return [
        {
            "Train": train["train"],
            "Kind": train["kind"],
            "Parent": train["parent"],
            "Status": train["status"],
            "Gate": gate["gate"],
            "Gate name": gate["name"],
            "Scheduled for": day(gate["scheduled_for"]),
            "First scheduled": day(gate["original_date"]),
            "Slip days": _days_between(day(gate["original_date"]), day(gate["scheduled_for"])),
            "Slips": len(gate["slips"]),
            "Outcome": gate["outcome"] or "pending",
            "Decided on": day(gate["decided_at"]),
        }
        for train in trains
        for gate in train["gates"]
    ]


def _days_between(first: date | None, then: date | None) -> int | None:
    return None if first is None or then is None else (then - first).days


def _utc_day(moment: str) -> date:
    return datetime.fromisoformat(moment).astimezone(UTC).date()


def as_dates(row: dict[str, Any]) -> dict[str, Any]:
    """openpyxl reads a date cell back as a datetime at midnight: its day."""
    return {
        key: value.date() if isinstance(value, datetime) else value for key, value in row.items()
    }


def test_the_timeline_has_a_row_per_train_and_gate_of_the_api(demo: Api) -> None:
    """One row per train and gate of ``GET /v1/trains``, in its order, with the same dates."""
    trains = trains_of(demo)

    rows = rows_of(open_workbook(demo))

    assert len(rows) == sum(len(train["gates"]) for train in trains) == 31
    assert [{k: v for k, v in as_dates(row).items() if k in HEADER[:12]} for row in rows] == (
        expected_rows(trains)
    )


def test_dates_are_excel_dates_under_a_frozen_filtered_header(demo: Api) -> None:
    """Date columns hold real dates with a date format; the header is frozen and filtered."""
    book = open_workbook(demo)
    sheet = book["Timeline"]

    assert book.sheetnames == ["Timeline", "About"]
    assert sheet.freeze_panes == "B2"
    assert sheet.auto_filter.ref == f"A1:P{sheet.max_row}"
    for column, name in enumerate(HEADER, start=1):
        assert sheet.column_dimensions[sheet.cell(1, column).column_letter].width >= len(name)
        if name not in DATE_COLUMNS:
            continue
        cells = [sheet.cell(row, column) for row in range(2, sheet.max_row + 1)]
        filled = [cell for cell in cells if cell.value is not None]
        assert filled, name
        assert all(cell.is_date and cell.number_format == "yyyy-mm-dd" for cell in filled), name


def test_the_forecast_columns_are_the_apis_forecast(demo: Api) -> None:
    """Each undecided gate of 5.5 and 5.6 has the P50/P80/P95 of ``GET /v1/trains/{t}/forecast``."""
    rows = [as_dates(row) for row in rows_of(open_workbook(demo))]

    for train in ("5.5", "5.6"):
        forecast = {g["gate"]: g for g in demo.read(f"/v1/trains/{train}/forecast", 0)["gates"]}
        for row in (r for r in rows if r["Train"] == train):
            predicted = forecast.get(row["Gate"])
            if predicted is None:
                assert row["Forecast P50"] is None
                continue
            assert [row[f"Forecast P{p}"] for p in (50, 80, 95)] == [
                date.fromisoformat(predicted[f"p{p}"]) for p in (50, 80, 95)
            ]
            assert row["Forecast basis"].startswith(f"{predicted['sample_size']} past trains")
    released = [row for row in rows if row["Status"] == "released"]
    assert released
    assert all(row["Forecast P50"] is None for row in released)


def test_as_of_gives_the_timeline_as_it_stood(demo: Api) -> None:
    """Sixty days ago the sheet holds the trains of ``GET /v1/trains?as_of=``, and says when."""
    as_of = days_back(60)
    trains = trains_of(demo, as_of)

    book = open_workbook(demo, as_of)

    rows = [as_dates(row) for row in rows_of(book)]
    assert [{k: v for k, v in row.items() if k in HEADER[:12]} for row in rows] == (
        expected_rows(trains)
    )
    assert len(rows) < len(rows_of(open_workbook(demo)))
    about = {row[0]: row[1] for row in book["About"].iter_rows(min_row=3, values_only=True)}
    assert about["As of"] == as_of.replace(tzinfo=None)
    assert about["Trains"] == len(trains)
    assert as_of.isoformat() in about["Source"]


def test_the_same_moment_gives_the_same_bytes(demo: Api) -> None:
    """Two workbooks at one as-of are byte for byte the same, named for the train and day."""
    as_of = days_back(4)

    first = workbook_response(demo, as_of=as_of.isoformat())
    second = workbook_response(demo, as_of=as_of.isoformat())

    assert first.content == second.content
    assert first.headers["content-disposition"] == (
        f'attachment; filename="train-5.5-report-{as_of.date().isoformat()}.xlsx"'
    )
    properties = load_workbook(io.BytesIO(first.content)).properties
    assert properties.creator == "Release Ledger"
    assert properties.created == properties.modified == as_of.replace(tzinfo=None)


def test_ledger_report_writes_the_timeline_to_a_file(
    demo: Api, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    """``ledger report --format xlsx -o FILE`` writes a workbook that opens with the API's rows."""
    monkeypatch.setenv("LEDGER_DATABASE_URL", demo.client.app.state.settings.database_url)
    output = tmp_path / "timeline.xlsx"

    result = CliRunner().invoke(
        app, ["report", "--train", "5.5", "--format", "xlsx", "-o", str(output)]
    )

    assert result.exit_code == 0, result.output
    assert f"wrote {output}" in result.stderr
    rows = [as_dates(row) for row in rows_of(load_workbook(output))]
    assert [{k: v for k, v in row.items() if k in HEADER[:12]} for row in rows] == (
        expected_rows(trains_of(demo))
    )
