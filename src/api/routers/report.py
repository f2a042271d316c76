"""The weekly status report of a train: Markdown, HTML, the PowerPoint deck, the Excel
timeline (SPEC §7, §11)."""

from __future__ import annotations

from typing import Annotated, Literal

from fastapi import APIRouter, Query, Request
from fastapi.responses import PlainTextResponse, Response

from api.deps import ProjectionReader, QueriesDep
from api.exports import office_file
from api.office import PPTX, XLSX
from api.routers.trains import READ_PROBLEMS, TrainPath
from api.schemas import Moment
from api.templating import render_text, templates
from projections.queries import parse_time_point
from projections.report import weekly_report

router = APIRouter(prefix="/v1/trains", tags=["trains"])

MARKDOWN = "text/markdown; charset=utf-8"
BINARY = {"type": "string", "format": "binary"}


@router.get(
    "/{train}/report",
    operation_id="getTrainReport",
    summary="The weekly status report: dates, gates, the week's scope changes, QA, risks, beta",
    description="The week is the 7 days before `as_of` (default now). `format=md` answers "
    "Markdown, `format=html` a printable page, `format=pptx` the weekly status "
    "deck (PowerPoint, with the forecast and a native QA chart), `format=xlsx` the timeline "
    "of every train's gates (Excel, one row per train and gate) as of the same moment. The "
    "two Office files come as attachments named for the train and the as-of day.",
    response_class=Response,
    responses={
        200: {
            "description": "the report",
            "content": {
                "text/markdown": {"schema": {"type": "string"}},
                "text/html": {},
                PPTX: {"schema": BINARY},
                XLSX: {"schema": BINARY},
            },
            "headers": {
                "Content-Disposition": {
                    "description": "for pptx and xlsx: an attachment named for the train and "
                    'the as-of day, `attachment; filename="train-5.5-report-2026-12-08.pptx"`',
                    "schema": {"type": "string"},
                }
            },
        },
        **READ_PROBLEMS,
    },
)
def get_train_report(
    request: Request,
    _reader: ProjectionReader,
    queries: QueriesDep,
    train: TrainPath,
    format: Annotated[
        Literal["md", "html", "pptx", "xlsx"],
        Query(description="md, html, pptx (the weekly deck) or xlsx (the timeline)"),
    ] = "md",
    as_of: Annotated[
        Moment | None, Query(description="the report's moment; its week is the 7 days before")
    ] = None,
) -> Response:
    moment = parse_time_point(as_of, None).as_of
    if format in ("pptx", "xlsx"):
        document = office_file(queries, train, format, moment)
        disposition = f'attachment; filename="{document.filename}"'
        return Response(
            document.content,
            media_type=document.media_type,
            headers={"Content-Disposition": disposition},
        )
    report = weekly_report(queries, train, moment)
    if format == "html":
        return templates.TemplateResponse(request, "report.html", {"report": report, "view": None})
    return PlainTextResponse(render_text("report.md", report=report), media_type=MARKDOWN)
