"""The report's Office files, as ``GET /v1/trains/{t}/report`` and ``ledger report`` write them.

Both read the projections and the forecast here, once, and hand plain data to the
renderers (``deck``, ``workbook``), so the route and the command give the same file.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Literal

from api.deck import weekly_deck
from api.office import PPTX, XLSX, download_name
from api.workbook import timeline_workbook
from projections.forecast import open_forecasts_from
from projections.queries import ProjectionQueries, TimePoint
from projections.report import weekly_report

OfficeFormat = Literal["pptx", "xlsx"]


@dataclass(frozen=True)
class OfficeFile:
    content: bytes
    media_type: str
    filename: str


def office_file(
    queries: ProjectionQueries, train: str, form: OfficeFormat, as_of: datetime | None
) -> OfficeFile:
    """The weekly deck (pptx) of ``train`` or the timeline (xlsx), as of ``as_of`` or now."""
    if form == "pptx":
        return weekly_deck_file(queries, train, as_of)
    return timeline_file(queries, train, as_of)


def weekly_deck_file(queries: ProjectionQueries, train: str, as_of: datetime | None) -> OfficeFile:
    """The train's weekly report and its forecast, both at ``as_of``, as a deck."""
    report = weekly_report(queries, train, as_of)
    return OfficeFile(
        weekly_deck(report, report.forecast), PPTX, download_name(train, "pptx", report.as_of)
    )


def timeline_file(queries: ProjectionQueries, train: str, as_of: datetime | None) -> OfficeFile:
    """Every train's timeline; ``train`` names the file (and is not found if unknown)."""
    at = _at(as_of)
    moment = datetime.now(UTC) if as_of is None else as_of.astimezone(UTC)
    queries.train(train, at)  # an unknown train is a 404, as for the other formats
    trains = queries.trains(at=at)
    forecasts = open_forecasts_from(trains, moment, queries.policy.qa_target)
    return OfficeFile(
        timeline_workbook(trains, forecasts, moment), XLSX, download_name(train, "xlsx", moment)
    )


def _at(as_of: datetime | None) -> TimePoint:
    return TimePoint() if as_of is None else TimePoint(as_of=as_of.astimezone(UTC))
