"""``GET /v1/trains/{t}/forecast`` on the demo history, on SQLite and PostgreSQL."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import date, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from ledger.config import Database
from ledger.train import Train
from ledger.values import train_stream_id
from projections.forecast import DRAWS, SEED
from projections.projectors import PROJECTION_NAMES
from projections.runner import wait_for_position
from projections.schema import engine_for, upgrade
from release_ledger.demo import load_demo
from tests.api_client import assert_problem
from tests.conftest import fresh_database
from tests.integration.test_api import Api, open_api

CATCH_UP_TIMEOUT = 60.0
MOMENT = timedelta(microseconds=1)


@pytest.fixture(scope="module", params=["sqlite", "postgres"])
def demo(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Api]:
    """The app holding the demo, projected, on each backend; shared, since forecasts only read."""
    if request.param == "sqlite":
        path: Path = tmp_path_factory.mktemp("forecast") / "ledger.sqlite3"
        yield from _demo_at(f"sqlite:///{path}")
        return
    with fresh_database(request.getfixturevalue("postgres_server")) as url:
        engine = engine_for(Database.from_url(url))
        try:
            upgrade(engine)
        finally:
            engine.dispose()
        yield from _demo_at(url)


def _demo_at(url: str) -> Iterator[Api]:
    with pytest.MonkeyPatch.context() as monkeypatch, open_api(url, monkeypatch) as api:
        load_demo(api.ledger)
        assert wait_for_position(
            api.engine, PROJECTION_NAMES, api.last_position(), CATCH_UP_TIMEOUT
        ), "the projections did not catch up with the demo"
        yield api


def forecast(api: Api, train: str, **params: Any) -> dict[str, Any]:
    response = api.get(f"/v1/trains/{train}/forecast", **params)
    assert response.status_code == 200, response.text
    body: dict[str, Any] = response.json()
    return body


def gates_of(api: Api, train: str) -> dict[int, dict[str, Any]]:
    document = api.read(f"/v1/trains/{train}", api.last_position())
    return {gate["gate"]: gate for gate in document["gates"]}


def day(text: str) -> date:
    return date.fromisoformat(text)


def test_the_forecast_of_5_6_has_the_documented_shape(demo: Api) -> None:
    """5.6, in planning, gets P50 ≤ P80 ≤ P95 for its four gates, as the OpenAPI document says."""
    schemas = demo.client.get("/openapi.json").json()["components"]["schemas"]

    answer = forecast(demo, "5.6")

    assert set(answer) == set(schemas["Forecast"]["properties"])
    assert [gate["gate"] for gate in answer["gates"]] == [1, 2, 3, 4]
    for gate in answer["gates"]:
        assert set(gate) == set(schemas["GateForecast"]["properties"])
        assert gate["reason"] is None
        assert day(gate["scheduled_for"]) <= day(gate["p50"])
        assert day(gate["p50"]) <= day(gate["p80"]) <= day(gate["p95"])
    assert set(answer["golden"]) == set(schemas["GoldenForecast"]["properties"])
    assert set(answer["overlap"]) == set(schemas["OverlapAlignment"]["properties"])
    assert (answer["train"], answer["kind"], answer["draws"], answer["seed"]) == (
        "5.6",
        "major",
        DRAWS,
        SEED,
    )
    assert answer["as_of"].endswith("+00:00")


def test_5_6s_scope_review_learns_from_the_five_majors_before_it(demo: Api) -> None:
    """Three of five past scope reviews were on time, 5.5's was 3 days late and 5.1's a week:
    P50 is 5.6's scheduled day, P95 a week later."""
    gate_1 = forecast(demo, "5.6")["gates"][0]

    assert gate_1["sample_trains"] == ["5.1", "5.2", "5.3", "5.4", "5.5"]
    assert gate_1["sample_size"] == 5
    assert gate_1["p50"] == gate_1["scheduled_for"]
    assert day(gate_1["p95"]) == day(gate_1["scheduled_for"]) + timedelta(days=7)


def test_5_6_has_no_phase_1_run_and_no_next_major(demo: Api) -> None:
    """5.6's golden odds wait for its phase 1; no 6.x or 5.7 is planned to align with."""
    answer = forecast(demo, "5.6")

    assert answer["golden"]["probability"] is None
    assert answer["golden"]["reason"] == (
        "no phase-1 run recorded yet: nothing to add the past gains to"
    )
    assert answer["overlap"]["next_major"] is None
    assert answer["overlap"]["aligned"] is None


def test_5_5s_code_freeze_holds_5_6s_scope_review(demo: Api) -> None:
    """5.6's gate 1 falls between 5.5's gate 3 and gate 4, as the seed's overlap rule wants;
    on 5.5's 89.6 % phase 1, 5.1's gain (6.32 points) misses 96 % and 5.2 to 5.4's reach it:
    about three in four."""
    answer = forecast(demo, "5.5")

    assert [gate["gate"] for gate in answer["gates"]] == [3, 4]
    overlap = answer["overlap"]
    assert overlap["next_major"] == "5.6"
    assert overlap["aligned"] is True
    assert day(overlap["code_freeze_from"]) <= day(overlap["next_gate1"])
    assert day(overlap["next_gate1"]) <= day(overlap["code_freeze_until"])
    golden = answer["golden"]
    assert golden["phase1_rate"] == 89.6
    assert golden["sample_trains"] == ["5.1", "5.2", "5.3", "5.4"]
    assert golden["probability"] == pytest.approx(0.75, abs=0.02)


def test_as_of_goes_back_to_before_5_5_passed_its_scope_review(demo: Api) -> None:
    """A moment before 5.5's gate 1 passed, gate 1 is forecast again from 5.1 to 5.4 alone."""
    decided = datetime.fromisoformat(gates_of(demo, "5.5")[1]["decided_at"])
    before = (decided - MOMENT).isoformat()

    answer = forecast(demo, "5.5", as_of=before)

    assert datetime.fromisoformat(answer["as_of"]) == decided - MOMENT
    assert [gate["gate"] for gate in answer["gates"]] == [1, 2, 3, 4]
    assert answer["gates"][0]["sample_trains"] == ["5.1", "5.2", "5.3", "5.4"]


def test_as_of_at_the_start_of_the_history_has_no_sample(demo: Api) -> None:
    """Just after 5.1 was planned no train had decided a gate: no dates, and the reasons."""
    planned = datetime.fromisoformat(
        demo.read("/v1/trains/5.1", demo.last_position())["planned_at"]
    )

    answer = forecast(demo, "5.1", as_of=(planned + MOMENT).isoformat())

    assert [gate["sample_size"] for gate in answer["gates"]] == [0, 0, 0, 0]
    assert all(gate["p50"] is None and gate["reason"] for gate in answer["gates"])
    assert_problem(
        demo.get("/v1/trains/5.1/forecast", as_of=(planned - MOMENT).isoformat()), 404, "not-found"
    )


def test_known_at_forecasts_from_what_the_ledger_had_recorded(demo: Api) -> None:
    """Known just before 5.5's gate-1 decision was recorded, gate 1 is open and 5.6 unknown."""
    events = demo.ledger.events.get(train_stream_id("5.5"))
    (decision,) = [e for e in events if isinstance(e, Train.GateDecided) and e.gate == 1]
    known_at = (decision.timestamp - MOMENT).isoformat()

    answer = forecast(demo, "5.5", known_at=known_at)

    assert answer["gates"][0]["gate"] == 1
    assert_problem(demo.get("/v1/trains/5.6/forecast", known_at=known_at), 404, "not-found")


def test_the_same_ledger_gives_the_same_bytes(demo: Api) -> None:
    """Asked twice about 5.6 as of the same moment, the answers are byte for byte the same."""
    as_of = datetime.fromisoformat(forecast(demo, "5.6")["as_of"]).isoformat()

    first = demo.get("/v1/trains/5.6/forecast", as_of=as_of)
    second = demo.get("/v1/trains/5.6/forecast", as_of=as_of)
    now, later = forecast(demo, "5.6"), forecast(demo, "5.6")

    assert first.status_code == second.status_code == 200
    assert first.content == second.content
    assert {**now, "as_of": None} == {**later, "as_of": None}


def test_an_unknown_train_is_404(demo: Api) -> None:
    """9.9 was never planned: a not-found problem."""
    assert_problem(demo.get("/v1/trains/9.9/forecast"), 404, "not-found")


def test_a_number_as_of_is_422(demo: Api) -> None:
    """as_of=0.5 is not taken as a Unix time: a 422 naming as_of."""
    problem = assert_problem(demo.get("/v1/trains/5.6/forecast", as_of="0.5"), 422)

    assert problem["errors"][0]["field"] == "as_of"


def test_the_openapi_document_shows_the_forecast_with_an_example(demo: Api) -> None:
    """getTrainForecast answers a Forecast whose quantiles are dates, with 5.5 as the example."""
    document = demo.client.get("/openapi.json").json()
    operation = document["paths"]["/v1/trains/{train}/forecast"]["get"]
    schemas = document["components"]["schemas"]

    assert operation["operationId"] == "getTrainForecast"
    assert operation["responses"]["200"]["content"]["application/json"]["schema"] == {
        "$ref": "#/components/schemas/Forecast"
    }
    assert {"404", "422"} <= set(operation["responses"])
    for quantile in ("p50", "p80", "p95"):
        options = schemas["GateForecast"]["properties"][quantile]["anyOf"]
        assert {"type": "string", "format": "date"} in options
    (example,) = schemas["Forecast"]["examples"]
    assert example["train"] == "5.5"
    assert example["gates"][0]["p50"] == "2026-11-11"
