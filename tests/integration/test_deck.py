"""The weekly deck (``format=pptx``, ``ledger report --format pptx``) on the demo history,
opened with python-pptx and checked against what the API answers."""

from __future__ import annotations

import io
from collections.abc import Iterator
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from pptx import Presentation
from pptx.oxml.ns import qn
from pptx.util import Inches
from typer.testing import CliRunner

from api.deck import CONTENT_HEIGHT, Cell, Column, Line, Table, Text, paginate, weekly_deck
from api.office import PPTX, XLSX
from api.templating import day, moment
from projections.report import GateLine, QALine, WeeklyReport
from release_ledger.cli import app
from tests.api_client import assert_problem
from tests.integration.dashboard_fixtures import demo_api
from tests.integration.test_api import Api
from tests.integration.test_report import week_of_decisions

SLIDES = [
    "Train 5.5 · Emerald",
    "Dates and gates",
    "This week's scope changes",
    "QA against the target",
    "Features at risk",
    "Beta status",
]


@pytest.fixture(scope="module")
def demo(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Api]:
    """The app holding the demo, projected; shared, since decks only read."""
    yield from demo_api(tmp_path_factory)


def days_back(days: float) -> datetime:
    return (datetime.now(UTC) - timedelta(days=days)).replace(microsecond=0)


def deck_response(api: Api, train: str = "5.5", **params: Any) -> Any:
    response = api.get(f"/v1/trains/{train}/report", format="pptx", **params)
    assert response.status_code == 200, response.text
    assert response.headers["content-type"] == PPTX
    return response


def open_deck(api: Api, train: str = "5.5", as_of: datetime | None = None) -> Any:
    params = {} if as_of is None else {"as_of": as_of.isoformat()}
    return Presentation(io.BytesIO(deck_response(api, train, **params).content))


def titles(deck: Any) -> list[str]:
    return [slide.shapes.title.text for slide in deck.slides]


def slide(deck: Any, title: str) -> Any:
    return next(s for s in deck.slides if s.shapes.title.text == title)


def texts(page: Any) -> str:
    """Every text of a slide, its tables' cells included, one per line."""
    lines = []
    for shape in page.shapes:
        if shape.has_text_frame:
            lines.append(shape.text_frame.text)
        if shape.has_table:
            lines += [cell.text for row in shape.table.rows for cell in row.cells]
    return "\n".join(lines)


def table_rows(page: Any, index: int = 0) -> list[list[str]]:
    """The cells of the slide's ``index``-th table, header first."""
    table = [shape for shape in page.shapes if shape.has_table][index].table
    return [[cell.text for cell in row.cells] for row in table.rows]


def shown(value: str | None) -> str:
    """A date or moment of the API as the deck shows it: ``17 Dec 2026``."""
    if value is None:
        return "—"
    if len(value) == 10:
        return day(date.fromisoformat(value))
    return day(datetime.fromisoformat(value))


def test_the_deck_holds_the_weekly_status_in_six_slides(demo: Api) -> None:
    """A 16:9 deck: a title slide, then gates, the week's changes, QA, risks and beta, in order."""
    as_of = days_back(2)

    response = deck_response(demo, as_of=as_of.isoformat())
    deck = Presentation(io.BytesIO(response.content))

    assert titles(deck) == SLIDES
    assert (deck.slide_width, deck.slide_height) == (Inches(13.333), Inches(7.5))
    assert response.headers["content-disposition"] == (
        f'attachment; filename="train-5.5-report-{as_of.date().isoformat()}.pptx"'
    )
    cover = texts(deck.slides[0])
    assert f"as of {moment(as_of)}" in cover
    assert "major · status committed" in cover


def test_the_qa_chart_is_a_native_chart_of_the_apis_rates_against_the_target(demo: Api) -> None:
    """The QA slide's chart is a chart, not a picture: phase 1 and after phase 2 as in the API."""
    qa = demo.read("/v1/trains/5.5", demo.last_position())["qa"]

    charts = [s for s in slide(open_deck(demo), "QA against the target").shapes if s.has_chart]

    assert len(charts) == 1
    chart = charts[0].chart
    columns, target = chart.plots
    assert list(columns.categories) == ["Phase 1", "After phase 2"]
    assert columns.series[0].values == (
        round(qa["cycles"]["phase1"]["success_rate"], 2),
        round(qa["effective_phase2_rate"], 2),
    )
    assert target.series[0].name == "Target 96 %"
    assert target.series[0].values == (96.0, 96.0)
    assert chart.value_axis.maximum_scale == 100
    plot_area = chart._chartSpace.plotArea
    bars, line = (plot_area.find(qn(f"c:{kind}Chart")) for kind in ("bar", "line"))
    axes = [[axis.get("val") for axis in plot.findall(qn("c:axId"))] for plot in (bars, line)]
    assert axes[0] == axes[1]  # the target's line is drawn on the columns' axes
    assert len(axes[0]) == 2
    assert all(value is not None and value.lstrip("-").isdigit() for value in axes[0])


def test_the_gates_table_holds_the_apis_dates_and_the_forecast(demo: Api) -> None:
    """Each gate's dates, slips and outcome as ``GET /v1/trains/5.5`` has them, its P50/P80/P95
    as ``GET /v1/trains/5.5/forecast`` has them."""
    gates = demo.read("/v1/trains/5.5", demo.last_position())["gates"]
    forecast = {g["gate"]: g for g in demo.read("/v1/trains/5.5/forecast", 0)["gates"]}

    header, *rows = table_rows(slide(open_deck(demo), "Dates and gates"))

    assert header == [
        "Gate",
        "Scheduled",
        "First scheduled",
        "Slips",
        "Outcome",
        "Decided",
        "P50",
        "P80",
        "P95",
    ]
    assert len(rows) == len(gates) == 4
    for row, gate in zip(rows, gates, strict=True):
        predicted = forecast.get(gate["gate"], {})
        assert row[:3] == [
            f"{gate['gate']} · {gate['name']}",
            shown(gate["scheduled_for"]),
            shown(gate["original_date"]),
        ]
        assert row[3].startswith(str(len(gate["slips"])))
        assert row[4:6] == [gate["outcome"] or "pending", shown(gate["decided_at"])]
        assert row[6:] == [shown(predicted.get(p)) for p in ("p50", "p80", "p95")]
    assert forecast.keys() == {3, 4}  # 5.5 has passed gates 1 and 2
    assert "3 · code freeze and beta readiness" in rows[2][0]
    assert rows[2][3] == "1 · +7 d"  # slipped a week


def test_the_weeks_scope_changes_say_who_decided_what_and_why(demo: Api) -> None:
    """Five days ago, the week's one change (STOR-506 moved to 5.6) is on the slide with who
    and why; today's week has none, and the slide says so."""
    as_of = days_back(5)
    decisions = week_of_decisions(demo, "5.5", as_of)
    assert len(decisions) == 1

    page = slide(open_deck(demo, as_of=as_of), "This week's scope changes")
    quiet = slide(open_deck(demo), "This week's scope changes")

    header, *rows = table_rows(page)
    assert header == ["When", "Feature", "Decision", "Who", "Why"]
    change = decisions[0]
    assert rows == [
        [
            moment(datetime.fromisoformat(change["occurred_at"])),
            "STOR-506",
            "move → 5.6",
            change["actor"],
            change["reason"],
        ]
    ]
    assert "No scope change this week" in texts(quiet)
    assert not [shape for shape in quiet.shapes if shape.has_table]


def test_as_of_changes_what_the_deck_shows(demo: Api) -> None:
    """Twelve days ago 5.5 had one beta drop and an anchor without a beta customer; now two
    drops and no such risk."""
    then = open_deck(demo, as_of=days_back(12))
    now = open_deck(demo)

    def beta_builds(deck: Any) -> list[str]:
        return [row[1] for row in table_rows(slide(deck, "Beta status"))[1:]]

    assert beta_builds(then) == ["5.5.0-b1"]
    assert beta_builds(now) == ["5.5.0-b1", "5.5.0-b2"]
    assert "anchor without a beta customer" in texts(slide(then, "Features at risk"))
    assert "anchor without a beta customer" not in texts(slide(now, "Features at risk"))


def test_the_same_report_gives_the_same_bytes(demo: Api) -> None:
    """Two renderings at one as-of are byte for byte the same, dated and signed by the ledger."""
    as_of = days_back(3)

    first = deck_response(demo, as_of=as_of.isoformat()).content
    second = deck_response(demo, as_of=as_of.isoformat()).content

    assert first == second
    properties = Presentation(io.BytesIO(first)).core_properties
    assert properties.author == "Release Ledger"
    assert properties.title == "Weekly status · train 5.5"
    assert properties.created == properties.modified == as_of.replace(tzinfo=None)


def test_an_unknown_format_is_a_422_naming_every_format(demo: Api) -> None:
    """``format=pdf`` is refused with a problem that lists md, html, pptx and xlsx."""
    problem = assert_problem(demo.get("/v1/trains/5.5/report", format="pdf"), 422)

    assert problem["errors"][0]["field"] == "format"
    message = problem["errors"][0]["message"]
    for name in ("md", "html", "pptx", "xlsx"):
        assert f"'{name}'" in message
    assert_problem(demo.get("/v1/trains/9.9/report", format="pptx"), 404)


def test_long_tables_continue_on_further_slides() -> None:
    """Forty scope changes fill slides titled "(continued)", every change once and in order."""
    as_of = datetime(2026, 12, 8, 17, 0, tzinfo=UTC)
    changes = [
        {
            "occurred_at": as_of - timedelta(hours=4 * index),
            "feature": f"FEAT-{index:02d}",
            "action": "move",
            "to_train": "6.1",
            "exception": False,
            "actor": "Ada Lovelace",
            "requested_by": None,
            "reason": "Sized at two quarters of work; it builds on the next layout. " * (index % 4)
            if index != 7
            else "A reason longer than a cell holds. " * 40,
            "position": index,
        }
        for index in range(40)
    ]
    report = synthetic_report(as_of, changes)

    deck = Presentation(io.BytesIO(weekly_deck(report, None)))

    scope = [s for s in deck.slides if s.shapes.title.text.startswith("This week's scope changes")]
    assert len(scope) > 2
    assert [s.shapes.title.text for s in scope[1:]] == ["This week's scope changes (continued)"] * (
        len(scope) - 1
    )
    shown_features = [row[1] for page in scope for row in table_rows(page)[1:]]
    assert shown_features == [change["feature"] for change in changes]
    assert "P50" not in table_rows(slide(deck, "Dates and gates"))[0]  # no forecast given
    (cut,) = [page for page in scope if page.has_notes_slide]
    (long_row,) = [row for row in table_rows(cut) if row[1] == "FEAT-07"]
    assert long_row[4].endswith("…")
    assert len(long_row[4]) < len(changes[7]["reason"])
    assert cut.notes_slide.notes_text_frame.text == f"FEAT-07: {changes[7]['reason']}"


def test_a_split_table_keeps_every_row_and_each_part_fits_its_slide() -> None:
    """Rows of any length split into parts that each fit the content area, none lost or cut."""
    columns = (Column("Feature", 2.0), Column("Why", 10.1))
    rows = tuple(
        (Cell(f"FEAT-{index:02d}"), Cell("A long reason that wraps. " * (index % 12)))
        for index in range(60)
    )

    pages = paginate([Table(columns, rows), Text((Line("A closing line."),))])

    assert len(pages) > 3
    assert all(sum(block.height for block in page) <= CONTENT_HEIGHT for page in pages)
    parts = [block for page in pages for block in page if isinstance(block, Table)]
    assert tuple(row for part in parts for row in part.rows) == rows
    assert isinstance(pages[-1][-1], Text)


def synthetic_report(as_of: datetime, changes: list[dict[str, Any]]) -> WeeklyReport:
    """A report of a train with many changes this week, one QA cycle and no beta."""
    gate = GateLine(1, "scope review", date(2026, 12, 20), date(2026, 12, 20), [], None, None, None)
    return WeeklyReport(
        train="6.0",
        title=None,
        kind="major",
        parent=None,
        status="planning",
        support=None,
        as_of=as_of,
        since=as_of - timedelta(days=7),
        is_now=False,
        gates=[gate],
        next_gate=gate,
        next_gate_unmet=[],
        changes=changes,
        qa=[QALine("phase1", "Phase 1", "6.0.0-b1", 100, 90, 10, 0, 90.0, None)],
        effective_rate=None,
        qa_target=96.0,
        risks=[],
        beta_drops=[],
    )


def test_ledger_report_writes_the_deck_to_a_file(
    demo: Api, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    """``ledger report --format pptx -o FILE`` writes the deck the route gives; without ``-o``
    it refuses in one line."""
    monkeypatch.setenv("LEDGER_DATABASE_URL", demo.client.app.state.settings.database_url)
    day_before = (datetime.now(UTC) - timedelta(days=1)).date()
    end_of_day = datetime.combine(day_before, datetime.max.time(), tzinfo=UTC)
    output = tmp_path / "weekly.pptx"
    runner = CliRunner()

    arguments = ["report", "--train", "5.5", "--as-of", day_before.isoformat()]
    written = runner.invoke(app, [*arguments, "--format", "pptx", "-o", str(output)])
    refused = runner.invoke(app, ["report", "--train", "5.5", "--format", "pptx"])

    assert written.exit_code == 0, written.output
    assert f"wrote {output}" in written.stderr
    assert output.read_bytes() == deck_response(demo, as_of=end_of_day.isoformat()).content
    assert titles(Presentation(str(output))) == SLIDES
    assert refused.exit_code == 1
    assert refused.stderr.strip().splitlines()[-1] == (
        "error: --format pptx writes a file: name it with -o FILE"
    )


def test_the_openapi_document_names_the_four_formats_and_both_office_media_types(
    demo: Api,
) -> None:
    """The report's operation lists md, html, pptx and xlsx and documents what each answers."""
    document = demo.client.get("/openapi.json").json()

    operation = document["paths"]["/v1/trains/{train}/report"]["get"]
    (form,) = [p for p in operation["parameters"] if p["name"] == "format"]
    assert form["schema"]["enum"] == ["md", "html", "pptx", "xlsx"]
    assert all(name in form["description"] for name in ("md", "html", "pptx", "xlsx"))
    ok = operation["responses"]["200"]
    assert {PPTX, XLSX} <= ok["content"].keys()
    assert "Content-Disposition" in ok["headers"]
