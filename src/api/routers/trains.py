"""Trains: planning, gates, scope, change management, beta drops, QA and support."""

from __future__ import annotations

from typing import Annotated, Any, Literal

import orjson
from fastapi import APIRouter, Path, Query, Response
from starlette.concurrency import run_in_threadpool

from api import schemas
from api.deps import ProjectionReaderAt, Write, command_route
from api.schemas import problems
from ledger.application import CommandResult, CustomerAsk
from ledger.train import Train
from ledger.values import TRAIN_ID_PATTERN
from projections.documents import train_document
from projections.forecast import forecast

router = APIRouter(prefix="/v1/trains", tags=["trains"])

TrainPath = Annotated[
    str,
    Path(
        pattern=TRAIN_ID_PATTERN.pattern,
        max_length=64,
        description="the train's version string",
        examples=["5.5"],
    ),
]
GatePath = Annotated[
    int,
    Path(description="1 to 4 for a major; minors and hotfixes have gate 4 only", examples=[2]),
]

WRITE_PROBLEMS = problems(400, 401, 403, 404, 409, 413, 415, 422)
READ_PROBLEMS = problems(401, 403, 404, 422, 503)


def recorded(result: CommandResult) -> dict[str, Any]:
    """A write's answer: the events it recorded and the train as it now stands."""
    subject = result.subject
    assert isinstance(subject, Train), "every train command answers with its train"
    return {
        "events": [event.as_dict() for event in result.events],
        "state": train_document(subject),
    }


def train_body(document: dict[str, Any]) -> bytes:
    """The JSON body FastAPI would make of ``document`` through ``response_model=Train``."""
    content = schemas.Train.model_validate(document).model_dump(mode="json", by_alias=True)
    return orjson.dumps(content, option=orjson.OPT_NON_STR_KEYS)


def _asks(customers: list[schemas.CustomerAsk]) -> list[CustomerAsk]:
    return [CustomerAsk(ask.name, ask.weight, ask.note) for ask in customers]


# ===================================================================== reads


@router.get(
    "",
    operation_id="listTrains",
    summary="All trains, current or at a time point",
    response_model=schemas.TrainList,
    responses=READ_PROBLEMS,
)
def list_trains(
    reading: ProjectionReaderAt,
    kind: Annotated[Literal["major", "minor", "hotfix"] | None, Query()] = None,
    status: Annotated[
        Literal["planning", "scoped", "committed", "frozen", "released"] | None, Query()
    ] = None,
    support: Annotated[Literal["supported", "hotfix_only", "eol"] | None, Query()] = None,
) -> dict[str, Any]:
    trains = reading.queries.trains(kind=kind, status=status, support=support, at=reading.at)
    return {"items": trains}


@router.get(
    "/{train}",
    operation_id="getTrain",
    summary="One train: status, gates, scope, QA, beta drops, support",
    response_model=schemas.Train,
    responses=READ_PROBLEMS,
)
async def get_train(reading: ProjectionReaderAt, train: TrainPath) -> Any:
    queries = reading.queries
    if not reading.at.is_now:
        return await run_in_threadpool(queries.train, train, reading.at)
    # The current document is validated and rendered once per projection state, not once
    # per request (response_model still documents the body); and while the database tells
    # this process what changed, a document it holds is served without asking it.
    body = queries.train_remembered(train, train_body, reading.min_position)
    if body is None:
        body = await run_in_threadpool(queries.train_rendered, train, train_body)
    return Response(body, media_type="application/json")


@router.get(
    "/{train}/gates/{gate}/readiness",
    operation_id="getGateReadiness",
    summary="A gate's exit criteria, each with met and its evidence",
    response_model=schemas.Readiness,
    responses=READ_PROBLEMS,
)
def get_gate_readiness(
    reading: ProjectionReaderAt, train: TrainPath, gate: GatePath
) -> dict[str, Any]:
    criteria = reading.queries.readiness(train, gate, reading.at)
    return {
        "train": train,
        "gate": gate,
        "ready": all(criterion.met for criterion in criteria),
        "criteria": [criterion.as_dict() for criterion in criteria],
    }


@router.get(
    "/{train}/forecast",
    operation_id="getTrainForecast",
    summary="P50/P80/P95 dates of the undecided gates, the golden run's odds, the overlap",
    description="A Monte Carlo over the ledger's own history (10,000 draws, a fixed seed: the "
    "same ledger gives the same answer): each undecided gate's dates from the slips of the "
    "same gate on past trains of the same kind decided by `as_of` (default now), no dates "
    "under three such trains; the probability that the golden run reaches the QA target from "
    "the phase-1 rate and past gains; for a major, whether the next major's gate 1 falls in "
    "its code freeze.",
    response_model=schemas.Forecast,
    responses=READ_PROBLEMS,
)
async def get_train_forecast(reading: ProjectionReaderAt, train: TrainPath) -> dict[str, Any]:
    result = await run_in_threadpool(forecast, reading.queries, train, reading.at)
    return result.as_dict()


# ==================================================================== writes


@router.post(
    "",
    operation_id="planTrain",
    summary="Plan a train",
    status_code=201,
    response_model=schemas.Recorded,
    responses=WRITE_PROBLEMS,
)
@command_route
def plan_train(body: schemas.PlanTrain, write: Write, response: Response) -> dict[str, Any]:
    result = write.ledger.plan_train(
        body.train,
        body.kind,
        body.actor,
        parent=body.parent,
        title=body.title,
        context=write.at(body.occurred_at),
    )
    response.headers["Location"] = f"{router.prefix}/{body.train}"
    return recorded(result)


@router.post(
    "/{train}/gates/{gate}/schedule",
    operation_id="scheduleGate",
    summary="Schedule a gate, or reschedule it (a slip)",
    status_code=201,
    response_model=schemas.Recorded,
    responses=WRITE_PROBLEMS,
)
@command_route
def schedule_gate(
    train: TrainPath, gate: GatePath, body: schemas.ScheduleGate, write: Write
) -> dict[str, Any]:
    return recorded(
        write.ledger.schedule_gate(
            train,
            gate,
            body.date,
            body.actor,
            reason=body.reason,
            context=write.at(body.occurred_at),
        )
    )


@router.post(
    "/{train}/gates/{gate}/decision",
    operation_id="decideGate",
    summary="Decide a gate: passed, conditional, failed or postponed",
    description="`passed` with unmet exit criteria is refused (409, the criteria in `unmet`); "
    "record it as `conditional` with its `conditions` instead.",
    status_code=201,
    response_model=schemas.Recorded,
    responses=WRITE_PROBLEMS,
)
@command_route
def decide_gate(
    train: TrainPath, gate: GatePath, body: schemas.DecideGate, write: Write
) -> dict[str, Any]:
    return recorded(
        write.ledger.decide_gate(
            train,
            gate,
            body.outcome,
            body.actor,
            conditions=body.conditions,
            notes=body.notes,
            context=write.at(body.occurred_at),
        )
    )


@router.post(
    "/{train}/scope",
    operation_id="proposeScope",
    summary="Propose a feature for the train's scope",
    status_code=201,
    response_model=schemas.Recorded,
    responses=WRITE_PROBLEMS,
)
@command_route
def propose_scope(train: TrainPath, body: schemas.ProposeScope, write: Write) -> dict[str, Any]:
    return recorded(
        write.ledger.propose_scope(
            train,
            body.feature,
            body.classification,
            body.actor,
            title=body.title,
            customers=_asks(body.customers),
            context=write.at(body.occurred_at),
        )
    )


@router.post(
    "/{train}/decisions",
    operation_id="recordDecision",
    summary="A change-management decision: commit, stretch, drop, move or add",
    status_code=201,
    response_model=schemas.Recorded,
    responses=WRITE_PROBLEMS,
)
@command_route
def record_decision(train: TrainPath, body: schemas.Decide, write: Write) -> dict[str, Any]:
    return recorded(
        write.ledger.decide(
            train,
            body.feature,
            body.action,
            body.actor,
            reason=body.reason,
            to_train=body.to_train,
            requested_by=body.requested_by,
            exception=body.exception,
            classification=body.classification,
            title=body.title,
            customers=_asks(body.customers),
            context=write.at(body.occurred_at),
        )
    )


@router.post(
    "/{train}/beta-drops",
    operation_id="shipBetaDrop",
    summary="Record a beta drop to customers",
    status_code=201,
    response_model=schemas.Recorded,
    responses=WRITE_PROBLEMS,
)
@command_route
def ship_beta_drop(train: TrainPath, body: schemas.ShipBetaDrop, write: Write) -> dict[str, Any]:
    return recorded(
        write.ledger.ship_beta_drop(
            train,
            body.build,
            body.customers,
            body.features,
            body.actor,
            context=write.at(body.occurred_at),
        )
    )


@router.post(
    "/{train}/qa-runs",
    operation_id="recordQARun",
    summary="Record a QA cycle's results",
    status_code=201,
    response_model=schemas.Recorded,
    responses=WRITE_PROBLEMS,
)
@command_route
def record_qa_run(train: TrainPath, body: schemas.RecordQARun, write: Write) -> dict[str, Any]:
    return recorded(
        write.ledger.record_qa_run(
            train,
            body.cycle,
            body.build,
            body.total,
            body.passed,
            body.failed,
            body.actor,
            blocked=body.blocked,
            context=write.at(body.occurred_at),
        )
    )


@router.post(
    "/{train}/support",
    operation_id="changeSupport",
    summary="Change a released train's support status",
    status_code=201,
    response_model=schemas.Recorded,
    responses=WRITE_PROBLEMS,
)
@command_route
def change_support(train: TrainPath, body: schemas.ChangeSupport, write: Write) -> dict[str, Any]:
    return recorded(
        write.ledger.change_support(
            train,
            body.status,
            body.actor,
            body.reason,
            eol_date=body.eol_date,
            context=write.at(body.occurred_at),
        )
    )
