"""The dashboard (SPEC §7): server-rendered, read-only pages over the projections.

Signing in works the way Jupyter's does: ``ledger serve`` prints a login URL whose
fragment (``/login#token=…``) carries a reader token, so the token never reaches a
server log or a Referer header; the login page posts it once and the server answers
with an HttpOnly, SameSite=Lax session cookie holding it. The sign-in form also
takes a pasted token. Each page checks the cookie's token like a bearer token, so a
revoked token signs the browser out. API routes accept bearer tokens only: a cookie
never authorises a write. Pages never leave the schema (``include_in_schema=False``).
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, date, datetime, time
from typing import Annotated, Any, TypeVar
from urllib.parse import parse_qs, urlencode

from fastapi import APIRouter, Depends, FastAPI, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from starlette.concurrency import run_in_threadpool

from api.charts import qa_chart, timeline
from api.deps import QueriesDep
from api.templating import public_path, templates
from api.tokens import MAX_TOKEN_LENGTH, Authenticator, Principal, Role
from ledger.exceptions import LedgerError, NotFound
from ledger.values import Classification, DecisionAction, ScopeStatus
from projections.forecast import forecast, open_forecasts
from projections.queries import ProjectionQueries, TimePoint
from projections.report import end_of_day, weekly_report

SESSION_COOKIE = "ledger_session"
T = TypeVar("T")
AUDIT_PAGE = 50
BOARD_COLUMNS = [
    ScopeStatus.PROPOSED,
    ScopeStatus.COMMITTED,
    ScopeStatus.STRETCHED,
    ScopeStatus.DELIVERED,
    ScopeStatus.DROPPED,
    ScopeStatus.MOVED_OUT,
]
CLASS_ORDER = [Classification.ANCHOR, Classification.COMMITTED, Classification.STRETCH]

router = APIRouter(include_in_schema=False, default_response_class=HTMLResponse)


class SignInRequired(Exception):
    """A page was asked for without a valid session: send the browser to sign in."""

    def __init__(self, back_to: str) -> None:
        super().__init__(back_to)
        self.back_to = back_to


class PageError(Exception):
    """A page cannot be shown (unknown train, a malformed date): a friendly HTML answer."""

    def __init__(self, status: int, title: str, detail: str) -> None:
        super().__init__(detail)
        self.status = status
        self.title = title
        self.detail = detail


def install_dashboard(app: FastAPI) -> None:
    """Add the pages and the handlers that answer their errors in HTML."""
    app.include_router(router)

    async def sign_in(request: Request, error: Exception) -> Response:
        assert isinstance(error, SignInRequired)
        target = public_path(request, f"/login?{urlencode({'next': error.back_to})}")
        return RedirectResponse(target, status_code=303)

    async def page_error(request: Request, error: Exception) -> Response:
        assert isinstance(error, PageError)
        return templates.TemplateResponse(
            request,
            "error.html",
            {"title": error.title, "detail": error.detail, "view": None},
            status_code=error.status,
        )

    app.add_exception_handler(SignInRequired, sign_in)
    app.add_exception_handler(PageError, page_error)


# ----------------------------------------------------------------- session


def _back_to(request: Request) -> str:
    return request.url.path + (f"?{request.url.query}" if request.url.query else "")


def _safe_next(request: Request, target: str | None) -> str:
    """Only a path on this server: never ``//elsewhere`` or an absolute URL."""
    if not target or not target.startswith("/") or target.startswith(("//", "/\\")):
        return public_path(request, "/")
    return target


def _cookie_path(request: Request) -> str:
    """The session belongs to the ledger's own paths, under a proxy's prefix too."""
    return public_path(request, "") or "/"


def signed_in(request: Request) -> Principal:
    token = request.cookies.get(SESSION_COOKIE)
    authenticator: Authenticator = request.app.state.resources.authenticator
    principal = (
        (authenticator.remembered(token) or authenticator.authenticate(token)) if token else None
    )
    if principal is None or not principal.may(Role.READER):
        raise SignInRequired(_back_to(request))
    return principal


Viewer = Annotated[Principal, Depends(signed_in)]


@router.get("/login")
def login_form(request: Request, next: str | None = None) -> Response:
    return _login_page(request, _safe_next(request, next), error=None, status=200)


@router.post("/login")
async def login(request: Request) -> Response:
    form = parse_qs((await request.body()).decode("utf-8", errors="replace"))
    token = (form.get("token") or [""])[-1].strip()
    target = _safe_next(request, (form.get("next") or [""])[-1])
    principal = (
        await run_in_threadpool(request.app.state.resources.authenticator.authenticate, token)
        if 0 < len(token) <= MAX_TOKEN_LENGTH
        else None
    )
    if principal is None:
        return _login_page(
            request, target, error="That token is unknown, expired or revoked.", status=401
        )
    response = RedirectResponse(target, status_code=303)
    response.set_cookie(
        SESSION_COOKIE,
        token,
        httponly=True,
        samesite="lax",
        secure=request.url.scheme == "https",
        path=_cookie_path(request),
    )
    return response


@router.post("/logout")
def logout(request: Request) -> Response:
    response = RedirectResponse(public_path(request, "/login"), status_code=303)
    response.delete_cookie(SESSION_COOKIE, path=_cookie_path(request))
    return response


def _login_page(request: Request, target: str, *, error: str | None, status: int) -> Response:
    return templates.TemplateResponse(
        request,
        "login.html",
        {"next": target, "error": error, "view": None},
        status_code=status,
    )


# ----------------------------------------------------------------- as of


class View:
    """What every page shows around its content: the time point and links that keep it."""

    def __init__(self, request: Request, principal: Principal, as_of: str | None) -> None:
        self.request = request
        self.principal = principal
        self.today = datetime.now(UTC).date()
        self.day = _as_of_day(as_of, self.today)
        self.moment = end_of_day(self.day) if self.day is not None else None

    @property
    def past(self) -> bool:
        return self.day is not None

    @property
    def at(self) -> TimePoint:
        return TimePoint(as_of=self.moment)

    @property
    def picker(self) -> str:
        return (self.day or self.today).isoformat()

    def href(self, path: str, **params: Any) -> str:
        """A link to ``path`` that keeps the page's as_of."""
        if self.day is not None:
            params = {"as_of": self.day.isoformat(), **params}
        kept = {key: value for key, value in params.items() if value not in (None, "")}
        return public_path(self.request, path) + (f"?{urlencode(kept)}" if kept else "")


def _as_of_day(value: str | None, today: date) -> date | None:
    """The day a page shows, from ``2026-11-08`` or an ISO moment; None is today."""
    if not value:
        return None
    try:
        day = (
            date.fromisoformat(value)
            if len(value) == 10
            else datetime.fromisoformat(value).astimezone(UTC).date()
        )
    except ValueError:
        raise PageError(
            400, "That date is not valid", f"as_of must be a date like 2026-11-08, not {value!r}"
        ) from None
    return None if day >= today else day


def page_view(request: Request, viewer: Viewer, as_of: str | None = None) -> View:
    return View(request, viewer, as_of)


ViewDep = Annotated[View, Depends(page_view)]


def _render(view: View, name: str, **context: Any) -> Response:
    return templates.TemplateResponse(view.request, name, {"view": view, **context})


def _found(read: Callable[[], T], what: str) -> T:
    try:
        return read()
    except NotFound as error:
        raise PageError(404, f"No such {what}", error.detail) from None
    except LedgerError as error:  # a malformed key or train id names nothing
        raise PageError(404, f"No such {what}", error.detail) from None


# ------------------------------------------------------------------- pages


@router.get("/")
def timeline_page(view: ViewDep, queries: QueriesDep) -> Response:
    calendar = queries.calendar(view.at)
    chart = timeline(calendar, view.today, view.day, open_forecasts(queries, view.at))
    trains = sorted(calendar, key=lambda row: (row["planned_at"], row["train"]))
    return _render(view, "timeline.html", chart=chart, trains=trains)


@router.get("/trains/{train}")
def train_page(view: ViewDep, queries: QueriesDep, train: str) -> Response:
    document = _found(lambda: queries.train(train, view.at), "train")
    features = {
        entry["feature"]: _feature(queries, entry["feature"], view.at)
        for entry in document["scope"]
    }
    board = _board(document["scope"], features)
    readiness = _readiness(queries, document, view.at)
    chart = qa_chart(document["qa"], queries.policy.qa_target)
    return _render(
        view,
        "train.html",
        train=document,
        board=board,
        readiness=readiness,
        chart=chart,
        target=queries.policy.qa_target,
        forecast=forecast(queries, train, view.at),
    )


@router.get("/trains/{train}/report")
def report_page(view: ViewDep, queries: QueriesDep, train: str) -> Response:
    report = _found(lambda: weekly_report(queries, train, view.moment), "train")
    return _render(view, "report.html", report=report, standalone=False)


@router.get("/features/{key}")
def feature_page(view: ViewDep, queries: QueriesDep, key: str) -> Response:
    feature = _found(lambda: queries.feature(key, view.at), "feature")
    journey = queries.journey(key, view.at)
    return _render(view, "feature.html", feature=feature, journey=list(reversed(journey)))


@router.get("/audit")
def audit_page(
    view: ViewDep,
    queries: QueriesDep,
    train: str | None = None,
    feature: str | None = None,
    actor: str | None = None,
    action: str | None = None,
    since: str | None = None,
    until: str | None = None,
    after: int | None = None,
    limit: int = AUDIT_PAGE,
) -> Response:
    filters: dict[str, Any] = {
        "train": train or None,
        "feature": feature or None,
        "actor": actor or None,
        "action": action or None,
        "since": since or None,
        "until": until or None,
    }
    if filters["action"] is not None and filters["action"] not in set(DecisionAction):
        raise PageError(400, "Unknown action", f"action must be one of {_actions()}")
    rows, cursor = queries.audit(
        train=filters["train"],
        feature=filters["feature"],
        actor=filters["actor"],
        action=filters["action"],
        since=_day_bound(filters["since"], time.min, "since"),
        until=_day_bound(filters["until"], time.max, "until"),
        after=after,
        limit=limit,
        at=view.at,
    )
    if limit != AUDIT_PAGE:
        filters["limit"] = limit  # kept by the pager links and the form
    return _render(
        view,
        "audit.html",
        rows=rows,
        filters=filters,
        actions=[str(action) for action in DecisionAction],
        next_page=view.href("/audit", **filters, after=cursor) if cursor is not None else None,
        first_page=view.href("/audit", **filters) if after is not None else None,
    )


def _feature(queries: ProjectionQueries, key: str, at: TimePoint) -> dict[str, Any]:
    return _found(lambda: queries.feature(key, at), "feature")


def _actions() -> str:
    return ", ".join(str(action) for action in DecisionAction)


def _day_bound(value: str | None, bound: time, name: str) -> datetime | None:
    if value is None:
        return None
    try:
        return datetime.combine(date.fromisoformat(value), bound, tzinfo=UTC)
    except ValueError:
        raise PageError(
            400, "That date is not valid", f"{name} must be a date like 2026-11-08"
        ) from None


def _board(
    scope: list[dict[str, Any]], features: dict[str, dict[str, Any]]
) -> list[tuple[str, list[dict[str, Any]]]]:
    """Scope cards in columns by status, anchors first, then by customer weight."""
    cards = [
        {
            **entry,
            "title": features[entry["feature"]]["title"],
            "customers": features[entry["feature"]]["customers"],
            "weight": features[entry["feature"]]["customer_weight"],
        }
        for entry in scope
    ]
    columns = []
    for status in BOARD_COLUMNS:
        column = [card for card in cards if card["status"] == status]
        column.sort(
            key=lambda card: (
                CLASS_ORDER.index(card["classification"])
                if card["classification"] in CLASS_ORDER
                else len(CLASS_ORDER),
                -(card["weight"] or 0),
                card["feature"],
            )
        )
        columns.append((str(status), column))
    return columns


def _readiness(
    queries: ProjectionQueries, document: dict[str, Any], at: TimePoint
) -> list[dict[str, Any]]:
    """Each gate's criteria: as recorded when it was decided, or evaluated now if open."""
    gates = []
    for gate in document["gates"]:
        if gate["outcome"] is not None:
            criteria = list(gate["evidence"])
            evaluated = "recorded with the decision"
        else:
            criteria = [c.as_dict() for c in queries.readiness(document["train"], gate["gate"], at)]
            evaluated = "evaluated on the ledger"
        gates.append(
            {
                **gate,
                "criteria": criteria,
                "evaluated": evaluated,
                "ready": all(c["met"] for c in criteria),
            }
        )
    return gates
