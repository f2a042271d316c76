"""The weekly status report over HTTP and from ``ledger report``, on the demo history."""

from __future__ import annotations

import re
from collections.abc import Iterator
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from api.templating import day
from release_ledger.cli import app
from tests.api_client import assert_problem
from tests.integration.dashboard_fixtures import demo_api
from tests.integration.test_api import Api

WEEK = timedelta(days=7)


@pytest.fixture(scope="module")
def demo(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Api]:
    """The app holding the demo, projected; shared, since reports only read."""
    yield from demo_api(tmp_path_factory)


def week_of_decisions(api: Api, train: str, as_of: datetime) -> list[dict[str, Any]]:
    """From the audit projection, every decision touching ``train`` in the 7 days to as_of."""
    items: list[dict[str, Any]] = []
    after = None
    while True:
        params: dict[str, Any] = {"train": train, "limit": 1000}
        if after is not None:
            params["after"] = after
        page = api.read("/v1/audit", api.last_position(), **params)
        items += page["items"]
        after = page["next_cursor"]
        if after is None:
            break
    return [
        item
        for item in items
        if as_of - WEEK <= datetime.fromisoformat(item["occurred_at"]) <= as_of
    ]


def report(api: Api, train: str, form: str, as_of: datetime | None = None) -> str:
    params: dict[str, Any] = {"format": form}
    if as_of is not None:
        params["as_of"] = as_of.isoformat()
    response = api.get(f"/v1/trains/{train}/report", **params)
    assert response.status_code == 200, response.text
    return response.text


def markdown_changes(text: str) -> list[tuple[str, str, str]]:
    """(feature, decision, who) of each row of the Markdown report's scope-change table."""
    section = text.split("## Scope changes this week", 1)[1].split("\n## ", 1)[0]
    rows = [line for line in section.splitlines() if line.startswith("| ") and "---" not in line]
    return [tuple(cell.strip() for cell in row.split("|")[2:5]) for row in rows[1:]]  # type: ignore[misc]


def expected_rows(decisions: list[dict[str, Any]]) -> list[tuple[str, str, str]]:
    return [
        (
            d["feature"],
            d["action"] + (f" → {d['to_train']}" if d["to_train"] else ""),
            d["actor"] + (f", asked by {d['requested_by']}" if d["requested_by"] else ""),
        )
        for d in decisions
    ]


@pytest.mark.parametrize(
    ("train", "days_ago", "count"),
    [
        ("5.4.2", None, 2),  # two commits in the last week
        ("5.5", 5, 1),  # the move of STOR-506 to 5.6, seen from five days ago
        ("5.6", 5, 1),  # the same move, from the receiving train
        ("5.5", None, 0),  # nothing this week
    ],
)
def test_the_report_lists_exactly_the_decisions_of_its_week_in_both_formats(
    demo: Api, train: str, days_ago: int | None, count: int
) -> None:
    """The Markdown and HTML reports name exactly the audit log's decisions of the 7 days."""
    as_of = None if days_ago is None else datetime.now(UTC) - timedelta(days=days_ago)
    decisions = week_of_decisions(demo, train, as_of or datetime.now(UTC))
    assert len(decisions) == count  # the demo history as this case expects it

    markdown = report(demo, train, "md", as_of)
    html = report(demo, train, "html", as_of)

    assert markdown_changes(markdown) == expected_rows(decisions)
    positions = re.findall(r'class="change" data-position="(\d+)"', html)
    assert positions == [str(d["position"]) for d in decisions]
    for decision in decisions:
        if decision["reason"]:
            assert decision["reason"] in markdown
    if not decisions:
        assert "No scope change this week." in markdown
        assert "No scope change this week." in html


def test_the_report_holds_dates_gates_qa_and_its_trend_risks_and_beta(demo: Api) -> None:
    """5.5's report: the slipped freeze, both QA phases against target, the stretch, the betas."""
    markdown = report(demo, "5.5", "md")

    assert markdown.startswith("# Weekly status: train 5.5 (Emerald)")
    assert "| 3 · code freeze and beta readiness |" in markdown
    assert "(slipped from" in markdown
    assert "| Phase 1 | 5.5.0-b3 | 19,094 / 21,310 | 332 | 89.60 % |" in markdown
    assert "Effective rate after phase 2: **97.30 %**; target 96 %" in markdown
    assert "Trend across cycles: improving" in markdown
    assert "- **MGMT-505** (Predictive drive-failure alerts): stretched" in markdown
    assert "332 of 21,310 tests blocked in QA" in markdown
    assert "**5.5.0-b2** to Orion Telecom, Kestrel Media, Tidewater Energy" in markdown


def test_the_report_carries_the_forecast_the_api_gives(demo: Api) -> None:
    """Both formats list 5.5's undecided gates with the forecast API's P50, P80 and P95,
    and the golden run's odds."""
    forecast = demo.get("/v1/trains/5.5/forecast").json()
    golden = f"{forecast['golden']['probability'] * 100:.0f} % likely to reach"

    markdown = report(demo, "5.5", "md")
    html = report(demo, "5.5", "html")

    for gate in forecast["gates"]:
        dates = [day(date.fromisoformat(gate[p])) for p in ("p50", "p80", "p95")]
        assert " | ".join(dates) in markdown
        assert f'<tr data-gate="{gate["gate"]}">' in html
        assert all(shown in html for shown in dates)
    assert golden in markdown
    assert golden in html


def test_an_anchor_without_a_beta_customer_is_a_risk(demo: Api) -> None:
    """Before the second beta drop, anchor REPL-502 had no beta customer: the report says so."""
    as_of = datetime.now(UTC) - timedelta(days=12)

    markdown = report(demo, "5.5", "md", as_of)

    assert "**REPL-502** (Cloud tiering to object storage): anchor without a beta customer" in (
        markdown
    )


def test_the_html_report_is_a_page_of_its_own(demo: Api) -> None:
    """format=html answers a complete HTML page, without the dashboard's navigation."""
    response = demo.get("/v1/trains/5.5/report", format="html")

    assert response.headers["content-type"] == "text/html; charset=utf-8"
    assert response.text.startswith("<!doctype html>")
    assert 'id="report"' in response.text
    assert "Sign out" not in response.text


def test_the_report_needs_a_reader_token_and_a_known_train(demo: Api) -> None:
    """No token is 401, an unknown train 404, an unknown format 422: all problems."""
    assert_problem(demo.client.get("/v1/trains/5.5/report"), 401)
    assert_problem(demo.get("/v1/trains/9.9/report"), 404)
    assert_problem(demo.get("/v1/trains/5.5/report", format="pdf"), 422)


def test_ledger_report_prints_the_markdown_report(
    demo: Api, monkeypatch: pytest.MonkeyPatch
) -> None:
    """``ledger report --train T --as-of D`` prints what the HTTP route answers for that day."""
    monkeypatch.setenv("LEDGER_DATABASE_URL", demo.client.app.state.settings.database_url)
    day = (datetime.now(UTC) - timedelta(days=5)).date()
    end_of_day = datetime.combine(day, datetime.max.time(), tzinfo=UTC)

    result = CliRunner().invoke(app, ["report", "--train", "5.5", "--as-of", day.isoformat()])

    assert result.exit_code == 0, result.output
    assert result.stdout == report(demo, "5.5", "md", end_of_day)
    assert "| STOR-506 | move → 5.6 | Hiroshi Tanaka |" in result.stdout


def test_ledger_report_brings_the_projections_up_to_the_log_first(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Right after ``ledger demo``, with no server to project it, the report shows 5.5."""
    url = f"sqlite:///{tmp_path / 'ledger.sqlite3'}"
    monkeypatch.setenv("LEDGER_DATABASE_URL", url)
    assert CliRunner().invoke(app, ["demo"]).exit_code == 0

    result = CliRunner().invoke(app, ["report", "--train", "5.5"])

    assert result.exit_code == 0, result.output
    assert result.stdout.startswith("# Weekly status: train 5.5")
