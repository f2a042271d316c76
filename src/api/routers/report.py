"""The weekly status report of a train, in Markdown or HTML (SPEC §7)."""

from __future__ import annotations

from typing import Annotated, Literal

from fastapi import APIRouter, Query, Request
from fastapi.responses import PlainTextResponse, Response

from api.deps import ProjectionReader, QueriesDep
from api.routers.trains import READ_PROBLEMS, TrainPath
from api.schemas import Moment
from api.templating import render_text, templates
from projections.queries import parse_time_point
from projections.report import weekly_report

router = APIRouter(prefix="/v1/trains", tags=["trains"])

MARKDOWN = "text/markdown; charset=utf-8"


@router.get(
    "/{train}/report",
    operation_id="getTrainReport",
    summary="The weekly status report: dates, gates, the week's scope changes, QA, risks, beta",
    description="The week is the 7 days before `as_of` (default now). `format=md` answers "
    "Markdown for the status deck, `format=html` a printable page.",
    response_class=Response,
    responses={
        200: {
            "description": "the report",
            "content": {"text/markdown": {"schema": {"type": "string"}}, "text/html": {}},
        },
        **READ_PROBLEMS,
    },
)
def get_train_report(
    request: Request,
    _reader: ProjectionReader,
    queries: QueriesDep,
    train: TrainPath,
    format: Annotated[Literal["md", "html"], Query(description="md or html")] = "md",
    as_of: Annotated[
        Moment | None, Query(description="the report's moment; its week is the 7 days before")
    ] = None,
) -> Response:
    moment = parse_time_point(as_of, None).as_of
    report = weekly_report(queries, train, moment)
    if format == "html":
        return templates.TemplateResponse(request, "report.html", {"report": report, "view": None})
    return PlainTextResponse(render_text("report.md", report=report), media_type=MARKDOWN)
