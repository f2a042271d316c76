"""Reads and tokens answered from memory while PostgreSQL tells the server what changed.

The server's ``ChangeWatch`` hears NOTIFYs from triggers on ``projection_state`` and
``api_tokens`` (migration 0008). While it listens, a remembered token and a cached train
document are used without a query; whatever changes in the database, by this server or
another process, is heard within moments, and without the watch every read asks the
database as before.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator

import pytest

from api.tokens import create_token, revoke_token
from ledger.config import Database
from projections.schema import engine_for, upgrade
from projections.watch import ChangeWatch
from tests.api_client import at
from tests.integration.test_api import Api, open_api

pytestmark = pytest.mark.postgres

HEARD_WITHIN = 5.0


def eventually(check: Callable[[], bool], within: float = HEARD_WITHIN) -> float:
    """Seconds until ``check`` held; fails if it did not within ``within``."""
    started = time.monotonic()
    while not check():
        assert time.monotonic() - started < within, f"not heard within {within:g} s"
        time.sleep(0.01)
    return time.monotonic() - started


@pytest.fixture
def served(postgres_url: str, monkeypatch: pytest.MonkeyPatch) -> Iterator[Api]:
    """The API on PostgreSQL, its watch listening."""
    engine = engine_for(Database.from_url(postgres_url))
    upgrade(engine)
    engine.dispose()
    with open_api(postgres_url, monkeypatch) as api:
        watch = api.client.app.state.resources.watch  # type: ignore[attr-defined]
        eventually(lambda: watch.listening)
        yield api


def watch_of(api: Api) -> ChangeWatch:
    watch: ChangeWatch = api.client.app.state.resources.watch  # type: ignore[attr-defined]
    return watch


def plan(api: Api, train: str) -> int:
    return api.write(
        "/v1/trains",
        {"train": train, "kind": "major", "actor": "Ada Planner", "occurred_at": at(3)},
    )


def test_the_watch_hears_each_projection_batch(served: Api) -> None:
    """After a write, the watch's state of the trains projection reaches its position."""
    position = plan(served, "5.5")

    eventually(lambda: watch_of(served).states.get("trains", (0, 0))[1] >= position)


def test_a_remembered_read_answers_what_the_database_holds(served: Api) -> None:
    """A train read twice (the second from memory) is the same, and a later write shows at
    once with min_position."""
    position = plan(served, "5.5")
    first = served.get("/v1/trains/5.5", min_position=position)
    eventually(lambda: watch_of(served).states["trains"][1] >= position)
    remembered = served.get("/v1/trains/5.5")
    queries = served.client.app.state.resources.queries  # type: ignore[attr-defined]

    assert first.status_code == remembered.status_code == 200
    assert remembered.content == first.content
    assert queries.train_remembered("5.5", lambda document: b"x") is not None

    position = served.write(
        "/v1/trains/5.5/scope",
        {"feature": "DEDUP-7", "classification": "anchor", "actor": "Ada", "occurred_at": at(2)},
    )
    after = served.read("/v1/trains/5.5", position)
    assert [entry["feature"] for entry in after["scope"]] == ["DEDUP-7"]


def test_a_remembered_token_is_refused_soon_after_another_process_revokes_it(
    served: Api, postgres_url: str
) -> None:
    """A token used (and so remembered) is refused within moments of a revocation made on
    another connection, as ``ledger token revoke`` makes it."""
    elsewhere = engine_for(Database.from_url(postgres_url))
    try:
        token = create_token(elsewhere, "kiosk", "reader")
        headers = {"Authorization": f"Bearer {token}"}
        assert served.client.get("/v1/trains", headers=headers).status_code == 200
        authenticator = served.client.app.state.resources.authenticator  # type: ignore[attr-defined]
        assert authenticator.remembered(token).name == "kiosk"

        revoke_token(elsewhere, "kiosk")

        took = eventually(
            lambda: served.client.get("/v1/trains", headers=headers).status_code == 401
        )
    finally:
        elsewhere.dispose()
    assert took < 1.0


def test_without_the_watch_reads_and_tokens_ask_the_database(served: Api) -> None:
    """With the watch stopped (as when its connection is lost), every request still gets
    its answer, from the database."""
    position = plan(served, "5.5")
    served.read("/v1/trains/5.5", position)
    watch_of(served).stop()

    assert not watch_of(served).listening
    assert served.get("/v1/trains/5.5").json()["train"] == "5.5"
    queries = served.client.app.state.resources.queries  # type: ignore[attr-defined]
    assert queries.train_remembered("5.5", lambda document: b"x") is None
    authenticator = served.client.app.state.resources.authenticator  # type: ignore[attr-defined]
    assert authenticator.remembered(served.tokens["reader"]) is None
