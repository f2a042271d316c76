"""The timeline as an Excel workbook (SPEC §11), for those who keep their Gantt in Excel.

One row per train and gate, the dashboard's timeline as a table: real dates (so Excel
sorts, filters and charts them), a frozen header and a filter on every column. The rows
come from the trains projection as of the workbook's moment and the forecast of each
train; nothing is computed here but the slip in days, the difference of two dates shown.
"""

from __future__ import annotations

import io
import math
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime
from typing import TYPE_CHECKING, Any

from openpyxl import Workbook
from openpyxl.styles import Alignment, Font, PatternFill
from openpyxl.utils import get_column_letter

from api.office import AUTHOR, stamped, utc_naive
from api.templating import moment
from projections.documents import TrainDocument

if TYPE_CHECKING:
    from projections.forecast import GateForecast, TrainForecast

DATE_FORMAT = "yyyy-mm-dd"
MOMENT_FORMAT = 'yyyy-mm-dd hh:mm "UTC"'
HEADER_FONT = Font(name="Calibri", size=11, bold=True, color="FFFFFF")
HEADER_FILL = PatternFill("solid", fgColor="1F3A5F")
TITLE_FONT = Font(name="Calibri", size=14, bold=True, color="1F3A5F")
CENTRED = Alignment(horizontal="center", vertical="center")
TOP_LEFT = Alignment(horizontal="left", vertical="top", wrap_text=True)
ABOUT_WIDTH = 90
"""Characters of the About sheet's text column, before it wraps."""
LABEL_FONT = Font(name="Calibri", size=11, bold=True)


@dataclass(frozen=True)
class Field:
    header: str
    width: float
    """In Excel's characters."""
    is_date: bool = False
    centred: bool = False


FIELDS = (
    Field("Train", 11),
    Field("Kind", 8),
    Field("Parent", 8),
    Field("Status", 11),
    Field("Gate", 6, centred=True),
    Field("Gate name", 33),
    Field("Scheduled for", 14, is_date=True),
    Field("First scheduled", 15, is_date=True),
    Field("Slip days", 10, centred=True),
    Field("Slips", 7, centred=True),
    Field("Outcome", 12),
    Field("Decided on", 13, is_date=True),
    Field("Forecast P50", 14, is_date=True),
    Field("Forecast P80", 14, is_date=True),
    Field("Forecast P95", 14, is_date=True),
    Field("Forecast basis", 48),
)
TIMELINE, ABOUT = "Timeline", "About"


def timeline_workbook(
    trains: list[TrainDocument], forecasts: dict[str, TrainForecast], as_of: datetime
) -> bytes:
    """Every train's gates as rows of a sheet "Timeline", and a sheet "About" saying whence."""
    book = Workbook()
    sheet = book.active
    sheet.title = TIMELINE
    sheet.append([field.header for field in FIELDS])
    for document in trains:
        predicted = _by_gate(forecasts.get(document["train"]))
        for gate in document["gates"]:
            sheet.append(timeline_row(document, gate, predicted.get(gate["gate"])))
    _format_timeline(sheet, len(FIELDS), sheet.max_row)
    _about(book.create_sheet(ABOUT), trains, as_of)
    properties = book.properties
    properties.title = f"Release Ledger timeline as of {moment(as_of)}"
    properties.creator = properties.lastModifiedBy = AUTHOR
    properties.created = properties.modified = utc_naive(as_of)
    out = io.BytesIO()
    book.save(out)
    return stamped(out.getvalue(), as_of)


def timeline_row(
    document: TrainDocument, gate: dict[str, Any], predicted: GateForecast | None
) -> list[Any]:
    """One (train, gate) row, in the order of ``FIELDS``."""
    scheduled: date | None = gate["scheduled_for"]
    first: date | None = gate["original_date"]
    decided: datetime | None = gate["decided_at"]
    slip = (scheduled - first).days if scheduled is not None and first is not None else None
    return [
        document["train"],
        document["kind"],
        document["parent"],
        document["status"],
        gate["gate"],
        gate["name"],
        scheduled,
        first,
        slip,
        len(gate["slips"]),
        gate["outcome"] or "pending",
        decided.astimezone(UTC).date() if decided is not None else None,
        *(
            (predicted.p50, predicted.p80, predicted.p95)
            if predicted is not None
            else (None, None, None)
        ),
        _basis(predicted),
    ]


def _by_gate(forecast: TrainForecast | None) -> dict[int, GateForecast]:
    return {} if forecast is None else {gate.gate: gate for gate in forecast.gates}


def _basis(predicted: GateForecast | None) -> str | None:
    if predicted is None:
        return None
    if predicted.reason is not None:
        return predicted.reason
    return f"{predicted.sample_size} past trains: {', '.join(predicted.sample_trains)}"


def _format_timeline(sheet: Any, columns: int, rows: int) -> None:
    for index, field in enumerate(FIELDS, start=1):
        letter = get_column_letter(index)
        sheet.column_dimensions[letter].width = field.width
        header = sheet.cell(row=1, column=index)
        header.font, header.fill = HEADER_FONT, HEADER_FILL
        header.alignment = CENTRED if field.centred else Alignment(vertical="center")
        for row in range(2, rows + 1):
            cell = sheet.cell(row=row, column=index)
            if field.is_date:
                cell.number_format = DATE_FORMAT
            if field.centred:
                cell.alignment = CENTRED
    sheet.row_dimensions[1].height = 20
    sheet.freeze_panes = "B2"
    sheet.auto_filter.ref = f"A1:{get_column_letter(columns)}{max(rows, 1)}"
    _print_landscape(sheet)
    sheet.print_title_rows = "1:1"  # the header on every printed page


def _print_landscape(sheet: Any) -> None:
    """Printed, the sheet is one page wide, in landscape."""
    sheet.page_setup.orientation = "landscape"
    sheet.page_setup.fitToWidth, sheet.page_setup.fitToHeight = 1, 0
    sheet.sheet_properties.pageSetUpPr.fitToPage = True


def _about(sheet: Any, trains: Sequence[TrainDocument], as_of: datetime) -> None:
    sheet["A1"] = "Release Ledger · the timeline"
    sheet["A1"].font = TITLE_FONT
    when = as_of.astimezone(UTC).isoformat(timespec="seconds")
    facts: list[tuple[str, Any]] = [
        ("As of", utc_naive(as_of)),
        ("Trains", len(trains)),
        ("Rows", sum(len(document["gates"]) for document in trains)),
        (
            "Source",
            f"The ledger's trains projection as of {when} (GET /v1/trains?as_of={when}): "
            "one row per train and gate, in train order.",
        ),
        ("Scheduled for", "The gate's current target date."),
        ("First scheduled", "The date the gate was first scheduled for."),
        ("Slip days", "Scheduled for minus first scheduled: how far the gate has moved."),
        ("Slips", "How many times the gate was rescheduled."),
        ("Decided on", "The day (UTC) of the gate's latest decision; empty while pending."),
        (
            "Forecast P50/P80/P95",
            "For gates not yet passed: dates from a Monte Carlo over the same gate's slips "
            "on past trains of the same kind (GET /v1/trains/{train}/forecast). Empty when "
            "the gate is decided or the history is too short; Forecast basis says which.",
        ),
        ("Written by", AUTHOR),
    ]
    for row, (label, value) in enumerate(facts, start=3):
        sheet.cell(row=row, column=1, value=label).font = LABEL_FONT
        sheet.cell(row=row, column=1).alignment = TOP_LEFT
        cell = sheet.cell(row=row, column=2, value=value)
        cell.alignment = TOP_LEFT
        if isinstance(value, datetime):
            cell.number_format = MOMENT_FORMAT
        if isinstance(value, str) and len(value) > ABOUT_WIDTH:
            # Excel does not grow a row to wrapped text written by a program.
            sheet.row_dimensions[row].height = 15 * math.ceil(len(value) / (ABOUT_WIDTH + 10))
    sheet.column_dimensions["A"].width = 22
    sheet.column_dimensions["B"].width = ABOUT_WIDTH + 10
    _print_landscape(sheet)
