"""The forecast's answer time over a long history, as a ratio to the reads it is made from.

One run, in one process, on a fresh PostgreSQL database (loopback only):

0. setup     -- ``--trains`` past majors (default 200), each planned, its four gates
                scheduled and decided (``conditional``: the history is what matters, not
                its criteria) a seeded number of days late, and one open major whose
                gates are only scheduled; all through ``ReleaseLedger``, then projected.
1. reads     -- what the forecast reads: ``queries.train`` of the open train and
                ``queries.trains(kind="major")``: the baseline.
2. forecast  -- ``projections.forecast.forecast`` of the open train (10,000 draws per
                gate), the same reads included.
3. deck      -- on a second database holding ``ledger demo``: the weekly deck of 5.5
                (``api.exports.weekly_deck_file``: the report, its forecast, python-pptx)
                against the Markdown report of the same train (the baseline).

Each pair takes turns, ``--repeat`` times each. Goals: the forecast's p95 ≤ 200 ms over
200 past trains; the deck of the demo's 5.5 in ≤ 1 s. The databases are dropped at the
end, even on failure or Ctrl-C.
Usage: ``.venv/bin/python bench/forecast.py [--trains N] [--repeat N]``.
"""

from __future__ import annotations

import sys
from pathlib import Path

# Run as a script, this file's directory comes first on sys.path, and bench/projections.py
# would shadow the ``projections`` package: look in that directory last (where ``append``,
# whose helpers this benchmark shares, is still found).
sys.path.sort(key=lambda entry: Path(entry or ".").resolve() == Path(__file__).resolve().parent)

import argparse
import os
import random
import statistics
import time
from collections.abc import Callable
from datetime import UTC, date, datetime, timedelta

from rich.console import Console
from sqlalchemy import Engine

from api.exports import weekly_deck_file
from api.templating import render_text
from append import ADMIN_URL_VARIABLE, DEFAULT_ADMIN_URL, fresh_databases, loopback_only
from ledger.application import CommandContext, ReleaseLedger
from ledger.config import Database, Settings
from projections.forecast import forecast
from projections.queries import NOW, ProjectionQueries
from projections.report import weekly_report
from projections.runner import ProjectionRunner
from projections.schema import engine_for, upgrade
from release_ledger.demo import load_demo

console = Console(stderr=False, highlight=False)
GOAL_P95_MS = 200.0
GOAL_DECK_MS = 1000.0
DECK_TRAIN = "5.5"
OPEN_TRAIN = "999.1"
FIRST_PLANNED = datetime(2001, 1, 1, tzinfo=UTC)
GATE_SPACING = (30, 60, 45, 30)  # days from planning to gate 1, then between gates


def record_history(ledger: ReleaseLedger, trains: int, seed: int) -> None:
    """``trains`` past majors, one every 20 days, then the open one, planned last."""
    draw = random.Random(seed)
    for number in range(trains):
        planned = FIRST_PLANNED + timedelta(days=20 * number)
        train = f"{100 + number // 10}.{number % 10}"
        at = CommandContext(recorded_by="bench", occurred_at=planned)
        ledger.plan_train(train, "major", "Bench Planner", context=at)
        target = planned.date()
        for gate, spacing in enumerate(GATE_SPACING, start=1):
            target += timedelta(days=spacing)
            ledger.schedule_gate(train, gate, target, "Bench Planner", context=at)
        decided = planned.date()
        for gate, spacing in enumerate(GATE_SPACING, start=1):
            decided = max(decided, planned.date()) + timedelta(days=spacing)
            decided += timedelta(days=draw.choice((0, 0, 3, 7, 14, 21)))
            when = datetime.combine(decided, datetime.min.time(), UTC) + timedelta(hours=12)
            ledger.decide_gate(
                train,
                gate,
                "conditional",
                "Bench Director",
                conditions="bench history",
                context=CommandContext(recorded_by="bench", occurred_at=when),
            )
    now = datetime.now(UTC)
    ledger.plan_train(OPEN_TRAIN, "major", "Bench Planner", context=CommandContext("bench"))
    target = now.date()
    for gate, spacing in enumerate(GATE_SPACING, start=1):
        target += timedelta(days=spacing)
        ledger.schedule_gate(OPEN_TRAIN, gate, target, "Bench Planner")


def timed(operation: Callable[[], object]) -> float:
    started = time.perf_counter()
    operation()
    return (time.perf_counter() - started) * 1000


def quantile(values: list[float], share: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(share * len(ordered)))]


def run(args: argparse.Namespace, admin_url: str) -> int:
    with fresh_databases(admin_url, ("forecast", "deck")) as urls:
        forecast_ms, read_ms = measure_forecast(urls["forecast"], args)
        deck_ms, markdown_ms = measure_deck(urls["deck"], args)
    p95, read_p95 = quantile(forecast_ms, 0.95), quantile(read_ms, 0.95)
    console.print(
        f"forecast over {args.trains} past trains: p50 {statistics.median(forecast_ms):.1f} ms, "
        f"p95 {p95:.1f} ms; its reads alone: p50 {statistics.median(read_ms):.1f} ms, "
        f"p95 {read_p95:.1f} ms ({p95 / read_p95:.1f}x the reads)"
    )
    deck_max, markdown_max = max(deck_ms), max(markdown_ms)
    deck_p50, markdown_p50 = statistics.median(deck_ms), statistics.median(markdown_ms)
    console.print(
        f"deck of the demo's {DECK_TRAIN}: p50 {deck_p50:.0f} ms, max {deck_max:.0f} ms; "
        f"its Markdown report: p50 {markdown_p50:.0f} ms, max {markdown_max:.0f} ms "
        f"({deck_p50 / markdown_p50:.1f}x the Markdown report)"
    )
    console.print(f"{args.repeat} runs each · {date.today()} · cores {os.cpu_count()}")
    verdicts = [
        (f"forecast p95 <= {GOAL_P95_MS:.0f} ms", p95 <= GOAL_P95_MS),
        (f"deck <= {GOAL_DECK_MS:.0f} ms (slowest run)", deck_max <= GOAL_DECK_MS),
    ]
    for goal, good in verdicts:
        console.print(f"goal {goal}: {'MET' if good else 'NOT MET'}")
    return 0 if all(good for _, good in verdicts) else 1


def opened(url: str) -> tuple[ReleaseLedger, Engine]:
    """The ledger and its upgraded projection tables on ``url``."""
    ledger = ReleaseLedger.from_settings(Settings(database_url=url))
    engine = engine_for(Database.from_url(url))
    upgrade(engine)
    return ledger, engine


def measure_forecast(url: str, args: argparse.Namespace) -> tuple[list[float], list[float]]:
    """The forecast's and its reads' times, in ms, over the generated history."""
    ledger, engine = opened(url)
    try:
        started = time.perf_counter()
        record_history(ledger, args.trains, args.seed)
        ProjectionRunner(ledger, engine).catch_up()
        console.print(
            f"{args.trains} past majors and {OPEN_TRAIN} recorded and projected "
            f"in {time.perf_counter() - started:.1f} s"
        )
        queries = ProjectionQueries(engine, ledger)

        def reads() -> None:
            queries.train(OPEN_TRAIN, NOW)
            queries.trains(kind="major", at=NOW)

        def forecasted() -> None:
            result = forecast(queries, OPEN_TRAIN, NOW)
            assert all(gate.p50 is not None for gate in result.gates), result

        reads(), forecasted()  # warm the caches both use
        forecast_ms, read_ms = [], []
        for _ in range(args.repeat):
            read_ms.append(timed(reads))
            forecast_ms.append(timed(forecasted))
        return forecast_ms, read_ms
    finally:
        engine.dispose()
        ledger.close()


def measure_deck(url: str, args: argparse.Namespace) -> tuple[list[float], list[float]]:
    """The deck's and the Markdown report's times, in ms, on the demo history."""
    ledger, engine = opened(url)
    try:
        load_demo(ledger)
        ProjectionRunner(ledger, engine).catch_up()
        queries = ProjectionQueries(engine, ledger)

        def deck() -> None:
            assert weekly_deck_file(queries, DECK_TRAIN, None).content

        def markdown() -> None:
            assert render_text("report.md", report=weekly_report(queries, DECK_TRAIN))

        deck(), markdown()
        deck_ms, markdown_ms = [], []
        for _ in range(min(args.repeat, 20)):
            markdown_ms.append(timed(markdown))
            deck_ms.append(timed(deck))
        return deck_ms, markdown_ms
    finally:
        engine.dispose()
        ledger.close()


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n\n", 1)[0])
    parser.add_argument("--trains", type=int, default=200, help="past majors (default 200)")
    parser.add_argument("--repeat", type=int, default=30, help="runs of each (default 30)")
    parser.add_argument("--seed", type=int, default=7, help="seed of the past slips")
    args = parser.parse_args(argv)
    if not 3 <= args.trains <= 2000 or not 5 <= args.repeat <= 1000:
        parser.error("--trains must be 3 to 2000 and --repeat 5 to 1000")
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    admin_url = os.environ.get(ADMIN_URL_VARIABLE, DEFAULT_ADMIN_URL)
    loopback_only(admin_url)
    return run(args, admin_url)


if __name__ == "__main__":
    sys.exit(main())
