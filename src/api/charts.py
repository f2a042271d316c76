"""Geometry of the dashboard's SVG charts, computed on the server from projection documents.

Templates only draw what these return, so the charts need no script and print as they
look on screen.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from typing import Any

from projections.forecast import GateForecast, TrainForecast

TIMELINE_WIDTH = 1200
LABEL_WIDTH = 150
PLOT_RIGHT = TIMELINE_WIDTH - 20
AXIS_HEIGHT = 36
ROW_HEIGHT = 30


@dataclass(frozen=True)
class Marker:
    train: str
    gate: int
    name: str
    day: date
    x: float
    outcome: str  # passed, conditional, failed, postponed or pending
    original_x: float | None  # where the gate was first scheduled, when it slipped
    original_day: date | None


@dataclass(frozen=True)
class ForecastRange:
    """An undecided gate's forecast, P50 to P95, with P80 marked between."""

    gate: int
    x50: float
    x80: float
    x95: float
    p50: date
    p80: date
    p95: date


@dataclass(frozen=True)
class Bar:
    train: str
    kind: str
    status: str
    support: str | None
    y: float
    x0: float
    x1: float
    markers: list[Marker]
    forecasts: list[ForecastRange] = field(default_factory=list)


@dataclass(frozen=True)
class Tick:
    x: float
    label: str


@dataclass
class Timeline:
    width: int
    height: int
    plot_left: int
    plot_right: int
    axis_height: int
    row_height: int
    bars: list[Bar] = field(default_factory=list)
    ticks: list[Tick] = field(default_factory=list)
    today_x: float | None = None
    as_of_x: float | None = None


def _day(value: date | datetime) -> date:
    return value.astimezone(UTC).date() if isinstance(value, datetime) else value


def _forecast_ranges(
    gates: Sequence[GateForecast], x: Callable[[date], float]
) -> list[ForecastRange]:
    return [
        ForecastRange(
            gate.gate, x(gate.p50), x(gate.p80), x(gate.p95), gate.p50, gate.p80, gate.p95
        )
        for gate in gates
        if gate.p50 is not None and gate.p80 is not None and gate.p95 is not None
    ]


def timeline(
    calendar: list[dict[str, Any]],
    today: date,
    as_of: date | None,
    forecasts: Mapping[str, TrainForecast] | None = None,
) -> Timeline:
    """Trains as bars from planning to their last gate, in the order they were planned,
    with each undecided gate's forecast range (P50 to P95) when ``forecasts`` has it."""
    ranges = {train: forecast.gates for train, forecast in (forecasts or {}).items()}
    rows = sorted(calendar, key=lambda row: (row["planned_at"], row["train"]))
    spans: list[tuple[dict[str, Any], date, date, list[tuple[dict[str, Any], date]]]] = []
    for row in rows:
        start = _day(row["planned_at"])
        gates = []
        for gate in row["gates"]:
            when = gate["decided_at"] or gate["scheduled_for"]
            if when is not None:
                gates.append((gate, _day(when)))
        end = max([start, *(when for _, when in gates)])
        if end == start:
            end = max(start, as_of or today)
        spans.append((row, start, end, gates))
    height = AXIS_HEIGHT + ROW_HEIGHT * max(len(spans), 1) + 10
    chart = Timeline(TIMELINE_WIDTH, height, LABEL_WIDTH, PLOT_RIGHT, AXIS_HEIGHT, ROW_HEIGHT)
    if not spans:
        return chart
    originals = [
        _day(gate["original_date"]) for row in rows for gate in row["gates"] if gate["slipped"]
    ]
    first = min(start for _, start, _, _ in spans) - timedelta(days=10)
    forecast_ends = [gate.p95 for gates in ranges.values() for gate in gates if gate.p95]
    last = max([*(end for _, _, end, _ in spans), today, *originals, *forecast_ends])
    last += timedelta(days=14)
    scale = (PLOT_RIGHT - LABEL_WIDTH) / max((last - first).days, 1)

    def x(day: date) -> float:
        return round(LABEL_WIDTH + (day - first).days * scale, 1)

    month = date(first.year, first.month, 1)
    while month <= last:
        if month >= first:
            label = f"{month:%b}" if month.month != 1 else f"{month:%Y}"
            chart.ticks.append(Tick(x(month), label))
        month = date(month.year + month.month // 12, month.month % 12 + 1, 1)
    for index, (row, start, end, gates) in enumerate(spans):
        markers = [
            Marker(
                row["train"],
                gate["gate"],
                gate["name"],
                when,
                x(when),
                gate["outcome"] or "pending",
                x(_day(gate["original_date"])) if gate["slipped"] else None,
                _day(gate["original_date"]) if gate["slipped"] else None,
            )
            for gate, when in gates
        ]
        chart.bars.append(
            Bar(
                row["train"],
                row["kind"],
                row["status"],
                row["support"],
                AXIS_HEIGHT + index * ROW_HEIGHT,
                x(start),
                x(end),
                markers,
                [
                    ForecastRange(
                        gate.gate,
                        x(gate.p50),
                        x(gate.p80),
                        x(gate.p95),
                        gate.p50,
                        gate.p80,
                        gate.p95,
                    )
                    for gate in ranges.get(row["train"], [])
                    if gate.p50 and gate.p80 and gate.p95
                ],
            )
        )
    if first <= today <= last:
        chart.today_x = x(today)
    if as_of is not None and first <= as_of <= last:
        chart.as_of_x = x(as_of)
    return chart


# ------------------------------------------------------------------ QA chart

QA_WIDTH = 560
QA_HEIGHT = 260
QA_LEFT = 48
QA_TOP = 16
QA_BOTTOM = 40


@dataclass(frozen=True)
class Column:
    label: str
    rate: float
    x: float
    y: float
    width: float
    height: float
    meets_target: bool


@dataclass(frozen=True)
class QAChart:
    width: int
    height: int
    left: int
    top: int
    bottom: float
    right: int
    columns: list[Column]
    target: float
    target_y: float
    ticks: list[tuple[float, int]]


def qa_chart(qa: dict[str, Any], target: float) -> QAChart | None:
    """Columns of success rate per cycle (and phase 2's effective rate) against the target."""
    cycles = qa["cycles"]
    series: list[tuple[str, float]] = []
    labels = {"phase1": "Phase 1", "phase2": "Phase 2 (alone)", "golden": "Golden"}
    for cycle in ("phase1", "phase2"):
        if cycle in cycles and cycles[cycle]["success_rate"] is not None:
            series.append((labels[cycle], cycles[cycle]["success_rate"]))
    if qa["effective_phase2_rate"] is not None:
        series.append(("After phase 2", qa["effective_phase2_rate"]))
    if "golden" in cycles and cycles["golden"]["success_rate"] is not None:
        series.append((labels["golden"], cycles["golden"]["success_rate"]))
    if not series:
        return None
    # Rates cluster near the top: start the axis below the lowest value, on a multiple of 10.
    low = max(0, math.floor((min(rate for _, rate in [*series, ("", target)]) - 5) / 10) * 10)
    bottom = QA_HEIGHT - QA_BOTTOM
    right = QA_WIDTH - 76  # room for the target's label beside its line
    span = bottom - QA_TOP

    def y(rate: float) -> float:
        return round(bottom - (rate - low) / (100 - low) * span, 1)

    slot = (right - QA_LEFT) / len(series)
    width = min(70.0, slot * 0.6)
    columns = [
        Column(
            label,
            rate,
            round(QA_LEFT + slot * index + (slot - width) / 2, 1),
            y(rate),
            round(width, 1),
            round(bottom - y(rate), 1),
            rate >= target,
        )
        for index, (label, rate) in enumerate(series)
    ]
    step = 10 if 100 - low > 30 else 5
    ticks = [(y(value), value) for value in range(low, 101, step)]
    return QAChart(
        QA_WIDTH, QA_HEIGHT, QA_LEFT, QA_TOP, bottom, right, columns, target, y(target), ticks
    )
