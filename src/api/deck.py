"""The weekly status as a PowerPoint deck (SPEC §11), rendered from ``weekly_report``.

Program managers present the weekly status from slides. The deck renders the same
``WeeklyReport`` as the Markdown and HTML reports, so they never disagree, and adds the
train's forecast beside its gates. Every slide is laid out here rather than in a template:
a table that would run off a slide continues on the next one, and the QA chart is a native
chart, so PowerPoint shows its figures and a presenter can restyle it.
"""

from __future__ import annotations

import io
import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from datetime import date
from typing import TYPE_CHECKING, Any

from pptx import Presentation
from pptx.chart.chart import Chart
from pptx.chart.data import CategoryChartData
from pptx.dml.color import RGBColor
from pptx.enum.chart import XL_CHART_TYPE, XL_LABEL_POSITION, XL_LEGEND_POSITION
from pptx.enum.chart import XL_MARKER_STYLE as MARKER
from pptx.enum.dml import MSO_LINE_DASH_STYLE
from pptx.enum.shapes import MSO_SHAPE
from pptx.enum.text import MSO_ANCHOR, MSO_AUTO_SIZE, PP_ALIGN
from pptx.oxml.ns import qn
from pptx.oxml.xmlchemy import OxmlElement
from pptx.slide import Slide
from pptx.table import _Cell
from pptx.text.text import TextFrame
from pptx.util import Inches, Pt

from api.office import AUTHOR, stamped, utc_naive
from api.templating import day, moment, percent
from projections.report import WeeklyReport

if TYPE_CHECKING:
    from projections.forecast import GateForecast, TrainForecast

# 16:9, in inches. The content runs between the title's rule and the footer.
SLIDE_WIDTH, SLIDE_HEIGHT = 13.333, 7.5
LEFT = 0.6
CONTENT_WIDTH = SLIDE_WIDTH - 2 * LEFT
CONTENT_TOP = 1.45
CONTENT_BOTTOM = 6.7
CONTENT_HEIGHT = CONTENT_BOTTOM - CONTENT_TOP
BLOCK_GAP = 0.22
FOOTER_TOP = 6.95

# Text measure, for laying out before PowerPoint does: generous, so that nothing estimated
# to fit runs over.
GLYPH = 0.47
"""An average glyph's width, as a share of the font size."""
LEADING = 1.2
CELL_PAD_X, CELL_PAD_Y = 0.08, 0.06
MAX_CELL_TEXT = 280
"""Longer cell text is cut on the slide and given in full in the slide's notes."""
MAX_TITLE = 100

NAVY = RGBColor(0x1F, 0x3A, 0x5F)
ACCENT = RGBColor(0x2A, 0x9D, 0x8F)
INK = RGBColor(0x26, 0x32, 0x38)
MUTED = RGBColor(0x6B, 0x77, 0x85)
WHITE = RGBColor(0xFF, 0xFF, 0xFF)
BAND = RGBColor(0xF1, 0xF4, 0xF8)
TILE = RGBColor(0xF1, 0xF4, 0xF8)
GRID = RGBColor(0xD9, 0xDE, 0xE4)
BAR = RGBColor(0x2F, 0x6D, 0xB5)
GOOD = RGBColor(0x2E, 0x7D, 0x32)
WARN = RGBColor(0xB2, 0x6A, 0x00)
BAD = RGBColor(0xC6, 0x28, 0x28)
OUTCOME_COLOURS = {"passed": GOOD, "conditional": WARN, "failed": BAD, "postponed": WARN}

TITLE_SLIDE_LAYOUT, TITLE_ONLY_LAYOUT = 0, 5
PERCENT_FORMAT = '0.00" %"'
"""As the report shows a rate (``percent``): two decimals."""


# ----------------------------------------------------------------- blocks


@dataclass(frozen=True)
class Cell:
    text: str
    colour: RGBColor | None = None
    bold: bool = False

    @property
    def shown(self) -> str:
        return clipped(self.text, MAX_CELL_TEXT)


def clipped(text: str, limit: int) -> str:
    """``text`` if it has at most ``limit`` characters, else its start and an ellipsis."""
    return text if len(text) <= limit else text[: limit - 1].rstrip() + "…"


@dataclass(frozen=True)
class Column:
    header: str
    width: float
    align: PP_ALIGN = PP_ALIGN.LEFT


@dataclass(frozen=True)
class Table:
    """A table that splits between slides by rows, its header repeated on each."""

    columns: tuple[Column, ...]
    rows: tuple[tuple[Cell, ...], ...]
    size: float = 14
    key: int = 0
    """The column that names a row in the notes, where a cut cell is given in full."""

    @property
    def height(self) -> float:
        return self._header_height + sum(self._row_height(row) for row in self.rows)

    @property
    def _header_height(self) -> float:
        return self._row_height(tuple(Cell(column.header) for column in self.columns))

    @property
    def _one_line_height(self) -> float:
        return self.size * LEADING / 72 + 2 * CELL_PAD_Y

    def _row_height(self, row: Sequence[Cell]) -> float:
        lines = max(
            text_lines(cell.shown, column.width - 2 * CELL_PAD_X, self.size)
            for cell, column in zip(row, self.columns, strict=True)
        )
        return lines * self.size * LEADING / 72 + 2 * CELL_PAD_Y

    def split(self, room: float, at_least_one: bool) -> tuple[Table | None, Table | None]:
        used, count = self._header_height, 0
        for row in self.rows:
            height = self._row_height(row)
            if used + height > room and (count or not at_least_one):
                break
            used, count = used + height, count + 1
        if count == 0:
            return None, self
        rest = replace(self, rows=self.rows[count:]) if count < len(self.rows) else None
        return replace(self, rows=self.rows[:count]), rest

    def notes(self) -> list[str]:
        """The full text of every cell cut on the slide, named by its row's key."""
        return [
            f"{row[self.key].text}: {cell.text}"
            for row in self.rows
            for cell in row
            if cell.shown != cell.text
        ]

    def draw(self, slide: Slide, top: float) -> None:
        width = sum(column.width for column in self.columns)
        frame = slide.shapes.add_table(
            len(self.rows) + 1,
            len(self.columns),
            Inches(LEFT),
            Inches(top),
            Inches(width),
            Inches(self.height),
        )
        table = frame.table
        table.first_row, table.horz_banding = True, False
        for index, column in enumerate(self.columns):
            table.columns[index].width = Inches(column.width)
        # Rows get one line's height: PowerPoint grows a row to its text, and the estimates
        # (generous, for the page breaks) would leave gaps.
        single = self._one_line_height
        table.rows[0].height = Inches(single)
        for index, column in enumerate(self.columns):
            header = Cell(column.header, WHITE, bold=True)
            _fill_cell(table.cell(0, index), header, column.align, self.size, NAVY)
        for number, row in enumerate(self.rows, start=1):
            table.rows[number].height = Inches(single)
            fill = BAND if number % 2 == 0 else WHITE
            for index, (cell, column) in enumerate(zip(row, self.columns, strict=True)):
                _fill_cell(table.cell(number, index), cell, column.align, self.size, fill)


@dataclass(frozen=True)
class Line:
    text: str
    lead: str = ""
    """Set in bold before the text."""
    colour: RGBColor = INK


@dataclass(frozen=True)
class Text:
    """Paragraphs under a table or alone; splits between slides by paragraphs."""

    lines: tuple[Line, ...]
    size: float = 14

    @property
    def height(self) -> float:
        return sum(self._line_height(line) for line in self.lines)

    def _line_height(self, line: Line) -> float:
        lines = text_lines(line.lead + line.text, CONTENT_WIDTH, self.size)
        return lines * self.size * LEADING / 72 + self.size * 0.4 / 72

    def split(self, room: float, at_least_one: bool) -> tuple[Text | None, Text | None]:
        used, count = 0.0, 0
        for line in self.lines:
            height = self._line_height(line)
            if used + height > room and (count or not at_least_one):
                break
            used, count = used + height, count + 1
        if count == 0:
            return None, self
        rest = replace(self, lines=self.lines[count:]) if count < len(self.lines) else None
        return replace(self, lines=self.lines[:count]), rest

    def notes(self) -> list[str]:
        return []

    def draw(self, slide: Slide, top: float) -> None:
        box = slide.shapes.add_textbox(
            Inches(LEFT), Inches(top), Inches(CONTENT_WIDTH), Inches(self.height)
        )
        frame = _plain(box.text_frame)
        for index, line in enumerate(self.lines):
            paragraph = frame.paragraphs[0] if index == 0 else frame.add_paragraph()
            paragraph.space_after = Pt(self.size * 0.4)
            if line.lead:
                _run(paragraph, line.lead, self.size, line.colour, bold=True)
            _run(paragraph, line.text, self.size, line.colour)


Block = Table | Text


def text_lines(text: str, width: float, size: float) -> int:
    """Lines ``text`` takes in a box ``width`` inches wide at ``size`` points (estimated).

    Words wrap as PowerPoint wraps them, whole, onto the next line; a word longer than a
    line is broken.
    """
    per_line = max(1, int(width * 72 / (size * GLYPH)))
    lines = 0
    for part in text.split("\n"):
        lines += 1
        used = 0
        for word in part.split(" "):
            length = len(word)
            if used and used + 1 + length > per_line:
                lines, used = lines + 1, 0
            if length > per_line:
                lines += (length - 1) // per_line
                length = (length - 1) % per_line + 1
            used += length + (1 if used else 0)
    return lines


def paginate(blocks: Sequence[Block], room: float = CONTENT_HEIGHT) -> list[list[Block]]:
    """The blocks in slides' worth: each slide as full as fits, a block split where it must."""
    pages: list[list[Block]] = [[]]
    left = room
    queue = list(blocks)
    while queue:
        block = queue.pop(0)
        gap = BLOCK_GAP if pages[-1] else 0.0
        fitted, rest = block.split(left - gap, at_least_one=not pages[-1])
        if fitted is not None:
            pages[-1].append(fitted)
            left -= gap + fitted.height
        if rest is not None:
            pages.append([])
            left = room
            queue.insert(0, rest)
    return pages


# ------------------------------------------------------------------ slides


@dataclass(frozen=True)
class Page:
    """One content slide: its title and what draws its body."""

    title: str
    draw: Callable[[Slide], None]
    notes: tuple[str, ...] = ()


def weekly_deck(report: WeeklyReport, forecast: TrainForecast | None) -> bytes:
    """The weekly status of ``report``'s train as a .pptx, with its forecast when given."""
    deck: Any = Presentation()
    deck.slide_width, deck.slide_height = Inches(SLIDE_WIDTH), Inches(SLIDE_HEIGHT)
    _set_properties(deck, report)
    pages = [
        *_flowed("Dates and gates", _gate_blocks(report, forecast)),
        *_flowed("This week's scope changes", _change_blocks(report)),
        _qa_page(report, forecast),
        *_flowed("Features at risk", _risk_blocks(report)),
        *_flowed("Beta status", _beta_blocks(report)),
    ]
    _title_slide(deck.slides.add_slide(deck.slide_layouts[TITLE_SLIDE_LAYOUT]), report, forecast)
    total = len(pages) + 1
    for number, page in enumerate(pages, start=2):
        slide = deck.slides.add_slide(deck.slide_layouts[TITLE_ONLY_LAYOUT])
        _title(slide, page.title)
        page.draw(slide)
        _footer(slide, report, number, total)
        if page.notes:
            slide.notes_slide.notes_text_frame.text = "\n".join(page.notes)
    out = io.BytesIO()
    deck.save(out)
    return stamped(out.getvalue(), report.as_of)


def _set_properties(deck: Any, report: WeeklyReport) -> None:
    properties = deck.core_properties
    properties.title = f"Weekly status · train {report.train}"
    properties.subject = f"as of {moment(report.as_of)}"
    properties.author = properties.last_modified_by = AUTHOR
    properties.comments = f"The weekly status of train {report.train}, from its ledger."
    properties.created = properties.modified = utc_naive(report.as_of)
    properties.revision = 1


def _flowed(title: str, blocks: Sequence[Block]) -> list[Page]:
    """``blocks`` on as many slides as they need, ``title (continued)`` after the first."""
    return [
        Page(
            title if index == 0 else f"{title} (continued)",
            _drawer(page),
            tuple(note for block in page for note in block.notes()),
        )
        for index, page in enumerate(paginate(blocks))
    ]


def _drawer(blocks: Sequence[Block]) -> Callable[[Slide], None]:
    def draw(slide: Slide) -> None:
        top = CONTENT_TOP
        for block in blocks:
            block.draw(slide, top)
            top += block.height + BLOCK_GAP

    return draw


# ------------------------------------------------------------- the title slide


def _title_slide(slide: Slide, report: WeeklyReport, forecast: TrainForecast | None) -> None:
    band = slide.shapes.add_shape(
        MSO_SHAPE.RECTANGLE, Inches(0), Inches(0), Inches(0.35), Inches(SLIDE_HEIGHT)
    )
    _solid(band, NAVY)
    kicker = slide.shapes.add_textbox(Inches(0.9), Inches(1.05), Inches(11.5), Inches(0.45))
    _run(_plain(kicker.text_frame).paragraphs[0], "WEEKLY STATUS", 16, ACCENT, bold=True)

    title = slide.shapes.title
    assert title is not None
    _place(title, 0.9, 1.5, 11.5, 1.2)
    name = f"Train {report.train}" + (f" · {report.title}" if report.title else "")
    # One line of 44 points holds some 36 characters; a longer name takes two lines of 32.
    _heading(title.text_frame, clipped(name, MAX_TITLE), 44 if len(name) <= 36 else 32)

    subtitle = slide.placeholders[1]
    _place(subtitle, 0.9, 2.8, 11.5, 1.2)
    frame = _plain(subtitle.text_frame)
    week = f"Week {day(report.since)} to {day(report.as_of)} · as of {moment(report.as_of)}"
    _run(frame.paragraphs[0], week, 20, INK)
    frame.paragraphs[0].alignment = PP_ALIGN.LEFT
    about = [report.kind + (f" of {report.parent}" if report.parent else "")]
    about.append(f"status {report.status}")
    if report.support:
        about.append(f"support {report.support.replace('_', ' ')}")
    second = frame.add_paragraph()
    second.alignment = PP_ALIGN.LEFT
    _run(second, " · ".join(about), 16, MUTED)

    tiles = _glance(report, forecast)
    width = (SLIDE_WIDTH - LEFT - 0.9 - 0.25 * (len(tiles) - 1)) / len(tiles)
    for index, tile in enumerate(tiles):
        _tile(slide, tile, 0.9 + index * (width + 0.25), 4.45, width, 1.85)


@dataclass(frozen=True)
class Tile:
    """A figure of the title slide: what it is, the figure, a line or two, a signal colour."""

    label: str
    figure: str
    signal: str
    """Under the figure, in the signal colour: met, below target, at risk."""
    details: tuple[str, ...] = ()
    colour: RGBColor = INK


def _glance(report: WeeklyReport, forecast: TrainForecast | None) -> list[Tile]:
    """The title slide's four figures: next gate, QA, the week's changes, the risks."""
    changes = len(report.changes)
    recorded = {0: "no decision recorded", 1: "decision recorded"}.get(
        changes, "decisions recorded"
    )
    cycles = sum(1 for risk in report.risks if risk.kind == "qa-blocked")
    features = len(report.risks) - cycles
    at_risk = [_count(features, "feature", "features")] if features else []
    if cycles:
        at_risk.append(f"{_count(cycles, 'QA cycle', 'QA cycles')} with blocked tests")
    return [
        _next_gate_tile(report, forecast),
        _qa_tile(report),
        Tile("SCOPE CHANGES THIS WEEK", str(changes), recorded),
        Tile(
            "AT RISK",
            str(len(report.risks)),
            ", ".join(at_risk) if report.risks else "nothing at risk",
            colour=WARN if report.risks else GOOD,
        ),
    ]


def _next_gate_tile(report: WeeklyReport, forecast: TrainForecast | None) -> Tile:
    gate = report.next_gate
    if gate is None:
        return Tile("NEXT GATE", "—", "released" if report.status == "released" else "none")
    readiness = (
        "every exit criterion met"
        if not report.next_gate_unmet
        else f"{_count(len(report.next_gate_unmet), 'exit criterion', 'exit criteria')} unmet"
    )
    details = [f"gate {gate.gate} · {gate.name}"]
    predicted = _gate_forecasts(forecast).get(gate.gate)
    if predicted is not None and predicted.p80 is not None:
        details.append(f"forecast P80 {day(predicted.p80)}")
    return Tile(
        "NEXT GATE",
        day(gate.scheduled_for),
        readiness,
        tuple(details),
        GOOD if not report.next_gate_unmet else WARN,
    )


def _qa_tile(report: WeeklyReport) -> Tile:
    label, rate = _latest_rate(report)
    if rate is None:
        return Tile("QA", "—", "no QA cycle recorded yet")
    met = rate >= report.qa_target
    verdict = f"{'meets' if met else 'below'} the {report.qa_target:g} % target"
    return Tile(
        f"QA · {label.upper()}",
        percent(rate),
        verdict,
        (f"trend across cycles: {report.qa_trend}",),
        GOOD if met else BAD,
    )


def _latest_rate(report: WeeklyReport) -> tuple[str, float | None]:
    """The furthest QA figure: golden, else the effective rate after phase 2, else phase 1."""
    rates = _chart_rates(report)
    return rates[-1] if rates else ("", None)


def _tile(slide: Slide, tile: Tile, left: float, top: float, width: float, height: float) -> None:
    _solid(
        slide.shapes.add_shape(
            MSO_SHAPE.RECTANGLE, Inches(left), Inches(top), Inches(width), Inches(height)
        ),
        TILE,
    )
    _solid(
        slide.shapes.add_shape(
            MSO_SHAPE.RECTANGLE, Inches(left), Inches(top), Inches(0.08), Inches(height)
        ),
        tile.colour,
    )
    box = slide.shapes.add_textbox(
        Inches(left + 0.25), Inches(top + 0.15), Inches(width - 0.4), Inches(height - 0.3)
    )
    frame = _plain(box.text_frame)
    _run(frame.paragraphs[0], tile.label, 11, MUTED, bold=True)
    figure = frame.add_paragraph()
    figure.space_before = Pt(4)
    _run(figure, tile.figure, 26, NAVY, bold=True)
    signal = frame.add_paragraph()
    signal.space_before = Pt(4)
    _run(signal, tile.signal, 12, tile.colour, bold=True)
    for detail in tile.details:
        _run(frame.add_paragraph(), detail, 12, INK)


# ----------------------------------------------------------- dates and gates


def _gate_forecasts(forecast: TrainForecast | None) -> dict[int, GateForecast]:
    return {} if forecast is None else {gate.gate: gate for gate in forecast.gates}


def _gate_blocks(report: WeeklyReport, forecast: TrainForecast | None) -> list[Block]:
    predicted = _gate_forecasts(forecast)
    with_forecast = bool(predicted)
    columns = [
        Column("Gate", 3.0 if with_forecast else 3.9),
        Column("Scheduled", 1.3 if with_forecast else 1.6),
        Column("First scheduled", 1.3 if with_forecast else 1.6),
        Column("Slips", 0.95 if with_forecast else 1.3, PP_ALIGN.CENTER),
        Column("Outcome", 1.2 if with_forecast else 1.7),
        Column("Decided", 1.25 if with_forecast else 1.9),
    ]
    if with_forecast:
        columns += [Column(f"P{p}", 1.03) for p in (50, 80, 95)]
    rows = []
    for gate in report.gates:
        row = [
            Cell(f"{gate.gate} · {gate.name}", bold=gate is report.next_gate),
            Cell(day(gate.scheduled_for)),
            Cell(day(gate.original_date)),
            Cell(_slips(gate.slips, gate.scheduled_for, gate.original_date)),
            Cell(gate.outcome or "pending", OUTCOME_COLOURS.get(gate.outcome or "", MUTED)),
            Cell(day(gate.decided_at)),
        ]
        if with_forecast:
            when = predicted.get(gate.gate)
            row += [
                Cell(day(None if when is None else value), NAVY)
                for value in (
                    (when.p50, when.p80, when.p95) if when is not None else (None, None, None)
                )
            ]
        rows.append(tuple(row))
    blocks: list[Block] = [Table(tuple(columns), tuple(rows), size=12)]
    lines = [*_gate_lines(report), *_forecast_lines(forecast)]
    if lines:
        blocks.append(Text(tuple(lines), size=13))
    return blocks


def _slips(slips: Sequence[dict[str, Any]], scheduled: date | None, first: date | None) -> str:
    if not slips:
        return "0"
    if scheduled is None or first is None:
        return str(len(slips))
    return f"{len(slips)} · {(scheduled - first).days:+d} d"


def _gate_lines(report: WeeklyReport) -> list[Line]:
    lines = []
    gate = report.next_gate
    if gate is not None:
        ready = (
            f"not ready: {'; '.join(report.next_gate_unmet)}."
            if report.next_gate_unmet
            else "every exit criterion is met."
        )
        text = f"gate {gate.gate} ({gate.name}) on {day(gate.scheduled_for)}: {ready}"
        lines.append(Line(text, "Next: ", WARN if report.next_gate_unmet else INK))
    for line in report.gates:
        if line.conditions:
            lines.append(Line(line.conditions, f"Gate {line.gate} conditions: "))
        for slip in line.slips:
            reason = f": {slip['reason']}" if slip.get("reason") else ""
            moved = f"{day(slip['from'])} → {day(slip['to'])}{reason}"
            lines.append(Line(moved, f"Gate {line.gate} moved ", MUTED))
    return lines


def _forecast_lines(forecast: TrainForecast | None) -> list[Line]:
    """Which past trains each forecast came from (one line for gates that share them), why a
    gate has none, and whether the overlap rule holds."""
    if forecast is None or not forecast.gates:
        return []
    samples: dict[tuple[str, ...], list[int]] = {}
    for gate in forecast.gates:
        if gate.reason is None:
            samples.setdefault(gate.sample_trains, []).append(gate.gate)
    lines = []
    for trains, numbers in samples.items():
        lead = "Forecast: " if len(samples) == 1 else f"Forecast of {_gates_named(numbers)}: "
        lines.append(
            Line(
                f"P50/P80/P95 from {forecast.draws:,} draws over the same gate's slips on "
                f"{len(trains)} past {forecast.kind} trains ({', '.join(trains)}).",
                lead,
                MUTED,
            )
        )
    for gate in forecast.gates:
        if gate.reason is not None:
            lines.append(Line(gate.reason, f"No forecast for gate {gate.gate}: ", MUTED))
    overlap = forecast.overlap
    if overlap is not None and overlap.next_major is not None:
        lead, colour = "Overlap: ", MUTED
        if overlap.aligned is not None:
            lead = "Overlap aligned: " if overlap.aligned else "Overlap not aligned: "
            colour = INK if overlap.aligned else BAD
        lines.append(Line(overlap.detail, lead, colour))
    return lines


def _count(number: int, one: str, many: str) -> str:
    return f"{number} {one if number == 1 else many}"


def _gates_named(numbers: Sequence[int]) -> str:
    """``gate 3``, ``gates 1 and 2``, ``gates 1, 2 and 4``."""
    if len(numbers) == 1:
        return f"gate {numbers[0]}"
    return f"gates {', '.join(str(n) for n in numbers[:-1])} and {numbers[-1]}"


# ---------------------------------------------------------- scope changes


def _change_blocks(report: WeeklyReport) -> list[Block]:
    if not report.changes:
        return [Text((Line(f"No scope change this week ({_week(report)})."),), size=16)]
    columns = (
        Column("When", 2.25),
        Column("Feature", 1.3),
        Column("Decision", 1.75),
        Column("Who", 2.3),
        Column("Why", 4.5),
    )
    rows = tuple(
        (
            Cell(moment(change["occurred_at"])),
            Cell(change["feature"], bold=True),
            Cell(_decision(change)),
            Cell(_who(change)),
            Cell(change["reason"] or "—", None if change["reason"] else MUTED),
        )
        for change in report.changes
    )
    return [Table(columns, rows, key=1)]


def _who(change: dict[str, Any]) -> str:
    actor: str = change["actor"]
    return actor + (f", asked by {change['requested_by']}" if change["requested_by"] else "")


def _decision(change: dict[str, Any]) -> str:
    text: str = change["action"]
    if change["to_train"]:
        text += f" → {change['to_train']}"
    if change["exception"]:
        text += " (exception)"
    return text


def _week(report: WeeklyReport) -> str:
    return f"{day(report.since)} to {day(report.as_of)}"


# ------------------------------------------------------------------------ QA


def _chart_rates(report: WeeklyReport) -> list[tuple[str, float]]:
    """The chart's columns: phase 1, the effective rate after phase 2, golden, when known."""
    by_cycle = {line.cycle: line.rate for line in report.qa}
    candidates = (
        ("Phase 1", by_cycle.get("phase1")),
        ("After phase 2", report.effective_rate),
        ("Golden", by_cycle.get("golden")),
    )
    return [(label, rate) for label, rate in candidates if rate is not None]


def _qa_page(report: WeeklyReport, forecast: TrainForecast | None) -> Page:
    def draw(slide: Slide) -> None:
        rates = _chart_rates(report)
        if not rates:
            Text((Line("No QA cycle recorded yet."),), size=16).draw(slide, CONTENT_TOP)
            return
        _qa_chart(slide, rates, report.qa_target)
        _qa_panel(slide, report, forecast)

    return Page("QA against the target", draw)


def _qa_chart(slide: Slide, rates: list[tuple[str, float]], target: float) -> None:
    data: Any = CategoryChartData(number_format=PERCENT_FORMAT)
    data.categories = [label for label, _ in rates]
    data.add_series("Success rate", [rate for _, rate in rates], PERCENT_FORMAT)
    data.add_series(f"Target {target:g} %", [target] * len(rates), PERCENT_FORMAT)
    frame: Any = slide.shapes.add_chart(  # a graphic frame, not the Chart it is typed as
        XL_CHART_TYPE.COLUMN_CLUSTERED,
        Inches(LEFT),
        Inches(CONTENT_TOP),
        Inches(7.6),
        Inches(CONTENT_HEIGHT),
        data,
    )
    chart: Chart = frame.chart
    _target_as_line(chart)
    chart.has_title = False
    chart.font.size = Pt(12)
    chart.font.color.rgb = INK
    chart.has_legend = True
    chart.legend.position = XL_LEGEND_POSITION.BOTTOM
    chart.legend.include_in_layout = False

    columns = chart.plots[0]
    columns.gap_width = 70
    bars = columns.series[0]
    bars.format.fill.solid()
    bars.format.fill.fore_color.rgb = BAR
    columns.has_data_labels = True
    labels = columns.data_labels
    labels.number_format, labels.number_format_is_linked = PERCENT_FORMAT, False
    labels.position = XL_LABEL_POSITION.OUTSIDE_END
    labels.font.size, labels.font.bold = Pt(14), True

    line = chart.plots[1].series[0]
    line.smooth = False
    line.format.line.color.rgb = BAD
    line.format.line.width = Pt(2.5)
    line.format.line.dash_style = MSO_LINE_DASH_STYLE.DASH
    # A line needs two categories; alone, the target is a dash over its column.
    line.marker.style = MARKER.DASH if len(rates) == 1 else MARKER.NONE
    line.marker.size = 20
    line.marker.format.fill.solid()
    line.marker.format.fill.fore_color.rgb = BAD
    line.marker.format.line.color.rgb = BAD

    low = max(0, math.floor((min([target, *(rate for _, rate in rates)]) - 5) / 10) * 10)
    axis = chart.value_axis
    axis.minimum_scale, axis.maximum_scale = low, 100
    axis.major_unit = 10 if 100 - low > 30 else 5
    axis.has_major_gridlines = True
    axis.major_gridlines.format.line.color.rgb = GRID
    axis.tick_labels.number_format, axis.tick_labels.number_format_is_linked = '0" %"', False
    axis.format.line.fill.background()
    chart.category_axis.tick_labels.font.size = Pt(14)
    chart.category_axis.format.line.color.rgb = GRID


def _target_as_line(chart: Chart) -> None:
    """Move the chart's second series, the target, from the columns to a line over them.

    python-pptx makes single-type charts; a bar and a line on the same axes is two plots
    in one plot area, which PowerPoint draws as a combination chart.
    """
    plot_area = chart._chartSpace.plotArea
    bar_chart = plot_area.find(qn("c:barChart"))
    target = bar_chart.findall(qn("c:ser"))[1]
    invert = target.find(qn("c:invertIfNegative"))
    if invert is not None:
        target.remove(invert)
    target.append(_valued("c:smooth", "0"))
    line_chart = OxmlElement("c:lineChart")
    line_chart.append(_valued("c:grouping", "standard"))
    line_chart.append(_valued("c:varyColors", "0"))
    line_chart.append(target)
    line_chart.append(_valued("c:marker", "1"))
    for axis in bar_chart.findall(qn("c:axId")):  # the same axes as the columns
        line_chart.append(_valued("c:axId", axis.get("val")))
    bar_chart.addnext(line_chart)


def _valued(tag: str, value: str) -> Any:
    """``<c:tag val="value"/>``."""
    element = OxmlElement(tag)
    element.set("val", value)
    return element


def _qa_panel(slide: Slide, report: WeeklyReport, forecast: TrainForecast | None) -> None:
    """Beside the chart: each cycle's build, counts and week-on-week move, then the verdict."""
    box = slide.shapes.add_textbox(
        Inches(8.6), Inches(CONTENT_TOP + 0.1), Inches(SLIDE_WIDTH - 8.6 - LEFT), Inches(5.0)
    )
    frame = _plain(box.text_frame)
    first = True
    for line in report.qa:
        head = frame.paragraphs[0] if first else frame.add_paragraph()
        if not first:
            head.space_before = Pt(10)
        first = False
        _run(head, f"{line.label}", 15, NAVY, bold=True)
        _run(head, f" · build {line.build}", 13, MUTED)
        figures = frame.add_paragraph()
        _run(figures, percent(line.rate), 13, INK, bold=True)
        counts = f" · {line.passed:,} of {line.total:,} passed · {line.blocked:,} blocked"
        _run(figures, counts, 13, INK)
        week = frame.add_paragraph()
        if line.week_before is None:
            moved = "new this week"
        else:
            change = f", {line.change:+.2f} pts" if line.change else ""
            moved = f"a week ago {percent(line.week_before)} ({line.trend}{change})"
        _run(week, moved, 12, MUTED)
    verdict = frame.add_paragraph()
    verdict.space_before = Pt(16)
    if report.effective_rate is not None:
        met = report.effective_rate >= report.qa_target
        _run(verdict, "Effective after phase 2: ", 14, INK, bold=True)
        _run(verdict, percent(report.effective_rate), 14, GOOD if met else BAD, bold=True)
        _run(verdict, f" against {report.qa_target:g} %", 14, INK)
        verdict = frame.add_paragraph()
    _run(verdict, f"Trend across cycles: {report.qa_trend}", 13, INK)
    golden = _golden_line(report, forecast)
    if golden:
        outlook = frame.add_paragraph()
        outlook.space_before = Pt(10)
        _run(outlook, "Golden run: ", 13, INK, bold=True)
        _run(outlook, golden, 13, INK)


def _golden_line(report: WeeklyReport, forecast: TrainForecast | None) -> str | None:
    """The forecast's chance that golden reaches the target, while golden is not run."""
    if forecast is None or any(line.cycle == "golden" for line in report.qa):
        return None
    golden = forecast.golden
    if golden.probability is None:
        return golden.reason
    return (
        f"{golden.probability * 100:.0f} % chance of reaching {golden.target:g} %, from the "
        f"gains of {golden.sample_size} past {forecast.kind} trains (phase 1 to golden)"
    )


# ----------------------------------------------------------- risks and beta


def _risk_blocks(report: WeeklyReport) -> list[Block]:
    if not report.risks:
        return [Text((Line("No feature at risk."),), size=16)]
    columns = (Column("Feature or cycle", 2.2), Column("Title", 4.6), Column("Why", 5.3))
    rows = tuple(
        (
            Cell(risk.subject, bold=True),
            Cell(risk.title, None) if risk.title else Cell(_untitled(risk.kind), MUTED),
            Cell(risk.detail, WARN),
        )
        for risk in report.risks
    )
    return [Table(columns, rows)]


def _untitled(kind: str) -> str:
    return "QA cycle" if kind == "qa-blocked" else "—"


def _beta_blocks(report: WeeklyReport) -> list[Block]:
    blocks: list[Block] = []
    if report.beta_drops:
        columns = (
            Column("Date", 1.7),
            Column("Build", 2.0),
            Column("Customers", 4.6),
            Column("Features", 3.8),
        )
        rows = tuple(
            (
                Cell(day(drop["occurred_at"])),
                Cell(drop["build"], bold=True),
                Cell(", ".join(drop["customers"])),
                Cell(", ".join(drop["features"])),
            )
            for drop in report.beta_drops
        )
        blocks.append(Table(columns, rows))
    else:
        blocks.append(Text((Line("No beta drop yet."),), size=16))
    if report.anchors_with_beta:
        anchors = tuple(
            (
                Cell(key, bold=True),
                Cell(", ".join(customers)) if customers else Cell("none yet", WARN, bold=True),
            )
            for key, customers in report.anchors_with_beta.items()
        )
        blocks.append(Table((Column("Anchor", 2.2), Column("Beta customers", 9.9)), anchors))
    return blocks


# ------------------------------------------------------------------ drawing


def _title(slide: Slide, text: str) -> None:
    title = slide.shapes.title
    assert title is not None
    _place(title, LEFT, 0.35, CONTENT_WIDTH, 0.75)
    _heading(title.text_frame, text, 28)
    rule = slide.shapes.add_shape(
        MSO_SHAPE.RECTANGLE, Inches(LEFT), Inches(1.12), Inches(1.1), Inches(0.06)
    )
    _solid(rule, ACCENT)


def _footer(slide: Slide, report: WeeklyReport, number: int, total: int) -> None:
    name = f"Train {report.train}" + (f" · {report.title}" if report.title else "")
    left = slide.shapes.add_textbox(Inches(LEFT), Inches(FOOTER_TOP), Inches(9), Inches(0.3))
    _run(
        _plain(left.text_frame).paragraphs[0],
        f"{name} · weekly status as of {moment(report.as_of)}",
        10,
        MUTED,
    )
    right = slide.shapes.add_textbox(
        Inches(SLIDE_WIDTH - LEFT - 2), Inches(FOOTER_TOP), Inches(2), Inches(0.3)
    )
    paragraph = _plain(right.text_frame).paragraphs[0]
    paragraph.alignment = PP_ALIGN.RIGHT
    _run(paragraph, f"{number} / {total}", 10, MUTED)


def _place(shape: Any, left: float, top: float, width: float, height: float) -> None:
    shape.left, shape.top = Inches(left), Inches(top)
    shape.width, shape.height = Inches(width), Inches(height)


def _heading(frame: TextFrame, text: str, size: float) -> None:
    frame.word_wrap = True
    frame.auto_size = MSO_AUTO_SIZE.NONE
    frame.vertical_anchor = MSO_ANCHOR.BOTTOM
    frame.margin_left = frame.margin_right = Inches(0)
    paragraph = frame.paragraphs[0]
    paragraph.alignment = PP_ALIGN.LEFT
    _run(paragraph, text, size, NAVY, bold=True)


def _plain(frame: TextFrame) -> TextFrame:
    """A text frame that wraps, keeps its size and has no inner margin."""
    frame.word_wrap = True
    frame.auto_size = MSO_AUTO_SIZE.NONE
    frame.margin_left = frame.margin_right = frame.margin_top = frame.margin_bottom = Inches(0)
    return frame


def _run(paragraph: Any, text: str, size: float, colour: RGBColor, bold: bool = False) -> None:
    run = paragraph.add_run()
    run.text = text
    run.font.size = Pt(size)
    run.font.bold = bold
    run.font.color.rgb = colour


def _solid(shape: Any, colour: RGBColor) -> None:
    shape.fill.solid()
    shape.fill.fore_color.rgb = colour
    shape.line.fill.background()
    shape.shadow.inherit = False


def _fill_cell(cell: _Cell, content: Cell, align: PP_ALIGN, size: float, fill: RGBColor) -> None:
    cell.fill.solid()
    cell.fill.fore_color.rgb = fill
    cell.margin_left = cell.margin_right = Inches(CELL_PAD_X)
    cell.margin_top = cell.margin_bottom = Inches(CELL_PAD_Y)
    cell.vertical_anchor = MSO_ANCHOR.MIDDLE
    frame = cell.text_frame
    frame.word_wrap = True
    paragraph = frame.paragraphs[0]
    paragraph.alignment = align
    _run(paragraph, content.shown, size, content.colour or INK, bold=content.bold)
